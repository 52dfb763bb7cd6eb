import Foundation
import MeterTrustCore
import MeterTrustDevice
import SwiftASN1
import Testing
import X509

/// `ESTResponse.meaning(of:from:)`, the one function that reads an EST server's answer, on answers made by openssl
/// (certs-only CMS from `openssl crl2pkcs7 -nocrl`) and by hand (the rejections, each named for what it rejects).
@Suite("EST client: reading answers")
struct ESTResponseTests {
    static let server = "https://127.0.0.1:8443"

    /// A certs-only CMS of two certificates, made by openssl from self-signed certificates it made too.
    static func opensslCertsOnly() throws -> (base64: String, subjects: [String]) {
        let d = TestEnvironment.temporaryDirectory().path
        var subjects: [String] = []
        for name in ["first", "second"] {
            let made = try TestEnvironment.run("openssl", [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(d)/\(name).key",
                "-subj", "/CN=\(name)", "-days", "1", "-out", "\(d)/\(name).pem",
            ])
            #expect(made.status == 0, "\(made.stderr)")
            subjects.append("CN=\(name)")
        }
        let p7 = try TestEnvironment.run("openssl", ["crl2pkcs7", "-nocrl", "-certfile", "\(d)/first.pem", "-certfile", "\(d)/second.pem", "-outform", "DER", "-out", "\(d)/p7.der"])
        #expect(p7.status == 0, "\(p7.stderr)")
        // Line breaks every 64 characters, as RFC 8951 allows.
        return (try Data(contentsOf: URL(fileURLWithPath: "\(d)/p7.der")).base64EncodedString(options: [.lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]), subjects)
    }

    static func answer(_ status: Int, _ type: String?, _ body: String, retryAfter: String? = nil) -> ESTResponse {
        ESTResponse(status: status, contentType: type, retryAfter: retryAfter, body: Array(body.utf8))
    }

    static func refusal(_ response: ESTResponse, _ operation: ESTOperation = .simpleenroll) -> ESTClientError? {
        do {
            _ = try response.meaning(of: operation, from: server)
            return nil
        } catch {
            return error as? ESTClientError
        }
    }

    @Test("openssl's certs-only CMS with line breaks reads as its certificates, in order")
    func readsOpenSSLCertsOnly() throws {
        let (body, subjects) = try Self.opensslCertsOnly()
        let meaning = try Self.answer(200, "application/pkcs7-mime; smime-type=certs-only", body).meaning(of: .cacerts, from: Self.server)
        guard case .certificates(let certificates) = meaning else { Issue.record("not certificates: \(meaning)"); return }
        #expect(certificates.map { $0.subject.description } == subjects)
    }

    @Test("rejects a 200 whose Content-Type is not application/pkcs7-mime")
    func rejectsWrongContentType() throws {
        let (body, _) = try Self.opensslCertsOnly()
        let error = try #require(Self.refusal(Self.answer(200, "text/html", body)))
        #expect(error.errorCode == .estBadResponse && error.message.contains("Content-Type is text/html, not application/pkcs7-mime"))
        #expect(Self.refusal(Self.answer(200, nil, body))?.errorCode == .estBadResponse)
    }

    @Test("rejects a body that is not base64")
    func rejectsNonBase64Body() {
        let error = Self.refusal(Self.answer(200, "application/pkcs7-mime", "MIIB*not base64*"))
        #expect(error?.errorCode == .estBadResponse && error?.message.contains("not base64") == true)
    }

    @Test("rejects base64 of something that is not a certs-only CMS")
    func rejectsNonCMS() {
        let error = Self.refusal(Self.answer(200, "application/pkcs7-mime", Data([0x30, 0x03, 0x02, 0x01, 0x01]).base64EncodedString()))
        #expect(error?.errorCode == .estBadResponse && error?.message.contains("certs-only CMS") == true)
    }

    @Test("rejects an answer larger than the bound before reading it")
    func rejectsOversizeAnswer() {
        let body = String(repeating: "A", count: ESTResponse.maximumBodySize + 1)
        let error = Self.refusal(Self.answer(200, "application/pkcs7-mime", body))
        #expect(error?.errorCode == .estBadResponse && error?.message.contains("larger than \(ESTResponse.maximumBodySize)") == true)
    }

    @Test("a problem document keeps the server's code when it is ours, and its detail, escaped, in one line")
    func problemDocument() {
        let known = Self.refusal(Self.answer(403, "application/problem+json", #"{"code":"onboarding.not-claimed","detail":"meter 0024befffe000001 is not claimed\n\u001b[2J"}"#))
        #expect(known?.errorCode == .notClaimed && known?.serverCode == "onboarding.not-claimed" && known?.status == 403)
        #expect(known?.message == #"EST simpleenroll at https://127.0.0.1:8443 refused: HTTP 403, onboarding.not-claimed: meter 0024befffe000001 is not claimed\u{a}\u{1b}[2J"#)
        let foreign = Self.refusal(Self.answer(400, "application/problem+json", #"{"code":"vendor.something","title":"Bad"}"#))
        #expect(foreign?.errorCode == .estRefused && foreign?.serverCode == "vendor.something" && foreign?.message.hasSuffix(": Bad") == true)
        let plain = Self.refusal(Self.answer(500, "text/plain", "oops"))
        #expect(plain?.errorCode == .estRefused && plain?.message == "EST simpleenroll at https://127.0.0.1:8443 refused: HTTP 500")
    }

    @Test("Retry-After as delta-seconds or an HTTP-date means retry; a 503 without one, or with garbage, is refused")
    func retryAfter() throws {
        #expect(try Self.answer(503, nil, "", retryAfter: "7").meaning(of: .simpleenroll, from: Self.server) == .retry(after: 7))
        #expect(try Self.answer(202, nil, "", retryAfter: " 0 ").meaning(of: .simpleenroll, from: Self.server) == .retry(after: 0))
        let now = try #require(ISO8601DateFormatter().date(from: "1994-11-06T08:49:00Z"))
        #expect(try Self.answer(503, nil, "", retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT").meaning(of: .cacerts, from: Self.server, now: now) == .retry(after: 37))
        #expect(Self.refusal(Self.answer(503, nil, ""))?.message.contains("no usable Retry-After") == true)
        #expect(Self.refusal(Self.answer(503, nil, "", retryAfter: "soon"))?.errorCode == .estRefused)
        #expect(Self.refusal(Self.answer(503, nil, "", retryAfter: "99999999999"))?.errorCode == .estRefused)
    }

    @Test("csrattrs: DER CsrAttrs read (an OID and an attribute); 204 and 404 mean none; 204 to simpleenroll is refused")
    func csrAttributes() throws {
        let attributes = CsrAttrs([.oid([1, 2, 840, 10045, 4, 3, 2]), .attribute(type: [1, 2, 840, 10045, 2, 1], values: [[1, 2, 840, 10045, 3, 1, 7]])])
        var serializer = DER.Serializer()
        try serializer.serialize(attributes)
        let body = Data(serializer.serializedBytes).base64EncodedString()
        #expect(try Self.answer(200, "application/csrattrs", body).meaning(of: .csrattrs, from: Self.server) == .attributes(attributes))
        #expect(try Self.answer(204, nil, "").meaning(of: .csrattrs, from: Self.server) == .attributes(CsrAttrs([])))
        #expect(try Self.answer(404, "text/html", "none").meaning(of: .csrattrs, from: Self.server) == .attributes(CsrAttrs([])))
        #expect(Self.refusal(Self.answer(204, nil, ""), .simpleenroll)?.errorCode == .estRefused)
        // An attribute with an empty SET of values is not a CsrAttrs.
        let empty = Data([0x30, 0x0d, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e]).base64EncodedString()
        #expect(Self.refusal(Self.answer(200, "application/csrattrs", empty), .csrattrs)?.errorCode == .estBadResponse)
    }

    @Test("the server address: https://HOST[:PORT] only, a label of safe characters, paths per RFC 7030 §3.2.2")
    func serverAddress() throws {
        let address = try ESTServerAddress(url: "https://127.0.0.1:8443", label: "north")
        #expect(address.path(.simpleenroll) == "/.well-known/est/north/simpleenroll" && address.hostIsAddress && address.port == 8443)
        #expect(try ESTServerAddress(url: "https://est.example.net").path(.cacerts) == "/.well-known/est/cacerts")
        #expect(try ESTServerAddress(url: "https://[::1]:9443").host == "::1")
        for bad in ["http://127.0.0.1:8443", "https://127.0.0.1:8443/est", "https://user@host", "https://host?x=1", "127.0.0.1:8443", "https://:8443"] {
            #expect(throws: CoreError.self, "\(bad)") { _ = try ESTServerAddress(url: bad) }
        }
        for bad in ["", "../admin", "a/b", "north?x", String(repeating: "a", count: 64), ".."] {
            #expect(throws: CoreError.self, "\(bad)") { _ = try ESTServerAddress(url: "https://host", label: bad) }
        }
    }
}
