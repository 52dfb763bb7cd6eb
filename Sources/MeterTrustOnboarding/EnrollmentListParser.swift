import MeterTrustCore

/// One parsed entry: the meter (16 lowercase hex digits), its device identity certificate's SHA-256 for a manifest,
/// and where it was (line of a plain list, or index in a manifest's `meters`, both 1-based).
public struct ParsedEnrollmentEntry: Sendable, Hashable {
    public var eui64: String
    public var certificateSHA256: String?
    public var place: Int
}

/// A streaming parser of an upload's body: fed pieces of any size, it hands back the entries completed so far and
/// keeps only the unfinished end of the input (bounded), so memory stays flat however long the list.
public protocol EnrollmentStreamParser: Sendable {
    /// Parses `bytes`, appending completed entries to `entries`. Throws a coded error naming the line or entry.
    mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, into entries: inout [ParsedEnrollmentEntry]) throws
    /// The input ended: completes the last entry or throws if the document is unfinished.
    mutating func finish(into entries: inout [ParsedEnrollmentEntry]) throws
}

/// A plain list: text, one EUI-64 per line (16 hex digits, either case, or 8 octets separated by `-` or `:`
/// throughout), `#` starting a comment to the end of the line, blank lines and surrounding spaces or tabs ignored,
/// LF or CRLF line ends. A line longer than ``maximumLineLength`` is refused.
public struct PlainListParser: EnrollmentStreamParser {
    public static let maximumLineLength = 256
    private var line: [UInt8] = []
    private var lineNumber = 0

    public init() {
        line.reserveCapacity(Self.maximumLineLength)
    }

    public mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, into entries: inout [ParsedEnrollmentEntry]) throws {
        for byte in bytes {
            if byte == 0x0A {
                try endLine(into: &entries)
            } else {
                guard line.count < Self.maximumLineLength else {
                    throw OnboardingError(.malformedList, "line \(lineNumber + 1) is longer than \(Self.maximumLineLength) bytes: write one EUI-64 per line")
                }
                line.append(byte)
            }
        }
    }

    public mutating func finish(into entries: inout [ParsedEnrollmentEntry]) throws {
        if !line.isEmpty { try endLine(into: &entries) }
    }

    private mutating func endLine(into entries: inout [ParsedEnrollmentEntry]) throws {
        lineNumber += 1
        defer { line.removeAll(keepingCapacity: true) }
        var end = line.firstIndex(of: UInt8(ascii: "#")) ?? line.count
        var start = 0
        while start < end, Self.isSpace(line[start]) { start += 1 }
        while end > start, Self.isSpace(line[end - 1]) { end -= 1 }
        guard start < end else { return }
        let field = line[start..<end]
        guard let eui64 = Self.eui64(field) else {
            if lineNumber == 1, field.first == UInt8(ascii: "{") {
                throw OnboardingError(.malformedList, "line 1 starts a JSON document: upload an enrollment manifest with format manifest, a plain list with one EUI-64 per line")
            }
            let shown = DisplayText.escaped(String(decoding: field, as: UTF8.self), asciiOnly: true, limit: 40)
            throw OnboardingError(
                .malformedList, "line \(lineNumber): \"\(shown)\" is not an EUI-64: write 16 hex digits (e.g. 0024befffe804ff1), optionally as octets joined by - or :"
            )
        }
        entries.append(ParsedEnrollmentEntry(eui64: eui64.description, certificateSHA256: nil, place: lineNumber))
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }

    /// 16 hex digits, or 8 pairs joined by one separator (`-` or `:`) used throughout.
    static func eui64(_ field: ArraySlice<UInt8>) -> EUI64? {
        if field.count == 16 { return EUI64(asciiHex: field) }
        guard field.count == 23 else { return nil }
        let separator = field[field.startIndex + 2]
        guard separator == UInt8(ascii: "-") || separator == UInt8(ascii: ":") else { return nil }
        var digits: [UInt8] = []
        digits.reserveCapacity(16)
        for (offset, byte) in field.enumerated() {
            if offset % 3 == 2 {
                guard byte == separator else { return nil }
            } else {
                digits.append(byte)
            }
        }
        return EUI64(asciiHex: digits)
    }
}
