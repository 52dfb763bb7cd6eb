import Crypto
import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import MeterTrustStoreSQLite
import Testing
import X509

/// Key custody, attacked as our attackers would: PyKCS11 on the token (someone who can open it without a PIN; the
/// holder of the user PIN without k custodians), sqlite3 on the store, curl on the admin API, the binary for the
/// ceremonies. Every attack here succeeded on main before issue 9.
@Suite("Key custody: no CA key leaves the HSM without k custodians")
struct KeyCustodyTests {
    let api: AdminAPITests
    var deployment: CLITests.Deployment { api.deployment }

    init() throws {
        api = try AdminAPITests()
        try #require(FileManager.default.isExecutableFile(atPath: TestEnvironment.python), "no Python virtualenv at \(TestEnvironment.python): run `make venv` (make test does)")
    }

    func path(_ name: String) -> String { api.path(name) }

    /// The CA key labels by CA name, from `ca list --json`.
    func keyLabels() throws -> [String: String] {
        let result = try deployment.run(["ca", "list", "--json"])
        try #require(result.status == 0, "\(result.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: list.compactMap { entry in
            (entry["name"] as? String).flatMap { name in (entry["keyLabel"] as? String).map { (name, $0) } }
        })
    }

    /// Runs the PyKCS11 attacker as `attacker` ("pinless" or "user"); returns attack name → result.
    func attack(as attacker: String, backupLabel: String, extra: [String] = [], oldSOPIN: String? = nil) throws -> [String: [String: Any]] {
        // The attacker's process sees the deployment's token directory (and nothing of the test's PINs but these).
        var environment = ["SOFTHSM2_CONF": deployment.environment["SOFTHSM2_CONF"] ?? "", "METERTRUST_HSM_PIN": ""]
        if attacker == "user" { environment["ATTACK_USER_PIN"] = deployment.environment["METERTRUST_HSM_PIN"] }
        if let oldSOPIN { environment["ATTACK_OLD_SO_PIN"] = oldSOPIN }
        let result = try TestEnvironment.run(
            TestEnvironment.python,
            [TestEnvironment.tool("pkcs11_attack.py"), "--module", TestEnvironment.modulePath, "--token", deployment.tokenLabel, "--as", attacker,
             "--backup-label", backupLabel] + extra,
            environment: environment
        )
        try #require(result.status == 0, "pkcs11_attack.py --as \(attacker): \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Any]])
    }

    /// Expects the token to have refused `name`, with one of `codes` if given.
    func expectRefused(_ results: [String: [String: Any]], _ name: String, _ codes: Set<String> = [], sourceLocation: SourceLocation = #_sourceLocation) {
        guard let result = results[name] else {
            Issue.record("attack \(name) did not run", sourceLocation: sourceLocation)
            return
        }
        #expect(result["outcome"] as? String == "refused", "the token let \(name) through: \(result)", sourceLocation: sourceLocation)
        if !codes.isEmpty {
            #expect(codes.contains(result["ckr"] as? String ?? ""), "\(name) refused with \(result["ckr"] ?? "?"), expected \(codes)", sourceLocation: sourceLocation)
        }
    }

    /// alice requests, bob and carol approve, alice executes; returns the request id.
    func approvedRequest(_ operation: String, _ parameters: [String] = [], port: Int) throws -> String {
        let created = try api.clientJSON(["admin", "request", operation] + parameters, as: "alice", port: port)
        let id = try #require(created["id"] as? String)
        _ = try api.clientJSON(["admin", "approve", id], as: "bob", port: port)
        _ = try api.clientJSON(["admin", "approve", id], as: "carol", port: port)
        return id
    }

    /// Exports a backup under quorum into `file`; returns the request id.
    @discardableResult
    func exportBackup(to file: String, port: Int) throws -> String {
        let id = try approvedRequest("backup.export", port: port)
        // Without somewhere to write it, the export is not run (its document would be lost).
        let nowhere = try api.client(["admin", "execute", id], as: "alice", port: port)
        #expect(nowhere.status == 1 && nowhere.stderr.contains("pass --backup-out FILE") && nowhere.stderr.contains("nothing was run"), "\(nowhere.stderr)")
        let executed = try api.client(["admin", "execute", id, "--backup-out", file, "--json"], as: "alice", port: port)
        try #require(executed.status == 0, "\(executed.stderr)")
        #expect(!executed.stdout.contains("\"wrapped\""), "the execute answer printed the backup document")
        return id
    }

    @Test("attackers on the token: without a PIN, or with the user PIN alone, nobody unwraps, re-wraps, weakens, copies, reads or destroys a key; the old SO PIN is dead")
    func tokenAttacks() throws {
        try api.ceremony()
        let soPIN = deployment.securityOfficerPIN
        let (server, port) = try api.startServer()
        defer { server.terminate(); server.waitUntilExit() }
        // A manufacturer under quorum: the one kind of CA key that is copyable (batch session copies), so the copy
        // attacks run against both kinds.
        let register = try approvedRequest("manufacturer.register", ["name=acme", "organization=Acme Meters"], port: port)
        _ = try api.clientJSON(["admin", "execute", register], as: "alice", port: port)
        let backupFile = path("backup.json")
        try exportBackup(to: backupFile, port: port)
        let labels = try keyLabels()
        let north = try #require(labels["north"]), acme = try #require(labels["acme"])
        let root = try #require(labels["root"]), admin = try #require(labels["admin"])

        // Someone who can open the token without a PIN.
        let pinless = try attack(as: "pinless", backupLabel: "metertrust/backup-key", extra: ["--backup-file", backupFile], oldSOPIN: soPIN)
        expectRefused(pinless, "pinless-unwrap-backup-blob", ["CKR_KEY_FUNCTION_NOT_PERMITTED"])
        expectRefused(pinless, "pinless-set-backup-key-unwrap", ["CKR_ATTRIBUTE_READ_ONLY", "CKR_ACTION_PROHIBITED"])
        expectRefused(pinless, "pinless-set-backup-key-unsensitive", ["CKR_ATTRIBUTE_READ_ONLY", "CKR_ACTION_PROHIBITED"])
        expectRefused(pinless, "pinless-set-backup-key-extractable", ["CKR_ATTRIBUTE_READ_ONLY", "CKR_ACTION_PROHIBITED"])
        expectRefused(pinless, "pinless-copy-backup-key-with-unwrap", ["CKR_ACTION_PROHIBITED"])
        expectRefused(pinless, "pinless-copy-backup-key", ["CKR_ACTION_PROHIBITED"])
        expectRefused(pinless, "pinless-read-backup-key-value", ["CKR_ATTRIBUTE_SENSITIVE"])
        expectRefused(pinless, "pinless-destroy-any-object")
        expectRefused(pinless, "old-so-pin-login", ["CKR_PIN_INCORRECT"])
        // It sees only the backup key: no CA key, public half or server key is even visible to it.
        #expect(pinless["pinless-visible-objects"]?["labels"] as? [String] == ["metertrust/backup-key"])

        // The holder of the user PIN on the server host.
        let user = try attack(
            as: "user", backupLabel: "metertrust/backup-key",
            extra: ["--backup-file", backupFile, "--backup-ca", north, "--ca", root, "--ca", admin, "--ca", north, "--ca", acme]
        )
        expectRefused(user, "user-unwrap-backup-blob", ["CKR_KEY_FUNCTION_NOT_PERMITTED"])
        expectRefused(user, "user-wrap-then-unwrap:\(north)", ["CKR_KEY_FUNCTION_NOT_PERMITTED"])
        expectRefused(user, "user-own-wrapping-key:\(north)", ["CKR_KEY_NOT_WRAPPABLE"])
        expectRefused(user, "user-trusted-key-of-known-value", ["CKR_ATTRIBUTE_READ_ONLY"])
        expectRefused(user, "user-set-backup-key-unwrap", ["CKR_ATTRIBUTE_READ_ONLY", "CKR_ACTION_PROHIBITED"])
        expectRefused(user, "user-copy-backup-key-with-unwrap", ["CKR_ACTION_PROHIBITED"])
        expectRefused(user, "user-read-backup-key-value", ["CKR_ATTRIBUTE_SENSITIVE"])
        for label in [root, admin, north] {
            // Not copyable at all, not modifiable.
            expectRefused(user, "user-copy-ca-key-public:\(label)", ["CKR_ACTION_PROHIBITED"])
            expectRefused(user, "user-copy-ca-key-unsensitive:\(label)", ["CKR_ACTION_PROHIBITED"])
            expectRefused(user, "user-copy-ca-key-extractable:\(label)", ["CKR_ACTION_PROHIBITED"])
            expectRefused(user, "user-set-ca-key-extractable:\(label)", ["CKR_ATTRIBUTE_READ_ONLY", "CKR_ACTION_PROHIBITED"])
            if label != north { expectRefused(user, "user-wrap-under-backup-key:\(label)", ["CKR_KEY_UNEXTRACTABLE"]) }
            #expect(user["attributes:\(label)"]?["CKA_COPYABLE"] as? Bool == false && user["attributes:\(label)"]?["CKA_MODIFIABLE"] as? Bool == false)
        }
        // The manufacturer key is copyable for batch session copies, yet no copy can weaken it.
        expectRefused(user, "user-copy-ca-key-public:\(acme)", ["CKR_TEMPLATE_INCONSISTENT"])
        expectRefused(user, "user-copy-ca-key-unsensitive:\(acme)", ["CKR_ATTRIBUTE_READ_ONLY"])
        expectRefused(user, "user-copy-ca-key-extractable:\(acme)", ["CKR_ATTRIBUTE_READ_ONLY"])
        expectRefused(user, "user-set-ca-key-extractable:\(acme)", ["CKR_ATTRIBUTE_READ_ONLY"])
        expectRefused(user, "user-wrap-under-backup-key:\(acme)", ["CKR_KEY_UNEXTRACTABLE"])
        #expect(user["attributes:\(acme)"]?["CKA_COPYABLE"] as? Bool == true)
        for label in [root, admin, north, acme] {
            expectRefused(user, "user-read-ca-key-value:\(label)", ["CKR_ATTRIBUTE_SENSITIVE"])
            let attributes = user["attributes:\(label)"] ?? [:]
            #expect(attributes["CKA_PRIVATE"] as? Bool == true && attributes["CKA_SENSITIVE"] as? Bool == true, "\(label): \(attributes)")
            #expect(attributes["CKA_DECRYPT"] as? Bool == false && attributes["CKA_UNWRAP"] as? Bool == false && attributes["CKA_DERIVE"] as? Bool == false)
            #expect(user["public-attributes:\(label)"]?["CKA_PRIVATE"] as? Bool == true, "the public half of \(label) is a public object")
        }
    }

    @Test("attacker: a registered custodian (an auditor, or anyone but the executor) and someone with the database get no backup document; the executor's --backup-out is 0600 even over an existing 0644 file")
    func backupDocumentOnlyToTheExecutor() throws {
        try api.ceremony()
        let (server, port) = try api.startServer()
        defer { server.terminate(); server.waitUntilExit() }
        let backupFile = path("backup.json")
        #expect(FileManager.default.createFile(atPath: backupFile, contents: Data("stale".utf8), attributes: [.posixPermissions: 0o644]))
        let id = try exportBackup(to: backupFile, port: port)
        #expect(try TestEnvironment.run("stat", ["-c", "%a", backupFile]).stdout == "600\n")
        let backup = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: backupFile))) as? [String: Any])
        #expect((backup["keys"] as? [[String: Any]])?.first?["wrapped"] is String)

        // bob, a custodian, asks the API over TLS with curl (an independent client) for the request and its list.
        for route in ["/v1/requests/\(id)", "/v1/requests?state=executed"] {
            let fetched = try TestEnvironment.run("curl", [
                "-sS", "--fail-with-body", "--cacert", path("root.pem"), "--cert", path("bob.pem"), "--key", path("bob.key"),
                "https://localhost:\(port)\(route)",
            ])
            #expect(fetched.status == 0, "\(fetched.stderr)")
            #expect(fetched.stdout.contains(id) && !fetched.stdout.contains("wrapped") && !fetched.stdout.contains("metertrust-key-backup"), "\(route): \(fetched.stdout)")
        }
        let shown = try api.client(["admin", "show", id, "--json"], as: "carol", port: port)
        #expect(shown.status == 0 && !shown.stdout.contains("wrapped"))
        // A second execute (by anyone) is refused and carries nothing.
        let again = try api.client(["admin", "execute", id, "--backup-out", path("again.json")], as: "bob", port: port)
        #expect(again.status == 4 && !FileManager.default.fileExists(atPath: path("again.json")))
        #expect(again.stderr.contains("already-executed"), "refused for another reason than run-once: \(again.stderr)")
        // The refusal came from a serving API: the next request is answered.
        let served = try api.client(["admin", "show", id, "--json"], as: "bob", port: port)
        #expect(served.status == 0 && served.stdout.contains("\"executed\""), "\(served.stderr)")

        // Someone with the database, with sqlite3: no table holds a wrapped key or a backup document.
        let store = deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path
        let dump = try TestEnvironment.run("sqlite3", [store, ".dump"])
        #expect(dump.status == 0, "\(dump.stderr)")
        #expect(dump.stdout.contains("backup.export") && !dump.stdout.contains("wrapped") && !dump.stdout.contains("metertrust-key-backup/v1"))
        let log = try deployment.run(["audit", "log", "--json"])
        #expect(log.stdout.contains("backup.export") && !log.stdout.contains("wrapped"))
    }

    @Test("backup, reshare, restore: the reshare replaces the backup key and the SO PIN shares under an approved request with k officers, a backup taken after it restores and verifies with openssl, and the old shares cannot open it")
    func reshareRoundTrip() throws {
        try api.ceremony()
        var (server, port) = try api.startServer()
        let before = path("before.json")
        try exportBackup(to: before, port: port)

        // A reshare is approved like any request but runs only as a ceremony on the HSM host.
        let reshare = try approvedRequest("backup.reshare", port: port)
        let inServer = try api.client(["admin", "execute", reshare], as: "alice", port: port)
        #expect(inServer.status == 1 && inServer.stderr.contains("runs as a ceremony"))
        server.terminate()
        server.waitUntilExit()

        // One officer is not k; an unapproved request is not approved.
        let ceremony = ["backup", "reshare", "--request", reshare]
        let alone = try deployment.run(ceremony + ["--custodian", "alice=\(path("alice.key"))"])
        #expect(alone.status == 1 && alone.stderr.contains("2 are needed"), "\(alone.stderr)")
        let done = try deployment.run(ceremony + ["--custodian", "alice=\(path("alice.key"))", "--custodian", "bob=\(path("bob.key"))", "--json"])
        try #require(done.status == 0, "\(done.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(done.stdout.utf8)) as? [String: String])
        let newLabel = try #require(result["label"])
        #expect(result["replaced"] == "metertrust/backup-key" && newLabel.hasPrefix("metertrust/backup-key/") && result["holders"] == "alice,bob,carol")
        let twice = try deployment.run(ceremony + ["--custodian", "alice=\(path("alice.key"))", "--custodian", "bob=\(path("bob.key"))"])
        #expect(twice.status == 4 && twice.stderr.contains("runs at most once"))
        // The old backup key is gone from the token; a PIN-less session sees only the new one, which is as tight.
        let pinless = try attack(as: "pinless", backupLabel: newLabel, extra: ["--handles", "0"])
        #expect(pinless["pinless-visible-objects"]?["labels"] as? [String] == [newLabel])
        expectRefused(pinless, "pinless-copy-backup-key-with-unwrap", ["CKR_ACTION_PROHIBITED"])
        expectRefused(pinless, "pinless-set-backup-key-unwrap", ["CKR_ATTRIBUTE_READ_ONLY", "CKR_ACTION_PROHIBITED"])

        (server, port) = try api.startServer()
        let after = path("after.json")
        try exportBackup(to: after, port: port)
        server.terminate()
        server.waitUntilExit()

        // Restore the new backup into a fresh token with two officers; the key signs; openssl verifies. Each target
        // token lives in a SoftHSM2 directory of its own (a process writing into a token directory this test process
        // has loaded can crash it), examined with PyKCS11.
        func restore(_ file: String, _ custodians: [String]) throws -> (TestEnvironment.ProcessResult, TestEnvironment.IsolatedToken) {
            let target = try TestEnvironment.makeIsolatedToken(label: "restore-target")
            let pinFile = path("restore-\(UUID().uuidString.prefix(6)).pin")
            _ = FileManager.default.createFile(atPath: pinFile, contents: Data(target.pin.utf8), attributes: [.posixPermissions: 0o600])
            let arguments = ["backup", "restore", "--file", file, "--token", target.label, "--module", TestEnvironment.modulePath, "--pin-file", pinFile]
                + custodians.flatMap { ["--custodian", "\($0)=\(path("\($0).key"))"] }
            return (try api.client(arguments, as: "alice", port: 1, environment: ["SOFTHSM2_CONF": target.configuration]), target)
        }
        let (restored, target) = try restore(after, ["alice", "carol"])
        try #require(restored.status == 0, "\(restored.stderr)")
        let backup = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: after))) as? [String: Any])
        let entry = try #require((backup["keys"] as? [[String: Any]])?.first)
        let certificate = try Certificate(derEncoded: Array(Data(base64Encoded: try #require(entry["certificate"] as? String))!))
        let (protection, verified) = try api.examineRestoredKey(
            label: try #require(entry["label"] as? String), in: target, message: "after the reshare", certificate: certificate
        )
        #expect(protection["wrapWithTrusted"] as? Bool == true, "\(protection)")
        #expect(verified, "openssl did not verify the restored key's signature with the CA certificate")

        // Attacker: holders of the old shares (officers since replaced, or a stolen old backup file) with the new
        // backup's wrapped keys: the old backup key does not unwrap them.
        var spliced = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: before))) as? [String: Any])
        spliced["keys"] = backup["keys"]
        try JSONSerialization.data(withJSONObject: spliced, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path("spliced.json")))
        let (oldShares, _) = try restore(path("spliced.json"), ["alice", "carol"])
        #expect(oldShares.status == 3 && oldShares.stderr.contains("C_UnwrapKey"), "\(oldShares.stderr)")
        // The old file itself is still restorable by its own share holders: the README says to destroy it.
        let (oldFile, _) = try restore(before, ["bob", "carol"])
        #expect(oldFile.status == 0, "\(oldFile.stderr)")
        #expect(oldFile.stderr.contains("not recorded in an audit log"), "a restore without a deployment says it is unaudited")

        // A restore run in the deployment is recorded in its audit log (into a token beside the deployment's).
        let beside = try TestEnvironment.run(
            TestEnvironment.metertrust, ["hsm", "init-token", "--label", "restored", "--module", TestEnvironment.modulePath],
            environment: deployment.environment.merging(["METERTRUST_HSM_PIN": "restored-pin", "METERTRUST_HSM_SO_PIN": "restored-so"]) { $1 }
        )
        try #require(beside.status == 0, "\(beside.stderr)")
        let pinFile = path("restored.pin")
        #expect(FileManager.default.createFile(atPath: pinFile, contents: Data("restored-pin".utf8), attributes: [.posixPermissions: 0o600]))
        let audited = try deployment.run([
            "backup", "restore", "--file", after, "--token", "restored", "--module", TestEnvironment.modulePath, "--pin-file", pinFile,
            "--custodian", "alice=\(path("alice.key"))", "--custodian", "bob=\(path("bob.key"))",
        ])
        #expect(audited.status == 0, "\(audited.stderr)")

        // Every ceremony step is audited, the refused attempts too.
        let audit = try deployment.run(["audit", "log", "--json"])
        #expect(audit.stdout.contains("\"backup.reshare\"") && audit.stdout.contains("2 are needed"))
        #expect(audit.stdout.contains("\"backup.restore\"") && audit.stdout.contains("alice,bob"))
    }

    @Test("backup init-key checks every precondition before it creates anything and audits success and refusal; the SO PIN it was given stops working")
    func initKeyPreconditions() throws {
        // The same set-up as the ceremony, stopping before the backup key.
        let soPIN = deployment.securityOfficerPIN
        _ = try deployment.json(["ca", "create-root", "--name", "root", "--organization", "Test Operator"])
        _ = try deployment.json(["ca", "create-admin", "--name", "admin"])
        let noLog = try deployment.run(["backup", "init-key"], environment: ["METERTRUST_HSM_SO_PIN": soPIN])
        #expect(noLog.status == 1 && noLog.stderr.contains("audit init"), "\(noLog.stderr)")
        _ = try deployment.json(["audit", "init"])
        let early = try deployment.run(["backup", "init-key"], environment: ["METERTRUST_HSM_SO_PIN": soPIN])
        #expect(early.status == 4 && early.stderr.contains("bootstrap"), "\(early.stderr)")
        for (name, role) in [("alice", "security-officer"), ("bob", "security-officer"), ("carol", "security-officer")] {
            let keygen = try TestEnvironment.run(TestEnvironment.metertrust, ["admin", "keygen", "--name", name, "--out", api.people.path])
            try #require(keygen.status == 0, "\(keygen.stderr)")
            _ = try deployment.json(["admin", "certify", "--csr", path("\(name).csr"), "--name", name, "--role", role, "--out", path("\(name).pem")])
        }
        _ = try deployment.json(["admin", "bootstrap", "--custodian", path("alice.pem"), "--custodian", path("bob.pem"), "--custodian", path("carol.pem")])

        // No SO PIN; a wrong SO PIN; the right SO PIN with a wrong user PIN: each refused, nothing made.
        let missing = try deployment.run(["backup", "init-key"], environment: ["METERTRUST_HSM_SO_PIN": ""])
        #expect(missing.status == 3 && missing.stderr.contains("METERTRUST_HSM_SO_PIN"), "\(missing.stderr)")
        let wrong = try deployment.run(["backup", "init-key"], environment: ["METERTRUST_HSM_SO_PIN": "not-the-pin"])
        #expect(wrong.status == 3 && wrong.stderr.contains("CKR_PIN_INCORRECT"), "\(wrong.stderr)")
        let wrongUser = try deployment.run(["backup", "init-key"], environment: ["METERTRUST_HSM_SO_PIN": soPIN, "METERTRUST_HSM_PIN": "wrong"])
        #expect(wrongUser.status == 3 && wrongUser.stderr.contains("CKR_PIN_INCORRECT"), "\(wrongUser.stderr)")
        let nothing = try attack(as: "pinless", backupLabel: "metertrust/backup-key-none", extra: ["--handles", "0"])
        #expect(nothing["pinless-visible-objects"]?["labels"] as? [String] == [], "a refused ceremony left objects on the token")
        let log = try deployment.run(["audit", "log", "--json"])
        // Each attempt is audited (its intent, then its refusal), but the one with a wrong user PIN: the log's key
        // needs that PIN, so that attempt stops before anything, its intent included.
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(log.stdout.utf8)) as? [[String: Any]])
        let ceremony = entries.filter { $0["action"] as? String == "backup.init-key" }.map { $0["outcome"] as? String ?? "" }
        #expect(ceremony == ["started", "refused", "started", "refused", "started", "failed", "started", "failed"], "\(ceremony)")

        let made = try deployment.run(["backup", "init-key", "--json"], environment: ["METERTRUST_HSM_SO_PIN": soPIN])
        try #require(made.status == 0, "\(made.stderr)")
        let split = try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: String]
        #expect(split?["securityOfficerPIN"] == "split" && split?["holders"] == "alice,bob,carol" && split?["threshold"] == "2")
        let again = try deployment.run(["backup", "init-key"], environment: ["METERTRUST_HSM_SO_PIN": soPIN])
        #expect(again.status == 1 && again.stderr.contains("exists already"))
        let after = try deployment.run(["audit", "log", "--json"])
        #expect(after.stdout.contains("\"backup.init-key\"") && after.stdout.contains("\"success\""))
        // The SO PIN the operator typed is dead: only k officers can rebuild the new one.
        let pinless = try attack(as: "pinless", backupLabel: "metertrust/backup-key", extra: ["--handles", "0"], oldSOPIN: soPIN)
        expectRefused(pinless, "old-so-pin-login", ["CKR_PIN_INCORRECT"])
    }

    @Test("migration of a deployment made before key custody: hsm harden makes public halves private, backup.reshare (given the old SO PIN once) replaces the unwrap-capable backup key and splits the SO PIN")
    func legacyDeploymentMigrates() async throws {
        let pin = deployment.environment["METERTRUST_HSM_PIN"] ?? ""
        let soPIN = deployment.securityOfficerPIN
        _ = try deployment.json(["ca", "create-root", "--name", "root", "--organization", "Test Operator"])
        _ = try deployment.json(["ca", "create-admin", "--name", "admin"])
        _ = try deployment.json(["ca", "create-operational", "--name", "north", "--backup"])
        _ = try deployment.json(["ca", "create-service", "--name", "platform"])
        for name in ["alice", "bob", "carol"] {
            let keygen = try TestEnvironment.run(TestEnvironment.metertrust, ["admin", "keygen", "--name", name, "--out", api.people.path])
            try #require(keygen.status == 0, "\(keygen.stderr)")
            _ = try deployment.json(["admin", "certify", "--csr", path("\(name).csr"), "--name", name, "--role", "security-officer", "--out", path("\(name).pem")])
        }
        _ = try deployment.json(["audit", "init"])
        _ = try deployment.json(["admin", "bootstrap", "--custodian", path("alice.pem"), "--custodian", path("bob.pem"), "--custodian", path("carol.pem")])
        _ = try deployment.json(["admin", "server-cert", "--host", "localhost"])
        let authorities = try JSONSerialization.jsonObject(with: Data(try deployment.run(["ca", "list", "--json"]).stdout.utf8)) as? [[String: Any]]
        let rootCertificate = authorities?.first { $0["role"] as? String == "root" }?["certificate"] as? [String: Any]
        let rootSerial = try #require(rootCertificate?["serial"] as? String)
        try deployment.run(["cert", "show", rootSerial, "--pem"]).stdout.write(toFile: path("root.pem"), atomically: true, encoding: .utf8)

        // What the earlier version left: an unwrap-capable backup key (its shares in the store, no SO PIN shares)
        // and a key pair whose public half is a public object.
        func legacy(_ who: String, _ label: String) throws -> String {
            let made = try TestEnvironment.run(
                TestEnvironment.python,
                [TestEnvironment.tool("pkcs11_legacy.py"), "--module", TestEnvironment.modulePath, "--token", deployment.tokenLabel, "--as", who, "--label", label],
                environment: ["LEGACY_SO_PIN": soPIN, "LEGACY_USER_PIN": pin, "SOFTHSM2_CONF": deployment.environment["SOFTHSM2_CONF"] ?? ""]
            )
            try #require(made.status == 0, "\(made.stderr)")
            return made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let oldKey = try #require(hexBytes(try legacy("so", "metertrust/backup-key")))
        _ = try legacy("user", "metertrust/legacy/pair")
        let store = try SQLiteStore(path: deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path)
        let officers = try CustodianRegistry(try await store.custodians()).active
        let oldShares = try SecretShares(secret: oldKey, purpose: .backupKey, threshold: 2, custodians: officers)
        try await store.setBackupKey(BackupKeyRecord(label: "metertrust/backup-key", threshold: 2, shares: oldShares.encoded, keyCheckValue: oldShares.keyCheckValue))

        // The inventory names both problems; harden fixes what can be fixed in place.
        func inventory(_ arguments: [String]) throws -> [String: Any] {
            let result = try deployment.run(["hsm", "harden", "--json"] + arguments)
            try #require(result.status == 0, "\(result.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }
        func findings(_ report: [String: Any]) -> [String: String] {
            Dictionary(uniqueKeysWithValues: (report["objects"] as? [[String: Any]] ?? []).compactMap { object in
                (object["finding"] as? String).map { ("\(object["kind"] as? String ?? "")|\(object["label"] as? String ?? "")", $0) }
            })
        }
        // (SoftHSM2's defaults gave the old private key CKA_DERIVE: an ECDH oracle on the key for the PIN holder.)
        let before = findings(try inventory(["--dry-run"]))
        #expect(before["public-key|metertrust/legacy/pair"]?.contains("hsm harden") == true, "\(before)")
        #expect(before["private-key|metertrust/legacy/pair"]?.contains("derive") == true, "\(before)")
        #expect(before["secret-key|metertrust/backup-key"]?.contains("backup.reshare") == true, "\(before)")
        #expect(before.count == 3, "keys made by this version need nothing: \(before)")
        let hardened = try inventory([])
        #expect(hardened["madePrivate"] as? [String] == ["metertrust/legacy/pair"])
        #expect(hardened["abilitiesRemoved"] as? [String] == ["metertrust/legacy/pair"])
        #expect(Set(findings(hardened).keys) == ["secret-key|metertrust/backup-key"])
        let pinless = try attack(as: "pinless", backupLabel: "metertrust/backup-key", extra: ["--handles", "0"])
        #expect(pinless["pinless-visible-objects"]?["labels"] as? [String] == ["metertrust/backup-key"])

        // The reshare replaces the old backup key; the first time, the SO PIN comes from the operator, once.
        let (server, port) = try api.startServer()
        let reshare = try approvedRequest("backup.reshare", port: port)
        server.terminate()
        server.waitUntilExit()
        let officersPresent = ["--custodian", "alice=\(path("alice.key"))", "--custodian", "bob=\(path("bob.key"))"]
        let withoutPIN = try deployment.run(["backup", "reshare", "--request", reshare] + officersPresent, environment: ["METERTRUST_HSM_SO_PIN": ""])
        #expect(withoutPIN.status == 1 && withoutPIN.stderr.contains("predates the split SO PIN"), "\(withoutPIN.stderr)")
        #expect(try await store.adminRequest(id: reshare)?.state == .pending, "a refused ceremony does not use up the request")
        let migrated = try deployment.run(["backup", "reshare", "--request", reshare, "--json"] + officersPresent, environment: ["METERTRUST_HSM_SO_PIN": soPIN])
        try #require(migrated.status == 0, "\(migrated.stderr)")
        #expect(findings(try inventory(["--dry-run"])).isEmpty, "after the migration nothing needs attention")
        #expect(try await store.backupKey()?.securityOfficerPINShares != nil)
        let after = try attack(as: "pinless", backupLabel: "metertrust/backup-key", extra: ["--handles", "0"], oldSOPIN: soPIN)
        expectRefused(after, "old-so-pin-login", ["CKR_PIN_INCORRECT"])
        let visible = after["pinless-visible-objects"]?["labels"] as? [String] ?? []
        #expect(visible.count == 1 && visible.allSatisfy { $0.hasPrefix("metertrust/backup-key/") }, "\(visible)")
    }
}
