import Foundation
import MeterTrustCore
import Testing

/// Revocation through the binary (`metertrust revoke`, `serve --roles crl,ocsp`) judged by tools no one here wrote:
/// `openssl ocsp`, `openssl verify -crl_check`, Python `cryptography` (tools/check_revocation.py) and pkilint. Every
/// case on SQLite and on PostgreSQL.
@Suite("Revocation: revoke, partitioned CRLs, the OCSP responder", .serialized)
struct RevocationTests {
    typealias Platform = AccountAPITests.Platform

    /// A platform with crl and ocsp roles, north's meter 0 enrolled over EST: its operational certificate in
    /// people/operational.pem, north's and root's certificates as PEM.
    static func enrolledPlatform(postgres: Bool) async throws -> (Platform, meter: String, leaf: String, north: String) {
        let platform = try await Platform(postgres: postgres, est: true, revocation: true)
        try EstTests.claims(platform)
        let meter = platform.meters[0]
        let csr = try EstTests.csr(platform, key: platform.path("meter-\(meter).key"), subject: "/CN=urn:dev:mac:\(meter)")
        let enrolled = try EstTests.est(platform, "POST", "simpleenroll", meter: meter, body: csr)
        try #require(enrolled.status == 200, "\(enrolled.status) \(enrolled.body)")
        let leaf = try EstTests.leafPEM(platform, enrolled, name: "operational.pem")
        let north = platform.path("north.pem")
        let shown = try platform.deployment.run(["ca", "show", "north", "--pem"])
        try #require(shown.status == 0, "\(shown.stderr)")
        try shown.stdout.write(toFile: north, atomically: true, encoding: .utf8)
        return (platform, meter, leaf, north)
    }

    /// `openssl ocsp` against the responder: its report line for `certificate` and whether it verified the response.
    static func opensslOCSP(
        _ platform: Platform, issuer: String, certificate: String, nonce: Bool = false, port: Int? = nil
    ) throws -> (report: String, verified: Bool, output: String) {
        let result = try TestEnvironment.run(
            "openssl",
            ["ocsp", "-issuer", issuer, "-cert", certificate, "-url", "http://127.0.0.1:\(port ?? platform.ports["ocsp"]!)/", "-CAfile", platform.path("root.pem"),
             "-verify_other", issuer, nonce ? "-nonce" : "-no_nonce", "-resp_text"]
        )
        let line = result.stdout.split(separator: "\n").first { $0.hasPrefix(certificate + ":") }.map(String.init) ?? ""
        return (line, result.stderr.contains("Response verify OK"), result.stdout + result.stderr)
    }

    /// curl a CRL from the crl role into a DER file; status, headers and the file.
    static func fetchCRL(_ platform: Platform, _ path: String, headers: [String] = [], port: Int? = nil) throws -> (status: Int, headers: String, file: String) {
        let file = platform.path("crl-\(UUID().uuidString.prefix(6)).der")
        let headerFile = file + ".headers"
        var arguments = ["-sS", "-o", file, "-D", headerFile, "-w", "%{http_code}", "http://127.0.0.1:\(port ?? platform.ports["crl"]!)\(path)"]
        for header in headers { arguments += ["-H", header] }
        let result = try TestEnvironment.run("curl", arguments)
        return (Int(result.stdout) ?? 0, (try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? "", file)
    }

    static func python(_ arguments: [String]) throws -> [String: Any] {
        let result = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("check_revocation.py")] + arguments)
        try #require(result.status == 0, "check_revocation.py \(arguments): \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    /// `openssl verify -crl_check` of `leaf` with the CRL in `crl` (DER), or with `rootCRL` too `-crl_check_all`
    /// across the chain: openssl's verdict.
    static func verifyWithCRL(_ platform: Platform, leaf: String, north: String, crl: String, rootCRL: String? = nil) throws -> TestEnvironment.ProcessResult {
        var crls: [String] = []
        for file in [crl] + (rootCRL.map { [$0] } ?? []) {
            let pem = file + ".pem"
            let converted = try TestEnvironment.run("openssl", ["crl", "-inform", "DER", "-in", file, "-out", pem])
            try #require(converted.status == 0, "openssl crl: \(converted.stderr)")
            crls.append(pem)
        }
        return try TestEnvironment.run(
            "openssl",
            ["verify", rootCRL == nil ? "-crl_check" : "-crl_check_all", "-CAfile", platform.path("root.pem"), "-untrusted", north]
                + crls.flatMap { ["-CRLfile", $0] } + [leaf]
        )
    }

    /// The custodians sign the root's CRL under quorum (alice requests, bob and carol approve, bob executes); the
    /// crl role then serves it: its DER in a file.
    static func signRootCRL(_ platform: Platform) throws -> String {
        let port = platform.ports["admin"]!
        let request = try platform.api.clientJSON(["admin", "request", "crl.sign-root", "days=30"], as: "alice", port: port)
        let id = try #require(request["id"] as? String)
        for approver in ["bob", "carol"] { _ = try platform.api.clientJSON(["admin", "approve", id], as: approver, port: port) }
        let executed = try platform.api.clientJSON(["admin", "execute", id], as: "bob", port: port)
        try #require((executed["outcome"] as? [String: Any])?["number"] != nil, "\(executed)")
        let deadline = Date().addingTimeInterval(3)
        var fetched = try fetchCRL(platform, "/root.crl")
        while fetched.status != 200, Date() < deadline {
            usleep(100_000)
            fetched = try fetchCRL(platform, "/root.crl")
        }
        try #require(fetched.status == 200, "the root's CRL is not served: \(fetched.status)")
        return fetched.file
    }

    /// Whoever has write access to the database but no HSM: runs SQL on the store (sqlite3 or psql).
    static func attackStore(_ platform: Platform, postgres: Bool, _ sql: String) throws {
        if postgres {
            let result = try TestPostgres.psql(try TestPostgres.locationOf(platform.deployment), sql)
            try #require(result.status == 0, "psql: \(result.stderr)")
        } else {
            try TrustworthyStateTests.sqlite(platform.deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path, sql)
        }
    }

    @Test("openssl ocsp says good, then revoked (keyCompromise) within a second of metertrust revoke; openssl verify -crl_check passes on the meter's shard CRL, then fails; cryptography verifies both; pkilint finds nothing; a deleted revocation row changes nothing", arguments: [false, true])
    func revokeAndSee(postgres: Bool) async throws {
        let (platform, meter, leaf, north) = try await Self.enrolledPlatform(postgres: postgres)
        let listed = try platform.deployment.json(["cert", "list", "--eui64", meter, "--profile", "device-operational"])
        let stored = try #require((listed["certificates"] as? [[String: Any]])?.first, "\(listed)")
        let serial = try #require(stored["serial"] as? String)
        let shard = try #require(stored["shard"] as? Int)

        // Good: openssl ocsp with and without a nonce, the response verified through the delegated signer to the root.
        for nonce in [false, true] {
            let good = try Self.opensslOCSP(platform, issuer: north, certificate: leaf, nonce: nonce)
            #expect(good.report == "\(leaf): good" && good.verified, "\(good.output)")
        }
        // The shard's CRL (the URL the certificate names, with the crl role's origin): empty, openssl verify passes.
        let before = try Self.fetchCRL(platform, "/north/\(shard).crl")
        #expect(before.status == 200 && before.headers.lowercased().contains("content-type: application/pkix-crl"), "\(before.headers)")
        #expect(before.headers.lowercased().contains("etag: \"") && before.headers.lowercased().contains("cache-control: public, max-age="), "\(before.headers)")
        let passed = try Self.verifyWithCRL(platform, leaf: leaf, north: north, crl: before.file)
        #expect(passed.status == 0 && passed.stdout.contains("OK"), "\(passed.stdout) \(passed.stderr)")
        let emptyCRL = try Self.python(["crl", before.file, north, serial])
        #expect(emptyCRL["signatureValid"] as? Bool == true && emptyCRL["listed"] as? Bool == false && emptyCRL["authorityKeyIdentifierMatches"] as? Bool == true, "\(emptyCRL)")
        let idp = try #require(emptyCRL["issuingDistributionPoint"] as? [String: Any], "\(emptyCRL)")
        #expect(idp["critical"] as? Bool == true && idp["uris"] as? [String] == ["http://crl.metertrust.example/north/\(shard).crl"], "\(idp)")
        #expect(idp["onlyContainsUserCerts"] as? Bool == true)
        // The root's CRL: none until the custodians sign it under quorum (crl.sign-root); then openssl verify
        // -crl_check_all (the meter's shard CRL and the root's, across the chain) passes.
        let unsigned = try Self.fetchCRL(platform, "/root.crl")
        let unsignedBody = try String(contentsOfFile: unsigned.file, encoding: .utf8)
        #expect(unsigned.status == 404 && unsignedBody.contains("crl.sign-root"), "\(unsigned.status) \(unsignedBody)")
        let rootCRL = try Self.signRootCRL(platform)
        let rootChecked = try Self.python(["crl", rootCRL, platform.path("root.pem")])
        #expect(rootChecked["signatureValid"] as? Bool == true && (rootChecked["entries"] as? [Any])?.isEmpty == true, "\(rootChecked)")
        let chainPassed = try Self.verifyWithCRL(platform, leaf: leaf, north: north, crl: before.file, rootCRL: rootCRL)
        #expect(chainPassed.status == 0 && chainPassed.stdout.contains("OK"), "\(chainPassed.stdout) \(chainPassed.stderr)")

        // Unchanged: If-None-Match with its ETag is 304.
        let etag = try #require(before.headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("etag:") }).dropFirst(5).trimmingCharacters(in: .whitespaces)
        #expect(try Self.fetchCRL(platform, "/north/\(shard).crl", headers: ["If-None-Match: \(etag)"]).status == 304)

        // On PostgreSQL a second node: another serve process (ocsp and crl) on the same database and token. It
        // answers good too, and its kept response must not outlive the revocation either.
        var nodes: [(name: String, port: Int?)] = [("node 1", nil)]
        var second: ServeTests.Server?
        if postgres {
            let node = try ServeTests.start(platform.deployment, ["serve", "--roles", "ocsp,crl", "--listen", "crl=127.0.0.1:0"], in: platform.api.people)
            second = node
            nodes.append(("node 2", try #require(node.ports["ocsp"])))
            #expect(try Self.opensslOCSP(platform, issuer: north, certificate: leaf, port: node.ports["ocsp"]).report == "\(leaf): good")
        }
        defer { _ = second?.terminate() }

        // Revoke (a PKI officer on the HSM host), then time openssl ocsp on each node until it says revoked.
        let revoked = try platform.deployment.json(["revoke", meter, "--reason", "keyCompromise"])
        #expect(revoked["revoked"] as? Int == 1 && revoked["alreadyRevoked"] as? Int == 0, "\(revoked)")
        let returned = Date()
        var last = ""
        for node in nodes {
            var seen: TimeInterval?
            while Date().timeIntervalSince(returned) < 5 {
                let answer = try Self.opensslOCSP(platform, issuer: north, certificate: leaf, port: node.port)
                last = answer.output
                if answer.report == "\(leaf): revoked" && answer.verified {
                    seen = Date().timeIntervalSince(returned)
                    break
                }
            }
            let latency = try #require(seen, "openssl ocsp on \(node.name) never said revoked: \(last)")
            print("revocation: openssl ocsp on \(node.name) (\(postgres ? "PostgreSQL" : "SQLite")) said revoked \(Int(latency * 1000)) ms after revoke returned")
            #expect(latency < 1, "revoked seen on \(node.name) after \(latency) s")
            #expect(last.contains("Reason: keyCompromise"), "\(last)")
        }
        let withNonce = try Self.opensslOCSP(platform, issuer: north, certificate: leaf, nonce: true)
        #expect(withNonce.report == "\(leaf): revoked" && withNonce.verified, "\(withNonce.output)")

        // The shard's CRL lists it within a second (coalesced rebuild), and openssl verify -crl_check fails.
        var after = try Self.fetchCRL(platform, "/north/\(shard).crl")
        var listedNow = try Self.python(["crl", after.file, north, serial])
        let crlDeadline = Date().addingTimeInterval(3)
        while listedNow["listed"] as? Bool != true, Date() < crlDeadline {
            usleep(100_000)
            after = try Self.fetchCRL(platform, "/north/\(shard).crl")
            listedNow = try Self.python(["crl", after.file, north, serial])
        }
        #expect(listedNow["listed"] as? Bool == true && listedNow["signatureValid"] as? Bool == true, "\(listedNow)")
        #expect(Date().timeIntervalSince(returned) < 2, "the shard CRL listed it only after \(Date().timeIntervalSince(returned)) s")
        #expect(((listedNow["number"] as? Int) ?? 0) > ((emptyCRL["number"] as? Int) ?? Int.max), "cRLNumber did not grow: \(emptyCRL["number"] ?? "-") → \(listedNow["number"] ?? "-")")
        let entry = try #require((listedNow["entries"] as? [[String: Any]])?.first)
        #expect(entry["reason"] as? String == "key_compromise", "\(entry)")
        let failed = try Self.verifyWithCRL(platform, leaf: leaf, north: north, crl: after.file)
        #expect(failed.status != 0 && (failed.stdout + failed.stderr).contains("certificate revoked"), "\(failed.stdout) \(failed.stderr)")
        let chainFailed = try Self.verifyWithCRL(platform, leaf: leaf, north: north, crl: after.file, rootCRL: rootCRL)
        #expect(chainFailed.status != 0 && (chainFailed.stdout + chainFailed.stderr).contains("certificate revoked"), "\(chainFailed.stdout) \(chainFailed.stderr)")
        if let second {
            let fromNode2 = try Self.python(["crl", try Self.fetchCRL(platform, "/north/\(shard).crl", port: second.ports["crl"]).file, north, serial])
            #expect(fromNode2["listed"] as? Bool == true && fromNode2["signatureValid"] as? Bool == true, "node 2: \(fromNode2)")
        }
        // The complete CRL of north lists it too, without an issuing distribution point.
        let complete = try Self.fetchCRL(platform, "/north.crl")
        let completeChecked = try Self.python(["crl", complete.file, north, serial])
        #expect(complete.status == 200 && completeChecked["listed"] as? Bool == true && completeChecked["issuingDistributionPoint"] is NSNull, "\(completeChecked)")

        // Python cryptography: the OCSP response (GET, as RFC 6960 A.1) verifies through the signer; status revoked.
        let requestFile = platform.path("request.der")
        let made = try TestEnvironment.run("openssl", ["ocsp", "-issuer", north, "-cert", leaf, "-no_nonce", "-reqout", requestFile])
        try #require(made.status == 0, "\(made.stderr)")
        let encoded = try Data(contentsOf: URL(fileURLWithPath: requestFile)).base64EncodedString()
            .addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let responseFile = platform.path("response.der")
        let got = try TestEnvironment.run("curl", ["-sS", "-o", responseFile, "-w", "%{http_code}", "http://127.0.0.1:\(platform.ports["ocsp"]!)/\(encoded)"])
        #expect(got.stdout == "200", "\(got.stdout) \(got.stderr)")
        // A client that asks to close is told so (RFC 9112 §9.6): the response says Connection: close.
        let closing = try TestEnvironment.run("curl", ["-sS", "-o", "/dev/null", "-D", "-", "-H", "Connection: close", "http://127.0.0.1:\(platform.ports["ocsp"]!)/\(encoded)"])
        #expect(closing.stdout.lowercased().contains("connection: close"), "\(closing.stdout)")
        let response = try Self.python(["ocsp", responseFile, north])
        #expect(response["status"] as? String == "SUCCESSFUL" && response["signatureValid"] as? Bool == true, "\(response)")
        #expect(response["responderOCSPSigning"] as? Bool == true && response["responderNoCheck"] as? Bool == true, "\(response)")
        let single = try #require((response["responses"] as? [[String: Any]])?.first)
        #expect(single["status"] as? String == "REVOKED" && single["reason"] as? String == "key_compromise", "\(single)")

        // pkilint: nothing at WARNING or above for the CRL and the OCSP response.
        for (linter, options, file) in [("lint_crl", ["-t", "CRL", "-p", "PKIX"], after.file), ("lint_crl", ["-t", "CRL", "-p", "PKIX"], complete.file), ("lint_ocsp_response", [], responseFile)] {
            let lint = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("pkilint_run.py"), linter, "lint"] + options + ["-s", "WARNING", file])
            #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(linter): \(lint.stdout) \(lint.stderr)")
        }

        // Attacker with write access to the database: the revocation row deleted. openssl ocsp still says revoked
        // (kept and live answers), the CRLs still list it, EST still refuses the certificate.
        try Self.attackStore(platform, postgres: postgres, "DELETE FROM revocations WHERE serial = '\(serial)'")
        usleep(400_000)
        for nonce in [false, true] {
            let still = try Self.opensslOCSP(platform, issuer: north, certificate: leaf, nonce: nonce)
            #expect(still.report == "\(leaf): revoked", "after the row was deleted: \(still.output)")
        }
        let stillListed = try Self.python(["crl", try Self.fetchCRL(platform, "/north/\(shard).crl").file, north, serial])
        #expect(stillListed["listed"] as? Bool == true, "\(stillListed)")
        let renewCSR = try EstTests.csr(platform, key: platform.path("meter-\(meter).key"), subject: "/CN=urn:dev:mac:\(meter)")
        let renewal = try EstTests.est(platform, "POST", "simplereenroll", certificate: leaf, key: platform.path("meter-\(meter).key"), body: renewCSR)
        #expect(renewal.status == 403 && renewal.problemCode == "est.revoked-certificate", "\(renewal.status) \(renewal.body)")

        // Revoking again changes nothing and says so.
        let again = try platform.deployment.json(["revoke", meter, "--reason", "superseded"])
        #expect(again["revoked"] as? Int == 0 && again["alreadyRevoked"] as? Int == 1, "\(again)")
        let results = try #require(again["results"] as? [[String: Any]])
        #expect(results.first?["reason"] as? String == "keyCompromise", "the first revocation stands: \(results)")
    }

    @Test("refused with a clear answer and nothing changed: garbage, an oversized request, a nonce over 128 octets, an unknown issuer (OCSP); an unknown serial, a CA's certificate, a bad reason (revoke)")
    func refusals() async throws {
        let (platform, _, leaf, north) = try await Self.enrolledPlatform(postgres: false)
        let ocsp = "http://127.0.0.1:\(platform.ports["ocsp"]!)/"
        let entriesBefore = try platform.deployment.json(["audit", "verify"])["entries"] as? Int

        // Anyone sending garbage: malformedRequest (HTTP 200, the OCSP status), never a crash.
        let garbage = platform.path("garbage.der")
        try Data("not an OCSP request at all".utf8).write(to: URL(fileURLWithPath: garbage))
        for body in [garbage] {
            let answer = platform.path("answer-\(UUID().uuidString.prefix(4)).der")
            let posted = try TestEnvironment.run(
                "curl", ["-sS", "-o", answer, "-w", "%{http_code}", "-H", "Content-Type: application/ocsp-request", "--data-binary", "@" + body, ocsp]
            )
            #expect(posted.stdout == "200")
            #expect(try Self.python(["ocsp", answer, north])["status"] as? String == "MALFORMED_REQUEST")
        }
        let getGarbage = platform.path("get-garbage.der")
        _ = try TestEnvironment.run("curl", ["-sS", "-o", getGarbage, ocsp + "%%%not-base64"])
        #expect(try Self.python(["ocsp", getGarbage, north])["status"] as? String == "MALFORMED_REQUEST")
        // Oversized: 413 before parsing.
        let big = platform.path("big.der")
        try Data(repeating: 0x30, count: 20_000).write(to: URL(fileURLWithPath: big))
        let oversized = try TestEnvironment.run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + big, ocsp])
        #expect(oversized.stdout == "413", "\(oversized.stdout)")
        // A nonce of 129 octets (RFC 9654 allows at most 128): malformedRequest; 128 octets is echoed.
        for (length, expected) in [(129, "MALFORMED_REQUEST"), (128, "SUCCESSFUL")] {
            let request = platform.path("nonce-\(length).der")
            let script = """
                import sys
                from cryptography import x509
                from cryptography.hazmat.primitives import hashes, serialization
                from cryptography.x509 import ocsp
                leaf = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read())
                issuer = x509.load_pem_x509_certificate(open(sys.argv[2], 'rb').read())
                builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256()).add_extension(x509.OCSPNonce(b'n' * int(sys.argv[4])), critical=False)
                open(sys.argv[3], 'wb').write(builder.build().public_bytes(serialization.Encoding.DER))
                """
            let built = try TestEnvironment.run(TestEnvironment.python, ["-c", script, leaf, north, request, "\(length)"])
            try #require(built.status == 0, "\(built.stderr)")
            let answer = request + ".answer"
            _ = try TestEnvironment.run("curl", ["-sS", "-o", answer, "--data-binary", "@" + request, ocsp])
            let checked = try Self.python(["ocsp", answer, north])
            #expect(checked["status"] as? String == expected, "nonce of \(length): \(checked)")
            if length == 128 { #expect(checked["nonce"] as? String == String(repeating: "6e", count: 128), "\(checked)") }
        }
        // A CA this responder does not serve yet (the root, whose signer the custodians have not certified): unauthorized.
        let unauthorized = try TestEnvironment.run(
            "openssl", ["ocsp", "-issuer", platform.path("root.pem"), "-cert", north, "-url", ocsp, "-no_nonce"]
        )
        #expect((unauthorized.stdout + unauthorized.stderr).contains("unauthorized"), "\(unauthorized.stdout) \(unauthorized.stderr)")

        // revoke: an unknown serial, a CA's certificate, a bad reason, a future invalidity date.
        let unknown = try platform.deployment.run(["revoke", "--ca", "north", "--serial", "0badc0de", "--json"])
        #expect(unknown.status == 1 && unknown.stderr.contains("revocation.unknown-certificate"), "\(unknown.stderr)")
        let authorities = try platform.deployment.json(["cert", "list", "--ca", "root", "--profile", "operational-ca"])
        let northSerial = try #require((authorities["certificates"] as? [[String: Any]])?.first?["serial"] as? String, "\(authorities)")
        let caRevocation = try platform.deployment.run(["revoke", "--ca", "root", "--serial", northSerial, "--json"])
        #expect(caRevocation.status == 4 && caRevocation.stderr.contains("revocation.under-quorum"), "\(caRevocation.stderr)")
        let badReason = try platform.deployment.run(["revoke", platform.meters[0], "--reason", "certificateHold"])
        #expect(badReason.status == 2 && badReason.stderr.contains("--reason"), "\(badReason.stderr)")
        let future = try platform.deployment.run(["revoke", platform.meters[0], "--invalidity-date", "2999-01-01T00:00:00Z"])
        #expect(future.status == 1 && future.stderr.contains("future"), "\(future.stderr)")
        let good = try Self.opensslOCSP(platform, issuer: north, certificate: leaf)
        #expect(good.report == "\(leaf): good", "a refusal changed something: \(good.output)")
        let entriesAfter = try platform.deployment.json(["audit", "verify"])["entries"] as? Int
        #expect(entriesBefore == entriesAfter, "refusals were recorded as revocations: \(entriesBefore ?? -1) → \(entriesAfter ?? -1)")
    }

    @Test("the root answers through an OCSP signer only the custodians certify (ocsp.certify-root-signer): unauthorized before and with one custodian alone, good for the Operational CA after, verified by openssl and cryptography; a CA no one here knows stays unauthorized")
    func rootSignerUnderQuorum() async throws {
        let (platform, _, _, north) = try await Self.enrolledPlatform(postgres: false)
        let root = platform.path("root.pem")
        let url = "http://127.0.0.1:\(platform.ports["ocsp"]!)/"
        func ask(issuer: String, certificate: String) throws -> String {
            let result = try TestEnvironment.run("openssl", ["ocsp", "-issuer", issuer, "-cert", certificate, "-url", url, "-no_nonce", "-noverify"])
            return result.stdout + result.stderr
        }
        #expect(try ask(issuer: root, certificate: north).contains("unauthorized"))

        // One malicious custodian (or the holder of the user PIN with one custodian's key): a request executed
        // without the quorum's approvals is refused, and the root still has no signer.
        let port = platform.ports["admin"]!
        let request = try platform.api.clientJSON(["admin", "request", "ocsp.certify-root-signer"], as: "alice", port: port)
        let id = try #require(request["id"] as? String)
        let alone = try platform.api.client(["admin", "execute", id], as: "alice", port: port)
        #expect(alone.status != 0, "\(alone.stdout)")
        #expect(try ask(issuer: root, certificate: north).contains("unauthorized"))
        let listedBefore = try platform.deployment.json(["cert", "list", "--profile", "root-ocsp-signer"])
        #expect((listedBefore["certificates"] as? [Any])?.isEmpty == true, "\(listedBefore)")

        for approver in ["bob", "carol"] { _ = try platform.api.clientJSON(["admin", "approve", id], as: approver, port: port) }
        let executed = try platform.api.clientJSON(["admin", "execute", id], as: "bob", port: port)
        let outcome = try #require(executed["outcome"] as? [String: Any], "\(executed)")
        #expect(outcome["profile"] as? String == "root-ocsp-signer" && outcome["serial"] is String, "\(outcome)")

        // The running responder finds it (within about a second) and answers good, verified to the root.
        let deadline = Date().addingTimeInterval(5)
        var answer = try Self.opensslOCSP(platform, issuer: root, certificate: north)
        while answer.report != "\(north): good", Date() < deadline {
            usleep(200_000)
            answer = try Self.opensslOCSP(platform, issuer: root, certificate: north)
        }
        #expect(answer.report == "\(north): good" && answer.verified, "\(answer.output)")
        let requestFile = platform.path("root-request.der")
        let made = try TestEnvironment.run("openssl", ["ocsp", "-issuer", root, "-cert", north, "-no_nonce", "-reqout", requestFile])
        try #require(made.status == 0, "\(made.stderr)")
        let responseFile = platform.path("root-response.der")
        let got = try TestEnvironment.run("curl", ["-sS", "-o", responseFile, "--data-binary", "@" + requestFile, "-H", "Content-Type: application/ocsp-request", url])
        try #require(got.status == 0, "\(got.stderr)")
        let response = try Self.python(["ocsp", responseFile, root])
        #expect(response["status"] as? String == "SUCCESSFUL" && response["signatureValid"] as? Bool == true, "\(response)")
        #expect(response["responderOCSPSigning"] as? Bool == true && response["responderNoCheck"] as? Bool == true, "\(response)")
        #expect((response["responses"] as? [[String: Any]])?.first?["status"] as? String == "GOOD", "\(response)")
        let listed = try platform.deployment.json(["cert", "list", "--profile", "root-ocsp-signer"])
        let signer = try #require((listed["certificates"] as? [[String: Any]])?.first, "\(listed)")
        #expect(signer["serial"] as? String == outcome["serial"] as? String && signer["issuerCA"] as? String == "root", "\(signer)")

        // Anyone asking about a CA no one here knows (made with openssl): unauthorized.
        let foreignKey = platform.path("foreign.key"), foreign = platform.path("foreign.pem")
        let foreignCA = try TestEnvironment.run("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", foreignKey, "-out", foreign, "-subj", "/CN=Foreign CA", "-days", "2",
        ])
        try #require(foreignCA.status == 0, "\(foreignCA.stderr)")
        #expect(try ask(issuer: foreign, certificate: foreign).contains("unauthorized"))
    }

    @Test("revoke --list revokes a file of meters and CA/SERIAL lines in chunks, one audit entry per chunk, all in the CRLs; a bad line stops it and says where")
    func bulk() async throws {
        let (platform, _, _, north) = try await Self.enrolledPlatform(postgres: false)
        // The factory identities of meters 1 to 5 (acme), by CA/SERIAL and by EUI-64 with --identity.
        var lines: [String] = ["# stolen from the depot"]
        for meter in platform.meters[1...3] {
            let identity = try #require((try platform.deployment.json(["cert", "list", "--eui64", meter, "--profile", "device-identity"])["certificates"] as? [[String: Any]])?.first)
            lines.append("acme/\(try #require(identity["serial"] as? String))")
        }
        let list = platform.path("stolen.txt")
        try (lines.joined(separator: "\n") + "\n").write(toFile: list, atomically: true, encoding: .utf8)
        let revoked = try platform.deployment.json(["revoke", "--list", list, "--reason", "keyCompromise"])
        #expect(revoked["revoked"] as? Int == 3, "\(revoked)")
        let acme = platform.path("acme.pem")
        try platform.deployment.run(["ca", "show", "acme", "--pem"]).stdout.write(toFile: acme, atomically: true, encoding: .utf8)
        let complete = try Self.python(["crl", try Self.fetchCRL(platform, "/acme.crl").file, acme])
        #expect((complete["entries"] as? [Any])?.count == 3 && complete["signatureValid"] as? Bool == true, "\(complete)")
        // Again: all already revoked, nothing new.
        let again = try platform.deployment.json(["revoke", "--list", list])
        #expect(again["revoked"] as? Int == 0 && again["alreadyRevoked"] as? Int == 3, "\(again)")
        // A bad line: refused with its line number.
        let bad = platform.path("bad.txt")
        try "not-a-meter\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try platform.deployment.run(["revoke", "--list", bad])
        #expect(refused.status == 1 && refused.stderr.contains("bad.txt:1"), "\(refused.stderr)")
        _ = north
    }

    @Test("a utility operator revokes their own account's meter over the account API (enroll revoke, curl); another account's operator is refused 403 and nothing changes; a change of supplier revokes the old certificate (superseded)")
    func accountOperators() async throws {
        let (platform, meter, leaf, north) = try await Self.enrolledPlatform(postgres: false)
        // A utility operator reaching into another account: sam (south) asks to revoke north's meter.
        let intruder = try platform.operatorCommand(["enroll", "revoke", meter, "--reason", "keyCompromise", "--json"], as: "sam")
        #expect(intruder.status == 4 && intruder.stderr.contains("onboarding.other-account"), "\(intruder.status) \(intruder.stderr)")
        let forged = try platform.curl("POST", "/v1/accounts/north/meters/\(meter)/revoke", as: "sam", body: "{}", headers: ["Content-Type: application/json"])
        #expect(forged.status == 403 && forged.body.contains("onboarding.other-account"), "\(forged.status) \(forged.body)")
        #expect(try Self.opensslOCSP(platform, issuer: north, certificate: leaf).report == "\(leaf): good")
        // Garbage bodies are refused with a problem, nothing revoked.
        let garbage = try platform.curl("POST", "/v1/accounts/north/meters/\(meter)/revoke", as: "olive", body: "{\"reason\": \"certificateHold\"}", headers: ["Content-Type: application/json"])
        #expect(garbage.status == 400, "\(garbage.status) \(garbage.body)")
        #expect(try Self.opensslOCSP(platform, issuer: north, certificate: leaf).report == "\(leaf): good")

        // olive (north) revokes it: the responder says revoked.
        let revoked = try #require(try platform.operatorJSON(["enroll", "revoke", meter, "--reason", "keyCompromise"], as: "olive") as? [String: Any])
        #expect(revoked["revoked"] as? Int == 1, "\(revoked)")
        usleep(400_000)
        #expect(try Self.opensslOCSP(platform, issuer: north, certificate: leaf).report == "\(leaf): revoked")

        // Change of supplier: meter 1 enrolled, then released by north: its certificate is revoked, superseded.
        let other = platform.meters[1]
        let csr = try EstTests.csr(platform, key: platform.path("meter-\(other).key"), subject: "/CN=urn:dev:mac:\(other)")
        let enrolled = try EstTests.est(platform, "POST", "simpleenroll", meter: other, body: csr)
        try #require(enrolled.status == 200, "\(enrolled.body)")
        let otherLeaf = try EstTests.leafPEM(platform, enrolled, name: "operational-\(other).pem")
        #expect(try Self.opensslOCSP(platform, issuer: north, certificate: otherLeaf).report == "\(otherLeaf): good")
        _ = try platform.operatorJSON(["enroll", "release", other], as: "olive")
        usleep(400_000)
        let released = try Self.opensslOCSP(platform, issuer: north, certificate: otherLeaf)
        #expect(released.report == "\(otherLeaf): revoked" && released.output.contains("Reason: superseded"), "\(released.output)")
    }

    @Test("custodian and operator certificates are refused once revoked by metertrust revoke, whatever the store's rows say (a deleted revocation row lets no one back)")
    func peopleRefusedOnceRevoked() async throws {
        let (platform, _, _, _) = try await Self.enrolledPlatform(postgres: false)
        let port = platform.ports["admin"]!
        // carol's custodian certificate, by its serial in the store (issued by the Admin CA).
        let carol = try #require((try platform.deployment.json(["cert", "list", "--ca", "admin", "--limit", "100"])["certificates"] as? [[String: Any]])?
            .first { ($0["subject"] as? String)?.contains("carol") == true }, "carol's certificate")
        let carolSerial = try #require(carol["serial"] as? String)
        #expect(try platform.api.client(["admin", "list", "--json"], as: "carol", port: port).status == 0)
        let revoked = try platform.deployment.json(["revoke", "--ca", "admin", "--serial", carolSerial, "--reason", "keyCompromise"])
        #expect(revoked["revoked"] as? Int == 1, "\(revoked)")
        // The attacker with the database deletes the row: carol stays out (the log's revocation decides).
        try Self.attackStore(platform, postgres: false, "DELETE FROM revocations WHERE serial = '\(carolSerial)'")
        let refused = try platform.api.client(["admin", "list", "--json"], as: "carol", port: port)
        #expect(refused.status != 0, "a revoked custodian was let in: \(refused.stdout)")
        #expect(try platform.api.client(["admin", "list", "--json"], as: "alice", port: port).status == 0, "alice was refused too")

        // olive's operator certificate (Operator CA): refused by the account API once revoked.
        let olive = try #require((try platform.deployment.json(["cert", "list", "--ca", "operators", "--limit", "100"])["certificates"] as? [[String: Any]])?
            .first { ($0["subject"] as? String)?.contains("olive") == true }, "olive's certificate")
        #expect(try platform.operatorCommand(["enroll", "list", "--json"], as: "olive").status == 0)
        _ = try platform.deployment.json(["revoke", "--ca", "operators", "--serial", try #require(olive["serial"] as? String)])
        let operatorRefused = try platform.operatorCommand(["enroll", "list", "--json"], as: "olive")
        #expect(operatorRefused.status != 0, "a revoked operator was let in: \(operatorRefused.stdout)")
        #expect(try platform.operatorCommand(["enroll", "list", "--json"], as: "sam").status == 0, "sam was refused too")
    }
}
