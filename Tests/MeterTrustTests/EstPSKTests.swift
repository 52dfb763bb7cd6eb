import Crypto
import Foundation
import MeterTrustCore
import Testing

/// EST over the PSK listener (`serve --roles est-psk`): a meter of a `keyMode: psk` batch authenticates with the PSK
/// its bundle carried (TLS 1.2, ECDHE-PSK-CHACHA20-POLY1305, its EUI-64 as the identity) and gets its operational
/// certificate from the account that claimed it. The meter is played by `openssl s_client -psk_identity … -psk …
/// -tls1_2` speaking HTTP/1.1 by hand, and by the binary's own `meter enroll --psk`; the answers are read with openssl
/// and Python `cryptography`. On SQLite and on PostgreSQL.
@Suite("EST over TLS-PSK: openssl s_client and meter enroll --psk against serve --roles est-psk", .serialized)
struct EstPSKTests {
    typealias Platform = AccountAPITests.Platform

    /// A `keyMode: psk` batch of `count` acme meters from `start` with a real firmware image; each meter made from its
    /// bundle with `meter init|install|finalize`. Returns the PSKs and the meters' state directories by EUI-64.
    static func pskMeters(_ platform: Platform, start: String, count: Int) throws -> (psks: [String: String], states: [String: String], order: [String]) {
        let directory = URL(fileURLWithPath: platform.path("psk-field"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let image = Data("psk firmware 1.0".utf8) + Data((0..<512).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        let imagePath = directory.appendingPathComponent("image.bin").path
        try image.write(to: URL(fileURLWithPath: imagePath))
        let manifest: [String: Any] = [
            "format": "metertrust-batch", "version": 1, "batch": "psk-field", "manufacturer": "acme",
            "firmware": ["sha256": hexString(SHA256.hash(data: image))], "bootstrapServerURI": "coaps+tcp://bootstrap.example.net",
            "meters": ["start": start, "count": count], "keyGeneration": "factory", "keyMode": "psk",
        ]
        let manifestPath = directory.appendingPathComponent("batch.json")
        try JSONSerialization.data(withJSONObject: manifest).write(to: manifestPath)
        let out = directory.appendingPathComponent("out").path
        let run = try platform.deployment.run(["factory", "run", "--manifest", manifestPath.path, "--out", out, "--quiet", "--json"])
        try #require(run.status == 0, "\(run.stderr)")
        var psks: [String: String] = [:], states: [String: String] = [:], order: [String] = []
        for (index, line) in try String(contentsOfFile: out + "/bundles.jsonl", encoding: .utf8).split(separator: "\n").enumerated() {
            let bundle = try JSONDecoder().decode(ProvisioningBundle.self, from: Data(line.utf8))
            psks[bundle.eui64] = try #require(bundle.presharedKey)
            let state = directory.appendingPathComponent("meter-\(index)").path
            let bundlePath = directory.appendingPathComponent("bundle-\(index).json").path
            try String(line).write(toFile: bundlePath, atomically: true, encoding: .utf8)
            try MeterEnrollmentTests.makeMeter(state: state, eui64: bundle.eui64, image: imagePath, trustAnchor: platform.path("root.pem"), bundle: bundlePath)
            states[bundle.eui64] = state
            order.append(bundle.eui64)
        }
        return (psks, states, order)
    }

    /// An HTTP/1.1 answer read off openssl s_client's output.
    struct Answer {
        /// 0 when the TLS handshake failed (no HTTP at all).
        let status: Int
        let head: String
        let body: String
        let handshakeErrors: String
        var problemCode: String? { (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["code"] as? String }
        var problemDetail: String { ((try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["detail"] as? String) ?? body }
    }

    /// One EST request over TLS 1.2 PSK with `openssl s_client` as the meter: the request written by hand (a body
    /// file is sent as `application/pkcs10`), the answer split into head and body.
    static func opensslEST(port: Int, identity: String, psk: String, method: String, path: String, body: String? = nil) throws -> Answer {
        var request = Data()
        if let body {
            let content = try Data(contentsOf: URL(fileURLWithPath: body))
            request.append(Data("\(method) \(path) HTTP/1.1\r\nHost: meter\r\nContent-Type: application/pkcs10\r\nContent-Transfer-Encoding: base64\r\nContent-Length: \(content.count)\r\nConnection: close\r\n\r\n".utf8))
            request.append(content)
        } else {
            request.append(Data("\(method) \(path) HTTP/1.1\r\nHost: meter\r\nConnection: close\r\n\r\n".utf8))
        }
        let (_, output, errors) = try PSKListenerTests.opensslPSK(port: port, identity: identity, psk: psk, request: request)
        guard output.hasPrefix("HTTP/1.1 "), let split = output.range(of: "\r\n\r\n") else { return Answer(status: 0, head: output, body: "", handshakeErrors: errors) }
        let head = String(output[..<split.lowerBound])
        let status = Int(head.dropFirst("HTTP/1.1 ".count).prefix(3)) ?? 0
        return Answer(status: status, head: head, body: String(output[split.upperBound...]), handshakeErrors: errors)
    }

    /// A fresh P-256 key and its CSR for `subject` (openssl), base64 DER in a file.
    static func request(_ platform: Platform, subject: String) throws -> (key: String, csr: String) {
        let key = platform.path("psk-op-\(UUID().uuidString.prefix(6)).key")
        let made = try TestEnvironment.run("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
        try #require(made.status == 0, "openssl genpkey: \(made.stderr)")
        return (key, try EstTests.csr(platform, key: key, subject: subject))
    }

    /// The whole store as the database attacker reads it: `sqlite3 .dump`, or `pg_dump` of the deployment's database.
    static func storeDump(_ deployment: CLITests.Deployment, postgres: Bool) throws -> String {
        let result: TestEnvironment.ProcessResult
        if postgres {
            let location = try TestPostgres.locationOf(deployment)
            let cluster = TestPostgres.cluster
            result = try TestEnvironment.run(
                "/usr/bin/pg_dump", ["-h", cluster.socketDirectory, "-p", String(cluster.port), "-U", cluster.location.user, "-d", location.database],
                environment: ["PGPASSWORD": cluster.password]
            )
        } else {
            result = try TestEnvironment.run("sqlite3", [deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path, ".dump"])
        }
        try #require(result.status == 0 && result.stdout.count > 1000, "dump: \(result.stderr)")
        return result.stdout.lowercased()
    }

    static func asCurlAnswer(_ answer: Answer) -> EstTests.Answer {
        EstTests.Answer(status: answer.status, headers: answer.head, body: answer.body)
    }

    // Attackers: a meter lying about who it is (a wrong PSK, another meter's identity, a CSR for another meter),
    // a meter no account claims, a meter asking through another account's label.
    @Test("openssl s_client -psk_identity EUI -psk HEX -tls1_2: cacerts, simpleenroll (the chain, HardwareModuleName, CRL DP and AIA checked by Python cryptography), simplereenroll; a wrong PSK, an unclaimed meter, another account's label, a CSR for another meter and a renewal before any enrollment refused with nothing issued; meter enroll --psk and reenroll --psk --rekey through the binary", arguments: [false, true])
    func enrollOverPSK(postgres: Bool) async throws {
        let platform = try await Platform(postgres: postgres, est: true, psk: true)
        let port = try #require(platform.ports["est-psk"])
        let (psks, states, meters) = try Self.pskMeters(platform, start: "0024befffe300000", count: 4)
        // north lists meters 0, 1 and 3; meter 2 stays unclaimed.
        let list = platform.path("north-psk.txt")
        try ([0, 1, 3].map { meters[$0] }.joined(separator: "\n") + "\n").write(toFile: list, atomically: true, encoding: .utf8)
        _ = try platform.operatorJSON(["enroll", "upload", list, "--format", "list", "--manufacturer", "acme"], as: "olive")
        let meter = meters[0], psk = psks[meter]!

        // cacerts over PSK: north's Operational CA and the root, read by openssl alone.
        let cacerts = try Self.opensslEST(port: port, identity: meter, psk: psk, method: "GET", path: "/.well-known/est/north/cacerts")
        #expect(cacerts.status == 200, "\(cacerts.head) \(cacerts.handshakeErrors)")
        #expect(cacerts.head.lowercased().contains("content-type: application/pkcs7-mime; smime-type=certs-only"), "\(cacerts.head)")
        let printed = try EstTests.printCertificates(platform, Self.asCurlAnswer(cacerts))
        #expect(printed.contains("north Operational CA") && printed.components(separatedBy: "BEGIN CERTIFICATE").count == 3, "\(printed)")

        // simpleenroll: the operational certificate from north's CA, for this meter, with its CRL DP and AIA.
        let first = try Self.request(platform, subject: "/CN=urn:dev:mac:\(meter)")
        let enrolled = try Self.opensslEST(port: port, identity: meter, psk: psk, method: "POST", path: "/.well-known/est/north/simpleenroll", body: first.csr)
        #expect(enrolled.status == 200, "\(enrolled.head)\n\(enrolled.body)")
        let checked = try EstTests.check(platform, Self.asCurlAnswer(enrolled))
        #expect(checked["eui64"] as? String == meter, "\(checked)")
        #expect((checked["issuer"] as? String)?.contains("north Operational CA") == true, "\(checked)")
        #expect(checked["clientAuth"] as? Bool == true, "\(checked)")
        #expect(!((checked["crlDistributionPoints"] as? [String]) ?? []).isEmpty && !((checked["ocsp"] as? [String]) ?? []).isEmpty, "\(checked)")
        let leaf = try EstTests.leafPEM(platform, Self.asCurlAnswer(enrolled), name: "psk-operational.pem")
        let keyOfLeaf = try TestEnvironment.run("openssl", ["x509", "-in", leaf, "-noout", "-pubkey"])
        let keyOfCSR = try TestEnvironment.run("openssl", ["pkey", "-in", first.key, "-pubout"])
        #expect(keyOfLeaf.stdout == keyOfCSR.stdout, "the certificate does not carry the CSR's key")
        #expect(try EstTests.issuedTo(platform, meter) == (2, 1), "its factory certificate and one operational certificate")

        // simplereenroll over PSK with a new key (RFC 7030 §4.2.2 allows rekey), audited as est.reenroll.
        let second = try Self.request(platform, subject: "/CN=urn:dev:mac:\(meter)")
        let renewed = try Self.opensslEST(port: port, identity: meter, psk: psk, method: "POST", path: "/.well-known/est/north/simplereenroll", body: second.csr)
        #expect(renewed.status == 200, "\(renewed.head)\n\(renewed.body)")
        #expect(try EstTests.issuedTo(platform, meter) == (3, 2))
        let log = try platform.deployment.run(["audit", "log", "--json", "--last", "100000"]).stdout
        let entries = (try? JSONSerialization.jsonObject(with: Data(log.utf8)) as? [[String: Any]]) ?? []
        let actions = entries.filter { $0["subject"] as? String == meter }.compactMap { entry -> String? in
            guard let action = entry["action"] as? String, action.hasPrefix("est.") else { return nil }
            return action + "/" + (((entry["details"] as? [String: Any])?["credential"] as? String) ?? "?")
        }
        #expect(actions == ["est.enroll/preshared-key", "est.reenroll/preshared-key"], "\(actions)")

        // Refusals, each with its status and code, nothing issued for the meter.
        let other = meters[1]
        let forOther = try Self.request(platform, subject: "/CN=urn:dev:mac:\(other)")
        let unclaimed = meters[2]
        let forUnclaimed = try Self.request(platform, subject: "/CN=urn:dev:mac:\(unclaimed)")
        let forOtherSelf = try Self.request(platform, subject: "/CN=urn:dev:mac:\(other)")
        for (identity, key, path, body, status, code, why) in [
            (meter, psk, "/.well-known/est/north/simpleenroll", forOther.csr, 403, "est.identity-mismatch", "a CSR for another meter"),
            (unclaimed, psks[unclaimed]!, "/.well-known/est/simpleenroll", forUnclaimed.csr, 403, "est.not-claimed", "a meter no account claims"),
            (unclaimed, psks[unclaimed]!, "/.well-known/est/north/simpleenroll", forUnclaimed.csr, 403, "est.not-claimed", "an unclaimed meter naming north"),
            (other, psks[other]!, "/.well-known/est/south/simpleenroll", forOtherSelf.csr, 403, "onboarding.other-account", "another account's label"),
            (other, psks[other]!, "/.well-known/est/north/simplereenroll", forOtherSelf.csr, 403, "est.nothing-to-renew", "a renewal before any enrollment"),
        ] {
            let refused = try Self.opensslEST(port: port, identity: identity, psk: key, method: "POST", path: path, body: body)
            #expect(refused.status == status && refused.problemCode == code, "\(why): \(refused.head)\n\(refused.body)")
            #expect(refused.head.lowercased().contains("content-type: application/problem+json"), "\(why): \(refused.head)")
            #expect(refused.problemDetail.contains(identity), "\(why): \(refused.problemDetail)")
        }
        // A wrong PSK, and this meter's PSK under another meter's identity: no handshake, so no HTTP at all.
        for (identity, key, why) in [(other, String(repeating: "5a", count: 32), "a wrong PSK"), (other, psk, "another meter's identity with this meter's PSK")] {
            let refused = try Self.opensslEST(port: port, identity: identity, psk: key, method: "POST", path: "/.well-known/est/north/simpleenroll", body: forOtherSelf.csr)
            #expect(refused.status == 0, "\(why) got an HTTP answer: \(refused.head)")
        }
        #expect(try EstTests.issuedTo(platform, other) == (1, 0), "only its factory certificate")
        #expect(try EstTests.issuedTo(platform, unclaimed) == (1, 0), "only its factory certificate")
        #expect(try EstTests.issuedTo(platform, meter) == (3, 2))

        // The binary's meter, with the PSK its configurator installed: enroll, then renew with a new key.
        let binaryMeter = meters[3]
        let server = "https://127.0.0.1:\(port)"
        let run = { (arguments: [String]) in try TestEnvironment.run(TestEnvironment.metertrust, ["meter"] + arguments) }
        let meterEnrolled = try run(["enroll", "--state", states[binaryMeter]!, "--server", server, "--label", "north", "--psk", "--json"])
        #expect(meterEnrolled.status == 0, "\(meterEnrolled.stderr)")
        let outcome = try #require(try JSONSerialization.jsonObject(with: Data(meterEnrolled.stdout.utf8)) as? [String: Any], "\(meterEnrolled.stdout)")
        #expect(outcome["mode"] as? String == "psk" && outcome["operation"] as? String == "simpleenroll" && outcome["eui64"] as? String == binaryMeter, "\(outcome)")
        let state = states[binaryMeter]!
        let verified = try TestEnvironment.run("openssl", ["verify", "-CAfile", platform.path("root.pem"), "-untrusted", state + "/operational-chain.pem", state + "/operational-certificate.pem"])
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
        let rekeyed = try run(["reenroll", "--state", state, "--server", server, "--label", "north", "--psk", "--rekey"])
        #expect(rekeyed.status == 0 && rekeyed.stdout.contains("simplereenroll, pre-shared key, TLS 1.2, new key"), "\(rekeyed.stdout) \(rekeyed.stderr)")
        #expect(try EstTests.issuedTo(platform, binaryMeter) == (3, 2))
        // No PSK of the batch in the store (sqlite3 or psql on the whole dump is the attacker's view).
        let dump = try Self.storeDump(platform.deployment, postgres: postgres)
        for secret in psks.values { #expect(!dump.contains(secret), "a PSK in clear in the store") }
    }
}
