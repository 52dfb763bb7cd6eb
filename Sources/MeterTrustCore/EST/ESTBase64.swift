import Foundation

/// The transfer encoding of EST bodies (RFC 7030 §4: "base64" Content-Transfer-Encoding, RFC 2045 §6.8): the
/// DER of a PKCS#10 request, a certs-only CMS or a CsrAttrs, base64 with or without line breaks.
///
/// Decoding is strict where RFC 4648 §3 is (only the base64 alphabet, `=` padding to a multiple of four, at the end
/// only; stricter than Foundation's decoder, which takes `AA=A` and `AAAA====`) and lenient where RFC 2045 is: whitespace (space, tab, CR, LF) may appear anywhere, so bodies broken into
/// lines of 64 or 76 characters and bodies on one line both decode. Anything else is refused, not skipped
/// (Foundation's `.ignoreUnknownCharacters` would silently drop it). Bounded: at most `maximumDecodedBytes` octets come
/// out, and the work is linear in the input.
public enum ESTBase64 {
    /// Decodes `text` (base64, whitespace allowed), refusing more than `maximumDecodedBytes` octets of output.
    /// Throws a ``CoreError`` (``ErrorCode/estMalformedBody``) saying what is wrong and where.
    public static func decode(_ text: some Collection<UInt8>, maximumDecodedBytes: Int) throws -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(min(text.count, maximumDecodedBytes + 3) * 3 / 4)
        var quantum: UInt32 = 0
        var filled = 0
        var padding = 0
        var offset = 0
        for octet in text {
            defer { offset += 1 }
            switch octet {
            case 0x20, 0x09, 0x0D, 0x0A:
                continue
            case UInt8(ascii: "="):
                padding += 1
                guard padding <= 2, filled + padding <= 4, filled >= 2 else {
                    throw CoreError(.estMalformedBody, "the body is not base64: misplaced '=' padding at offset \(offset)")
                }
                if filled + padding == 4 {
                    // Padding closes the last quantum: 1 or 2 octets. Unused low bits are ignored, as RFC 4648 §3.5
                    // lets a decoder do (and as Foundation's decoder does).
                    if padding == 2 {
                        output.append(UInt8(quantum >> 4 & 0xFF))
                    } else {
                        output.append(UInt8(quantum >> 10 & 0xFF))
                        output.append(UInt8(quantum >> 2 & 0xFF))
                    }
                    filled = 4
                }
                continue
            default:
                guard let value = Self.value(of: octet) else {
                    throw CoreError(.estMalformedBody, "the body is not base64: byte 0x\(hexString([octet])) at offset \(offset) is outside the base64 alphabet")
                }
                guard padding == 0 else {
                    throw CoreError(.estMalformedBody, "the body is not base64: data after '=' padding at offset \(offset)")
                }
                if filled == 4 { filled = 0 }
                quantum = quantum << 6 | UInt32(value)
                filled += 1
                if filled == 4 {
                    output.append(UInt8(quantum >> 16 & 0xFF))
                    output.append(UInt8(quantum >> 8 & 0xFF))
                    output.append(UInt8(quantum & 0xFF))
                    quantum = 0
                }
            }
            guard output.count <= maximumDecodedBytes else {
                throw CoreError(.estMalformedBody, "the body decodes to more than \(maximumDecodedBytes) bytes")
            }
        }
        guard padding == 0 ? filled == 0 || filled == 4 : filled == 4 else {
            throw CoreError(.estMalformedBody, "the body is not base64: its length is not a multiple of four characters (padding missing)")
        }
        guard output.count <= maximumDecodedBytes else {
            throw CoreError(.estMalformedBody, "the body decodes to more than \(maximumDecodedBytes) bytes")
        }
        guard !output.isEmpty else { throw CoreError(.estMalformedBody, "the body is empty: send the base64 of the DER") }
        return output
    }

    /// `bytes` as base64 in lines of 64 characters, each ending in CRLF (RFC 2045 allows 76; 64 is what PEM and
    /// `openssl base64 -d` read).
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        Data(bytes).base64EncodedString(options: [.lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]) + "\r\n"
    }

    private static func value(of octet: UInt8) -> UInt8? {
        switch octet {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return octet - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return octet - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return octet - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
