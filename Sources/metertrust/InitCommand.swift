import ArgumentParser
import Foundation
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore
import MeterTrustStorePostgres
import MeterTrustStoreSQLite

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a data directory: configuration file and store; check that the HSM token opens.",
        discussion: """
            Atomic: the directory is built under a temporary name and renamed into place, so a failure leaves nothing \
            and the retry needs no --force. `metertrust setup` runs init and the first CAs in one go.

            EXAMPLES:
              METERTRUST_HSM_PIN=... metertrust init --data-dir /var/lib/metertrust --token-label metertrust
              metertrust init --module /opt/vendor/lib/pkcs11.so --token-label ca --pin-file /etc/metertrust/pin
              METERTRUST_STORE_PASSWORD=... metertrust init --data-dir node1 \\
                  --store 'postgres://metertrust@db.example:5432/metertrust?sslmode=verify-full'

            STORE: the embedded SQLite file by default; with --store postgres://USER@HOST:PORT/DATABASE a PostgreSQL \
            database (which must exist) shared by several nodes, each with a data directory of its own. The URL holds \
            no password: init reads it from $METERTRUST_STORE_PASSWORD or --store-password-file (mode 0600). TLS to \
            the database is verified (sslmode=verify-full, sslrootcert=FILE for a private CA) unless the URL says \
            otherwise; a Unix socket: postgres://USER@/DATABASE?host=/run/postgresql.
            """
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
    @Option(name: .customLong("store"), help: "Store: a postgres:// URL (no password in it); default: the SQLite file in the data directory.")
    var store: String?
    @Option(name: .customLong("store-password-file"), help: "File (mode 0600) holding the PostgreSQL password; overrides --store-password-env.")
    var storePasswordFile: String?
    @Option(name: .customLong("store-password-env"), help: "Environment variable holding the PostgreSQL password.")
    var storePasswordEnvironmentVariable = StorePassword.defaultEnvironmentVariable
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
        var configuration = Configuration(hsm: hsm, pki: PKISettings(environment: environment))
        if let store {
            guard PostgresStoreLocation.isPostgresURL(store) else {
                throw CLIError(code: .usage, "--store takes a postgres:// URL (the SQLite store needs no option): \(store) is not one")
            }
            _ = try PostgresStoreLocation(url: store)
            configuration.postgres = PostgresSettings(
                url: store, passwordFile: storePasswordFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
                passwordEnvironmentVariable: storePasswordEnvironmentVariable
            )
        } else if storePasswordFile != nil {
            throw CLIError(code: .usage, "--store-password-file goes with --store postgres://…")
        }
        let result = try await Self.initialize(at: dataDirectory.url, configuration: configuration, force: force)
        if output.json {
            try Output.json(result)
        } else {
            Output.line("initialised \(result.dataDirectory)")
            Output.line("  configuration: \(result.configurationFile)")
            let detail = result.journalMode.map { ", \($0) journal" } ?? ""
            Output.line("  store:         \(result.store) (\(result.backend)\(detail), migrations: \(result.migrations.joined(separator: ", ")))")
            Output.line("  HSM token:     \(result.tokenLabel) via \(result.module), \(result.sessions) sessions")
        }
    }

    struct Result: Encodable {
        var dataDirectory: String
        var configurationFile: String
        var store: String
        /// `SQLite` or `PostgreSQL`.
        var backend: String
        /// SQLite's journal mode (`wal`); absent for PostgreSQL.
        var journalMode: String?
        var migrations: [String]
        var module: String
        var tokenLabel: String
        var sessions: Int
    }

    /// Logs in to the token once to prove it works, then writes the configuration and creates and migrates the store.
    ///
    /// A new data directory is built under a temporary name beside it (`.NAME.init-XXXXXX`, locked while this process
    /// runs) and renamed into place only when everything succeeded, so no failure — SIGKILL included — leaves a
    /// half-made one, and a retry needs no --force; temporary directories a killed init left are removed by the next.
    /// With `force` on an existing data directory, its store is kept (and migrated) and the configuration replaced
    /// by an atomic rename, after the token opened, keeping the root fingerprint, audit and admin-server settings.
    static func initialize(at directory: URL, configuration: Configuration, force: Bool) async throws -> Result {
        let configurationFile = directory.appendingPathComponent(Configuration.fileName)
        let existing = FileManager.default.fileExists(atPath: configurationFile.path)
        if existing && !force {
            throw CLIError("\(configurationFile.path) already exists: use --force to overwrite it, or another --data-dir")
        }
        let token = try HSMToken.open(configuration.hsm)
        if existing {
            // The store is kept, so what the deployment already settled stays with it: the store's file, the root's
            // fingerprint, the audit key and the admin server. Only the HSM and PKI settings given now replace the old.
            var configuration = configuration
            if let previous = try? Configuration.load(dataDirectory: directory) {
                configuration.sqlitePath = previous.sqlitePath
                if configuration.postgres == nil { configuration.postgres = previous.postgres }
                configuration.rootFingerprint = previous.rootFingerprint
                configuration.audit = previous.audit
                configuration.adminServer = previous.adminServer
            }
            return try await populate(directory, configuration: configuration, token: token, finalDirectory: directory)
        }
        let staging = try StagedDirectory(for: directory)
        let result = try await populate(staging.url, configuration: configuration, token: token, finalDirectory: directory)
        try staging.commit()
        return result
    }

    /// Writes the configuration and the store into `directory`; the result names the paths they will have in
    /// `finalDirectory`. The store is closed when this returns.
    private static func populate(_ directory: URL, configuration: Configuration, token: HSMToken, finalDirectory: URL) async throws -> Result {
        do {
            try configuration.write(to: directory)
        } catch {
            throw CLIError(code: .fileSystem, "cannot write to \(directory.path): \(error.localizedDescription)")
        }
        if let postgres = configuration.postgres {
            // A shared database: migrated here (init is the operator's step that may change its schema).
            let store = try await StoreOpening.openPostgres(postgres)
            try await store.migrate()
            let result = Result(
                dataDirectory: finalDirectory.path, configurationFile: finalDirectory.appendingPathComponent(Configuration.fileName).path,
                store: store.location.description, backend: "PostgreSQL", journalMode: nil, migrations: try await store.appliedMigrations(),
                module: configuration.hsm.modulePath, tokenLabel: token.label, sessions: token.sessionCount
            )
            await store.close()
            return result
        }
        let store = try SQLiteStore(path: configuration.storePath(in: directory))
        try await store.migrate()
        let result = Result(
            dataDirectory: finalDirectory.path, configurationFile: finalDirectory.appendingPathComponent(Configuration.fileName).path,
            store: configuration.storePath(in: finalDirectory), backend: "SQLite", journalMode: try await store.journalMode(),
            migrations: try await store.appliedMigrations(), module: configuration.hsm.modulePath, tokenLabel: token.label,
            sessions: token.sessionCount
        )
        try store.close()
        return result
    }
}

/// A directory built under a temporary name beside its target and renamed into place when complete.
///
/// The temporary directory, `.NAME.init-XXXXXX` in the target's parent, is made 0700 by `mkdtemp` and held with an
/// exclusive `flock` for as long as this process lives (the kernel drops the lock when the process dies, SIGKILL
/// included). Creating one first removes the temporaries of the same target that no live process holds: what a
/// killed init left. An uncommitted one is removed when this value goes away.
final class StagedDirectory {
    let target: URL
    let url: URL
    private var descriptor: Int32
    private var committed = false

    init(for target: URL) throws {
        self.target = target
        let parent = target.deletingLastPathComponent()
        let prefix = ".\(target.lastPathComponent).init-"
        do {
            try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        } catch {
            throw CLIError(code: .fileSystem, "cannot create \(parent.path): \(error.localizedDescription)")
        }
        try StagedDirectory.checkEmptyOrAbsent(target)
        StagedDirectory.removeAbandoned(in: parent, prefix: prefix)
        var template = Array(parent.appendingPathComponent(prefix + "XXXXXX").path.utf8CString)
        var failure: Int32 = 0
        let made: String? = template.withUnsafeMutableBufferPointer { buffer in
            guard let made = mkdtemp(buffer.baseAddress!) else {
                failure = errno
                return nil
            }
            return String(cString: made)
        }
        guard let path = made else {
            throw CLIError(
                code: .fileSystem,
                "cannot create a directory in \(parent.path) (\(String(cString: strerror(failure)))): init builds the data directory beside \(target.path) and renames it into place, so \(parent.path) must be writable; or give a --data-dir elsewhere"
            )
        }
        url = URL(fileURLWithPath: path)
        descriptor = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0, flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let error = errno
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
            try? FileManager.default.removeItem(atPath: path)
            throw CLIError(code: .fileSystem, "cannot lock \(path): \(String(cString: strerror(error)))")
        }
    }

    /// Renames the directory to its target (an absent target, or an empty directory, which it replaces) and makes the
    /// rename durable.
    func commit() throws {
        guard rename(url.path, target.path) == 0 else {
            let error = errno
            if error == ENOTEMPTY || error == EEXIST {
                throw CLIError("\(target.path) was created by someone else meanwhile: nothing was changed there; run init again")
            }
            throw CLIError(code: .fileSystem, "cannot rename \(url.path) to \(target.path): \(String(cString: strerror(error)))")
        }
        committed = true
        let parent = open(target.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if parent >= 0 {
            _ = fsync(parent)
            close(parent)
        }
        close(descriptor)
        descriptor = -1
    }

    deinit {
        if !committed { try? FileManager.default.removeItem(at: url) }
        if descriptor >= 0 { close(descriptor) }
    }

    /// The target must not exist, or be an empty directory (which the rename replaces): nothing of anyone's is mixed
    /// with or lost under the new data directory.
    private static func checkEmptyOrAbsent(_ target: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: target.path, isDirectory: &isDirectory) else { return }
        guard isDirectory.boolValue else {
            throw CLIError("\(target.path) exists and is not a directory: give another --data-dir")
        }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: target.path)) ?? []
        guard contents.isEmpty else {
            throw CLIError(
                "\(target.path) is not empty and holds no \(Configuration.fileName): init makes a new data directory; give an empty or new --data-dir"
            )
        }
    }

    /// Removes the temporaries named `prefix…` in `parent` that no process holds (a live init holds its own locked).
    private static func removeAbandoned(in parent: URL, prefix: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []
        for name in names where name.hasPrefix(prefix) {
            let path = parent.appendingPathComponent(name).path
            let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard descriptor >= 0 else { continue }
            defer { close(descriptor) }
            var status = stat()
            guard fstat(descriptor, &status) == 0, status.st_uid == geteuid(), flock(descriptor, LOCK_EX | LOCK_NB) == 0 else { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}
