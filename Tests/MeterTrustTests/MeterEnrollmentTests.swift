import Crypto
import Foundation
import MeterTrustCore
import Testing
import X509

/// The meter's side of EST end to end, through the binary only: a factory batch (`factory run`), meters made from its
/// bundles (`meter init|install|finalize`), north's operator listing one of them (`enroll upload`), then `meter
/// enroll` and `meter reenroll [--rekey]` against `metertrust serve --roles admin,account,est`, the issued
/// certificates checked by openssl and by the platform's own inventory (`cert list`); and an unclaimed meter refused
/// with the server's reason. Each case on SQLite and on PostgreSQL.
@Suite("Meter enrollment: meter enroll and reenroll against serve --roles est", .serialized)
struct MeterEnrollmentTests {
    typealias Platform = AccountAPITests.Platform

    /// Two meters of a factory-key batch (`field`, from 0024befffe200000) made into simulated meters with the binary.
    struct Field {
        let platform: Platform
        let meters: [String]
        let states: [String: String]

        var server: String { "https://localhost:\(platform.ports["est"]!)" }

        func meter(_ arguments: [String]) throws -> TestEnvironment.ProcessResult {
            try TestEnvironment.run(TestEnvironment.metertrust, ["meter"] + arguments)
        }

        func json(_ result: TestEnvironment.ProcessResult) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout) \(result.stderr)")
        }
    }

    /// A simulated meter in `state` made from its bundle with the binary: `meter init`, `install`, `finalize`.
    static func makeMeter(state: String, eui64: String, image: String, trustAnchor: String, bundle: String) throws {
        for arguments in [
            ["init", "--state", state, "--eui64", eui64, "--image", image, "--trust-anchor", trustAnchor],
            ["install", "--state", state, "--bundle", bundle], ["finalize", "--state", state],
        ] {
            let step = try TestEnvironment.run(TestEnvironment.metertrust, ["meter"] + arguments)
            try #require(step.status == 0, "meter \(arguments[0]): \(step.stderr)")
        }
    }

    static func field(postgres: Bool, revocation: Bool = false) async throws -> Field {
        let platform = try await Platform(postgres: postgres, est: true, revocation: revocation)
        let directory = URL(fileURLWithPath: platform.path("field"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let image = Data("field firmware 2.0".utf8) + Data((0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let imagePath = directory.appendingPathComponent("image.bin").path
        try image.write(to: URL(fileURLWithPath: imagePath))
        let manifest: [String: Any] = [
            "format": "metertrust-batch", "version": 1, "batch": "field", "manufacturer": "acme",
            "firmware": ["sha256": hexString(SHA256.hash(data: image))], "bootstrapServerURI": "coaps+tcp://bootstrap.example.net",
            "meters": ["start": "0024befffe200000", "count": 2], "keyGeneration": "factory",
        ]
        let manifestPath = directory.appendingPathComponent("batch.json")
        try JSONSerialization.data(withJSONObject: manifest).write(to: manifestPath)
        let out = directory.appendingPathComponent("out").path
        let run = try platform.deployment.run(["factory", "run", "--manifest", manifestPath.path, "--out", out, "--quiet", "--json"])
        try #require(run.status == 0, "\(run.stderr)")

        var meters: [String] = []
        var states: [String: String] = [:]
        for (index, line) in try String(contentsOfFile: out + "/bundles.jsonl", encoding: .utf8).split(separator: "\n").enumerated() {
            let bundle = try JSONDecoder().decode(ProvisioningBundle.self, from: Data(line.utf8))
            let state = directory.appendingPathComponent("meter-\(index)").path
            let bundlePath = directory.appendingPathComponent("bundle-\(index).json").path
            try String(line).write(toFile: bundlePath, atomically: true, encoding: .utf8)
            try Self.makeMeter(state: state, eui64: bundle.eui64, image: imagePath, trustAnchor: platform.path("root.pem"), bundle: bundlePath)
            meters.append(bundle.eui64)
            states[bundle.eui64] = state
        }
        // north lists the first meter only; the second stays unclaimed.
        let list = directory.appendingPathComponent("north.txt").path
        try "\(meters[0])\n".write(toFile: list, atomically: true, encoding: .utf8)
        _ = try platform.operatorJSON(["enroll", "upload", list, "--format", "list", "--manufacturer", "acme"], as: "olive")
        return Field(platform: platform, meters: meters, states: states)
    }

    @Test("the meter checks the EST server's certificate by OCSP (--check-server-ocsp): it enrolls while the certificate is good; someone holding the server's stolen key once it is revoked is refused in the handshake with the reason, and without the check the same meter would go on")
    func checksServerByOCSP() async throws {
        let field = try await Self.field(postgres: false, revocation: true)
        let meter = field.meters[0]
        let state = field.states[meter]!
        let ocsp = "http://127.0.0.1:\(field.platform.ports["ocsp"]!)/"
        let checked = ["--server", field.server, "--label", "north", "--check-server-ocsp", "--ocsp-url", ocsp, "--json"]
        let enrolled = try field.meter(["enroll", "--state", state] + checked)
        #expect(enrolled.status == 0, "\(enrolled.stderr)")

        // The EST server's certificate as it presents it (openssl s_client), found in the platform's inventory.
        let port = field.platform.ports["est"]!
        let shown = try TestEnvironment.run("/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(port) -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial"])
        let serial = try #require(shown.stdout.split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() }, "\(shown.stdout)")
        let servers = try field.platform.deployment.json(["cert", "list", "--profile", "tls-server"])
        let record = try #require((servers["certificates"] as? [[String: Any]])?.first { ($0["serial"] as? String)?.lowercased() == serial }, "\(serial) \(servers)")
        let issuer = try #require(record["issuerCA"] as? String)
        let aia = try TestEnvironment.run("/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(port) -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -ocsp_uri"])
        #expect(aia.stdout.hasPrefix("http://"), "the EST server's certificate names its OCSP responder: \(aia.stdout)")

        let held = try String(contentsOfFile: state + "/operational-certificate.pem", encoding: .utf8)
        let revoked = try field.platform.deployment.run(["revoke", "--ca", issuer, "--serial", serial, "--reason", "keyCompromise"])
        try #require(revoked.status == 0, "\(revoked.stderr)")
        usleep(600_000)
        let refused = try field.meter(["reenroll", "--state", state] + checked)
        #expect(refused.status != 0 && refused.stderr.contains("input.untrusted-chain") && refused.stderr.lowercased().contains("revoked"), "\(refused.stderr)")
        // The meter's certificate is unchanged: nothing was accepted from that server.
        #expect(try String(contentsOfFile: state + "/operational-certificate.pem", encoding: .utf8) == held)
        // Without the check the handshake would have gone on (the check, not the server, refused).
        let unchecked = try field.meter(["reenroll", "--state", state, "--server", field.server, "--label", "north", "--json"])
        #expect(unchecked.status == 0, "\(unchecked.stderr)")
        // Usage errors: the check needs a certificate (not --psk); --ocsp-url only with it.
        let withPSK = try field.meter(["enroll", "--state", state, "--server", field.server, "--psk", "--check-server-ocsp"])
        #expect(withPSK.status == 2 && withPSK.stderr.contains("--check-server-ocsp"), "\(withPSK.stderr)")
        let urlAlone = try field.meter(["enroll", "--state", state, "--server", field.server, "--ocsp-url", ocsp])
        #expect(urlAlone.status == 2, "\(urlAlone.stderr)")
    }

    @Test("a claimed meter enrolls (its factory identity), re-enrolls with the same key and with a new one; openssl and the platform's store agree", arguments: [false, true])
    func enrollAndReenroll(postgres: Bool) async throws {
        let field = try await Self.field(postgres: postgres)
        let meter = field.meters[0]
        let state = field.states[meter]!
        let enrolled = try field.meter(["enroll", "--state", state, "--server", field.server, "--label", "north", "--json"])
        #expect(enrolled.status == 0, "\(enrolled.stderr)")
        let first = try field.json(enrolled)
        let serial = try #require(first["serial"] as? String)
        #expect(first["eui64"] as? String == meter && first["operation"] as? String == "simpleenroll" && first["mode"] as? String == "pki")
        #expect((first["issuer"] as? String)?.contains("north Operational CA") == true, "\(first)")
        #expect((first["subject"] as? String)?.contains("urn:dev:mac:\(meter)") == true)
        #expect(!((first["crlDistributionPoints"] as? [String]) ?? []).isEmpty && !((first["ocsp"] as? [String]) ?? []).isEmpty, "\(first)")

        // openssl: the kept certificate chains through the kept issuing CA to the root the meter pinned.
        let certificate = state + "/operational-certificate.pem"
        let verified = try TestEnvironment.run("openssl", ["verify", "-CAfile", field.platform.path("root.pem"), "-untrusted", state + "/operational-chain.pem", certificate])
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
        let purpose = try TestEnvironment.run("openssl", ["x509", "-in", certificate, "-noout", "-ext", "extendedKeyUsage"])
        #expect(purpose.stdout.contains("TLS Web Client Authentication"), "\(purpose.stdout)")
        // The platform stored what the meter holds, for that meter.
        let listed = try field.platform.deployment.json(["cert", "list", "--eui64", meter, "--profile", "device-operational"])
        let serials = ((listed["certificates"] as? [[String: Any]]) ?? []).compactMap { $0["serial"] as? String }
        #expect(serials == [serial])

        // Renewal with the operational certificate, the same key.
        let key = try Data(contentsOf: URL(fileURLWithPath: state + "/operational-key.der"))
        let renewed = try field.meter(["reenroll", "--state", state, "--server", field.server, "--label", "north", "--json"])
        #expect(renewed.status == 0, "\(renewed.stderr)")
        let second = try field.json(renewed)
        #expect(second["operation"] as? String == "simplereenroll" && second["newKey"] as? Bool == false && second["serial"] as? String != serial)
        #expect(try Data(contentsOf: URL(fileURLWithPath: state + "/operational-key.der")) == key)

        // And with a new key: the key file changes, the certificate carries the new key.
        let rekeyed = try field.meter(["reenroll", "--state", state, "--server", field.server, "--label", "north", "--rekey"])
        #expect(rekeyed.status == 0, "\(rekeyed.stderr)")
        #expect(rekeyed.stdout.contains("simplereenroll, certificate, TLS 1.3, new key"), "\(rekeyed.stdout)")
        let newKey = try P256.Signing.PrivateKey(derRepresentation: try Data(contentsOf: URL(fileURLWithPath: state + "/operational-key.der")))
        #expect(newKey.derRepresentation != key)
        let kept = try Certificate(pemEncoded: try String(contentsOfFile: certificate, encoding: .utf8))
        #expect(kept.publicKey == Certificate.PublicKey(newKey.publicKey))
        let all = try field.platform.deployment.json(["cert", "list", "--eui64", meter, "--profile", "device-operational"])
        #expect(((all["certificates"] as? [Any]) ?? []).count == 3)
    }

    // Attacker: a meter lying about who it is — here one no account claimed, trying its luck with north's label.
    @Test("an unclaimed meter is refused with the server's reason and code, in one line; nothing is issued or kept", arguments: [false, true])
    func unclaimedMeterRefused(postgres: Bool) async throws {
        let field = try await Self.field(postgres: postgres)
        let meter = field.meters[1]
        let state = field.states[meter]!
        for label in [["--label", "north"], []] {
            let refused = try field.meter(["enroll", "--state", state, "--server", field.server, "--json"] + label)
            // The exit status est.not-claimed maps to (4, denied), as the platform's own commands exit.
            #expect(refused.status == 4, "\(refused.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(refused.stderr.utf8)) as? [String: Any]
            let error = try #require(object?["error"] as? [String: String], "\(refused.stderr)")
            #expect(error["code"] == "est.not-claimed", "\(error)")
            #expect(error["message"]?.contains("refused: HTTP 403, est.not-claimed") == true && error["message"]?.contains(meter) == true, "\(error)")
        }
        let text = try field.meter(["enroll", "--state", state, "--server", field.server, "--label", "north"])
        #expect(text.stderr.hasPrefix("error: EST simpleenroll at \(field.server) (label north) refused: HTTP 403, est.not-claimed") && text.stderr.split(separator: "\n").count == 1, "\(text.stderr)")
        #expect(!FileManager.default.fileExists(atPath: state + "/operational-certificate.pem"))
        let listed = try field.platform.deployment.json(["cert", "list", "--eui64", meter, "--profile", "device-operational"])
        #expect(((listed["certificates"] as? [Any]) ?? []).isEmpty)
        // reenroll without an operational certificate is the meter's own refusal.
        let reenroll = try field.meter(["reenroll", "--state", state, "--server", field.server, "--json"])
        #expect(reenroll.status == 1 && reenroll.stderr.contains("meter.not-enrolled"), "\(reenroll.stderr)")
    }
}
