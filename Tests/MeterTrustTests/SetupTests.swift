import Foundation
@testable import MeterTrustStoreSQLite
import Testing

/// Setting a platform up through the real binary: atomic `init`, `setup`, development tokens, the SoftHSM2
/// configuration diagnosis, private store files. Every check is on the files and processes themselves.
@Suite("set-up: atomic init, setup, tokens, private store files")
struct SetupTests {
    static let metertrust = TestEnvironment.metertrust

    /// A parent directory of its own, so the temporaries init makes beside the target can be counted.
    static func parent() -> URL { TestEnvironment.temporaryDirectory() }

    static func leftovers(in parent: URL, of name: String = "data") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []).filter { $0.hasPrefix(".\(name).init-") }
    }

    static func mode(_ path: String) -> Int? {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue
    }

    static func initArguments(_ token: TestEnvironment.IsolatedToken, _ target: URL, label: String? = nil, module: String = TestEnvironment.modulePath) -> [String] {
        ["init", "--token-label", label ?? token.label, "--module", module, "--data-dir", target.path, "--json"]
    }

    /// One error on stderr: an `error:` line, or with --json one `{"error":{"code","message"}}` object on one line.
    static func expectOneErrorLine(_ result: TestEnvironment.ProcessResult, status: Int32, _ context: String) {
        let lines = result.stderr.split(separator: "\n")
        #expect(result.status == status, "\(context): status \(result.status): \(result.stderr)")
        guard lines.count == 1, let line = lines.first else {
            Issue.record("\(context): not one line: \(result.stderr)")
            return
        }
        if line.hasPrefix("error: ") { return }
        let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["error"] as? [String: Any]
        #expect(object?["code"] is String && object?["message"] is String, "\(context): \(result.stderr)")
    }

    /// The migrations a complete store has, read by Python's sqlite3 (not by this code).
    static func migrations(of store: String) throws -> [String]? {
        let script = "import sqlite3,json,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro',uri=True); print(json.dumps([r[0] for r in c.execute('select identifier from grdb_migrations order by rowid')]))"
        let read = try TestEnvironment.run(TestEnvironment.python, ["-c", script, store])
        guard read.status == 0 else { return nil }
        return try JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [String]
    }

    @Test("a failed init (wrong token label, wrong --module, a 0644 PIN file, a non-empty directory) leaves nothing; the retry works without --force and removes what a killed init left")
    func failedInitLeavesNothing() throws {
        let token = try TestEnvironment.makeIsolatedToken()
        let parent = Self.parent()
        let target = parent.appendingPathComponent("data")

        let wrongLabel = try TestEnvironment.run(Self.metertrust, Self.initArguments(token, target, label: "no-such-token"), environment: token.environment)
        Self.expectOneErrorLine(wrongLabel, status: 3, "wrong token label")
        #expect(!FileManager.default.fileExists(atPath: target.path) && Self.leftovers(in: parent).isEmpty)

        let wrongModule = try TestEnvironment.run(
            Self.metertrust, Self.initArguments(token, target, module: parent.appendingPathComponent("libnothing.so").path), environment: token.environment
        )
        Self.expectOneErrorLine(wrongModule, status: 3, "missing module")
        let notAModule = try TestEnvironment.run(
            Self.metertrust, Self.initArguments(token, target, module: "/usr/bin/true"), environment: token.environment
        )
        #expect(notAModule.status == 3, "\(notAModule.stderr)")
        #expect(!FileManager.default.fileExists(atPath: target.path) && Self.leftovers(in: parent).isEmpty)

        let pinFile = parent.appendingPathComponent("pin").path
        _ = FileManager.default.createFile(atPath: pinFile, contents: Data(token.pin.utf8), attributes: [.posixPermissions: 0o644])
        let loosePIN = try TestEnvironment.run(
            Self.metertrust, Self.initArguments(token, target) + ["--pin-file", pinFile], environment: ["SOFTHSM2_CONF": token.configuration]
        )
        Self.expectOneErrorLine(loosePIN, status: 3, "0644 PIN file")
        #expect(loosePIN.stderr.contains("chmod 600"), "\(loosePIN.stderr)")
        #expect(!FileManager.default.fileExists(atPath: target.path) && Self.leftovers(in: parent).isEmpty)

        // What a SIGKILLed init leaves: an unlocked temporary beside the target. The next init removes it.
        let abandoned = parent.appendingPathComponent(".data.init-k1ll3d")
        try FileManager.default.createDirectory(at: abandoned, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: abandoned.appendingPathComponent("metertrust.json"))

        chmod(pinFile, 0o600)
        let retry = try TestEnvironment.run(
            Self.metertrust, Self.initArguments(token, target) + ["--pin-file", pinFile], environment: ["SOFTHSM2_CONF": token.configuration]
        )
        #expect(retry.status == 0, "the retry after failures needs no --force: \(retry.stderr)")
        #expect(Self.leftovers(in: parent).isEmpty, "left: \(Self.leftovers(in: parent))")
        let listed = try TestEnvironment.run(Self.metertrust, ["ca", "list", "--json", "--data-dir", target.path], environment: ["SOFTHSM2_CONF": token.configuration])
        #expect(listed.status == 0 && (try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [Any])?.isEmpty == true, "\(listed.stderr)")

        // A second init on it is refused, as before; a non-empty directory that is not a data directory too, untouched.
        let again = try TestEnvironment.run(Self.metertrust, Self.initArguments(token, target), environment: token.environment)
        Self.expectOneErrorLine(again, status: 1, "init on a data directory")
        #expect(again.stderr.contains("--force"))
        let other = parent.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: other.appendingPathComponent("notes.txt"))
        let nonEmpty = try TestEnvironment.run(Self.metertrust, Self.initArguments(token, other), environment: token.environment)
        Self.expectOneErrorLine(nonEmpty, status: 1, "non-empty directory")
        #expect(try FileManager.default.contentsOfDirectory(atPath: other.path) == ["notes.txt"])
        #expect(Self.leftovers(in: parent, of: "other").isEmpty)

        // An existing empty directory is taken (replaced by the complete one).
        let empty = parent.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let intoEmpty = try TestEnvironment.run(Self.metertrust, Self.initArguments(token, empty), environment: token.environment)
        #expect(intoEmpty.status == 0, "\(intoEmpty.stderr)")
        #expect(FileManager.default.fileExists(atPath: empty.appendingPathComponent("metertrust.json").path))
    }

    @Test("attacker: SIGKILL at any moment of init (an operator's Ctrl-\\, the OOM killer) leaves the target absent or complete, never half-made")
    func sigkillDuringInit() throws {
        let token = try TestEnvironment.makeIsolatedToken()
        let parent = Self.parent()
        let target = parent.appendingPathComponent("data")

        // How long a whole init takes here, and what a complete store holds.
        let start = Date()
        let complete = try TestEnvironment.run(Self.metertrust, Self.initArguments(token, target), environment: token.environment)
        let duration = Date().timeIntervalSince(start)
        try #require(complete.status == 0, "\(complete.stderr)")
        let allMigrations = try #require(try Self.migrations(of: target.appendingPathComponent("metertrust.sqlite").path))
        try #require(!allMigrations.isEmpty)
        try FileManager.default.removeItem(at: target)

        // SoftHSM2 rewrites the token's files when a process logs in, so a SIGKILL then can truncate them (its own
        // fragility, not init's): each round starts from a copy of the token directory taken now.
        let tokens = URL(fileURLWithPath: token.configuration).deletingLastPathComponent().appendingPathComponent("tokens")
        let pristine = parent.appendingPathComponent("tokens-copy")
        try FileManager.default.copyItem(at: tokens, to: pristine)

        var environment = ProcessInfo.processInfo.environment
        for (key, value) in token.environment { environment[key] = value }
        var killed = 0
        var absent = 0
        let rounds = 24
        for round in 0..<rounds {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.metertrust)
            process.arguments = Self.initArguments(token, target)
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            // Spread the kills over the whole run, and a little beyond.
            usleep(useconds_t(duration * 1.1 * 1_000_000 * Double(round) / Double(rounds)))
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { killed += 1 }

            if FileManager.default.fileExists(atPath: target.path) {
                // Complete: a configuration that parses, and a store with every migration.
                let data = try Data(contentsOf: target.appendingPathComponent("metertrust.json"))
                let configuration = try JSONSerialization.jsonObject(with: data) as? [String: Any]
                #expect((configuration?["hsm"] as? [String: Any])?["tokenLabel"] as? String == token.label, "round \(round)")
                #expect(try Self.migrations(of: target.appendingPathComponent("metertrust.sqlite").path) == allMigrations, "round \(round): a half-made store")
                try FileManager.default.removeItem(at: target)
            } else {
                absent += 1
            }
            try FileManager.default.removeItem(at: tokens)
            try FileManager.default.copyItem(at: pristine, to: tokens)
        }
        #expect(killed > 0 && absent > 0, "the kills never landed during an init (killed \(killed), absent \(absent))")

        // Whatever the killed runs left beside the target, the next init cleans and succeeds without --force.
        let after = try TestEnvironment.run(Self.metertrust, Self.initArguments(token, target), environment: token.environment)
        #expect(after.status == 0, "\(after.stderr)")
        #expect(Self.leftovers(in: parent).isEmpty, "left: \(Self.leftovers(in: parent))")
    }

    @Test("init --force on a deployment keeps what it settled (root fingerprint, audit key): the audit log still verifies and is still written")
    func forcedInitKeepsSettledState() throws {
        let token = try TestEnvironment.makeIsolatedToken()
        let target = Self.parent().appendingPathComponent("data")
        func metertrust(_ arguments: [String]) throws -> TestEnvironment.ProcessResult {
            try TestEnvironment.run(Self.metertrust, arguments + ["--data-dir", target.path], environment: token.environment)
        }
        try #require(try TestEnvironment.run(Self.metertrust, Self.initArguments(token, target), environment: token.environment).status == 0)
        try #require(try metertrust(["ca", "create-root", "--name", "root"]).status == 0)
        try #require(try metertrust(["audit", "init"]).status == 0)
        func settled() throws -> [String: Any] {
            let data = try Data(contentsOf: target.appendingPathComponent("metertrust.json"))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        let before = try settled()
        try #require(before["rootFingerprint"] is String && before["audit"] is [String: Any])
        let forced = try TestEnvironment.run(Self.metertrust, Self.initArguments(token, target) + ["--force", "--sessions", "3"], environment: token.environment)
        try #require(forced.status == 0, "\(forced.stderr)")
        let after = try settled()
        #expect(after["rootFingerprint"] as? String == before["rootFingerprint"] as? String)
        #expect((after["audit"] as? [String: Any])?["keyLabel"] as? String == (before["audit"] as? [String: Any])?["keyLabel"] as? String)
        #expect((after["hsm"] as? [String: Any])?["sessionCount"] as? Int == 3, "the new HSM settings apply: \(after)")
        // The deployment still works as one: the log verifies, and a new CA is logged.
        let admin = try metertrust(["ca", "create-admin", "--name", "admin"])
        #expect(admin.status == 0, "\(admin.stderr)")
        let verified = try metertrust(["audit", "verify", "--json"])
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
    }

    @Test("attacker: another local account reading the store: the data directory is 0700, metertrust.json and the SQLite file with its -wal and -shm 0600")
    func storeFilesArePrivate() async throws {
        let token = try TestEnvironment.makeIsolatedToken()
        let target = Self.parent().appendingPathComponent("data")
        // umask 022, the usual one, under which SQLite would make its files 0644.
        var arguments = Self.initArguments(token, target).map(shellQuoted).joined(separator: " ")
        arguments = "umask 022; exec \(shellQuoted(Self.metertrust)) \(arguments)"
        let made = try TestEnvironment.run("/bin/sh", ["-c", arguments], environment: token.environment)
        try #require(made.status == 0, "\(made.stderr)")
        #expect(Self.mode(target.path) == 0o700)
        #expect(Self.mode(target.appendingPathComponent("metertrust.json").path) == 0o600)
        let storePath = target.appendingPathComponent("metertrust.sqlite").path
        #expect(Self.mode(storePath) == 0o600)

        // A command that rewrites the configuration keeps it 0600 (ca create-root pins the root in it).
        let root = try TestEnvironment.run(Self.metertrust, ["ca", "create-root", "--name", "root", "--data-dir", target.path], environment: token.environment)
        try #require(root.status == 0, "\(root.stderr)")
        #expect(Self.mode(target.appendingPathComponent("metertrust.json").path) == 0o600)

        // While the store is open and written, its -wal and -shm files exist: 0600 too.
        let store = try SQLiteStore(path: storePath)
        try await store.migrate()
        _ = try await store.certificateAuthorities()
        try await store.execute(rawSQL: "CREATE TABLE IF NOT EXISTS test_touch (x INTEGER)")
        #expect(FileManager.default.fileExists(atPath: storePath + "-wal"))
        #expect(Self.mode(storePath + "-wal") == 0o600)
        #expect(Self.mode(storePath + "-shm") == 0o600)

        // A store the library creates anywhere else is 0600 from its first byte.
        let fresh = Self.parent().appendingPathComponent("fresh.sqlite").path
        let other = try SQLiteStore(path: fresh)
        try await other.migrate()
        #expect(Self.mode(fresh) == 0o600)
    }

    @Test("with SOFTHSM2_CONF unset or naming a missing file, a token not found is diagnosed as such: export SOFTHSM2_CONF, not create a token")
    func softHSMConfigurationDiagnosed() throws {
        let target = Self.parent().appendingPathComponent("data")
        let arguments = ["init", "--token-label", "metertrust-diagnosis", "--module", TestEnvironment.modulePath, "--data-dir", target.path]
        // Truly unset (TestEnvironment.run sets it for every process, so unset it with env -u).
        let unset = try TestEnvironment.run("/usr/bin/env", ["-u", "SOFTHSM2_CONF", Self.metertrust] + arguments, environment: ["METERTRUST_HSM_PIN": "1234"])
        Self.expectOneErrorLine(unset, status: 3, "SOFTHSM2_CONF unset")
        #expect(unset.stderr.contains("SOFTHSM2_CONF is unset") && unset.stderr.contains("export SOFTHSM2_CONF="), "\(unset.stderr)")
        #expect(!unset.stderr.contains("init-token") && !unset.stderr.contains("softhsm2-util"), "\(unset.stderr)")

        let missing = Self.parent().appendingPathComponent("gone/softhsm2.conf").path
        let named = try TestEnvironment.run(Self.metertrust, arguments, environment: ["SOFTHSM2_CONF": missing, "METERTRUST_HSM_PIN": "1234"])
        Self.expectOneErrorLine(named, status: 3, "SOFTHSM2_CONF names a missing file")
        #expect(named.stderr.contains("SOFTHSM2_CONF names \(missing), which does not exist"), "\(named.stderr)")
        #expect(!named.stderr.contains("init-token"), "\(named.stderr)")
        #expect(!FileManager.default.fileExists(atPath: target.path))

        // With the right configuration, a label that really is not there is still advised to be created.
        let token = try TestEnvironment.makeIsolatedToken()
        let wrongLabel = try TestEnvironment.run(Self.metertrust, arguments, environment: token.environment)
        Self.expectOneErrorLine(wrongLabel, status: 3, "label not on the configured token directory")
        #expect(wrongLabel.stderr.contains("metertrust hsm init-token --label metertrust-diagnosis"), "\(wrongLabel.stderr)")
    }

    @Test("scripts/softhsm-token.sh runs from any directory: from /tmp it finds the binary through its own path and makes a working token")
    func tokenScriptFromAnotherDirectory() throws {
        let directory = Self.parent().appendingPathComponent("softhsm")
        let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/softhsm-token.sh").path
        let made = try TestEnvironment.run(
            "/usr/bin/env", ["-u", "METERTRUST_BIN", "bash", script, directory.path, "from-tmp"], in: URL(fileURLWithPath: "/tmp")
        )
        try #require(made.status == 0, "\(made.stderr)")
        #expect(Self.mode(directory.appendingPathComponent("pin").path) == 0o600)
        #expect(Self.mode(directory.appendingPathComponent("so-pin").path) == 0o600)
        let tokens = try TestEnvironment.run(
            Self.metertrust, ["hsm", "tokens", "--json", "--module", TestEnvironment.modulePath],
            environment: ["SOFTHSM2_CONF": directory.appendingPathComponent("softhsm2.conf").path]
        )
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(tokens.stdout.utf8)) as? [[String: Any]], "\(tokens.stderr)")
        #expect(listed.contains { $0["label"] as? String == "from-tmp" && $0["initialized"] as? Bool == true })
    }

    @Test("setup --dev-token, non-interactive (stdin not a terminal): token, init, root, audit log, Admin, manufacturer and operational CA; ca list and audit verify agree; next steps are the ceremony")
    func setupWithDevelopmentToken() throws {
        let parent = Self.parent()
        let tokenDirectory = parent.appendingPathComponent("softhsm")
        let data = parent.appendingPathComponent("data")
        let arguments = [
            "setup", "--dev-token", tokenDirectory.path, "--data-dir", data.path, "--token-label", "setup-test", "--module", TestEnvironment.modulePath,
            "--organization", "Test Utility", "--manufacturer", "acme", "--operational", "north", "--json",
        ]
        // Nothing of the test's own token environment: setup makes and names its own.
        let made = try TestEnvironment.run(Self.metertrust, arguments, environment: ["METERTRUST_HSM_PIN": ""])
        try #require(made.status == 0, "\(made.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: Any], "\(made.stdout)")
        #expect(result["dataDirectory"] as? String == data.path)
        let authorities = try #require(result["authorities"] as? [[String: Any]])
        #expect(Set(authorities.compactMap { $0["name"] as? String }) == ["root", "admin", "service", "acme", "north"])
        let conf = tokenDirectory.appendingPathComponent("softhsm2.conf").path
        #expect((result["environment"] as? [String: String])?["SOFTHSM2_CONF"] == conf)
        let token = result["token"] as? [String: Any]
        let development = token?["development"] as? [String: Any]
        let pinFile: String? = development?["pinFile"] as? String
        #expect(pinFile == tokenDirectory.appendingPathComponent("pin").path)
        #expect(Self.mode(tokenDirectory.appendingPathComponent("pin").path) == 0o600)
        #expect(Self.mode(tokenDirectory.appendingPathComponent("so-pin").path) == 0o600)
        let steps = try #require(result["nextSteps"] as? [[String: String]])
        let commands = steps.compactMap { $0["command"] }
        #expect(commands.contains { $0.hasPrefix("metertrust admin bootstrap --custodian") && $0.contains(data.path) })
        #expect(commands.contains { $0.contains("server-cert --role admin") && $0.contains("--ca service") })
        #expect(commands.contains { $0.contains("backup init-key --so-pin-file \(tokenDirectory.appendingPathComponent("so-pin").path)") })
        #expect(!commands.contains { $0.contains("ca create-operational") })

        // Later commands need only SOFTHSM2_CONF: the PIN comes from the file named in metertrust.json.
        let environment = ["SOFTHSM2_CONF": conf, "METERTRUST_HSM_PIN": ""]
        let listed = try TestEnvironment.run(Self.metertrust, ["ca", "list", "--json", "--data-dir", data.path], environment: environment)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]], "\(listed.stderr)")
        let roles = Dictionary(uniqueKeysWithValues: list.compactMap { entry in (entry["name"] as? String).map { ($0, entry["role"] as? String ?? "") } })
        #expect(roles == ["root": "root", "admin": "admin", "service": "service", "acme": "manufacturer", "north": "operational"])
        #expect(list.filter { $0["name"] as? String != "root" }.allSatisfy { $0["parent"] as? String == "root" })

        let verified = try TestEnvironment.run(Self.metertrust, ["audit", "verify", "--json", "--data-dir", data.path], environment: environment)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(verified.stdout.utf8)) as? [String: Any], "\(verified.stderr)")
        #expect(verified.status == 0 && report["headChecked"] as? Bool == true, "\(verified.stderr)")
        let log = try TestEnvironment.run(Self.metertrust, ["audit", "log", "--json", "--data-dir", data.path], environment: environment)
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(log.stdout.utf8)) as? [[String: Any]])
        let created = Set(entries.filter { $0["action"] as? String == "ca.create" && $0["outcome"] as? String == "success" }.compactMap { $0["subject"] as? String })
        #expect(created.isSuperset(of: ["admin", "acme", "north"]), "every CA after the root is in the log: \(created)")

        // Setup again on the same directory is refused, one line; the platform is unchanged.
        let again = try TestEnvironment.run(Self.metertrust, arguments, environment: ["METERTRUST_HSM_PIN": ""])
        Self.expectOneErrorLine(again, status: 1, "setup on a set-up directory")
        let relisted = try TestEnvironment.run(Self.metertrust, ["ca", "list", "--json", "--data-dir", data.path], environment: environment)
        #expect(relisted.stdout == listed.stdout)
    }

    @Test("setup on an existing token takes its defaults from the flags alone: root, Admin CA and Service CA, and the steps go on with the admin API's certificate from it")
    func setupOnExistingToken() throws {
        let token = try TestEnvironment.makeIsolatedToken()
        let data = Self.parent().appendingPathComponent("data")
        let made = try TestEnvironment.run(
            Self.metertrust, ["setup", "--data-dir", data.path, "--token-label", token.label, "--module", TestEnvironment.modulePath],
            environment: token.environment
        )
        try #require(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains("Next: the custodian ceremony"))
        #expect(!made.stdout.contains("metertrust ca create-operational") && made.stdout.contains("metertrust server-cert --role admin"))
        #expect(made.stdout.contains("metertrust admin bootstrap --custodian"))
        let listed = try TestEnvironment.run(Self.metertrust, ["ca", "list", "--json", "--data-dir", data.path], environment: token.environment)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]], "\(listed.stderr)")
        #expect(Set(list.compactMap { $0["name"] as? String }) == ["root", "admin", "service"])
        let verified = try TestEnvironment.run(Self.metertrust, ["audit", "verify", "--data-dir", data.path], environment: token.environment)
        #expect(verified.status == 0, "\(verified.stderr)")
        let configuration = try JSONSerialization.jsonObject(with: Data(contentsOf: data.appendingPathComponent("metertrust.json"))) as? [String: Any]
        #expect(configuration?["rootFingerprint"] is String && configuration?["audit"] is [String: Any])

        // A flag that is wrong is a usage error before anything is made.
        let bad = try TestEnvironment.run(
            Self.metertrust, ["setup", "--data-dir", Self.parent().appendingPathComponent("x").path, "--curve", "P-521"], environment: token.environment
        )
        Self.expectOneErrorLine(bad, status: 2, "bad curve")
    }

    @Test("setup on a terminal asks for each value with its default (util-linux script gives it a pseudo-terminal); the answers make the platform")
    func setupInteractive() throws {
        let parent = Self.parent()
        let data = parent.appendingPathComponent("data")
        let tokenDirectory = parent.appendingPathComponent("softhsm")
        // data dir, dev token, module (default), label, environment (default), root, organisation, Admin CA (default),
        // manufacturer, its organisation (default), operational ("-": none), curve and audit name (defaults), confirm.
        let answers = [data.path, tokenDirectory.path, "", "interactive-test", "", "national", "National Ops", "", "acme", "", "-", "", "", "y"]
        let answersFile = parent.appendingPathComponent("answers").path
        try (answers.joined(separator: "\n") + "\n").write(toFile: answersFile, atomically: true, encoding: .utf8)
        let inner = "\(shellQuoted(Self.metertrust)) setup"
        let session = try TestEnvironment.run(
            "/bin/sh", ["-c", "script -qec \(shellQuoted(inner)) /dev/null < \(shellQuoted(answersFile))"], environment: ["METERTRUST_HSM_PIN": ""]
        )
        try #require(session.status == 0, "\(session.stdout) \(session.stderr)")
        #expect(session.stdout.contains("name of the root CA [root]:") && session.stdout.contains("token label [metertrust]:"), "\(session.stdout)")
        let environment = ["SOFTHSM2_CONF": tokenDirectory.appendingPathComponent("softhsm2.conf").path]
        let listed = try TestEnvironment.run(Self.metertrust, ["ca", "list", "--json", "--data-dir", data.path], environment: environment)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]], "\(listed.stderr)")
        #expect(Set(list.compactMap { $0["name"] as? String }) == ["national", "admin", "service", "acme"])
        let root = list.first { $0["name"] as? String == "national" }?["certificate"] as? [String: Any]
        #expect((root?["subject"] as? String)?.contains("O=National Ops") == true, "\(String(describing: root?["subject"]))")
        let configuration = try JSONSerialization.jsonObject(with: Data(contentsOf: data.appendingPathComponent("metertrust.json"))) as? [String: Any]
        #expect((configuration?["hsm"] as? [String: Any])?["tokenLabel"] as? String == "interactive-test")
    }
}

private func shellQuoted(_ value: String) -> String { "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'" }
