/// A strict reader of DER TLVs over a byte array, for the issuance hot path: no allocation, no node tree.
///
/// It accepts only what DER allows and a MeterTrust request needs: single-octet tags and definite lengths in their
/// shortest form, up to 65,535 content octets (X.690 §8.1.3, §10.1). Anything else reads as nil; the caller then
/// hands the input to the full swift-asn1 / swift-certificates parser, which decides and explains. So this reader
/// can only ever accept less than the full parser, never more.
struct DERReader {
    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int

    init(_ bytes: [UInt8]) {
        self.init(bytes, range: 0..<bytes.count)
    }

    init(_ bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    var isAtEnd: Bool { position == end }

    /// The tag of the next element, without reading it.
    var nextTag: UInt8? { position < end ? bytes[position] : nil }

    /// Reads the next element if its tag is `tag`; returns its content octets' range.
    mutating func read(_ tag: UInt8) -> Range<Int>? {
        guard let element = peek(), element.tag == tag else { return nil }
        position = element.end
        return element.content
    }

    /// Reads the next element, whatever its tag: the whole encoding's range and the content's.
    mutating func readAny() -> (tag: UInt8, whole: Range<Int>, content: Range<Int>)? {
        guard let element = peek() else { return nil }
        let start = position
        position = element.end
        return (element.tag, start..<element.end, element.content)
    }

    /// Reads the next octets if they are exactly `encoding`: a whole element (tag, length, content), or the
    /// leading octets of one whose length the caller's expected encoding fixes (a P-256 key's SPKI header).
    mutating func read(exactly encoding: [UInt8]) -> Bool {
        guard end - position >= encoding.count else { return false }
        for index in 0..<encoding.count where bytes[position + index] != encoding[index] { return false }
        position += encoding.count
        return true
    }

    /// A reader over the content of the next element with tag `tag`.
    mutating func enter(_ tag: UInt8) -> DERReader? {
        read(tag).map { DERReader(bytes, range: $0) }
    }

    private func peek() -> (tag: UInt8, content: Range<Int>, end: Int)? {
        guard end - position >= 2 else { return nil }
        let tag = bytes[position]
        guard tag & 0x1F != 0x1F else { return nil }  // multi-octet tag
        var index = position + 1
        let first = bytes[index]
        index += 1
        let length: Int
        switch first {
        case 0..<0x80:
            length = Int(first)
        case 0x81:
            guard index < end, bytes[index] >= 0x80 else { return nil }
            length = Int(bytes[index])
            index += 1
        case 0x82:
            guard end - index >= 2, bytes[index] != 0 else { return nil }
            length = Int(bytes[index]) << 8 | Int(bytes[index + 1])
            guard length >= 0x100 else { return nil }
            index += 2
        default:
            return nil  // indefinite (0x80) or longer than this reader needs
        }
        guard end - index >= length else { return nil }
        return (tag, index..<(index + length), index + length)
    }
}

/// DER tag octets used by the hot-path readers and writers.
enum DERTag {
    static let boolean: UInt8 = 0x01
    static let integer: UInt8 = 0x02
    static let bitString: UInt8 = 0x03
    static let octetString: UInt8 = 0x04
    static let objectIdentifier: UInt8 = 0x06
    static let utf8String: UInt8 = 0x0C
    static let printableString: UInt8 = 0x13
    static let sequence: UInt8 = 0x30
    static let set: UInt8 = 0x31
    static func contextConstructed(_ number: UInt8) -> UInt8 { 0xA0 | number }
}

/// Appends DER headers and elements to a byte array.
enum DERWriter {
    /// Appends tag and the shortest definite length for `length` content octets.
    static func appendHeader(_ tag: UInt8, length: Int, to output: inout [UInt8]) {
        output.append(tag)
        switch length {
        case 0..<0x80:
            output.append(UInt8(length))
        case 0x80..<0x100:
            output.append(0x81)
            output.append(UInt8(length))
        case 0x100..<0x10000:
            output.append(0x82)
            output.append(UInt8(length >> 8))
            output.append(UInt8(length & 0xFF))
        default:
            output.append(0x83)
            output.append(UInt8(length >> 16))
            output.append(UInt8((length >> 8) & 0xFF))
            output.append(UInt8(length & 0xFF))
        }
    }

    /// Octets a header for `length` content octets takes.
    static func headerLength(_ length: Int) -> Int {
        switch length {
        case 0..<0x80: return 2
        case 0x80..<0x100: return 3
        case 0x100..<0x10000: return 4
        default: return 5
        }
    }
}
