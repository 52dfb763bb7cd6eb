/// Text from outside (a request parameter, a certificate subject, an input line) made safe to show a person on a
/// terminal: nothing in it can move the cursor, recolour, clear the screen, reorder what follows or hide itself.
///
/// Escaped as `\u{…}`: C0 and C1 controls and DEL (ANSI escape sequences start with ESC, U+001B), the bidirectional
/// formatting characters (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069: "Trojan Source", CVE-2021-42574),
/// zero-width and invisible characters (U+200B–U+200D, U+2060–U+2064, U+FEFF, U+00AD), and the backslash itself so an
/// escape cannot be faked. With `asciiOnly`, every non-ASCII character is escaped too.
public enum DisplayText {
    public static func escaped(_ text: String, asciiOnly: Bool = false, limit: Int? = nil) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if let limit, count == limit {
                out += "…"
                break
            }
            count += 1
            if mustEscape(scalar) || (asciiOnly && !scalar.isASCII) {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func mustEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x5C: return true
        case 0x00AD, 0x061C, 0x180E: return true
        case 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x2069, 0xFEFF: return true
        default: return false
        }
    }
}
