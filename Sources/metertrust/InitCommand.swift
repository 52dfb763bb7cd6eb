import ArgumentParser
import Foundation
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore
import MeterTrustStoreSQLite

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a data directory: configuration file and store; check that the HSM token opens."
    )

    @OptionGroup var dataDirectory: DataDirectoryOptions
    @Option(help: "PKCS#11 module to load.") var module = HSMConfiguration.defaultModulePath
    @Option(name: .customLong("token-label"), help: "Label of the HSM token.") var tokenLabel = "metertrust"
    @Option(name: .customLong("pin-env"), help: "Environment variable that holds the token's user PIN.")
    var pinEnvironmentVariable = PINSource.defaultEnvironmentVariable
    @Option(name: .customLong("pin-file"), help: "File (mode 0600) that holds the user PIN; overrides --pin-env.")
    var pinFile: String?
    @Option(help: "Number of PKCS#11 sessions (default: number of cores).") var sessions: Int?
    @Option(help: "Policy environment: test or production.") var environment = "test"
    @Flag(help: "Overwrite an existing configuration file.") var force = false
    @OptionGroup var output: OutputOptions

    func run() async throws {
        guard let environment = PKISettings.Environment(rawValue: environment) else {
            throw CLIError(code: .usage, "--environment must be test or production, not \(environment)")
        }
        let hsm = HSMConfiguration(
            modulePath: module, tokenLabel: tokenLabel, pinEnvironmentVariable: pinEnvironmentVariable,
            pinFile: pinFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path }, sessionCount: sessions
        )
        let result = try await Self.initialize(
            at: dataDirectory.url, configuration: Configuration(hsm: hsm, pki: PKISettings(environment: environment)),
            force: force
        )
        if output.json {
            try Output.json(result)
        } else {
            Output.line("initialised \(result.dataDirectory)")
            Output.line("  configuration: \(result.configurationFile)")
            Output.line("  store:         \(result.store) (SQLite, \(result.journalMode) journal, migrations: \(result.migrations.joined(separator: ", ")))")
            Output.line("  HSM token:     \(result.tokenLabel) via \(result.module), \(result.sessions) sessions")
        }
    }

    struct Result: Encodable {
        var dataDirectory: String
        var configurationFile: String
        var store: String
        var journalMode: String
        var migrations: [String]
        var module: String
        var tokenLabel: String
        var sessions: Int
    }

    /// Writes the configuration, creates and migrates the store, and logs in to the token once to prove it works.
    static func initialize(at directory: URL, configuration: Configuration, force: Bool) async throws -> Result {
        let fileManager = FileManager.default
        let configurationFile = directory.appendingPathComponent(Configuration.fileName)
        if fileManager.fileExists(atPath: configurationFile.path) && !force {
            throw CLIError("\(configurationFile.path) already exists: use --force to overwrite it, or another --data-dir")
        }
        do {
            try fileManager.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try configuration.write(to: directory)
        } catch {
            throw CLIError(code: .fileSystem, "cannot write to \(directory.path): \(error.localizedDescription)")
        }
        let store = try SQLiteStore(path: configuration.storePath(in: directory))
        try await store.migrate()
        let token = try HSMToken.open(configuration.hsm)
        return Result(
            dataDirectory: directory.path, configurationFile: configurationFile.path, store: store.path,
            journalMode: try await store.journalMode(), migrations: try await store.appliedMigrations(),
            module: configuration.hsm.modulePath, tokenLabel: token.label, sessions: token.sessionCount
        )
    }
}
