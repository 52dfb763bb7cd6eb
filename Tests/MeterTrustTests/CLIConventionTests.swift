import Foundation
import MeterTrustAdmin
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustQuorum
import Testing

/// Issue 12 items 3, 4 and 8: what a script may rely on. Every command of the binary, enumerated from the binary
/// itself (`--experimental-dump-help`), so a command added later cannot be missed: it takes `--json`; with it an
/// error is one JSON object `{"error":{"code","message"}}` on stderr with the exit status the code is documented
/// with, and a result one JSON document on stdout (parsed here with Foundation's JSONSerialization and Python's
/// `json`), never a JSON string nested inside it.
@Suite("CLI conventions: --json on every command, errors and exit statuses a script can trust")
struct CLIConventionTests {
    /// A leaf of the command tree: the words that name it and its arguments as ArgumentParser describes them.
    struct Leaf: CustomStringConvertible {
        struct Argument {
            var kind: String
            var long: String?
            var isOptional: Bool
        }
        var path: [String]
        var arguments: [Argument]
        var longNames: Set<String> { Set(arguments.compactMap(\.long)) }
        var description: String { path.joined(separator: " ") }
    }

    static func run(_ arguments: [String], environment: [String: String] = [:], in directory: URL? = nil) throws -> TestEnvironment.ProcessResult {
        try TestEnvironment.run(TestEnvironment.metertrust, arguments, environment: environment, in: directory)
    }

    /// Every leaf command, from `metertrust --experimental-dump-help` (ArgumentParser's tool-info JSON).
    static func leaves() throws -> [Leaf] {
        let dump = try run(["--experimental-dump-help"])
        try #require(dump.status == 0, "\(dump.stderr)")
        let tool = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var leaves: [Leaf] = []
        func walk(_ command: [String: Any], path: [String]) {
            let name = command["commandName"] as? String ?? ""
            guard name != "help" else { return }
            let here = path + [name]
            if let subcommands = command["subcommands"] as? [[String: Any]], !subcommands.isEmpty {
                for subcommand in subcommands { walk(subcommand, path: here) }
                return
            }
            let arguments = (command["arguments"] as? [[String: Any]] ?? []).map { argument in
                Leaf.Argument(
                    kind: argument["kind"] as? String ?? "",
                    long: (argument["names"] as? [[String: Any]])?.first { $0["kind"] as? String == "long" }?["name"] as? String,
                    isOptional: argument["isOptional"] as? Bool ?? true
                )
            }
            leaves.append(Leaf(path: Array(here.dropFirst()), arguments: arguments))
        }
        walk(try #require(tool["command"] as? [String: Any]), path: [])
        return leaves
    }

    /// The exit status each code is documented with (`metertrust errors --json`, from ExitStatus itself).
    static func documentedStatuses() throws -> [String: Int32] {
        let errors = try run(["errors", "--json"])
        try #require(errors.status == 0, "\(errors.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(errors.stdout.utf8)) as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["code"] as! String, Int32($0["exitStatus"] as! Int)) })
    }

    /// Checks that `result` failed the JSON way: stderr is exactly one JSON object `{"error":{"code","message"}}`,
    /// its code is one of the closed set and the exit status is the one documented for it. Returns the code.
    @discardableResult
    static func expectJSONError(
        _ result: TestEnvironment.ProcessResult, statuses: [String: Int32], _ label: String, sourceLocation: SourceLocation = #_sourceLocation
    ) -> String? {
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        guard lines.count == 1, let object = try? JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any] else {
            Issue.record("\(label): stderr is not one JSON object: \(result.stderr)", sourceLocation: sourceLocation)
            return nil
        }
        guard object.count == 1, let error = object["error"] as? [String: Any], error.count == 2,
            let code = error["code"] as? String, let message = error["message"] as? String
        else {
            Issue.record("\(label): not {\"error\":{\"code\",\"message\"}}: \(result.stderr)", sourceLocation: sourceLocation)
            return nil
        }
        #expect(statuses[code] != nil, "\(label): \(code) is not a documented code", sourceLocation: sourceLocation)
        #expect(result.status == statuses[code], "\(label): exit \(result.status), but \(code) is documented with \(statuses[code].map(String.init) ?? "nothing")", sourceLocation: sourceLocation)
        #expect(!message.isEmpty && !message.contains("\n"), "\(label): \(message)", sourceLocation: sourceLocation)
        for leak in ["DecodingError", "Debug description", "Error Domain=", "NSCocoaErrorDomain", "Swift."] {
            #expect(!message.contains(leak), "\(label): a library internal in the message: \(message)", sourceLocation: sourceLocation)
        }
        return code
    }

    /// Parses `text` as exactly one JSON document (object or array) and checks that no string inside it is itself
    /// a JSON object or array (a document nested as a string).
    @discardableResult
    static func expectOneDocument(_ text: String, _ label: String, allowingStringsAt exempt: Set<String> = [], sourceLocation: SourceLocation = #_sourceLocation) -> Any? {
        guard let document = try? JSONSerialization.jsonObject(with: Data(text.utf8)), document is [String: Any] || document is [Any] else {
            Issue.record("\(label): stdout is not one JSON document: \(text.prefix(400))", sourceLocation: sourceLocation)
            return nil
        }
        func walk(_ value: Any, key: String) {
            switch value {
            case let object as [String: Any]: object.forEach { walk($0.value, key: $0.key) }
            case let array as [Any]: array.forEach { walk($0, key: key) }
            case let string as String where !exempt.contains(key):
                let trimmed = string.trimmingCharacters(in: .whitespacesAndNewlines)
                if trimmed.hasPrefix("{") || trimmed.hasPrefix("["), let nested = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)),
                    nested is [String: Any] || nested is [Any]
                {
                    Issue.record("\(label): \"\(key)\" holds JSON as a string: \(string.prefix(200))", sourceLocation: sourceLocation)
                }
            default: break
            }
        }
        walk(document, key: "")
        return document
    }

    /// Python's own json module agrees that `text` is one JSON document.
    static func expectPythonParses(_ text: String, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let file = TestEnvironment.temporaryDirectory().appendingPathComponent("document.json")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let parsed = try TestEnvironment.run(TestEnvironment.python, ["-c", "import json,sys; json.load(open(sys.argv[1]))", file.path])
        #expect(parsed.status == 0, "\(label): Python's json refuses it: \(parsed.stderr)", sourceLocation: sourceLocation)
    }

    // MARK: The whole command tree

    @Test("every leaf command takes --json; on a failure path its error is one JSON object with the documented exit status; a usage error is code edge.usage, exit 2")
    func everyCommandSpeaksJSON() throws {
        try #require(FileManager.default.isExecutableFile(atPath: TestEnvironment.metertrust), "build metertrust first (make test does)")
        let leaves = try Self.leaves()
        let statuses = try Self.documentedStatuses()
        // The tree as it is today, at least (later commands are covered as they come).
        let names = Set(leaves.map(\.description))
        for expected in ["init", "ca list", "factory run", "factory bundle", "meter init", "meter keygen", "audit prove", "audit verify", "admin list", "admin serve", "backup restore", "hsm tokens", "bench issuance", "demo", "errors"] {
            #expect(names.contains(expected), "the command tree lacks \(expected): \(names.sorted())")
        }

        // Nothing here may reach a real token, store or admin API: an empty SoftHSM2 token directory, a module that
        // does not exist, no PIN, no admin API settings.
        let sandbox = TestEnvironment.temporaryDirectory()
        try FileManager.default.createDirectory(at: sandbox.appendingPathComponent("tokens"), withIntermediateDirectories: true)
        let softhsm = sandbox.appendingPathComponent("softhsm2.conf").path
        try "directories.tokendir = \(sandbox.appendingPathComponent("tokens").path)\nobjectstore.backend = file\nlog.level = ERROR\n".write(toFile: softhsm, atomically: true, encoding: .utf8)
        let environment = [
            "SOFTHSM2_CONF": softhsm, "METERTRUST_HSM_PIN": "", "METERTRUST_HSM_SO_PIN": "", "METERTRUST_HSM_MODULE": "/nonexistent/libnothing.so",
            "METERTRUST_HOME": sandbox.appendingPathComponent("home").path, "METERTRUST_ADMIN_URL": "", "METERTRUST_ADMIN_CERT": "",
            "METERTRUST_ADMIN_KEY": "", "METERTRUST_ADMIN_TRUST": "", "METERTRUST_WITNESS_DIR": sandbox.appendingPathComponent("witness").path,
        ]
        var failed: [String] = []
        var succeeded: [String] = []
        for leaf in leaves {
            #expect(leaf.longNames.contains("json"), "metertrust \(leaf) has no --json")

            // A usage error: an unknown option, with --json.
            let usage = try Self.run(leaf.path + ["--json", "--no-such-option"], environment: environment, in: sandbox)
            #expect(Self.expectJSONError(usage, statuses: statuses, "\(leaf) --no-such-option") == ErrorCode.usage.rawValue)

            // A failure path: a data directory, meter state and PKCS#11 module that do not exist; every required
            // argument given a value ("1": a file that does not exist, a name, an index).
            let cwd = sandbox.appendingPathComponent(leaf.path.joined(separator: "-"))
            try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
            var arguments = leaf.path + ["--json"]
            var given: Set<String> = []
            for (name, value) in [("data-dir", cwd.appendingPathComponent("nowhere").path), ("state", cwd.appendingPathComponent("no-meter").path), ("module", "/nonexistent/libnothing.so")]
            where leaf.longNames.contains(name) {
                arguments += ["--\(name)", value]
                given.insert(name)
            }
            for argument in leaf.arguments where !argument.isOptional && argument.kind != "flag" {
                if argument.kind == "positional" {
                    arguments.append("1")
                } else if let long = argument.long, !given.contains(long) {
                    arguments += ["--\(long)", "1"]
                }
            }
            let result = try Self.run(arguments, environment: environment, in: cwd)
            let label = "metertrust " + arguments.joined(separator: " ")
            #expect(!result.stderr.contains("Unknown option '--json'"), "\(label): \(result.stderr)")
            if result.status == 0 {
                // Nothing to fail on without a deployment (errors, admin and account keygen): then the success path is JSON.
                Self.expectOneDocument(result.stdout, label)
                succeeded.append(leaf.description)
            } else {
                Self.expectJSONError(result, statuses: statuses, label)
                #expect(result.stdout.isEmpty || Self.expectOneDocument(result.stdout, label) != nil, "\(label): stdout \(result.stdout)")
                failed.append(leaf.description)
            }
        }
        // Commands that can succeed with nothing at hand are few; every one that needs a deployment failed.
        // (bench enroll makes its own throwaway store and needs no HSM.)
        #expect(Set(succeeded).isSubset(of: ["errors", "admin keygen", "account keygen", "bench enroll"]), "succeeded without a deployment: \(succeeded)")
        #expect(failed.count + succeeded.count == leaves.count && leaves.count >= 40, "\(leaves.count) leaves")
    }

    @Test("usage errors are one `error:` line and exit 2 (edge.usage with --json); --version from one constant, also as JSON")
    func usageErrorsAndVersion() throws {
        let statuses = try Self.documentedStatuses()
        for arguments in [["ca", "list", "--no-such-option"], ["cert", "show"], ["factory", "run", "--manifest"], ["bench", "issuance", "--count", "0"], ["no-such-command"]] {
            let text = try Self.run(arguments)
            let label = arguments.joined(separator: " ")
            #expect(text.status == 2, "\(label): exit \(text.status)")
            let lines = text.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("error: ") && !text.stderr.contains("Error:") && !text.stderr.contains("Usage:"), "\(label): \(text.stderr)")
            let json = try Self.run(arguments + ["--json"])
            #expect(Self.expectJSONError(json, statuses: statuses, label) == ErrorCode.usage.rawValue)
            #expect(json.stdout.isEmpty)
        }
        let version = try Self.run(["--version"])
        #expect(version.status == 0)
        let match = try #require(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).wholeMatch(of: /metertrust (\d+\.\d+\.\d+[-.\w]*)/), "\(version.stdout)")
        let json = try Self.run(["--version", "--json"])
        #expect(json.status == 0)
        let document = try #require(Self.expectOneDocument(json.stdout, "--version --json") as? [String: Any])
        #expect(document["version"] as? String == String(match.1))
        try Self.expectPythonParses(json.stdout, "--version --json")

        // Help: examples for the main commands, completion scripts for the shells the README names.
        for arguments in [["--help"], ["factory", "run", "--help"], ["admin", "--help"], ["audit", "--help"], ["meter", "--help"], ["init", "--help"], ["ca", "--help"], ["issue", "--help"], ["cert", "--help"], ["hsm", "--help"]] {
            let help = try Self.run(arguments)
            #expect(help.status == 0 && help.stdout.contains("EXAMPLES:"), "\(arguments) --help: \(help.stdout.prefix(300))")
        }
        for shell in ["bash", "zsh", "fish"] {
            let completion = try Self.run(["--generate-completion-script", shell])
            #expect(completion.status == 0 && completion.stdout.contains("metertrust") && completion.stdout.contains("factory"), "\(shell): \(completion.stderr)")
        }
    }

    @Test("admin request --help lists every operation the standard registry runs, with its required and optional parameters")
    func requestHelpFromRegistry() throws {
        let help = try Self.run(["admin", "request", "--help"])
        try #require(help.status == 0, "\(help.stderr)")
        let registry = QuorumOperationRegistry.standard
        #expect(!registry.operations.isEmpty)
        let lines = help.stdout.split(separator: "\n").map(String.init)
        for operation in registry.operations {
            let index = try #require(lines.firstIndex { $0.trimmingCharacters(in: .whitespaces).hasPrefix(operation.rawValue + " ") }, "no line for \(operation.rawValue): \(help.stdout)")
            // The parameters, on the operation's line and any continuation lines before its policy line.
            let policyIndex = try #require(lines[index...].firstIndex { $0.contains("approved under policy") }, "\(operation.rawValue)")
            let line = lines[index..<policyIndex].joined(separator: " ")
            for parameter in operation.requiredParameters { #expect(line.contains(" \(parameter)="), "\(operation.rawValue): \(line)") }
            for parameter in operation.optionalParameters { #expect(line.contains("[\(parameter)=]"), "\(operation.rawValue): \(line)") }
            if operation.requiredParameters.isEmpty && operation.optionalParameters.isEmpty { #expect(line.contains("(no parameters)")) }
            #expect(lines[policyIndex].contains("policy \(operation.operationClass.rawValue)"), "\(operation.rawValue): \(lines[index...].prefix(3))")
            // Continuation lines are indented under the parameters, never wrapped to the margin.
            for continuation in lines[index..<policyIndex].dropFirst() { #expect(continuation.hasPrefix("   "), "\(continuation)") }
        }
    }

    // MARK: Success documents of a representative set

    @Test("success documents: init, CAs, audit init/checkpoint/log/verify/prove, the meter stages, keygen, hsm tokens are each one JSON document without nested JSON strings")
    func successDocuments() throws {
        let deployment = try CLITests.Deployment.make()
        let root = try deployment.run(["ca", "create-root", "--name", "root", "--json"])
        try #require(root.status == 0, "\(root.stderr)")
        let rootSerial = try #require(((Self.expectOneDocument(root.stdout, "ca create-root") as? [String: Any])?["certificate"] as? [String: Any])?["serial"] as? String)
        let rootPEM = deployment.file("root.pem")
        try deployment.run(["cert", "show", rootSerial, "--pem"]).stdout.write(toFile: rootPEM, atomically: true, encoding: .utf8)
        let image = deployment.file("image.bin")
        try Data("firmware".utf8).write(to: URL(fileURLWithPath: image))
        let meter = deployment.file("meter")
        let people = deployment.file("people")
        try FileManager.default.createDirectory(atPath: people, withIntermediateDirectories: true)

        let commands: [(arguments: [String], exempt: Set<String>)] = [
            (["ca", "create-manufacturer", "--name", "acme", "--organization", "Acme Meters"], []),
            (["ca", "list"], []),
            (["audit", "init"], []),
            (["audit", "checkpoint"], []),
            (["audit", "log"], []),
            (["audit", "verify"], []),
            // An inclusion proof carries the entry's exact bytes (what the leaf hash covers) as a string, on purpose.
            (["audit", "prove", "0"], ["entry"]),
            (["meter", "init", "--state", meter, "--eui64", "0024befffe000001", "--image", image, "--trust-anchor", rootPEM], []),
            (["meter", "keygen", "--state", meter, "--append-to", deployment.file("csrs.txt")], []),
            (["meter", "status", "--state", meter], []),
            (["admin", "keygen", "--name", "alice", "--out", people], []),
            (["hsm", "tokens", "--module", TestEnvironment.modulePath], []),
            (["errors"], []),
        ]
        // Commands of the meter, the custodian's machine and the token take no data directory.
        func run(_ arguments: [String]) throws -> TestEnvironment.ProcessResult {
            ["meter", "errors", "hsm"].contains(arguments[0]) || arguments.prefix(2) == ["admin", "keygen"]
                ? try TestEnvironment.run(TestEnvironment.metertrust, arguments, environment: deployment.environment)
                : try deployment.run(arguments)
        }
        for (arguments, exempt) in commands {
            let result = try run(arguments + ["--json"])
            let label = arguments.joined(separator: " ")
            try #require(result.status == 0, "\(label): \(result.stderr)")
            let document = Self.expectOneDocument(result.stdout, label, allowingStringsAt: exempt)
            try Self.expectPythonParses(result.stdout, label)
            if arguments == ["audit", "verify"] { #expect((document as? [String: Any])?["verified"] as? Bool == true) }
            if arguments == ["audit", "log"] {
                // The entries as objects, not canonical lines concatenated.
                let entries = try #require(document as? [[String: Any]])
                #expect(entries.count >= 4 && entries.allSatisfy { $0["action"] is String && $0["details"] is [String: Any] })
            }
        }
        // Commands that printed nothing on success now say what they did.
        let keygen = try run(["meter", "keygen", "--state", deployment.file("meter2"), "--append-to", deployment.file("csrs.txt")])
        #expect(keygen.status != 0)  // no image injected in meter2: refused, one line
        let initText = try run(["meter", "init", "--state", deployment.file("meter3"), "--eui64", "0024befffe000003", "--image", image, "--trust-anchor", rootPEM])
        #expect(initText.status == 0 && initText.stdout.contains("0024befffe000003") && initText.stdout.contains("image injected"), "\(initText.stdout)")
        let keyText = try run(["meter", "keygen", "--state", deployment.file("meter3"), "--append-to", deployment.file("csrs.txt")])
        #expect(keyText.status == 0 && keyText.stdout.contains("appended to"), "\(keyText.stdout)")
    }

    // MARK: Scripts can trust the outcome

    /// A deployment with a root and a manufacturer CA, and a batch directory.
    struct Factory {
        let deployment: CLITests.Deployment
        let directory: URL

        static func make() throws -> Factory {
            let deployment = try CLITests.Deployment.make()
            _ = try deployment.json(["ca", "create-root", "--name", "root"])
            _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme"])
            let directory = URL(fileURLWithPath: deployment.file("batches"))
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            return Factory(deployment: deployment, directory: directory)
        }

        /// Writes a manifest for `meters` and a CSR list with a CSR for each of `withCSR`.
        func manifest(_ batch: String, manufacturer: String = "acme", meters: [EUI64], withCSR: [EUI64]) throws -> String {
            let lines = try withCSR.map { CSRListReader.line(eui64: $0, csr: try MeterIdentity(eui64: $0).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)) }
            try Data(lines.joined().utf8).write(to: directory.appendingPathComponent("\(batch).csrs"))
            let manifest: [String: Any] = [
                "format": "metertrust-batch", "version": 1, "batch": batch, "manufacturer": manufacturer,
                "firmware": ["sha256": String(repeating: "ab", count: 32)], "bootstrapServerURI": "coaps+tcp://bootstrap.example.net",
                "meters": ["eui64s": meters.map(\.description)], "csrs": "\(batch).csrs",
            ]
            let path = directory.appendingPathComponent("\(batch).json")
            try JSONSerialization.data(withJSONObject: manifest).write(to: path)
            return path.path
        }

        func out(_ batch: String) -> String { directory.appendingPathComponent("\(batch)-out").path }

        func run(_ manifest: String, _ batch: String, json: Bool = true) throws -> TestEnvironment.ProcessResult {
            try deployment.run(["factory", "run", "--manifest", manifest, "--out", out(batch), "--quiet"] + (json ? ["--json"] : []))
        }
    }

    @Test("factory run: all meters refused exits non-zero and signs nothing; some refused exits 6 (partial) with a manifest of the issued; all issued exits 0")
    func factoryOutcomes() throws {
        let factory = try Factory.make()
        let statuses = try Self.documentedStatuses()
        let m = (1...6).map { EUI64(0x0024_beff_fe00_1000 + UInt64($0)) }
        let fileManager = FileManager.default

        // Every meter refused (no CSR for either): exit 1 with factory.every-meter-refused, no enrollment manifest,
        // no bundles; the report says why.
        let none = try factory.manifest("none", meters: [m[0], m[1]], withCSR: [])
        let refused = try factory.run(none, "none")
        #expect(Self.expectJSONError(refused, statuses: statuses, "every meter refused") == ErrorCode.batchRefusedEveryMeter.rawValue)
        #expect(refused.status == 1)
        #expect(!fileManager.fileExists(atPath: factory.out("none") + "/enrollment-manifest.json"), "an empty manifest was signed")
        #expect(!fileManager.fileExists(atPath: factory.out("none") + "/enrollment-manifest.json.sig"))
        #expect(!fileManager.fileExists(atPath: factory.out("none") + "/bundles.jsonl"))
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: factory.out("none") + "/report.json"))) as? [String: Any])
        #expect(report["refusalsTotal"] as? Int == 2 && (report["refusals"] as? [Any])?.count == 2)
        let text = try factory.run(none, "none", json: false)
        #expect(text.status == 1 && text.stderr.hasPrefix("error: every meter of batch none was refused") && text.stderr.split(separator: "\n").count == 1, "\(text.stderr)")

        // Some refused: exit 6, the report on stdout, bundles and a signed manifest for the issued meters only.
        let some = try factory.manifest("some", meters: [m[2], m[3], m[4]], withCSR: [m[2], m[3]])
        let partial = try factory.run(some, "some")
        #expect(partial.status == 6, "exit \(partial.status): \(partial.stderr)")
        #expect(partial.stderr.isEmpty, "\(partial.stderr)")
        let partialReport = try #require(Self.expectOneDocument(partial.stdout, "partial batch") as? [String: Any])
        #expect((partialReport["counts"] as? [String: Int])?["issued"] == 2 && partialReport["refusalsTotal"] as? Int == 1)
        let enrollment = try JSONDecoder().decode(EnrollmentManifest.self, from: Data(contentsOf: URL(fileURLWithPath: factory.out("some") + "/enrollment-manifest.json")))
        #expect(enrollment.count == 2)
        // One rate figure: certificates issued / issuance wall time.
        let issuance = try #require(partialReport["issuanceSeconds"] as? Double)
        let rate = try #require(partialReport["certificatesPerSecond"] as? Double)
        #expect(issuance > 0 && abs(rate - 2 / issuance) < 1e-6 * max(1, rate), "rate \(rate) for 2 certificates in \(issuance) s")
        let partialText = try factory.run(some, "some", json: false)
        #expect(partialText.status == 6)
        #expect(partialText.stdout.components(separatedBy: "certificates/s").count == 2, "one rate figure: \(partialText.stdout)")

        // Everything issued (the resumed batch of the same meters, now with every CSR): exit 0.
        let all = try factory.manifest("all", meters: [m[5]], withCSR: [m[5]])
        #expect(try factory.run(all, "all").status == 0)

        // A garbage manifest: one line naming the problem, no decoder internals.
        let garbage = factory.directory.appendingPathComponent("garbage.json").path
        try "this is not JSON {".write(toFile: garbage, atomically: true, encoding: .utf8)
        let bad = try factory.run(garbage, "garbage")
        #expect(Self.expectJSONError(bad, statuses: statuses, "garbage manifest") == ErrorCode.invalidManifest.rawValue)
        #expect(bad.stderr.contains("the batch manifest is not valid JSON"), "\(bad.stderr)")
        let lacking = factory.directory.appendingPathComponent("lacking.json").path
        try #"{"format": "metertrust-batch", "version": 1, "batch": "x", "manufacturer": "acme", "bootstrapServerURI": "coaps+tcp://b.example", "meters": {"count": 1}}"#
            .write(toFile: lacking, atomically: true, encoding: .utf8)
        let missing = try factory.run(lacking, "lacking", json: false)
        #expect(missing.status == 1 && missing.stderr.contains("lacks the field firmware") && !missing.stderr.contains("DecodingError"), "\(missing.stderr)")
        let wrongType = factory.directory.appendingPathComponent("wrong.json").path
        try #"{"format": "metertrust-batch", "version": "one"}"#.write(toFile: wrongType, atomically: true, encoding: .utf8)
        let typed = try factory.run(wrongType, "wrong", json: false)
        #expect(typed.status == 1 && typed.stderr.contains("the field version of the batch manifest must be a number"), "\(typed.stderr)")

        // Before the bootstrap ceremony, an unregistered manufacturer is told to create its CA directly.
        let unregistered = try factory.manifest("other", manufacturer: "zulu", meters: [m[0]], withCSR: [m[0]])
        let direct = try factory.run(unregistered, "other", json: false)
        #expect(direct.status == 1 && direct.stderr.contains("metertrust ca create-manufacturer --name zulu --organization"), "\(direct.stderr)")
    }

    // MARK: The audit log

    @Test("audit log is one line per entry (index, time, actor, action, outcome, subject); audit verify --json on a log tampered with by someone with write access to the database prints {verified:false, error} and exits 5")
    func auditLogAndTamperedVerify() throws {
        let deployment = try CLITests.Deployment.make()
        let statuses = try Self.documentedStatuses()
        _ = try deployment.json(["ca", "create-root", "--name", "root"])
        _ = try deployment.json(["audit", "init"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "bravo"])

        let raw = try deployment.run(["audit", "log", "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(raw.stdout.utf8)) as? [[String: Any]])
        let text = try deployment.run(["audit", "log"])
        try #require(text.status == 0, "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n")
        #expect(lines.count == entries.count, "\(text.stdout)")
        for (line, entry) in zip(lines, entries) {
            let fields = line.components(separatedBy: "  ")
            #expect(fields.count >= 6, "\(line)")
            #expect(fields[0] == "\(entry["index"] as! Int)")
            #expect(fields[1].wholeMatch(of: /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/) != nil, "\(line)")
            #expect(fields[2] == entry["actor"] as? String && fields[3] == entry["action"] as? String)
            #expect(fields[4] == entry["outcome"] as? String && fields[5] == entry["subject"] as? String, "\(line)")
            #expect(!line.hasPrefix("{"), "a raw canonical line: \(line)")
        }
        #expect(try deployment.run(["audit", "log", "--last", "2"]).stdout.split(separator: "\n").count == 2)

        // The attacker: someone with write access to the database alters an entry.
        let store = deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path
        let tampered = try TestEnvironment.run("sqlite3", [
            store, "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'bravo', 'bravX') AS BLOB) WHERE CAST(entry AS TEXT) LIKE '%\"subject\":\"bravo\"%'",
        ])
        try #require(tampered.status == 0, "\(tampered.stderr)")
        for extra in [["--offline"], []] {
            let verified = try deployment.run(["audit", "verify", "--json"] + extra)
            let label = "audit verify --json \(extra.joined(separator: " "))"
            let code = try #require(Self.expectJSONError(verified, statuses: statuses, label))
            #expect(statuses[code] == 5, "\(label): \(code)")
            let document = try #require(Self.expectOneDocument(verified.stdout, label) as? [String: Any])
            #expect(document["verified"] as? Bool == false)
            let error = try #require(document["error"] as? [String: Any])
            #expect(error["code"] as? String == code && (error["message"] as? String)?.isEmpty == false)
            try Self.expectPythonParses(verified.stdout, label)
        }
        let plain = try deployment.run(["audit", "verify", "--offline"])
        #expect(plain.status == 5 && plain.stdout.isEmpty && plain.stderr.hasPrefix("error: ") && plain.stderr.split(separator: "\n").count == 1, "\(plain.stderr)")
    }

    // MARK: The quorum

    @Test("admin list --json carries everything admin show --json knows; no outcome as a string; advice after the bootstrap names admin request with every parameter, never ca create-manufacturer")
    func adminListAndAdviceAfterBootstrap() throws {
        let api = try AdminAPITests()
        try api.ceremony()
        let statuses = try Self.documentedStatuses()

        // After the bootstrap: direct creation refused with the request to make instead, organization included.
        let direct = try api.deployment.run(["ca", "create-manufacturer", "--name", "zulu", "--organization", "Zulu Meters", "--json"])
        #expect(Self.expectJSONError(direct, statuses: statuses, "create-manufacturer after bootstrap") == ErrorCode.underQuorumControl.rawValue)
        #expect(direct.stderr.contains(#"metertrust admin request manufacturer.register name=zulu organization=\"Zulu Meters\""#), "\(direct.stderr)")
        let operational = try api.deployment.run(["ca", "create-operational", "--name", "south"])
        #expect(operational.stderr.contains("admin request ca.create kind=operational name=south organization="), "\(operational.stderr)")
        // A batch for an unregistered manufacturer is told to register it under quorum.
        let batch = api.people.appendingPathComponent("batch.json")
        try JSONSerialization.data(withJSONObject: [
            "format": "metertrust-batch", "version": 1, "batch": "b", "manufacturer": "zulu", "firmware": ["sha256": String(repeating: "ab", count: 32)],
            "bootstrapServerURI": "coaps+tcp://bootstrap.example.net", "meters": ["start": "0024befffe000001", "count": 1], "csrs": "csrs.txt",
        ]).write(to: batch)
        let unregistered = try api.deployment.run(["factory", "run", "--manifest", batch.path, "--out", api.path("out")])
        #expect(unregistered.status == 1 && unregistered.stderr.contains("admin request manufacturer.register name=zulu organization="), "\(unregistered.stderr)")
        #expect(!unregistered.stderr.contains("ca create-manufacturer"), "stale advice: \(unregistered.stderr)")

        let (server, port) = try api.startServer()
        defer { server.terminate(); server.waitUntilExit() }
        let created = try api.clientJSON(["admin", "request", "manufacturer.register", "name=acme", "organization=Acme Meters"], as: "alice", port: port)
        let id = try #require(created["id"] as? String)
        _ = try api.clientJSON(["admin", "approve", id, "--yes"], as: "bob", port: port)
        let pendingList = try api.client(["admin", "list", "--json"], as: "carol", port: port)
        try #require(pendingList.status == 0, "\(pendingList.stderr)")
        let pending = try #require((Self.expectOneDocument(pendingList.stdout, "admin list --json") as? [[String: Any]])?.first { $0["id"] as? String == id })
        #expect(pending["state"] as? String == "pending" && pending["required"] as? Int == 2 && pending["quorumMet"] as? Bool == false)
        #expect((pending["parameters"] as? [String: String]) == ["name": "acme", "organization": "Acme Meters"])
        let approvals = try #require(pending["approvals"] as? [[String: Any]])
        #expect(approvals.count == 1 && approvals[0]["custodian"] as? String == "bob" && approvals[0]["counted"] as? Bool == true)
        let approvedAt = try #require(approvals[0]["approvedAt"] as? String)
        #expect(ISO8601DateFormatter().date(from: approvedAt) != nil, "\(approvedAt)")
        #expect((pending["policy"] as? [String: Any])?["operationClass"] as? String == "manufacturer-register")

        _ = try api.clientJSON(["admin", "approve", id, "--yes"], as: "carol", port: port)
        let executed = try api.clientJSON(["admin", "execute", id], as: "alice", port: port)
        #expect(executed["executedBy"] as? String != nil && (executed["outcome"] as? [String: Any])?["role"] as? String == "manufacturer")
        let listed = try api.client(["admin", "list", "--json"], as: "bob", port: port)
        let shown = try api.client(["admin", "show", id, "--json"], as: "bob", port: port)
        let fromList = try #require((Self.expectOneDocument(listed.stdout, "admin list") as? [[String: Any]])?.first { $0["id"] as? String == id })
        let fromShow = try #require(Self.expectOneDocument(shown.stdout, "admin show") as? [String: Any])
        func canonical(_ object: [String: Any]) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        #expect(try canonical(fromList) == canonical(fromShow), "admin list --json lacks what admin show knows:\n\(fromList)\n\(fromShow)")
        for key in ["operation", "parameters", "requester", "created", "expires", "state", "policy", "required", "approvals", "executedBy", "outcome"] {
            #expect(fromList[key] != nil, "admin list --json lacks \(key)")
        }
        #expect(fromList["outcome"] is [String: Any], "the outcome is an object")
        try Self.expectPythonParses(listed.stdout, "admin list --json")
    }
}
