import Crypto
import Foundation
import MeterTrustCore
import SwiftASN1
import Testing
import X509

/// The certs-only CMS of EST (RFC 7030 §4.1.3, §4.2.3), against OpenSSL as the independent peer in both directions.
@Suite("Certs-only CMS and EST base64 bodies (MeterTrustCore), against openssl")
struct CertsOnlyCMSTests {
    /// A CA and a leaf made by openssl, and openssl's certs-only messages of them (`crl2pkcs7 -nocrl`).
    struct OpenSSLFixture {
        let directory: URL
        let caPEM: URL
        let leafPEM: URL
        let caKey: URL

        init() throws {
            directory = TestEnvironment.temporaryDirectory()
            caPEM = directory.appendingPathComponent("ca.pem")
            caKey = directory.appendingPathComponent("ca.key")
            leafPEM = directory.appendingPathComponent("leaf.pem")
            let dir = directory.path
            for arguments in [
                ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", caKey.path, "-subj", "/CN=CMS Test Root",
                 "-days", "30", "-out", caPEM.path],
                ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(dir)/leaf.key",
                 "-subj", "/CN=urn:dev:mac:0024befffe804ff1", "-out", "\(dir)/leaf.csr"],
                ["x509", "-req", "-in", "\(dir)/leaf.csr", "-CA", caPEM.path, "-CAkey", caKey.path, "-days", "30", "-out", leafPEM.path],
            ] {
                let result = try TestEnvironment.run("openssl", arguments)
                #expect(result.status == 0, "openssl \(arguments[0]): \(result.stderr)")
            }
        }

        func certificate(_ url: URL) throws -> Certificate {
            try Certificate(pemEncoded: try String(contentsOf: url, encoding: .utf8))
        }

        /// `openssl crl2pkcs7 -nocrl` of the given PEM files, DER.
        func openSSLMessage(_ files: [URL]) throws -> [UInt8] {
            let out = directory.appendingPathComponent(UUID().uuidString + ".p7")
            let result = try TestEnvironment.run(
                "openssl", ["crl2pkcs7", "-nocrl", "-outform", "DER", "-out", out.path] + files.flatMap { ["-certfile", $0.path] }
            )
            #expect(result.status == 0, "\(result.stderr)")
            return [UInt8](try Data(contentsOf: out))
        }
    }

    @Test("what MeterTrust writes, openssl pkcs7 reads: both certificates, from DER and from the base64 body")
    func openSSLReadsOurs() throws {
        let fixture = try OpenSSLFixture()
        let message = CertsOnlyCMS(certificates: [try fixture.certificate(fixture.leafPEM), try fixture.certificate(fixture.caPEM)])
        let der = fixture.directory.appendingPathComponent("ours.p7")
        try Data(try message.derBytes()).write(to: der)
        let printed = try TestEnvironment.run("openssl", ["pkcs7", "-inform", "DER", "-in", der.path, "-print_certs", "-noout"])
        #expect(printed.status == 0, "\(printed.stderr)")
        #expect(printed.stdout.contains("subject=CN = urn:dev:mac:0024befffe804ff1"), "\(printed.stdout)")
        #expect(printed.stdout.contains("subject=CN = CMS Test Root"), "\(printed.stdout)")

        // The EST body, through `openssl base64 -d` as the RFC's curl recipe does it.
        let body = fixture.directory.appendingPathComponent("ours.b64")
        try message.base64Body().write(to: body, atomically: true, encoding: .utf8)
        let decoded = fixture.directory.appendingPathComponent("decoded.p7")
        let base64 = try TestEnvironment.run("openssl", ["base64", "-d", "-in", body.path, "-out", decoded.path])
        #expect(base64.status == 0, "\(base64.stderr)")
        #expect(try Data(contentsOf: decoded) == Data(try message.derBytes()))
        // DER: the SET OF is in order, so OpenSSL re-encodes it octet for octet.
        let reencoded = fixture.directory.appendingPathComponent("re.p7")
        let round = try TestEnvironment.run("openssl", ["pkcs7", "-inform", "DER", "-in", der.path, "-outform", "DER", "-out", reencoded.path])
        #expect(round.status == 0, "\(round.stderr)")
        #expect(try Data(contentsOf: reencoded) == Data(try message.derBytes()))
    }

    @Test("what openssl writes, MeterTrust reads: one, two and no certificates")
    func weReadOpenSSL() throws {
        let fixture = try OpenSSLFixture()
        let leaf = try fixture.certificate(fixture.leafPEM)
        let ca = try fixture.certificate(fixture.caPEM)
        #expect(try CertsOnlyCMS(derEncoded: try fixture.openSSLMessage([fixture.leafPEM])).certificates == [leaf])
        #expect(Set(try CertsOnlyCMS(derEncoded: try fixture.openSSLMessage([fixture.leafPEM, fixture.caPEM])).certificates) == [leaf, ca])
        #expect(try CertsOnlyCMS(derEncoded: try fixture.openSSLMessage([])).certificates.isEmpty)
        let body = Array(Data(try fixture.openSSLMessage([fixture.leafPEM])).base64EncodedString(options: .lineLength76Characters).utf8)
        #expect(try CertsOnlyCMS(derEncoded: try Base64Body.decode(body, maximumLength: 4096)).certificates == [leaf])
    }

    /// Attacker: anyone sending garbage to a parser — a signed message passed off as certs-only, truncated or
    /// oversize DER, too many certificates, base64 with foreign characters.
    @Test("refused: a message with a signer, truncated DER, oversize, too many certificates, bad base64")
    func refusals() throws {
        let fixture = try OpenSSLFixture()
        let content = fixture.directory.appendingPathComponent("content.txt")
        try "meter".write(to: content, atomically: true, encoding: .utf8)
        let signed = fixture.directory.appendingPathComponent("signed.p7")
        let sign = try TestEnvironment.run(
            "openssl", ["cms", "-sign", "-in", content.path, "-signer", fixture.caPEM.path, "-inkey", fixture.caKey.path, "-outform", "DER", "-nodetach",
                        "-out", signed.path]
        )
        #expect(sign.status == 0, "\(sign.stderr)")
        func code(_ body: () throws -> Any) -> ErrorCode? {
            do { _ = try body(); return nil } catch let error as CoreError { return error.errorCode } catch { return nil }
        }
        #expect(code { try CertsOnlyCMS(derEncoded: [UInt8](try Data(contentsOf: signed))) } == .malformedInput)
        let good = try fixture.openSSLMessage([fixture.leafPEM])
        for cut in [1, 10, good.count / 2, good.count - 1] {
            #expect(code { try CertsOnlyCMS(derEncoded: Array(good.prefix(cut))) } == .malformedInput)
        }
        #expect(code { try CertsOnlyCMS(derEncoded: good + [0x00]) } == .malformedInput)
        #expect(code { try CertsOnlyCMS(derEncoded: [UInt8](repeating: 0x30, count: CertsOnlyCMS.maximumDERSize + 1)) } == .malformedInput)
        let many = CertsOnlyCMS(certificates: try (0...CertsOnlyCMS.maximumCertificates).map { _ in
            let key = P256.Signing.PrivateKey()
            let name = try DistinguishedName { CommonName(UUID().uuidString) }
            return try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: Date(), notValidAfter: Date() + 60,
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: .init(), issuerPrivateKey: .init(key)
            )
        })
        #expect(code { try CertsOnlyCMS(derEncoded: try many.derBytes()) } == .malformedInput)
        #expect(code { try Base64Body.decode(Array("MIIB*AAA".utf8), maximumLength: 100) } == .malformedInput)
        #expect(code { try Base64Body.decode(Array("  \r\n".utf8), maximumLength: 100) } == .malformedInput)
        #expect(code { try Base64Body.decode([UInt8](repeating: 0x41, count: 101), maximumLength: 100) } == .malformedInput)
        #expect(try Base64Body.decode(Array("AQID\r\nBA==\r\n".utf8), maximumLength: 100) == [1, 2, 3, 4])
    }
}
