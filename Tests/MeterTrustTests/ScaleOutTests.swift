import Crypto
import Foundation
import MeterTrustCore
import MeterTrustFactory
import MeterTrustStore
import MeterTrustStorePostgres
import SwiftASN1
import Testing

/// Issue 13: MeterTrust on PostgreSQL, set up and used through the real binary against the project's PostgreSQL
/// cluster (TLS on loopback, SCRAM passwords); the move from SQLite; several nodes on one database.
@Suite("PostgreSQL store, store copy and several nodes")
struct ScaleOutTests {
    typealias Deployment = CLITests.Deployment
    static let hardwareType: ASN1ObjectIdentifier = [2, 999, 2, 1]

    static func document(_ result: TestEnvironment.ProcessResult) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout) \(result.stderr)")
    }

    /// A JSON object as canonical text (sorted keys), to compare two documents.
    static func canonical(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test("init --store postgres: the configuration names where the password is, never the password; store info and migrate; bad URLs, leaky password files and a wrong password each get one error line")
    func initOnPostgres() throws {
        let deployment = try Deployment.make(postgres: true)
        let configuration = try String(contentsOfFile: deployment.dataDirectory.appendingPathComponent("metertrust.json").path, encoding: .utf8)
        #expect(configuration.contains("postgres://metertrust@127.0.0.1"))
        #expect(!configuration.contains(TestPostgres.cluster.password), "the configuration file holds the database password")
        _ = try deployment.json(["ca", "create-root", "--name", "root"])
        let info = try deployment.json(["store", "info"])
        #expect(info["backend"] as? String == "PostgreSQL")
        #expect((info["migrations"] as? [String]) == PostgresStore.migrationIdentifiers)
        let counts = try #require(info["counts"] as? [String: Any])
        #expect(counts["certificateAuthorities"] as? Int == 1 && counts["certificates"] as? Int == 1, "\(counts)")
        let migrated = try deployment.json(["store", "migrate"])
        #expect((migrated["migrations"] as? [String]) == PostgresStore.migrationIdentifiers)
        // The data lives in PostgreSQL: psql (as the database's owner) sees the root's certificate row.
        let location = try TestPostgres.locationOf(deployment)
        #expect(try TestPostgres.psql(location, "SELECT count(*) FROM certificates WHERE kind = 'ca'").stdout == "1\n")

        let fresh = TestEnvironment.temporaryDirectory().appendingPathComponent("data").path
        func initialise(_ store: String, _ extra: [String] = [], environment: [String: String] = [:]) throws -> TestEnvironment.ProcessResult {
            try TestEnvironment.run(
                TestEnvironment.metertrust,
                ["init", "--data-dir", fresh, "--token-label", deployment.tokenLabel, "--module", TestEnvironment.modulePath, "--store", store] + extra,
                environment: deployment.environment.merging(environment) { $1 }
            )
        }
        func expectOneLine(_ result: TestEnvironment.ProcessResult, _ needle: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let lines = result.stderr.split(separator: "\n")
            #expect(result.status != 0 && lines.count == 1 && lines[0].hasPrefix("error: ") && result.stderr.contains(needle), "\(result.stderr)", sourceLocation: sourceLocation)
            #expect(!result.stderr.contains("PSQLError") && !result.stderr.contains("NIO"), "library internals: \(result.stderr)", sourceLocation: sourceLocation)
            #expect(!FileManager.default.fileExists(atPath: fresh), "a failed init left \(fresh) behind", sourceLocation: sourceLocation)
        }
        let base = TestPostgres.cluster.location
        // A password in the URL would show in argv, ps and the configuration: refused before anything is made.
        expectOneLine(try initialise("postgres://metertrust:secret@127.0.0.1:\(TestPostgres.cluster.port)/postgres"), "must not carry a password")
        expectOneLine(try initialise("postgres://metertrust@127.0.0.1:\(TestPostgres.cluster.port)/postgres?sslmode=maybe"), "sslmode maybe")
        // A password file others can read is refused, as the HSM PIN file is.
        let leaky = TestEnvironment.temporaryDirectory().appendingPathComponent("password").path
        #expect(FileManager.default.createFile(atPath: leaky, contents: Data(TestPostgres.cluster.password.utf8), attributes: [.posixPermissions: 0o644]))
        expectOneLine(try initialise(base.description, ["--store-password-file", leaky]), "chmod 600")
        // A wrong password: the server refuses the login (SCRAM), said in one line.
        expectOneLine(try initialise(base.description, environment: ["METERTRUST_STORE_PASSWORD": "wrong"]), "password authentication failed")
        // Without TLS verification against the cluster's CA (the system roots do not know it), the connection is refused.
        var unverified = base
        unverified.rootCertificateFile = nil
        expectOneLine(try initialise(unverified.description, environment: ["METERTRUST_STORE_PASSWORD": TestPostgres.cluster.password]), "cannot reach the database")
        // The right password from the environment: it works (and the Unix socket too, which carries no TLS).
        let socket = "postgres://metertrust@/\(location.database)?host=\(TestPostgres.cluster.socketDirectory)&port=\(TestPostgres.cluster.port)"
        let viaSocket = try initialise(socket, ["--json"], environment: ["METERTRUST_STORE_PASSWORD": TestPostgres.cluster.password])
        #expect(viaSocket.status == 0, "\(viaSocket.stderr)")
    }

    /// A deployment on SQLite with a little of everything: CAs, single certificates, a factory batch, the audit log,
    /// custodians and the quorum.
    static func populated(_ deployment: Deployment) throws {
        _ = try deployment.json(["ca", "create-root", "--name", "root"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme"])
        _ = try deployment.json(["ca", "create-operational", "--name", "north"])
        _ = try deployment.json(["ca", "create-admin", "--name", "admin"])
        _ = try deployment.json(["audit", "init"])
        try runBatch(deployment, id: "acme-1", manufacturer: "acme", first: 0x0024_BEFF_FE10_0000, count: 40)
        let people = deployment.file("people")
        try FileManager.default.createDirectory(atPath: people, withIntermediateDirectories: true)
        for name in ["alice", "bob", "carol"] {
            let keygen = try TestEnvironment.run(TestEnvironment.metertrust, ["admin", "keygen", "--name", name, "--out", people])
            try #require(keygen.status == 0, "\(keygen.stderr)")
            _ = try deployment.json(["admin", "certify", "--csr", "\(people)/\(name).csr", "--name", name, "--role", "security-officer", "--out", "\(people)/\(name).pem"])
        }
        _ = try deployment.json(["admin", "bootstrap"] + ["alice", "bob", "carol"].flatMap { ["--custodian", "\(people)/\($0).pem"] })
    }

    /// Runs a factory batch of `count` meters with on-device keys (CSRs made here) through `metertrust factory run`.
    @discardableResult
    static func runBatch(_ deployment: Deployment, id: String, manufacturer: String, first: UInt64, count: Int) throws -> TestEnvironment.ProcessResult {
        let result = try TestEnvironment.run(TestEnvironment.metertrust, try batchArguments(deployment, id: id, manufacturer: manufacturer, first: first, count: count), environment: deployment.environment)
        try #require(result.status == 0, "factory run \(id): \(result.stderr)")
        return result
    }

    static func batchArguments(_ deployment: Deployment, id: String, manufacturer: String, first: UInt64, count: Int) throws -> [String] {
        let meters = (0..<count).map { EUI64(first + UInt64($0)) }
        let csrLines = try meters.map {
            CSRListReader.line(eui64: $0, csr: try DeviceIdentityRequest.der(eui64: $0, privateKey: P256.Signing.PrivateKey(), hardwareType: hardwareType))
        }
        let directory = deployment.file(id)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(csrLines.joined().utf8).write(to: URL(fileURLWithPath: "\(directory)/csrs.txt"))
        let manifest: [String: Any] = [
            "format": "metertrust-batch", "version": 1, "batch": id, "manufacturer": manufacturer,
            "firmware": ["sha256": String(repeating: "ab", count: 32)], "bootstrapServerURI": "coaps+tcp://bootstrap.example.net",
            "meters": ["eui64s": meters.map(\.description)], "csrs": "csrs.txt",
        ]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: "\(directory)/batch.json"))
        return ["factory", "run", "--manifest", "\(directory)/batch.json", "--out", "\(directory)/out", "--quiet", "--json", "--data-dir", deployment.dataDirectory.path]
    }

    @Test("store copy: an SQLite deployment moves to PostgreSQL whole (counts match, the audit log verifies there), --switch makes it the store; a target that holds anything is refused")
    func copyFromSQLite() throws {
        let deployment = try Deployment.make()
        try Self.populated(deployment)
        let before = try deployment.json(["store", "info"])
        let target = try TestPostgres.makeDatabaseNow()
        let copied = try deployment.json(["store", "copy", "--to", target.description, "--to-password-file", TestPostgres.cluster.passwordFile, "--switch"])
        #expect(copied["auditVerified"] as? Bool == true && copied["switched"] as? Bool == true, "\(copied)")
        let after = try deployment.json(["store", "info"])
        #expect(after["backend"] as? String == "PostgreSQL")
        // Every count of the SQLite store, again in PostgreSQL.
        let beforeCounts = try #require(before["counts"] as? [String: Any])
        let afterCounts = try #require(after["counts"] as? [String: Any])
        #expect(try Self.canonical(beforeCounts) == Self.canonical(afterCounts))
        #expect(afterCounts["certificates"] as? Int ?? 0 >= 45 && afterCounts["custodians"] as? Int == 3, "\(afterCounts)")
        // The switched deployment works on PostgreSQL: its audit log verifies (with the HSM head), it lists, it issues.
        let verified = try deployment.json(["audit", "verify"])
        #expect(verified["verified"] as? Bool == true && verified["headChecked"] as? Bool == true, "\(verified)")
        let listed = try deployment.json(["cert", "list", "--batch", "acme-1", "--limit", "100"])
        #expect((listed["certificates"] as? [Any])?.count == 40, "\(listed)")
        let shown = try deployment.run(["meter", "show", EUI64(0x0024_BEFF_FE10_0000).description, "--json"])
        #expect(shown.status == 0, "\(shown.stderr)")
        // The device keys and identities came along (claimed again from each certificate, by the target's own keys).
        #expect(try TestPostgres.psql(target, "SELECT count(*) FROM device_keys").stdout == "40\n")
        #expect(try TestPostgres.psql(target, "SELECT count(*) FROM device_identities").stdout == "40\n")
        // Copying again into the now populated database is refused, and changes nothing.
        let again = try deployment.run(["store", "copy", "--from", deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path, "--to", target.description, "--to-password-file", TestPostgres.cluster.passwordFile])
        #expect(again.status != 0 && again.stderr.contains("not empty"), "\(again.stderr)")
        #expect(try Self.canonical(try #require(try deployment.json(["store", "info"])["counts"] as? [String: Any])) == Self.canonical(afterCounts))
    }

    @Test("two nodes on one PostgreSQL: two factory batches of different manufacturers at once store every meter once and no serial twice; the audit entries of both form one tree audit verify accepts")
    func twoNodesTwoBatches() throws {
        let first = try Deployment.make(postgres: true)
        _ = try first.json(["ca", "create-root", "--name", "root"])
        _ = try first.json(["ca", "create-manufacturer", "--name", "acme"])
        _ = try first.json(["ca", "create-manufacturer", "--name", "zenith"])
        _ = try first.json(["audit", "init"])
        let second = try first.secondNode()
        let count = 300
        let jobs = [
            (first, try Self.batchArguments(first, id: "acme-1", manufacturer: "acme", first: 0x0024_BEFF_FE20_0000, count: count)),
            (second, try Self.batchArguments(second, id: "zenith-1", manufacturer: "zenith", first: 0x0024_BEFF_FE30_0000, count: count)),
        ]
        // Both processes at once.
        let processes = try jobs.map { node, arguments -> (Process, Pipe) in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestEnvironment.metertrust)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(node.environment) { $1 }
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return (process, errors)
        }
        for (process, errors) in processes {
            process.waitUntilExit()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0, "\(stderr)")
        }
        // Every meter once, no serial twice (per issuer: the primary key; across both: drawn at random, still counted).
        let location = try TestPostgres.locationOf(first)
        #expect(try TestPostgres.psql(location, "SELECT count(*) FROM device_identities").stdout == "\(2 * count)\n")
        #expect(try TestPostgres.psql(location, "SELECT count(*), count(DISTINCT (issuer, serial)) FROM certificates WHERE kind = 'device-identity'").stdout == "\(2 * count)|\(2 * count)\n")
        for (node, batch) in [(first, "acme-1"), (second, "zenith-1")] {
            let listed = try node.json(["cert", "list", "--batch", batch, "--limit", "1000"])
            #expect((listed["certificates"] as? [Any])?.count == count)
        }
        // One audit log: each node sees the other's entries and verifies the whole tree, its HSM head included.
        for node in [first, second] {
            let verified = try node.json(["audit", "verify"])
            #expect(verified["verified"] as? Bool == true, "\(verified)")
        }
        let log = try first.run(["audit", "log", "--json"])
        #expect(log.stdout.contains("acme-1") && log.stdout.contains("zenith-1"), "the log lacks a node's batch")
    }

    @Test("two nodes on one PostgreSQL: the same approved request executed on both at once runs exactly once; the other is refused as already executing or executed")
    func twoNodesOneExecution() throws {
        let api = try AdminAPITests(deployment: try Deployment.make(postgres: true))
        try api.ceremony()
        let second = try api.deployment.secondNode()
        let (firstServer, firstPort) = try api.startServer()
        defer { firstServer.terminate(); firstServer.waitUntilExit() }
        let (secondServer, secondPort) = try api.startServer(node: second)
        defer { secondServer.terminate(); secondServer.waitUntilExit() }
        let created = try api.clientJSON(["admin", "request", "manufacturer.register", "name=acme", "organization=Acme Meters"], as: "alice", port: firstPort)
        let id = try #require(created["id"] as? String)
        // Approved through the other node: both see one store.
        _ = try api.clientJSON(["admin", "approve", id], as: "bob", port: secondPort)
        _ = try api.clientJSON(["admin", "approve", id], as: "carol", port: firstPort)
        // alice on the first node and carol on the second execute at the same moment.
        let outcomes = [("alice", firstPort), ("carol", secondPort)].map { custodian, port in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestEnvironment.metertrust)
            process.arguments = ["admin", "execute", id, "--json"]
            process.environment = ProcessInfo.processInfo.environment.merging([
                "METERTRUST_ADMIN_URL": "https://localhost:\(port)", "METERTRUST_ADMIN_CERT": api.path("\(custodian).pem"),
                "METERTRUST_ADMIN_KEY": api.path("\(custodian).key"), "METERTRUST_ADMIN_TRUST": api.path("root.pem"),
                "METERTRUST_WITNESS_DIR": api.path("\(custodian).witness"),
            ]) { $1 }
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            return (process, errors)
        }
        for (process, _) in outcomes { try process.run() }
        var statuses: [Int32] = []
        var messages: [String] = []
        for (process, errors) in outcomes {
            process.waitUntilExit()
            statuses.append(process.terminationStatus)
            messages.append(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        }
        #expect(statuses.sorted() == [0, 4], "\(statuses) \(messages)")
        #expect(messages.contains { $0.contains("already-executed") || $0.contains("executing") }, "\(messages)")
        // One CA made, one execution in the one audit log, which both nodes verify.
        let location = try TestPostgres.locationOf(api.deployment)
        #expect(try TestPostgres.psql(location, "SELECT count(*) FROM certificate_authorities WHERE name = 'acme'").stdout == "1\n")
        #expect(try TestPostgres.psql(location, "SELECT state FROM admin_requests WHERE id = '\(id)'").stdout == "executed\n")
        let log = try api.deployment.run(["audit", "log", "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(log.stdout.utf8)) as? [[String: Any]])
        let executions = try entries.filter { entry in
            let text = String(decoding: try JSONSerialization.data(withJSONObject: entry), as: UTF8.self)
            return entry["action"] as? String == "admin.execute" && text.contains(id)
        }
        // The one that ran: its intent and its success; the other: refused before any intent.
        let recorded = executions.compactMap { $0["outcome"] as? String }
        #expect(recorded.filter { $0 == "success" }.count == 1, "\(executions)")
        for node in [api.deployment, second] {
            let verified = try node.json(["audit", "verify"])
            #expect(verified["verified"] as? Bool == true, "\(verified)")
        }
    }

    @Test("attacker with write access to the PostgreSQL database but no HSM: an audit entry a checkpoint covers, rewritten in place with psql, is caught by audit verify (exit 5, verified false)")
    func databaseWriterIsCaught() throws {
        let deployment = try Deployment.make(postgres: true)
        _ = try deployment.json(["ca", "create-root", "--name", "root"])
        _ = try deployment.json(["audit", "init"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme"])
        _ = try deployment.json(["audit", "checkpoint"])
        #expect(try deployment.json(["audit", "verify"])["verified"] as? Bool == true)
        // The attacker rewrites the first entry in place with psql (the bytes of an entry a checkpoint covers).
        let location = try TestPostgres.locationOf(deployment)
        let rewritten = try TestPostgres.psql(
            location, "UPDATE audit_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'root', 'rooX'), 'UTF8') WHERE position = 0"
        )
        #expect(rewritten.status == 0 && rewritten.stderr.isEmpty, "\(rewritten.stderr)")
        let verified = try deployment.run(["audit", "verify", "--json"])
        #expect(verified.status == 5, "exit \(verified.status): \(verified.stderr)")
        #expect(try Self.document(verified)["verified"] as? Bool == false)
    }
}
