import Foundation
import Hummingbird
import Logging
import MeterTrustCore
import MeterTrustOnboarding
import MeterTrustStorePostgres
@testable import MeterTrustServer
import Testing

/// The account API over real mutual TLS on loopback (`metertrust serve --roles admin,account`), driven by the CLI and
/// curl: accounts created under quorum, manifests uploaded, conflicts, change of supplier, tenant isolation. Every
/// case on SQLite and on PostgreSQL.
@Suite("Account API: accounts, enrollment lists, claims, conflicts, change of supplier", .serialized)
struct AccountAPITests {
    /// A deployment with the whole hierarchy, three custodians, accounts north (operator olive) and south
    /// (operator sam) created under quorum, a factory batch of acme meters, and `serve --roles admin,account` running.
    final class Platform: @unchecked Sendable {
        let api: AdminAPITests
        let server: Process
        let ports: [String: Int]
        /// The batch's meters, in order.
        let meters: [String]
        let batchOut: String

        var deployment: CLITests.Deployment { api.deployment }
        func path(_ name: String) -> String { api.path(name) }

        /// `serveOptions`: more options for `serve` (e.g. a smaller upload bound). `est`: the EST role too (its TLS
        /// identity made by `server-cert --role est`), and the batch's keys made by the factory, so the test holds each
        /// meter's factory key (`meter-<eui64>.key`) and certificate (`meter-<eui64>.pem`) in people/.
        /// `psk`: the PSK listener too (`est-psk`, which serves the EST routes to PSK meters).
        /// `revocation`: the crl and ocsp roles too (plain HTTP).
        init(postgres: Bool, serveOptions: [String] = [], est: Bool = false, psk: Bool = false, revocation: Bool = false) async throws {
            api = try AdminAPITests(deployment: try CLITests.Deployment.make(postgres: postgres))
            let deployment = api.deployment
            let root = try deployment.json(["ca", "create-root", "--name", "root", "--organization", "Test Operator"])
            let rootSerial = try #require((root["certificate"] as? [String: Any])?["serial"] as? String)
            try deployment.run(["cert", "show", rootSerial, "--pem"]).stdout.write(toFile: api.path("root.pem"), atomically: true, encoding: .utf8)
            for arguments in [
                ["ca", "create-admin", "--name", "admin"], ["ca", "create-service", "--name", "services", "--organization", "Test Operator"],
                ["ca", "create-operator", "--name", "operators", "--organization", "Test Operator"], ["ca", "create-manufacturer", "--name", "acme"],
                ["ca", "create-manufacturer", "--name", "globex"], ["ca", "create-operational", "--name", "north"],
                ["ca", "create-operational", "--name", "south"],
            ] {
                _ = try deployment.json(arguments)
            }
            for (name, role) in [("alice", "security-officer"), ("bob", "security-officer"), ("carol", "security-officer")] {
                let keygen = try TestEnvironment.run(TestEnvironment.metertrust, ["admin", "keygen", "--name", name, "--out", api.people.path])
                try #require(keygen.status == 0, "\(keygen.stderr)")
                _ = try deployment.json(["admin", "certify", "--csr", api.path("\(name).csr"), "--name", name, "--role", role, "--out", api.path("\(name).pem")])
            }
            _ = try deployment.json(["audit", "init"])
            _ = try deployment.json(["admin", "bootstrap", "--custodian", api.path("alice.pem"), "--custodian", api.path("bob.pem"), "--custodian", api.path("carol.pem")])
            _ = try deployment.json(["server-cert", "--role", "admin", "--host", "localhost"])
            _ = try deployment.json(["server-cert", "--role", "account", "--host", "localhost"])
            if est { _ = try deployment.json(["server-cert", "--role", "est", "--host", "localhost"]) }

            // A factory batch of six acme meters, its signed enrollment manifest in batchOut.
            let batchDirectory = api.people.appendingPathComponent("batch")
            try FileManager.default.createDirectory(at: batchDirectory, withIntermediateDirectories: true)
            let manifest = est ? try FactoryFixture.factoryKeyBatch("b1", count: 6, in: batchDirectory)
                : try await FactoryFixture.generatedBatch("b1", count: 6, in: batchDirectory)
            batchOut = batchDirectory.appendingPathComponent("out").path
            let run = try deployment.run(["factory", "run", "--manifest", manifest.path, "--out", batchOut, "--quiet", "--json"])
            try #require(run.status == 0, "\(run.stderr)")
            let enrollment = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: batchOut + "/enrollment-manifest.json"))) as? [String: Any]
            )
            meters = try #require(enrollment["meters"] as? [[String: Any]]).compactMap { $0["eui64"] as? String }
            try #require(meters.count == 6)
            if est {
                for line in try String(contentsOfFile: batchOut + "/bundles.jsonl", encoding: .utf8).split(separator: "\n") {
                    let bundle = try JSONDecoder().decode(ProvisioningBundle.self, from: Data(line.utf8))
                    try bundle.deviceCertificate.write(toFile: api.path("meter-\(bundle.eui64).pem"), atomically: true, encoding: .utf8)
                    try #require(bundle.privateKey).write(toFile: api.path("meter-\(bundle.eui64).key"), atomically: true, encoding: .utf8)
                }
            }

            (server, ports) = try Self.serve(deployment, people: api.people, extra: serveOptions, est: est, psk: psk, revocation: revocation)
            try createAccount("north", operational: "north", manufacturers: ["acme"], operator: "olive")
            try createAccount("south", operational: "south", manufacturers: ["acme"], operator: "sam")
        }

        deinit {
            server.terminate()
            server.waitUntilExit()
        }

        static func serve(
            _ deployment: CLITests.Deployment, people: URL, extra: [String] = [], est: Bool = false, psk: Bool = false, revocation: Bool = false
        ) throws -> (Process, [String: Int]) {
            let portsFile = people.appendingPathComponent("ports-\(UUID().uuidString.prefix(6)).json").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestEnvironment.metertrust)
            process.arguments = [
                "serve", "--roles", "admin,account" + (est ? ",est" : "") + (psk ? ",est-psk" : "") + (revocation ? ",crl,ocsp" : ""), "--listen", "admin=127.0.0.1:0",
                "--listen", "account=127.0.0.1:0", "--operations-listen", "127.0.0.1:0", "--ports-file", portsFile, "--data-dir", deployment.dataDirectory.path,
            ] + (est ? ["--listen", "est=127.0.0.1:0"] : []) + (psk ? ["--listen", "est-psk=127.0.0.1:0"] : [])
                + (revocation ? ["--listen", "crl=127.0.0.1:0", "--listen", "ocsp=127.0.0.1:0"] : []) + extra
            var environment = ProcessInfo.processInfo.environment
            environment.merge(deployment.environment) { $1 }
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            let stderrPath = portsFile + ".stderr"
            FileManager.default.createFile(atPath: stderrPath, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: stderrPath)
            try process.run()
            for _ in 0..<300 {
                if let data = FileManager.default.contents(atPath: portsFile), let ports = try? JSONDecoder().decode([String: Int].self, from: data),
                    ports["account"] != nil, !est || ports["est"] != nil, !psk || ports["est-psk"] != nil, !revocation || ports["ocsp"] != nil
                {
                    return (process, ports)
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
            process.terminate()
            let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            throw AdminAPITests.CLIError("serve did not start: \(stderr.suffix(2000))")
        }

        /// `account create` by alice, approved by bob and carol, executed by bob; the operator's key, CSR and
        /// certificate (from the outcome) in people/.
        func createAccount(_ id: String, operational: String, manufacturers: [String], operator name: String) throws {
            let keygen = try TestEnvironment.run(TestEnvironment.metertrust, ["account", "keygen", "--name", name, "--out", api.people.path])
            try #require(keygen.status == 0, "\(keygen.stderr)")
            let port = ports["admin"]!
            let request = try api.clientJSON(
                ["account", "create", id, "--operational-ca", operational, "--operator", name, "--operator-csr", path("\(name).csr")]
                    + manufacturers.flatMap { ["--manufacturer", $0] },
                as: "alice", port: port
            )
            let requestID = try #require(request["id"] as? String)
            for approver in ["bob", "carol"] { _ = try api.clientJSON(["admin", "approve", requestID], as: approver, port: port) }
            let executed = try api.clientJSON(["admin", "execute", requestID], as: "bob", port: port)
            let outcome = try #require(executed["outcome"] as? [String: Any], "\(executed)")
            let certificate = try #require(outcome["operatorCertificate"] as? String)
            try certificate.write(toFile: path("\(name).pem"), atomically: true, encoding: .utf8)
        }

        /// Runs a metertrust client command as operator `name` against the account API.
        func operatorCommand(_ arguments: [String], as name: String) throws -> TestEnvironment.ProcessResult {
            try TestEnvironment.run(
                TestEnvironment.metertrust, arguments,
                environment: [
                    "METERTRUST_ACCOUNT_URL": "https://localhost:\(ports["account"]!)", "METERTRUST_OPERATOR_CERT": path("\(name).pem"),
                    "METERTRUST_OPERATOR_KEY": path("\(name).key"), "METERTRUST_ACCOUNT_TRUST": path("root.pem"),
                ]
            )
        }

        func operatorJSON(_ arguments: [String], as name: String) throws -> Any {
            let result = try operatorCommand(arguments + ["--json"], as: name)
            try #require(result.status == 0, "metertrust \(arguments.joined(separator: " ")) as \(name): \(result.stderr)")
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        }

        /// curl with operator `name`'s certificate: status and body.
        func curl(_ method: String, _ path: String, as name: String, body: String? = nil, headers: [String] = []) throws -> (status: Int, body: String) {
            var arguments = [
                "-sS", "--tlsv1.3", "-o", "-", "-w", "\n%{http_code}", "-X", method, "--cacert", self.path("root.pem"), "--cert", self.path("\(name).pem"),
                "--key", self.path("\(name).key"), "https://localhost:\(ports["account"]!)\(path)",
            ]
            for header in headers { arguments += ["-H", header] }
            if let body { arguments += ["--data-binary", body] }
            let result = try TestEnvironment.run("curl", arguments)
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }

        func claims(_ name: String) throws -> [String] {
            let page = try #require(try operatorJSON(["enroll", "list", "--limit", "1000"], as: name) as? [String: Any])
            return try #require(page["items"] as? [[String: Any]]).compactMap { $0["eui64"] as? String }
        }
    }

    /// Every route of the account API's router, as the router lists them (built over a throwaway fixture: the
    /// routes do not depend on what they serve).
    static func routeList() async throws -> [Router<AccountRequestContext>.RouteDescription] {
        let fixture = try await PKIFixture.make()
        let routes = AccountRoutes(
            onboarding: Onboarding(store: fixture.store, audit: try await fixture.auditLog()), hierarchy: fixture.hierarchy,
            operatorCA: fixture.admin, logger: Logger(label: "test")
        )
        return routes.router().routes
    }

    @Test("a utility's operator uploads the factory's signed manifest; a second account's list collides on one meter and both see the conflict; a meter changes supplier with its history kept", arguments: [false, true])
    func enrollmentLifecycle(postgres: Bool) async throws {
        let platform = try await Platform(postgres: postgres)
        let upload = try #require(
            try platform.operatorJSON(["enroll", "upload", platform.batchOut + "/enrollment-manifest.json", "--manufacturer", "acme"], as: "olive")
                as? [String: Any]
        )
        #expect(upload["claimed"] as? Int == 6 && upload["conflicts"] as? Int == 0)
        #expect(try platform.claims("olive") == platform.meters.sorted())

        // south lists meter 0, which north holds: a conflict, reported to both, nothing moved.
        let list = platform.path("south.txt")
        try "# south's purchase\n\(platform.meters[0])\n".write(toFile: list, atomically: true, encoding: .utf8)
        let collided = try #require(
            try platform.operatorJSON(["enroll", "upload", list, "--format", "list", "--manufacturer", "acme"], as: "sam") as? [String: Any]
        )
        #expect(collided["claimed"] as? Int == 0 && collided["conflicts"] as? Int == 1)
        for name in ["olive", "sam"] {
            let conflicts = try #require(try platform.operatorJSON(["enroll", "conflicts"], as: name) as? [[String: Any]])
            #expect(conflicts.count == 1 && conflicts[0]["eui64"] as? String == platform.meters[0], "\(name): \(conflicts)")
            #expect(conflicts[0]["holder"] as? String == "north" && conflicts[0]["claimant"] as? String == "south")
        }
        #expect(try platform.claims("sam").isEmpty)
        // Neither operator can decide it: resolving in favour of south is an operation under quorum.
        let adminPort = platform.ports["admin"]!
        let resolve = try platform.api.clientJSON(
            ["admin", "request", "enrollment.resolve", "eui64=\(platform.meters[0])", "claimant=south", "in-favour-of=claimant"], as: "alice", port: adminPort
        )
        let resolveID = try #require(resolve["id"] as? String)
        _ = try platform.api.clientJSON(["admin", "approve", resolveID], as: "bob", port: adminPort)
        let early = try platform.api.client(["admin", "execute", resolveID], as: "bob", port: adminPort)
        let samAfterOne = try platform.claims("sam")
        #expect(early.status != 0 && samAfterOne.isEmpty, "one approval ran it: \(early.stdout)")
        _ = try platform.api.clientJSON(["admin", "approve", resolveID], as: "carol", port: adminPort)
        _ = try platform.api.clientJSON(["admin", "execute", resolveID], as: "bob", port: adminPort)
        #expect(try platform.claims("sam") == [platform.meters[0]])
        #expect(try !platform.claims("olive").contains(platform.meters[0]))

        // Change of supplier: north releases meter 1; south's list now claims it.
        _ = try platform.operatorJSON(["enroll", "release", platform.meters[1]], as: "olive")
        try "\(platform.meters[1])\n".write(toFile: list, atomically: true, encoding: .utf8)
        let switched = try #require(
            try platform.operatorJSON(["enroll", "upload", list, "--format", "list", "--manufacturer", "acme"], as: "sam") as? [String: Any]
        )
        #expect(switched["claimed"] as? Int == 1)
        #expect(try platform.claims("sam") == [platform.meters[0], platform.meters[1]].sorted())
        #expect(try !platform.claims("olive").contains(platform.meters[1]))
        // Each side sees its own part of the meter's history: north claimed and released it, south claimed it.
        let north = try #require(try platform.operatorJSON(["enroll", "history", platform.meters[1]], as: "olive") as? [[String: Any]])
        #expect(north.compactMap { $0["kind"] as? String } == ["claimed", "released"], "\(north)")
        let south = try #require(try platform.operatorJSON(["enroll", "history", platform.meters[1]], as: "sam") as? [[String: Any]])
        #expect(south.compactMap { $0["kind"] as? String }.last == "claimed" && south.allSatisfy { $0["account"] as? String == "south" }, "\(south)")

        // The audit log has the uploads, the conflict and the release, and still verifies.
        let verified = try platform.deployment.json(["audit", "verify"])
        #expect(verified["verified"] as? Bool == true, "\(verified)")
        let entries = try platform.deployment.run(["audit", "log", "--json"]).stdout
        for action in ["account.create", "enrollment.upload", "enrollment.conflict", "enrollment.conflict.resolve", "enrollment.release"] {
            #expect(entries.contains(action), "no \(action) in the audit log")
        }
    }

    @Test("attacker: a utility operator reaching into another account — every account-API route, read or write, on the other account is refused and changes nothing", arguments: [false, true])
    func tenantIsolation(postgres: Bool) async throws {
        let platform = try await Platform(postgres: postgres)
        try "\(platform.meters[2])\n".write(toFile: platform.path("south.txt"), atomically: true, encoding: .utf8)
        _ = try platform.operatorJSON(["enroll", "upload", platform.path("south.txt"), "--format", "list", "--manufacturer", "acme"], as: "sam")
        let samOperators = try #require(try platform.operatorJSON(["account", "operators"], as: "sam") as? [[String: Any]])
        let samFingerprint = try #require(samOperators.first?["fingerprintSHA256"] as? String)
        let before = try platform.operatorJSON(["account", "show"], as: "sam") as? [String: Any]

        // Every route the router has, from the router itself: a route added later cannot be missed.
        let routes = try await Self.routeList()
        #expect(routes.count >= 9, "\(routes)")
        for route in routes {
            let path = "\(route.path)"
                .replacingOccurrences(of: ":account", with: "south").replacingOccurrences(of: ":eui64", with: platform.meters[2])
                .replacingOccurrences(of: ":fingerprint", with: samFingerprint)
            let body = route.method == .post ? "{\"name\":\"mallory\",\"csr\":\"x\"}" : nil
            let answer = try platform.curl(route.method.rawValue, path + (path.hasSuffix("enrollments") ? "?format=list&manufacturer=acme" : ""), as: "olive", body: body)
            #expect(answer.status == 403, "\(route.method) \(path): \(answer.status) \(answer.body)")
            #expect(answer.body.contains("onboarding.other-account"), "\(route.method) \(path): \(answer.body)")
        }
        // Nothing changed for south.
        #expect(try platform.claims("sam") == [platform.meters[2]])
        #expect((try platform.operatorJSON(["account", "operators"], as: "sam") as? [[String: Any]])?.count == 1)
        #expect((try platform.operatorJSON(["account", "show"], as: "sam") as? [String: Any])?["id"] as? String == before?["id"] as? String)

        // Within her own account's routes, olive cannot touch south's meter either: the domain refuses, not only the edge.
        let release = try platform.operatorCommand(["enroll", "release", platform.meters[2]], as: "olive")
        #expect(release.status != 0 && release.stderr.contains("not"), "\(release.stderr)")
        let history = try platform.operatorCommand(["enroll", "history", platform.meters[2]], as: "olive")
        #expect(history.status != 0, "\(history.stdout)")
        #expect(try platform.claims("sam") == [platform.meters[2]])

        // Operators never pass the admin API; custodians never pass the account API.
        #expect(try !platform.api.handshake(["-cert", platform.path("olive.pem"), "-key", platform.path("olive.key")], port: platform.ports["admin"]!))
        let custodian = try TestEnvironment.run(
            "curl", ["-sS", "--tlsv1.3", "--cacert", platform.path("root.pem"), "--cert", platform.path("alice.pem"), "--key", platform.path("alice.key"),
                     "https://localhost:\(platform.ports["account"]!)/v1/accounts/north"]
        )
        #expect(custodian.status != 0 && !custodian.stdout.contains("north"), "\(custodian.stdout)")
    }

    @Test("attacker: garbage and forged lists — a bad signature, a fingerprint that is not the factory's, an unaccepted manufacturer, a malformed EUI-64, an oversize upload — each refused with a problem document and no claim (the fingerprint case is OnboardingTests')", arguments: [false, true])
    func refusedUploads(postgres: Bool) async throws {
        // Uploads are bounded at 5 meters here: the batch's six-meter manifest, valid otherwise, is too large.
        let platform = try await Platform(postgres: postgres, serveOptions: ["--enrollment-maximum-meters", "5"])
        let manifestPath = platform.batchOut + "/enrollment-manifest.json"
        let manifest = try String(contentsOfFile: manifestPath, encoding: .utf8)
        let signature = try Data(contentsOf: URL(fileURLWithPath: manifestPath + ".sig")).base64EncodedString()

        func upload(_ body: String, format: String, manufacturer: String = "acme", signed: Bool) throws -> (status: Int, body: String) {
            let file = platform.path("upload-\(UUID().uuidString.prefix(6))")
            try body.write(toFile: file, atomically: true, encoding: .utf8)
            return try platform.curl(
                "POST", "/v1/accounts/north/enrollments?format=\(format)&manufacturer=\(manufacturer)", as: "olive", body: "@" + file,
                headers: signed ? ["MeterTrust-Manifest-Signature: \(signature)", "Content-Type: application/json"] : ["Content-Type: text/plain"]
            )
        }

        // The manifest altered after the manufacturer signed it: one meter dropped (and the count with it).
        var document = try #require(try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: Any])
        document["meters"] = (document["meters"] as? [Any]).map { Array($0.dropLast()) }
        document["count"] = 5
        let flipped = String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self)
        let cases: [(String, (status: Int, body: String))] = [
            ("bad signature", try upload(flipped, format: "manifest", signed: true)),
            ("unsigned manifest", try upload(manifest, format: "manifest", signed: false)),
            ("unaccepted manufacturer", try upload("\(platform.meters[0])\n", format: "list", manufacturer: "globex", signed: false)),
            ("unregistered manufacturer", try upload("\(platform.meters[0])\n", format: "list", manufacturer: "nobody", signed: false)),
            ("malformed EUI-64", try upload("\(platform.meters[0])\n0024befffe00zz00\n", format: "list", signed: false)),
            ("unknown meter", try upload("\(platform.meters[0])\n0024befffeffffff\n", format: "list", signed: false)),
            ("oversize", try upload(manifest, format: "manifest", signed: true)),
        ]
        let expected = [
            "bad signature": "onboarding.bad-manifest-signature", "unsigned manifest": "onboarding.bad-manifest-signature",
            "unaccepted manufacturer": "onboarding.manufacturer-not-accepted", "unregistered manufacturer": "factory.unregistered-manufacturer",
            "malformed EUI-64": "onboarding.malformed-list", "unknown meter": "onboarding.unknown-meter", "oversize": "onboarding.upload-too-large",
        ]
        for (name, answer) in cases {
            #expect((400..<500).contains(answer.status), "\(name): \(answer.status) \(answer.body)")
            #expect(answer.body.contains("\"\(expected[name]!)\""), "\(name): \(answer.body)")
            let problem = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
            #expect(problem?["code"] as? String != nil && problem?["detail"] as? String != nil, "\(name): \(answer.body)")
        }
        #expect(try platform.claims("olive").isEmpty)
    }

    @Test("an account's operators add and remove further operators; attacker with write access to the database puts a removed operator back: still refused, the removal is in the audit log", arguments: [false, true])
    func operatorsAddAndRemove(postgres: Bool) async throws {
        let platform = try await Platform(postgres: postgres)
        let keygen = try TestEnvironment.run(TestEnvironment.metertrust, ["account", "keygen", "--name", "oscar", "--out", platform.api.people.path])
        try #require(keygen.status == 0, "\(keygen.stderr)")
        // A CSR naming another account in its subject changes nothing: the issuer sets O to the caller's account.
        let added = try #require(
            try platform.operatorJSON(["account", "operators", "add", "--name", "oscar", "--csr", platform.path("oscar.csr"), "--out", platform.path("oscar.pem")], as: "olive")
                as? [String: Any]
        )
        #expect(added["account"] as? String == "north")
        let certificate = platform.path("oscar-certificate.pem")
        try #require(added["certificate"] as? String).write(toFile: certificate, atomically: true, encoding: .utf8)
        let subject = try TestEnvironment.run("openssl", ["x509", "-in", certificate, "-noout", "-subject", "-nameopt", "RFC2253"])
        #expect(subject.stdout.contains("CN=oscar") && subject.stdout.contains("O=north") && !subject.stdout.contains("OU="), "\(subject.stdout)")
        let chain = try TestEnvironment.run("openssl", ["verify", "-CAfile", platform.path("root.pem"), "-untrusted", platform.path("oscar.pem"), certificate])
        #expect(chain.status == 0, "\(chain.stdout) \(chain.stderr)")
        let lint = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("pkilint_run.py"), "lint_pkix_cert", "lint", "-s", "WARNING", certificate])
        #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "pkilint: \(lint.stdout) \(lint.stderr)")
        #expect((try platform.operatorJSON(["account", "show"], as: "oscar") as? [String: Any])?["id"] as? String == "north")

        // An operator cannot remove themselves; olive removes oscar, who is refused from then on.
        let fingerprint = try #require(added["fingerprint"] as? String)
        let selfRemoval = try platform.operatorCommand(["account", "operators", "remove", fingerprint], as: "oscar")
        #expect(selfRemoval.status != 0 && selfRemoval.stderr.contains("cannot remove themselves"), "\(selfRemoval.stderr)")
        _ = try platform.operatorJSON(["account", "operators", "remove", fingerprint], as: "olive")
        let refused = try platform.operatorCommand(["account", "show"], as: "oscar")
        #expect(refused.status != 0, "\(refused.stdout)")

        // The attacker clears the removal in the store: the audit log's revocation still refuses oscar.
        let undo = "UPDATE account_operators SET removed_at = NULL, removed_by = NULL WHERE fingerprint_sha256 = '\(fingerprint)'"
        if postgres {
            let result = try TestPostgres.psql(try TestPostgres.locationOf(platform.deployment), undo)
            #expect(result.status == 0, "psql: \(result.stderr)")
        } else {
            try TrustworthyStateTests.sqlite(platform.deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path, undo)
        }
        let listed = try #require(try platform.operatorJSON(["account", "operators"], as: "olive") as? [[String: Any]])
        #expect(listed.contains { $0["fingerprintSHA256"] as? String == fingerprint && $0["removedAt"] == nil }, "the attack did not take: \(listed)")
        let still = try platform.curl("GET", "/v1/accounts/north", as: "oscar")
        // Refused in the TLS handshake (no HTTP status at all): with the row restored, only the log's revocation can.
        #expect(still.status == 0 && !still.body.contains("north"), "\(still.status) \(still.body)")
        let entries = try platform.deployment.run(["audit", "log", "--json"]).stdout
        #expect(entries.contains("account.operator.remove"))
    }

}
