import Foundation
import MeterTrustDevice
import Testing
import X509

/// The meter's OCSP check (``OCSPStatusCheck``) against answers forged with Python cryptography
/// (Tests/tools/forge_ocsp_answers.py): the attacker sits between the meter and its responder (or is a responder
/// that is not the one the issuer certified) and answers the meter's question about the EST server's certificate.
@Suite("The meter's OCSP check: forged and replayed answers")
struct OCSPStatusCheckTests {
    @Test("believes only a fresh answer for this certificate, echoing its nonce, signed by the issuer or a responder it certified for OCSP signing")
    func forgedAnswers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ocsp-answers-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let nonce = (0..<32).map { UInt8($0 &* 7 &+ 1) }
        let forged = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("forge_ocsp_answers.py"), directory.path, nonce.map { String(format: "%02x", $0) }.joined()])
        try #require(forged.status == 0, "\(forged.stderr)")
        func load(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: directory.appendingPathComponent("\(name).der"))) }
        let issuer = try Certificate(derEncoded: try load("issuer"))
        let server = try Certificate(derEncoded: try load("server"))
        func check(_ name: String) throws -> OCSPStatusCheck.Status {
            try OCSPStatusCheck.status(of: try load(name), certificate: server, issuer: issuer, nonce: nonce)
        }

        #expect(try check("good") == .good)
        #expect(try check("by-issuer") == .good)
        #expect(try check("unknown") == .unknown)
        guard case .revoked(_, let reason) = try check("revoked") else {
            Issue.record("a revoked answer was not read as revoked")
            return
        }
        #expect(reason == 1, "keyCompromise")

        for (name, expected) in [
            ("replayed-other-nonce", "nonce"), ("replayed-no-nonce", "nonce"), ("stranger", "not issued by"),
            ("not-for-ocsp-signing", "not for OCSP signing"), ("stale", "stale"), ("future", "future"),
            ("other-certificate", "says nothing of"), ("unauthorized", "unauthorized"),
        ] {
            #expect(throws: OCSPStatusCheck.Failure.self, "\(name)") { try check(name) }
            do {
                _ = try check(name)
            } catch let failure as OCSPStatusCheck.Failure {
                #expect(failure.description.contains(expected), "\(name): \(failure.description)")
            }
        }
        // Truncated and padded answers.
        let good = try load("good")
        #expect(throws: OCSPStatusCheck.Failure.self) { try OCSPStatusCheck.status(of: Array(good.dropLast()), certificate: server, issuer: issuer, nonce: nonce) }
        #expect(throws: OCSPStatusCheck.Failure.self) { try OCSPStatusCheck.status(of: good + [0], certificate: server, issuer: issuer, nonce: nonce) }
    }
}
