import Foundation
import MeterTrustCore
import MeterTrustStore
import MeterTrustStorePostgres
import MeterTrustStoreSQLite

/// Which store a deployment uses, as `metertrust.json` records it: the embedded SQLite file (`sqlitePath`, the default)
/// or a PostgreSQL database (`postgres`). The password of the latter is never in the file: only where to read it.
struct PostgresSettings: Codable, Sendable, Hashable {
    /// `postgres://USER@HOST:PORT/DATABASE?sslmode=…`, without a password.
    var url: String
    /// A file (mode 0600 or 0400) holding the database password; overrides the environment variable.
    var passwordFile: String?
    /// The environment variable holding the password (default METERTRUST_STORE_PASSWORD).
    var passwordEnvironmentVariable: String = StorePassword.defaultEnvironmentVariable
}

/// Where the store's password comes from: never argv, never the configuration file, never a log.
enum StorePassword {
    static let defaultEnvironmentVariable = "METERTRUST_STORE_PASSWORD"

    /// The password for `settings`, or nil when none is configured (a server that trusts the connection).
    static func read(_ settings: PostgresSettings) throws -> String? {
        if let path = settings.passwordFile {
            let attributes: [FileAttributeKey: Any]
            do {
                attributes = try FileManager.default.attributesOfItem(atPath: path)
            } catch {
                throw CLIError(code: .configuration, "cannot read the store password file \(path): it does not exist or is not accessible")
            }
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
            guard mode & 0o077 == 0 else {
                throw CLIError(
                    code: .configuration, "the store password file \(path) is readable by others (mode \(String(mode, radix: 8))): run chmod 600 \(path)"
                )
            }
            guard let data = FileManager.default.contents(atPath: path),
                let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .newlines), !text.isEmpty
            else {
                throw CLIError(code: .configuration, "the store password file \(path) is empty or not text")
            }
            return text
        }
        let value = ProcessInfo.processInfo.environment[settings.passwordEnvironmentVariable]
        return value?.isEmpty == false ? value : nil
    }
}

/// Opens stores for the CLI: the one place that knows the backends.
enum StoreOpening {
    /// The store `configuration` names, migrated if it is the embedded SQLite file (one process owns it); a
    /// PostgreSQL store is migrated only by `init` and `store migrate` (several nodes share it, an upgrade is an
    /// operator's step) and refused here if it is behind.
    static func open(_ configuration: Configuration, in dataDirectory: URL) async throws -> any MeterTrustStore {
        guard let postgres = configuration.postgres else {
            let store = try SQLiteStore(path: configuration.storePath(in: dataDirectory))
            try await store.migrate()
            return store
        }
        let store = try await openPostgres(postgres)
        let applied = Set(try await store.appliedMigrations())
        if let missing = PostgresStore.migrationIdentifiers.first(where: { !applied.contains($0) }) {
            throw StoreError(
                .migration,
                "the PostgreSQL store \(store.location) lacks migration \(missing): run metertrust store migrate --data-dir \(dataDirectory.path)"
            )
        }
        return store
    }

    /// A PostgreSQL store whose server answered one direct connection (so a wrong password or an unverified server
    /// is one clear line, not the pool's retries).
    static func openPostgres(_ settings: PostgresSettings) async throws -> PostgresStore {
        let location = try PostgresStoreLocation(url: settings.url)
        let store = try PostgresStore(location: location, password: try StorePassword.read(settings))
        try await store.checkConnection()
        return store
    }

    /// What the CLI tells about a store: its backend and where it is.
    static func describe(_ configuration: Configuration, in dataDirectory: URL) -> (backend: String, location: String) {
        if let postgres = configuration.postgres {
            return ("PostgreSQL", (try? PostgresStoreLocation(url: postgres.url).description) ?? postgres.url)
        }
        return ("SQLite", configuration.storePath(in: dataDirectory))
    }
}
