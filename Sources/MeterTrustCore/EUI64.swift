/// A meter's 64-bit extended unique identifier (IEEE EUI-64), its hardware serial number.
///
/// Written as 16 lowercase hex digits (`0024befffe804ff1`), as RFC 9039 device URNs use it. Parsing also accepts
/// upper case and `-` or `:` between octets.
public struct EUI64: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public let bytes: [UInt8]

    public init(bytes: some Collection<UInt8>) throws {
        guard bytes.count == 8 else {
            throw CoreError(.invalidArgument, "an EUI-64 has 8 bytes, not \(bytes.count)")
        }
        self.bytes = Array(bytes)
    }

    /// Parses 16 ASCII hex digits, either case, optionally with `:` or `-` between them. ASCII only: Unicode "hex
    /// digits" such as fullwidth `０`–`９` (which `Character.isHexDigit` accepts) are refused, not read.
    public init(_ text: String) throws {
        let digits = text.utf8.filter { $0 != UInt8(ascii: ":") && $0 != UInt8(ascii: "-") }
        guard let eui = EUI64(asciiHex: digits) else {
            throw CoreError(.invalidArgument, "\(Self.quoted(text)) is not an EUI-64: write 16 hex digits (ASCII), e.g. 0024befffe804ff1")
        }
        self = eui
    }

    /// `text` in quotes for a message, cut at 40 characters, anything but printable ASCII escaped.
    static func quoted(_ text: String) -> String {
        "\"" + DisplayText.escaped(text, asciiOnly: true, limit: 40) + "\""
    }

    /// Exactly 16 hex digits as ASCII octets, either case, no separators (the spelling lists and device URNs use);
    /// read on the octets, as the factory's hot path needs. Nil for anything else: use ``init(_:)`` for the rest.
    @inlinable
    public init?(asciiHex digits: some Collection<UInt8>) {
        guard digits.count == 16 else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            guard let nibble = hexNibble(digit) else { return nil }
            value = value << 4 | UInt64(nibble)
        }
        self.init(value)
    }

    @inlinable
    public init(_ value: UInt64) {
        self.bytes = withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    @inlinable
    public var value: UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }

    /// 16 lowercase hex digits.
    @inlinable
    public var description: String { hexString(bytes) }

    /// The RFC 9039 device URN prefix for a MAC-48/EUI-64 (`urn:dev:mac:`), as the subject CN of a device request
    /// and the LwM2M endpoint name use it.
    public static let deviceURNPrefix = "urn:dev:mac:"

    /// The RFC 9039 device URN, `urn:dev:mac:<eui64>`, used as the LwM2M endpoint name.
    public var deviceURN: String { Self.deviceURNPrefix + description }

    /// Reads `urn:dev:mac:` followed by exactly 16 ASCII hex digits (RFC 9039 §4.1 with an EUI-64); nil otherwise.
    public init?(deviceURN: String) {
        guard deviceURN.hasPrefix(Self.deviceURNPrefix) else { return nil }
        guard let eui = EUI64(asciiHex: deviceURN.utf8.dropFirst(Self.deviceURNPrefix.utf8.count)) else { return nil }
        self = eui
    }

    public static func < (lhs: EUI64, rhs: EUI64) -> Bool { lhs.value < rhs.value }

    public init(from decoder: any Decoder) throws {
        try self.init(try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
