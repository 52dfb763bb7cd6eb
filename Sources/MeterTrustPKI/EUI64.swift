import MeterTrustCore

/// A meter's 64-bit extended unique identifier (IEEE EUI-64), its hardware serial number.
///
/// Written as 16 lowercase hex digits (`0024befffe804ff1`), as RFC 9039 device URNs use it. Parsing also accepts
/// upper case and `-` or `:` between octets.
public struct EUI64: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public let bytes: [UInt8]

    public init(bytes: some Collection<UInt8>) throws {
        guard bytes.count == 8 else {
            throw PKIError(.invalidArgument, "an EUI-64 has 8 bytes, not \(bytes.count)")
        }
        self.bytes = Array(bytes)
    }

    /// Parses 16 ASCII hex digits, either case, optionally with `:` or `-` between them. ASCII only: Unicode "hex
    /// digits" such as fullwidth `０`–`９` (which `Character.isHexDigit` accepts) are refused, not read.
    public init(_ text: String) throws {
        let digits = text.utf8.filter { $0 != UInt8(ascii: ":") && $0 != UInt8(ascii: "-") }
        guard let eui = EUI64(asciiHex: digits) else {
            throw PKIError(.invalidArgument, "\(Self.quoted(text)) is not an EUI-64: write 16 hex digits (ASCII), e.g. 0024befffe804ff1")
        }
        self = eui
    }

    /// `text` in quotes for a message, cut at 40 characters, anything but printable ASCII escaped.
    static func quoted(_ text: String) -> String {
        "\"" + DisplayText.escaped(text, asciiOnly: true, limit: 40) + "\""
    }

    /// Exactly 16 hex digits as ASCII octets, either case, no separators (the spelling lists and device URNs use);
    /// read on the octets, as the factory's hot path needs. Nil for anything else: use ``init(_:)`` for the rest.
    public init?(asciiHex digits: some Collection<UInt8>) {
        guard digits.count == 16 else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            let nibble: UInt8
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = digit - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt64(nibble)
        }
        self.init(value)
    }

    public init(_ value: UInt64) {
        self.bytes = withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    public var value: UInt64 { bytes.reduce(0) { $0 << 8 | UInt64($1) } }

    /// 16 lowercase hex digits.
    public var description: String { hexString(bytes) }

    /// The RFC 9039 device URN, `urn:dev:mac:<eui64>`, used as the LwM2M endpoint name.
    public var deviceURN: String { "urn:dev:mac:\(description)" }

    public static func < (lhs: EUI64, rhs: EUI64) -> Bool { lhs.value < rhs.value }

    public init(from decoder: any Decoder) throws {
        try self.init(try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Lowercase hex of `bytes`, written straight into the string's storage (it is on the issuance hot path).
public func hexString(_ sequence: some Sequence<UInt8>) -> String {
    let bytes = Array(sequence)
    let digits: StaticString = "0123456789abcdef"
    return digits.withUTF8Buffer { digits in
        String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            var index = 0
            for byte in bytes {
                buffer[index] = digits[Int(byte >> 4)]
                buffer[index + 1] = digits[Int(byte & 0x0F)]
                index += 2
            }
            return index
        }
    }
}
