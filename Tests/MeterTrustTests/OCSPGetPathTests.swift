import Foundation
import Testing

@testable import MeterTrustServer

/// Anyone sending garbage to the OCSP GET endpoint: the path decoder (RFC 6960 Appendix A.1) agrees with Foundation's
/// base64 on every well-formed path and refuses everything else, never reading past the path.
@Suite("OCSP GET path decoding")
struct OCSPGetPathTests {
    static func decode(_ path: String, limit: Int = 8192) -> [UInt8]? {
        OCSPGetPath.request(fromPath: Substring(path).utf8, limit: limit)
    }

    @Test("agrees with Foundation's base64 for every length, percent-encoded or not, standard or URL-safe alphabet")
    func agrees() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let standard = Data(bytes).base64EncodedString()
            #expect(Self.decode(standard) == bytes, "\(length)")
            #expect(Self.decode(standard.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!) == bytes, "\(length) percent-encoded")
            let urlSafe = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            #expect(Self.decode(urlSafe) == bytes, "\(length) URL-safe")
            #expect(Self.decode(urlSafe.replacingOccurrences(of: "=", with: "")) == bytes, "\(length) unpadded")
        }
    }

    @Test("refuses octets outside the alphabet, truncated escapes, misplaced or excess padding, and anything over the limit")
    func refuses() {
        for path in ["ab*d", "%", "%4", "%G1", "abc%", "A===", "AB=C", "ABC==", "A", "ABCDE", "AB==AB==", "....", "%00AAA", "/AAA"] {
            if path == "/AAA" {
                #expect(Self.decode(path) != nil, "a slash is base64")
            } else {
                #expect(Self.decode(path) == nil, "\(path)")
            }
        }
        #expect(Self.decode(String(repeating: "A", count: 16)) != nil)
        #expect(Self.decode(String(repeating: "A", count: 16), limit: 11) == nil)
        #expect(Self.decode(String(repeating: "A", count: 100_000)) == nil)
    }
}
