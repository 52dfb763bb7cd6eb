import Foundation
import MeterTrustCore
import Testing

/// Issue 13 item 6: a PostgreSQL primary with a synchronous streaming standby (scripts/pg-ha.sh: Debian's server, TLS
/// on loopback, SCRAM), a factory batch running against the primary, the primary's postmaster and every child killed
/// with SIGKILL while rounds are being committed, the standby promoted, the deployment pointed at it with
/// `metertrust init --force --store`, the same batch command run again: nothing the primary acknowledged is lost.
@Suite("PostgreSQL fail-over without loss")
struct FailoverTests {
    typealias Deployment = CLITests.Deployment

    /// A primary and its synchronous standby in a directory and on ports of this test's own (so that it collides
    /// neither with the project's cluster on 55432 nor with another checkout's tests), destroyed by ``destroy()``.
    struct HAPair {
        let directory: String
        let ports: (primary: Int, standby: Int)
        /// What `scripts/pg-ha.sh env` printed after the last start or promote.
        private(set) var variables: [String: String] = [:]

        static let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/pg-ha.sh").path

        init() throws {
            // Short: each node's Unix socket path is at most 107 octets.
            directory = "/tmp/mt-ha-\(UUID().uuidString.prefix(8).lowercased())"
            let first = try Self.freePort()
            var second = try Self.freePort()
            while second == first { second = try Self.freePort() }
            ports = (first, second)
        }

        var scriptEnvironment: [String: String] {
            ["METERTRUST_PG_HA_DIR": directory, "METERTRUST_PG_HA_PORT": String(ports.primary), "METERTRUST_PG_HA_STANDBY_PORT": String(ports.standby)]
        }

        @discardableResult
        mutating func run(_ arguments: [String]) throws -> TestEnvironment.ProcessResult {
            let result = try TestEnvironment.run(Self.script, arguments, environment: scriptEnvironment)
            guard result.status == 0 else { throw TestEnvironment.TestSetupError("pg-ha.sh \(arguments.joined(separator: " ")): \(result.stderr)") }
            let printed = try TestEnvironment.run(Self.script, ["env"], environment: scriptEnvironment)
            for line in printed.stdout.split(separator: "\n") where line.hasPrefix("export ") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                let name = String(line[line.index(line.startIndex, offsetBy: 7)..<equals])
                variables[name] = String(line[line.index(after: equals)...]).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
            }
            return result
        }

        func destroy() {
            _ = try? TestEnvironment.run(Self.script, ["destroy"], environment: scriptEnvironment)
        }

        var primaryURL: String { variables["METERTRUST_PG_HA_PRIMARY_URL"]! }
        var passwordFile: String { variables["METERTRUST_PG_HA_PASSWORD_FILE"]! }

        /// SQL on the node that is the primary now (its Unix socket, the superuser's password from the environment).
        func psql(_ sql: String, node: String = "PRIMARY") throws -> TestEnvironment.ProcessResult {
            let password = try String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            return try TestEnvironment.run(
                "/usr/bin/psql",
                ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", variables["METERTRUST_PG_HA_\(node)_SOCKET"]!,
                 "-p", variables["METERTRUST_PG_HA_\(node)_PORT"]!, "-U", "metertrust", "-d", "metertrust", "-c", sql],
                environment: ["PGPASSWORD": password]
            )
        }

        /// A TCP port on 127.0.0.1 nothing listens on now (the kernel's choice), never 55432.
        static func freePort() throws -> Int {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw TestEnvironment.TestSetupError("socket(): \(errno)") }
            defer { close(descriptor) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
            guard bound == 0 else { throw TestEnvironment.TestSetupError("bind(): \(errno)") }
            let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
            guard named == 0 else { throw TestEnvironment.TestSetupError("getsockname(): \(errno)") }
            let port = Int(UInt16(bigEndian: address.sin_port))
            return port == 55432 ? try freePort() : port
        }
    }

    /// Every serial a text names: `serial X`, `"serial":"X"`, `serial=X` (hex, at most 20 octets).
    static func serialsNamed(in text: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: #"serial"?\s*[:=]?\s*"?([0-9A-Fa-f]{2,40})(?![0-9A-Fa-f])"#, options: [.caseInsensitive])
        let range = NSRange(text.startIndex..., in: text)
        return Set(pattern.matches(in: text, range: range).compactMap { match in
            Range(match.range(at: 1), in: text).map { text[$0].lowercased() }
        })
    }

    @Test("attacker: the primary's machine dies (SIGKILL of the postmaster and every child) mid-batch; after promoting the synchronous standby and re-running the same batch, every meter is issued exactly once, every serial the killed run named or the old primary showed is on the new primary, no serial twice, audit verify passes")
    func failoverWithoutLoss() throws {
        var pair = try HAPair()
        defer { pair.destroy() }
        try pair.run(["start"])
        // The standby is synchronous before anything is written.
        #expect(try pair.psql("SELECT state || '/' || sync_state FROM pg_stat_replication").stdout == "streaming/sync\n")
        #expect(try pair.psql("SHOW synchronous_commit").stdout == "on\n")

        // A deployment on the primary.
        let hsm = try TestEnvironment.makeIsolatedToken()
        let deployment = Deployment(
            dataDirectory: TestEnvironment.temporaryDirectory().appendingPathComponent("data"),
            environment: hsm.environment, tokenLabel: hsm.label, securityOfficerPIN: hsm.securityOfficerPIN
        )
        func initialise(_ url: String, _ extra: [String] = []) throws -> [String: Any] {
            try deployment.json(["init", "--token-label", hsm.label, "--module", TestEnvironment.modulePath, "--store", url, "--store-password-file", pair.passwordFile] + extra)
        }
        #expect(try initialise(pair.primaryURL)["backend"] as? String == "PostgreSQL")
        _ = try deployment.json(["ca", "create-root", "--name", "root"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme"])
        _ = try deployment.json(["audit", "init"])

        // A batch of five rounds (the engine commits 2,048 certificates per transaction).
        let batch = "failover-1"
        let count = 10_000
        let arguments = try ScaleOutTests.batchArguments(deployment, id: batch, manufacturer: "acme", first: 0x0024_BEFF_FE50_0000, count: count)
        let out = deployment.file(batch) + "/out"
        let killedOutput = TestEnvironment.temporaryDirectory()
        let killedStdout = killedOutput.appendingPathComponent("stdout")
        let killedStderr = killedOutput.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: killedStdout.path, contents: nil)
        _ = FileManager.default.createFile(atPath: killedStderr.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.metertrust)
        // Progress on (no --quiet) so that every line the run would show an operator is in its stderr.
        process.arguments = arguments.filter { $0 != "--quiet" }
        process.environment = ProcessInfo.processInfo.environment.merging(deployment.environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: killedStdout)
        process.standardError = try FileHandle(forWritingTo: killedStderr)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // The watcher, on a thread of its own (not the cooperative pool, which other tests can starve): psql on the
        // primary until two rounds are committed, then what the primary shows as committed, then the crash.
        final class Observation: @unchecked Sendable {
            var serials: Set<String> = []
            var crashed = ""
        }
        let observation = Observation()
        let watched = DispatchSemaphore(value: 0)
        let crashPair = pair
        let watcher = Thread {
            defer { watched.signal() }
            let deadline = Date().addingTimeInterval(180)
            while process.isRunning && Date() < deadline {
                let stored = (try? crashPair.psql("SELECT count(*) FROM certificates WHERE batch = '\(batch)'"))
                    .flatMap { Int($0.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
                if stored >= 2 * 2048 { break }
                usleep(20_000)
            }
            // Committed on the primary = acknowledged by the synchronous standby (a commit is visible to other
            // sessions only once its wait for the standby is over).
            let committed = (try? crashPair.psql("SELECT serial FROM certificates WHERE batch = '\(batch)'"))?.stdout ?? ""
            observation.serials = Set(committed.split(separator: "\n").map { $0.lowercased() })
            var crasher = crashPair
            observation.crashed = (try? crasher.run(["crash"]))?.stderr ?? "the crash failed"
        }
        watcher.start()
        watched.wait()
        #expect(observation.crashed.contains("killed with SIGKILL"), "\(observation.crashed)")
        let seen = observation.serials
        #expect(seen.count >= 2 * 2048 && seen.count < count, "the crash must land mid-batch: \(seen.count) of \(count) committed")

        // The killed run's database is gone: the batch fails with store.unavailable once no connection comes within
        // the store's operation timeout (40 s), instead of waiting for ever (postgres-nio's pool alone queues the request
        // with no deadline).
        let exitDeadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < exitDeadline { usleep(100_000) }
        #expect(!process.isRunning, "the batch is still running 120 s after its database died")
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let stopDeadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < stopDeadline { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 3, "exit status \(process.terminationStatus): store.unavailable is 3")
        var named = Set<String>()
        var killedText = (try String(contentsOf: killedStdout, encoding: .utf8)) + (try String(contentsOf: killedStderr, encoding: .utf8))
        for file in (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? [] where !file.hasSuffix(".txt") {
            killedText += (try? String(contentsOfFile: "\(out)/\(file)", encoding: .utf8)) ?? ""
        }
        named = Self.serialsNamed(in: killedText)
        #expect(!FileManager.default.fileExists(atPath: out + "/bundles.jsonl"), "no output before the batch is issued")

        // Promote the standby; point the deployment at it (the rest of the configuration kept).
        try pair.run(["promote"])
        #expect(try pair.psql("SELECT pg_is_in_recovery()").stdout == "f\n")
        let before = try String(contentsOfFile: deployment.dataDirectory.appendingPathComponent("metertrust.json").path, encoding: .utf8)
        _ = try initialise(pair.primaryURL, ["--force"])
        let configuration = try String(contentsOfFile: deployment.dataDirectory.appendingPathComponent("metertrust.json").path, encoding: .utf8)
        #expect(configuration.contains(":\(pair.ports.standby)/metertrust"), "\(configuration)")
        for kept in ["rootFingerprint", "certificateSerial", "keyLabel"] {
            let line = before.split(separator: "\n").first { $0.contains("\"\(kept)\"") }
            #expect(line.map { configuration.contains($0) } == true, "init --force lost \(kept)")
        }

        // Nothing acknowledged was lost: what the old primary showed, and what the killed run named, is there.
        let promoted = Set(try pair.psql("SELECT serial FROM certificates WHERE batch = '\(batch)'").stdout.split(separator: "\n").map { $0.lowercased() })
        #expect(seen.isSubset(of: promoted), "\(seen.subtracting(promoted).count) committed certificates lost in the fail-over")
        #expect(named.isSubset(of: promoted), "serials the killed run named are missing: \(named.subtracting(promoted))")

        // The same command again, against the new primary: it resumes.
        let resumed = try TestEnvironment.run(TestEnvironment.metertrust, arguments, environment: deployment.environment)
        try #require(resumed.status == 0, "\(resumed.stderr)")
        let report = try ScaleOutTests.document(resumed)
        let counts = try #require(report["counts"] as? [String: Int])
        #expect(counts["alreadyIssued"] == promoted.count && counts["issued"] == count - promoted.count, "\(counts)")
        #expect(report["refusalsTotal"] as? Int == 0, "\(report)")

        // Every meter exactly once, one certificate per meter, no serial twice.
        #expect(try pair.psql("SELECT count(*) FROM device_identities").stdout == "\(count)\n")
        #expect(try pair.psql("""
            SELECT count(*), count(DISTINCT eui64), count(DISTINCT serial) FROM certificates WHERE kind = 'device-identity'
            """).stdout == "\(count)|\(count)|\(count)\n")
        #expect(try pair.psql("SELECT count(*) FROM (SELECT serial FROM certificates GROUP BY serial HAVING count(*) > 1) twice").stdout == "0\n")
        let final = Set(try pair.psql("SELECT serial FROM certificates WHERE batch = '\(batch)'").stdout.split(separator: "\n").map { $0.lowercased() })
        #expect(promoted.isSubset(of: final) && final.count == count)
        // Every serial the resumed run's outputs name is stored, and every bundle's certificate is one of them.
        let resumedNames = Self.serialsNamed(in: resumed.stdout + resumed.stderr)
        #expect(resumedNames.isSubset(of: final), "\(resumedNames.subtracting(final))")
        let bundles = try Data(contentsOf: URL(fileURLWithPath: out + "/bundles.jsonl")).split(separator: UInt8(ascii: "\n"))
        #expect(bundles.count == count)

        // The audit log, whose entries before the crash came over with the standby, verifies (its HSM head included).
        let verified = try deployment.json(["audit", "verify"])
        #expect(verified["verified"] as? Bool == true, "\(verified)")
    }
}
