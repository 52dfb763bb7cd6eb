import Foundation
import MeterTrustCore
import Testing

/// The EST server (RFC 7030) through the binary (`metertrust serve --roles admin,account,est`) with independent
/// clients: curl with the meter's factory key and certificate, openssl for the CSRs and to read every certs-only
/// answer (`openssl base64 -d | openssl pkcs7 -inform DER -print_certs`), Python `cryptography` for the issued chain
/// and its extensions. Every case on SQLite and on PostgreSQL.
@Suite("EST: operational certificates for claimed meters over RFC 7030", .serialized)
struct EstTests {
    typealias Platform = AccountAPITests.Platform

    /// One EST exchange with curl: status, headers, body.
    struct Answer {
        let status: Int
        let headers: String
        let body: String
        var problemCode: String? {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["code"] as? String
        }
    }

    /// curl against the EST listener; `meter` names the client certificate and key (`meter-<eui64>.pem/.key`, or
    /// any `name.pem/.key` in people/ with `file:`), none when nil.
    static func est(
        _ platform: Platform, _ method: String, _ path: String, meter: String? = nil, certificate: String? = nil, key: String? = nil,
        body: String? = nil, contentType: String? = "application/pkcs10"
    ) throws -> Answer {
        let headers = platform.path("headers-\(UUID().uuidString.prefix(6))")
        var arguments = [
            "-sS", "--tlsv1.3", "-o", "-", "-D", headers, "-w", "\n%{http_code}", "-X", method, "--cacert", platform.path("root.pem"),
            "https://localhost:\(platform.ports["est"]!)/.well-known/est/\(path)",
        ]
        if let meter { arguments += ["--cert", platform.path("meter-\(meter).pem"), "--key", platform.path("meter-\(meter).key")] }
        if let certificate, let key { arguments += ["--cert", certificate, "--key", key] }
        if let body { arguments += ["--data-binary", "@" + body] }
        if body != nil, let contentType { arguments += ["-H", "Content-Type: \(contentType)"] }
        let result = try TestEnvironment.run("curl", arguments)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return Answer(
            status: Int(lines.last ?? "") ?? 0, headers: (try? String(contentsOfFile: headers, encoding: .utf8)) ?? "",
            body: lines.dropLast().joined(separator: "\n")
        )
    }

    /// A CSR made by openssl from `key` for `subject` (e.g. `/CN=urn:dev:mac:…`), base64 DER in a file, as an EST
    /// client sends it.
    static func csr(_ platform: Platform, key: String, subject: String) throws -> String {
        let name = "csr-\(UUID().uuidString.prefix(6))"
        let der = platform.path(name + ".der")
        let made = try TestEnvironment.run("openssl", ["req", "-new", "-key", key, "-subj", subject, "-sha256", "-outform", "DER", "-out", der])
        try #require(made.status == 0, "openssl req: \(made.stderr)")
        let encoded = platform.path(name + ".b64")
        let base64 = try TestEnvironment.run("openssl", ["base64", "-in", der, "-out", encoded])
        try #require(base64.status == 0, "openssl base64: \(base64.stderr)")
        return encoded
    }

    /// A certs-only answer through openssl alone: base64 decoded, PKCS#7 read, the certificates printed as PEM.
    static func printCertificates(_ platform: Platform, _ answer: Answer) throws -> String {
        let file = platform.path("answer-\(UUID().uuidString.prefix(6)).b64")
        try answer.body.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try TestEnvironment.run("sh", ["-c", "openssl base64 -d -in \"$1\" | openssl pkcs7 -inform DER -print_certs", "sh", file])
        try #require(result.status == 0, "openssl pkcs7: \(result.stderr)")
        return result.stdout
    }

    /// The answer's DER (for Python), decoded by openssl.
    static func der(_ platform: Platform, _ answer: Answer) throws -> String {
        let file = platform.path("answer-\(UUID().uuidString.prefix(6)).b64")
        try answer.body.write(toFile: file, atomically: true, encoding: .utf8)
        let der = file + ".der"
        let result = try TestEnvironment.run("openssl", ["base64", "-d", "-in", file, "-out", der])
        try #require(result.status == 0, "openssl base64 -d: \(result.stderr)")
        return der
    }

    /// What Python `cryptography` reads in an enrollment answer (Tests/tools/check_operational_certificate.py),
    /// its issuer taken from north's cacerts answer.
    static func check(_ platform: Platform, _ answer: Answer) throws -> [String: Any] {
        let cacerts = try der(platform, try est(platform, "GET", "north/cacerts"))
        let result = try TestEnvironment.run(
            TestEnvironment.python,
            [TestEnvironment.tool("check_operational_certificate.py"), try der(platform, answer), cacerts, platform.path("root.pem")]
        )
        try #require(result.status == 0, "check_operational_certificate.py: \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    /// The issued certificate of an answer as PEM (the first certificate openssl prints), written to a file.
    static func leafPEM(_ platform: Platform, _ answer: Answer, name: String) throws -> String {
        let printed = try printCertificates(platform, answer)
        let end = "-----END CERTIFICATE-----"
        let first = try #require(printed.range(of: end))
        let pem = String(printed[printed.range(of: "-----BEGIN CERTIFICATE-----")!.lowerBound..<first.upperBound]) + "\n"
        let path = platform.path(name)
        try pem.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The meter's certificates in the store (`cert list --eui64`), and the audit log's issuance entries for it.
    static func issuedTo(_ platform: Platform, _ eui64: String) throws -> (certificates: Int, auditEntries: Int) {
        let listed = try platform.deployment.json(["cert", "list", "--eui64", eui64, "--limit", "1000"])
        let certificates = (listed["certificates"] as? [Any])?.count ?? -1
        let log = try platform.deployment.run(["audit", "log", "--json", "--last", "100000"]).stdout
        let entries = (try? JSONSerialization.jsonObject(with: Data(log.utf8)) as? [[String: Any]]) ?? []
        let issuance = entries.filter { ["est.enroll", "est.reenroll"].contains($0["action"] as? String) && $0["subject"] as? String == eui64 }
        return (certificates, issuance.count)
    }

    /// north's operator uploads meters 0 to 3 and 5 as a plain list; south's lists meter 5 too (a conflict). Meter 4
    /// stays unclaimed.
    static func claims(_ platform: Platform) throws {
        let north = platform.path("north-list.txt")
        try ([0, 1, 2, 3, 5].map { platform.meters[$0] }.joined(separator: "\n") + "\n").write(toFile: north, atomically: true, encoding: .utf8)
        _ = try platform.operatorJSON(["enroll", "upload", north, "--format", "list", "--manufacturer", "acme"], as: "olive")
        let south = platform.path("south-list.txt")
        try "\(platform.meters[5])\n".write(toFile: south, atomically: true, encoding: .utf8)
        _ = try platform.operatorJSON(["enroll", "upload", south, "--format", "list", "--manufacturer", "acme"], as: "sam")
    }

    @Test("a factory-made meter claimed by north gets its operational certificate over EST from north's Operational CA (curl, openssl, Python cryptography); it renews with the same key and with a new one", arguments: [false, true])
    func enrollAndRenew(postgres: Bool) async throws {
        let platform = try await Platform(postgres: postgres, est: true)
        try Self.claims(platform)
        let meter = platform.meters[0]

        // cacerts, anonymous, with and without the label: the root and the Operational CAs, read by openssl alone.
        let all = try Self.est(platform, "GET", "cacerts")
        #expect(all.status == 200, "\(all.status) \(all.body)")
        #expect(all.headers.lowercased().contains("content-type: application/pkcs7-mime; smime-type=certs-only"), "\(all.headers)")
        #expect(all.headers.lowercased().contains("content-transfer-encoding: base64"), "\(all.headers)")
        let allPrinted = try Self.printCertificates(platform, all)
        for name in ["CN = root Root CA", "CN = north Operational CA", "CN = south Operational CA"] {
            #expect(allPrinted.contains(name), "\(name) missing: \(allPrinted)")
        }
        let northCAs = try Self.printCertificates(platform, try Self.est(platform, "GET", "north/cacerts"))
        #expect(northCAs.contains("CN = north Operational CA") && northCAs.contains("CN = root Root CA") && !northCAs.contains("south"), "\(northCAs)")

        // csrattrs: base64 DER that openssl's own ASN.1 parser reads as ecdsa-with-SHA256, prime256v1, the SAN request.
        let attributes = try Self.est(platform, "GET", "csrattrs")
        #expect(attributes.status == 200 && attributes.headers.lowercased().contains("content-type: application/csrattrs"), "\(attributes.headers)")
        let attributesFile = platform.path("csrattrs.b64")
        try attributes.body.write(toFile: attributesFile, atomically: true, encoding: .utf8)
        let parsed = try TestEnvironment.run("sh", ["-c", "openssl base64 -d -in \"$1\" | openssl asn1parse -inform DER", "sh", attributesFile])
        for expected in ["ecdsa-with-SHA256", "prime256v1", "Extension Request", "X509v3 Subject Alternative Name"] {
            #expect(parsed.stdout.contains(expected), "\(expected): \(parsed.stdout) \(parsed.stderr)")
        }

        // simpleenroll: the meter's factory key makes the CSR (openssl) and authenticates the handshake (curl).
        let csr = try Self.csr(platform, key: platform.path("meter-\(meter).key"), subject: "/CN=urn:dev:mac:\(meter)")
        let enrolled = try Self.est(platform, "POST", "simpleenroll", meter: meter, body: csr)
        #expect(enrolled.status == 200, "\(enrolled.status) \(enrolled.body)")
        #expect(enrolled.headers.lowercased().contains("content-type: application/pkcs7-mime; smime-type=certs-only"), "\(enrolled.headers)")
        let printed = try Self.printCertificates(platform, enrolled)
        #expect(printed.contains("subject=CN = urn:dev:mac:\(meter)") && printed.contains("issuer=O = north, CN = north Operational CA"), "\(printed)")
        let checked = try Self.check(platform, enrolled)
        let identity = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("read_device_certificate.py"), platform.path("meter-\(meter).pem")])
        let factory = try #require(try JSONSerialization.jsonObject(with: Data(identity.stdout.utf8)) as? [String: Any])
        #expect(checked["eui64"] as? String == meter && checked["hwType"] as? String == factory["hwType"] as? String, "\(checked)")
        #expect(checked["clientAuth"] as? Bool == true && checked["digitalSignatureOnly"] as? Bool == true && checked["sanCritical"] as? Bool == true)
        #expect(checked["issuer"] as? String == "CN=north Operational CA,O=north" && checked["certificates"] as? Int == 1, "\(checked)")
        #expect(checked["publicKeyDER"] as? String == factory["publicKeyDER"] as? String, "the operational certificate is not for the meter's key")
        // Its CRL distribution point is its shard of north's CRL, as the store filed it; AIA names the OCSP responder.
        let serial = try #require(checked["serial"] as? String)
        let listed = try platform.deployment.json(["cert", "list", "--eui64", meter, "--profile", "device-operational"])
        let stored = try #require((listed["certificates"] as? [[String: Any]])?.first, "\(listed)")
        #expect((stored["serial"] as? String)?.hasSuffix(serial) == true && stored["issuerCA"] as? String == "north", "\(stored)")
        let shard = try #require(stored["shard"] as? Int, "\(stored)")
        #expect(checked["crlDistributionPoints"] as? [String] == ["http://crl.metertrust.example/north/\(shard).crl"], "\(checked)")
        #expect(checked["ocsp"] as? [String] == ["http://ocsp.metertrust.example/"], "\(checked)")
        #expect(try Self.issuedTo(platform, meter) == (2, 1))

        // simplereenroll with the operational certificate: the same key, then a new one (rekey, RFC 7030 §4.2.2).
        let operational = try Self.leafPEM(platform, enrolled, name: "operational-\(meter).pem")
        let renewed = try Self.est(
            platform, "POST", "north/simplereenroll", certificate: operational, key: platform.path("meter-\(meter).key"),
            body: try Self.csr(platform, key: platform.path("meter-\(meter).key"), subject: "/CN=urn:dev:mac:\(meter)")
        )
        #expect(renewed.status == 200, "\(renewed.status) \(renewed.body)")
        let sameKey = try Self.check(platform, renewed)
        #expect(sameKey["publicKeyDER"] as? String == factory["publicKeyDER"] as? String && sameKey["serial"] as? String != serial)
        let newKey = platform.path("new-\(meter).key")
        try #require(try TestEnvironment.run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", newKey]).status == 0)
        let rekeyed = try Self.est(
            platform, "POST", "simplereenroll", certificate: operational, key: platform.path("meter-\(meter).key"),
            body: try Self.csr(platform, key: newKey, subject: "/CN=urn:dev:mac:\(meter)")
        )
        #expect(rekeyed.status == 200, "\(rekeyed.status) \(rekeyed.body)")
        let rekey = try Self.check(platform, rekeyed)
        #expect(rekey["eui64"] as? String == meter && rekey["publicKeyDER"] as? String != factory["publicKeyDER"] as? String, "\(rekey)")
        // The new certificate, with the new key, authenticates the next renewal.
        let rekeyedPEM = try Self.leafPEM(platform, rekeyed, name: "rekeyed-\(meter).pem")
        let again = try Self.est(
            platform, "POST", "simplereenroll", certificate: rekeyedPEM, key: newKey, body: try Self.csr(platform, key: newKey, subject: "/CN=urn:dev:mac:\(meter)")
        )
        #expect(again.status == 200, "\(again.status) \(again.body)")
        #expect(try Self.issuedTo(platform, meter) == (5, 4))

        // Every issuance is in the audit log (meter, account, serial), and the log still verifies.
        let log = try platform.deployment.run(["audit", "log", "--json", "--last", "100000"]).stdout
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(log.utf8)) as? [[String: Any]])
        let enrollEntry = try #require(entries.first { $0["action"] as? String == "est.enroll" })
        let details = try #require(enrollEntry["details"] as? [String: String])
        #expect(enrollEntry["subject"] as? String == meter && details["account"] == "north" && details["ca"] == "north" && details["credential"] == "factory-certificate")
        #expect(details["serial"].map { $0.hasSuffix(serial) } == true, "\(details) vs \(serial)")
        #expect(entries.filter { $0["action"] as? String == "est.reenroll" }.count == 3)
        #expect(try platform.deployment.json(["audit", "verify"])["verified"] as? Bool == true)

        // A second server on the same deployment whose enrollment queue holds one enrollment: 24 meters' requests
        // at once (curl processes started together) reach the limit. Each is answered 200 with a certificate or 503
        // (est.busy) with Retry-After; nothing else, and the store holds exactly one certificate per 200.
        let (busyServer, busyPorts) = try Platform.serve(platform.deployment, people: platform.api.people, extra: ["--est-queue-limit", "1"], est: true)
        defer {
            busyServer.terminate()
            busyServer.waitUntilExit()
        }
        let loaded = platform.meters[1]
        let loadCSR = try Self.csr(platform, key: platform.path("meter-\(loaded).key"), subject: "/CN=urn:dev:mac:\(loaded)")
        let runs = platform.path("load-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(atPath: runs, withIntermediateDirectories: true)
        // 24 curl processes, all started before any is waited for.
        let clients = try (1...24).map { index -> Process in
            let client = Process()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            client.arguments = [
                "-sS", "--tlsv1.3", "--cacert", platform.path("root.pem"), "--cert", platform.path("meter-\(loaded).pem"),
                "--key", platform.path("meter-\(loaded).key"), "-H", "Content-Type: application/pkcs10", "--data-binary", "@" + loadCSR,
                "-D", "\(runs)/headers-\(index)", "-o", "\(runs)/body-\(index)", "-w", "%{http_code}",
                "https://localhost:\(busyPorts["est"]!)/.well-known/est/simpleenroll",
            ]
            FileManager.default.createFile(atPath: "\(runs)/status-\(index)", contents: nil)
            client.standardOutput = FileHandle(forWritingAtPath: "\(runs)/status-\(index)")
            client.standardError = FileHandle.nullDevice
            try client.run()
            return client
        }
        for client in clients { client.waitUntilExit() }
        var statuses: [Int] = []
        for index in 1...24 {
            let status = Int((try? String(contentsOfFile: "\(runs)/status-\(index)", encoding: .utf8)) ?? "") ?? 0
            statuses.append(status)
            let headers = ((try? String(contentsOfFile: "\(runs)/headers-\(index)", encoding: .utf8)) ?? "").lowercased()
            let body = (try? String(contentsOfFile: "\(runs)/body-\(index)", encoding: .utf8)) ?? ""
            if status == 503 {
                #expect(headers.contains("retry-after: 1") && body.contains("\"est.busy\""), "503 without Retry-After or est.busy: \(headers) \(body)")
            }
        }
        let accepted = statuses.filter { $0 == 200 }.count
        let busy = statuses.filter { $0 == 503 }.count
        #expect(accepted + busy == 24, "statuses other than 200 and 503: \(statuses)")
        #expect(busy > 0, "the queue limit was never reached: \(statuses)")
        #expect(accepted > 0, "nothing got through: \(statuses)")
        #expect(try Self.issuedTo(platform, loaded) == (1 + accepted, accepted))
    }

    /// A CA and a meter certificate made with openssl alone (no HSM): `caSubject` its subject, the leaf naming meter
    /// `eui64` in a critical HardwareModuleName as a genuine one does. Returns the leaf's certificate and key paths.
    static func selfMadeMeter(_ platform: Platform, name: String, caSubject: String, eui64: String) throws -> (certificate: String, key: String) {
        let (caKey, caCertificate) = (platform.path("\(name)-ca.key"), platform.path("\(name)-ca.pem"))
        let (key, request, certificate) = (platform.path("\(name).key"), platform.path("\(name).csr"), platform.path("\(name).pem"))
        let extensions = platform.path("\(name).cnf")
        try """
            [v3]
            keyUsage = critical, digitalSignature
            subjectAltName = critical, otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hmn
            [hmn]
            hwType = OID:2.999.2.1
            hwSerialNum = FORMAT:HEX,OCTETSTRING:\(eui64)
            """.write(toFile: extensions, atomically: true, encoding: .utf8)
        for arguments in [
            ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", caKey],
            ["req", "-x509", "-new", "-key", caKey, "-subj", caSubject, "-days", "30", "-out", caCertificate,
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
            ["req", "-new", "-key", key, "-subj", "/CN=urn:dev:mac:\(eui64)", "-out", request],
            ["x509", "-req", "-in", request, "-CA", caCertificate, "-CAkey", caKey, "-CAcreateserial", "-days", "30", "-out", certificate,
             "-extfile", extensions, "-extensions", "v3"],
        ] {
            let result = try TestEnvironment.run("openssl", arguments)
            try #require(result.status == 0, "openssl \(arguments.joined(separator: " ")): \(result.stderr)")
        }
        return (certificate, key)
    }

    @Test("every refusal of a meter's enrollment, with its status, code and reason, and nothing issued or stored: unclaimed, in conflict, another account's label, an unregistered manufacturer, an imitation of a registered one, a CSR for another meter, malformed base64 and DER, an oversize body, no client certificate, a revoked factory certificate, a revoked Manufacturer Device CA", arguments: [false, true])
    func refusals(postgres: Bool) async throws {
        let platform = try await Platform(postgres: postgres, est: true)
        try Self.claims(platform)
        let meters = platform.meters
        func request(_ meter: String, for named: String? = nil) throws -> String {
            try Self.csr(platform, key: platform.path("meter-\(meter).key"), subject: "/CN=urn:dev:mac:\(named ?? meter)")
        }
        let garbage = platform.path("garbage.b64")
        try "this is not base64!\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let notDER = platform.path("not-der.b64")
        try Data("a CSR it is not, though it is base64".utf8).base64EncodedString().write(toFile: notDER, atomically: true, encoding: .utf8)
        let oversize = platform.path("oversize.b64")
        try String(repeating: "QUFB", count: 5 * 1024).write(toFile: oversize, atomically: true, encoding: .utf8)
        let rogue = try Self.selfMadeMeter(platform, name: "rogue", caSubject: "/O=rogue/CN=rogue Device CA", eui64: meters[1])
        let imitation = try Self.selfMadeMeter(platform, name: "imitation", caSubject: "/O=acme/CN=acme Device CA", eui64: meters[1])

        // (name, the attacker, the answer, status, code, words of the reason)
        let cases: [(String, String, Answer, Int, String, String)] = [
            // A meter lying about who it is: never listed by any account.
            ("unclaimed meter", "a meter no account listed", try Self.est(platform, "POST", "simpleenroll", meter: meters[4], body: try request(meters[4])), 403, "est.not-claimed", "no account claims meter \(meters[4])"),
            ("meter in conflict", "a meter two accounts list", try Self.est(platform, "POST", "simpleenroll", meter: meters[5], body: try request(meters[5])), 403, "est.meter-in-conflict", "in conflict"),
            // A meter (or whoever holds its key) reaching into another account.
            ("another account's label", "a meter of north asking south", try Self.est(platform, "POST", "south/simpleenroll", meter: meters[1], body: try request(meters[1])), 403, "onboarding.other-account", "not enrolled in account south"),
            // Anyone with a certificate of their own making.
            ("unregistered manufacturer", "a certificate from a CA the platform never registered", try Self.est(platform, "POST", "simpleenroll", certificate: rogue.certificate, key: rogue.key, body: try Self.csr(platform, key: rogue.key, subject: "/CN=urn:dev:mac:\(meters[1])")), 403, "factory.unregistered-manufacturer", "not a registered Manufacturer Device CA"),
            ("imitation of acme", "a self-made CA named like acme, claiming meter 1", try Self.est(platform, "POST", "simpleenroll", certificate: imitation.certificate, key: imitation.key, body: try Self.csr(platform, key: imitation.key, subject: "/CN=urn:dev:mac:\(meters[1])")), 403, "est.untrusted-certificate", "does not chain to CA acme"),
            // A meter lying about who it is: its own certificate, another meter's EUI-64 in the request.
            ("CSR for another meter", "meter 1 asking for meter 2's certificate", try Self.est(platform, "POST", "simpleenroll", meter: meters[1], body: try request(meters[1], for: meters[2])), 403, "est.identity-mismatch", "the request is for meter \(meters[2])"),
            // Anyone sending garbage to the endpoint.
            ("malformed base64", "garbage in the body", try Self.est(platform, "POST", "simpleenroll", meter: meters[1], body: garbage), 400, "input.malformed", "not base64"),
            ("malformed DER", "base64 that is no CSR", try Self.est(platform, "POST", "simpleenroll", meter: meters[1], body: notDER), 400, "pki.malformed-request", "not a DER PKCS#10"),
            ("oversize body", "a 20 KiB body", try Self.est(platform, "POST", "simpleenroll", meter: meters[1], body: oversize), 413, "edge.payload-too-large", "larger than"),
            ("no client certificate", "an anonymous client", try Self.est(platform, "POST", "simpleenroll", body: try request(meters[1])), 401, "edge.unauthenticated", "needs the meter's certificate"),
            ("operational credential for simpleenroll", "a factory certificate presented to simplereenroll", try Self.est(platform, "POST", "simplereenroll", meter: meters[1], body: try request(meters[1])), 403, "est.untrusted-certificate", "not an Operational CA"),
        ]
        for (name, attacker, answer, status, code, reason) in cases {
            #expect(answer.status == status, "\(name) (\(attacker)): \(answer.status) \(answer.body)")
            #expect(answer.problemCode == code, "\(name): \(answer.body)")
            #expect(answer.body.contains(reason), "\(name): \(answer.body)")
            #expect(answer.headers.lowercased().contains("content-type: application/problem+json"), "\(name): \(answer.headers)")
        }
        for meter in meters {
            #expect(try Self.issuedTo(platform, meter) == (1, 0), "meter \(meter) got something")
        }

        // Attacker with write access to the database (or the revocation service, before it exists): meter 2's
        // factory certificate revoked in the store. Refused; a row can deny, never admit.
        let identity = try #require((try platform.deployment.json(["cert", "list", "--eui64", meters[2], "--profile", "device-identity"])["certificates"] as? [[String: Any]])?.first)
        let (serial, shard) = (try #require(identity["serial"] as? String), try #require(identity["shard"] as? Int))
        if postgres {
            let result = try TestPostgres.psql(
                try TestPostgres.locationOf(platform.deployment),
                "INSERT INTO revocations (issuer, serial, shard, reason, revoked_at) VALUES ('acme', '\(serial)', \(shard), 1, 1700000000)"
            )
            #expect(result.status == 0, "psql: \(result.stderr)")
        } else {
            try TrustworthyStateTests.sqlite(
                platform.deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path,
                "INSERT INTO revocations (issuer, serial, reason, revoked_at) VALUES ('acme', '\(serial)', 1, 1700000000)"
            )
        }
        let revoked = try Self.est(platform, "POST", "simpleenroll", meter: meters[2], body: try request(meters[2]))
        #expect(revoked.status == 403 && revoked.problemCode == "est.revoked-certificate" && revoked.body.contains("revoked"), "\(revoked.status) \(revoked.body)")
        #expect(try Self.issuedTo(platform, meters[2]) == (1, 0))

        // The Manufacturer Device CA acme revoked under quorum (two custodians approve ca.revoke): its meters are
        // refused from the signed audit log, whatever the store's rows say.
        let adminPort = platform.ports["admin"]!
        let revoke = try platform.api.clientJSON(["admin", "request", "ca.revoke", "name=acme", "reason=1"], as: "alice", port: adminPort)
        let revokeID = try #require(revoke["id"] as? String)
        for approver in ["bob", "carol"] { _ = try platform.api.clientJSON(["admin", "approve", revokeID], as: approver, port: adminPort) }
        _ = try platform.api.clientJSON(["admin", "execute", revokeID], as: "bob", port: adminPort)
        let undo = "DELETE FROM revocations WHERE issuer = 'root'"
        if postgres {
            #expect(try TestPostgres.psql(try TestPostgres.locationOf(platform.deployment), undo).status == 0)
        } else {
            try TrustworthyStateTests.sqlite(platform.deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path, undo)
        }
        let afterRevocation = try Self.est(platform, "POST", "simpleenroll", meter: meters[3], body: try request(meters[3]))
        #expect(afterRevocation.status == 403 && afterRevocation.problemCode == "est.revoked-certificate", "\(afterRevocation.status) \(afterRevocation.body)")
        #expect(afterRevocation.body.contains("CA acme"), "\(afterRevocation.body)")
        #expect(try Self.issuedTo(platform, meters[3]) == (1, 0))
    }
}
