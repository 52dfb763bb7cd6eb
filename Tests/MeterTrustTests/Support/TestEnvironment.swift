import Foundation
import MeterTrustHSM
import MeterTrustStore
import MeterTrustStoreSQLite
import Synchronization

/// Real components for tests: a SoftHSM2 token store made for this test run, SQLite files in a temporary
/// directory, the built `metertrust` binary, the project's Python virtualenv. No mocks.
enum TestEnvironment {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let modulePath = ProcessInfo.processInfo.environment["METERTRUST_HSM_MODULE"] ?? HSMConfiguration.defaultModulePath

    /// A directory for this test process: SoftHSM2 token store, SQLite files, CSRs, PEM files.
    static let runDirectory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("metertrust-tests-\(getpid())-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url.appendingPathComponent("tokens"), withIntermediateDirectories: true)
        return url
    }()

    /// SOFTHSM2_CONF for this run, set in the process environment before SoftHSM2 is first loaded.
    static let softHSMConfiguration: String = {
        let path = runDirectory.appendingPathComponent("softhsm2.conf").path
        let text = """
            directories.tokendir = \(runDirectory.appendingPathComponent("tokens").path)
            objectstore.backend = file
            log.level = ERROR
            slots.removable = false

            """
        try! text.write(toFile: path, atomically: true, encoding: .utf8)
        setenv("SOFTHSM2_CONF", path, 1)
        return path
    }()

    private static let tokenCreation = Mutex(0)

    /// A fresh SoftHSM2 token with a random user PIN in a 0600 PIN file.
    static func makeToken(sessions: Int = 2) throws -> HSMConfiguration {
        _ = softHSMConfiguration
        let (label, pin) = tokenCreation.withLock { count -> (String, String) in
            count += 1
            return ("test-\(count)-\(UUID().uuidString.prefix(8))", UUID().uuidString)
        }
        try tokenCreation.withLock { _ in
            try PKCS11Module.load(path: modulePath).initializeToken(
                label: label, securityOfficerPIN: Array("so-\(pin)".utf8), userPIN: Array(pin.utf8)
            )
        }
        let pinFile = runDirectory.appendingPathComponent("\(label).pin").path
        _ = FileManager.default.createFile(atPath: pinFile, contents: Data(pin.utf8), attributes: [.posixPermissions: 0o600])
        return HSMConfiguration(modulePath: modulePath, tokenLabel: label, pinEnvironmentVariable: nil, pinFile: pinFile, sessionCount: sessions)
    }

    /// A token in a SoftHSM2 token directory of its own, made by `metertrust hsm init-token`, for tests that drive
    /// the binary. SoftHSM2 processes that share a token directory read each other's files while they are being
    /// rewritten (CKR_GENERAL_ERROR, even crashes); a deployment's processes then see only their own token.
    struct IsolatedToken {
        let label: String
        let pin: String
        let securityOfficerPIN: String
        let configuration: String
        /// SOFTHSM2_CONF and METERTRUST_HSM_PIN for the processes that use this token.
        var environment: [String: String] { ["SOFTHSM2_CONF": configuration, "METERTRUST_HSM_PIN": pin] }
    }

    static func makeIsolatedToken(label: String = "deployment") throws -> IsolatedToken {
        let directory = temporaryDirectory().appendingPathComponent("softhsm")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("tokens"), withIntermediateDirectories: true)
        let configuration = directory.appendingPathComponent("softhsm2.conf").path
        try """
            directories.tokendir = \(directory.appendingPathComponent("tokens").path)
            objectstore.backend = file
            log.level = ERROR
            slots.removable = false

            """.write(toFile: configuration, atomically: true, encoding: .utf8)
        let token = IsolatedToken(label: label, pin: UUID().uuidString, securityOfficerPIN: "so-\(UUID().uuidString)", configuration: configuration)
        let made = try run(
            metertrust, ["hsm", "init-token", "--label", label, "--module", modulePath],
            environment: token.environment.merging(["METERTRUST_HSM_SO_PIN": token.securityOfficerPIN]) { $1 }
        )
        guard made.status == 0 else { throw TestSetupError("hsm init-token: \(made.stderr)") }
        return token
    }

    struct TestSetupError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func openToken(sessions: Int = 2) throws -> HSMToken {
        try HSMToken.open(try makeToken(sessions: sessions))
    }

    /// A new, migrated SQLite store in its own file.
    static func makeStore() async throws -> SQLiteStore {
        let store = try SQLiteStore(path: temporaryDirectory().appendingPathComponent("store.sqlite").path)
        try await store.migrate()
        return store
    }

    static func temporaryDirectory() -> URL {
        let url = runDirectory.appendingPathComponent(UUID().uuidString)
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The project's virtualenv Python (created by `make test`), with cryptography and pkilint.
    static var python: String {
        ProcessInfo.processInfo.environment["METERTRUST_PYTHON"] ?? packageRoot.appendingPathComponent(".venv/bin/python").path
    }

    static func tool(_ name: String) -> String {
        packageRoot.appendingPathComponent("Tests/tools/\(name)").path
    }

    /// The `metertrust` executable built with the tests.
    static var metertrust: String {
        if let path = ProcessInfo.processInfo.environment["METERTRUST_BIN"] { return path }
        return packageRoot.appendingPathComponent(".build/debug/metertrust").path
    }

    struct ProcessResult {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a program to completion; output goes through files so large outputs cannot deadlock a pipe.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], in directory: URL? = nil) throws -> ProcessResult {
        let process = Process()
        let resolved = executable.hasPrefix("/") ? executable : "/usr/bin/env"
        process.executableURL = URL(fileURLWithPath: resolved)
        process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
        var env = ProcessInfo.processInfo.environment
        env["SOFTHSM2_CONF"] = softHSMConfiguration
        for (key, value) in environment { env[key] = value }
        process.environment = env
        if let directory { process.currentDirectoryURL = directory }
        let outputs = temporaryDirectory()
        let stdoutURL = outputs.appendingPathComponent("stdout")
        let stderrURL = outputs.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return ProcessResult(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
        )
    }
}
