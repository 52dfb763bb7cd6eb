/// Lowercase hex of `bytes`, written straight into the string's storage (it is on the issuance hot path). The one
/// hex encoder of the code base; `@inlinable`, so callers in other modules get it specialised (an unspecialised
/// generic call per certificate showed in the issuance benchmark).
@inlinable
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

/// The octets of an even number of ASCII hex digits, either case, nothing else (no separators, no Unicode digits
/// such as fullwidth `０`, which `Character.isHexDigit` would accept). The one hex decoder of the code base.
@inlinable
public func hexBytes(_ text: some StringProtocol) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    var index = 0
    while index < digits.count {
        guard let high = hexNibble(digits[index]), let low = hexNibble(digits[index + 1]) else { return nil }
        bytes.append(high << 4 | low)
        index += 2
    }
    return bytes
}

/// True when `text` is exactly `count` lowercase ASCII hex digits (digests, nonces and fingerprints as MeterTrust
/// writes them).
@inlinable
public func isLowercaseHex(_ text: some StringProtocol, count: Int) -> Bool {
    text.utf8.count == count && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
}

@inlinable @inline(__always)
public func hexNibble(_ digit: UInt8) -> UInt8? {
    switch digit {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
    default: return nil
    }
}
