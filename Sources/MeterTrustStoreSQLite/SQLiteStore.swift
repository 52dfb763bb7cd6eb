import Dispatch
import Foundation
import GRDB
import MeterTrustStore

#if canImport(Glibc)
import Glibc
private let closeDescriptor = Glibc.close
#elseif canImport(Darwin)
import Darwin
private let closeDescriptor = Darwin.close
#endif

/// The embedded store: one SQLite file in WAL mode (GRDB `DatabasePool`: one writer, concurrent readers).
///
/// One file per view: SQLiteStore+Certificates, +Authorities, +Batches, +Audit, +Quorum, +Revocation; the schema in
/// Migrations/ (one file per migration, append-only); how SQLite's errors become ``StoreError`` codes in
/// SQLiteStore+Errors.
public final class SQLiteStore: MeterTrustStore {
    public let path: String
    let pool: DatabasePool

    /// Opens (creating if needed) the database at `path`. Call ``migrate()`` before first use.
    ///
    /// A new database file is created with mode 0600 before SQLite opens it, so no other account can read the store;
    /// SQLite gives its `-wal` and `-shm` files the database file's mode.
    public init(path: String) throws {
        try Self.createPrivately(path)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.label = "metertrust"
        do {
            self.pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw StoreError(.unavailable, "cannot open the SQLite store \(path): \(Self.reason(error))")
        }
        self.path = path
    }

    /// Creates an empty file at `path` with mode 0600 (`O_EXCL`: an existing file is left as it is; `O_NOFOLLOW`: a
    /// planted symbolic link is not followed). SQLite reads an empty file as an empty database.
    static func createPrivately(_ path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if descriptor >= 0 {
            _ = closeDescriptor(descriptor)
            return
        }
        let error = errno
        guard error == EEXIST else {
            throw StoreError(.unavailable, "cannot create the SQLite store \(path): \(String(cString: strerror(error)))")
        }
    }

    /// Closes every connection now (the last one checkpoints the WAL and removes the `-wal` and `-shm` files), e.g.
    /// before the directory that holds the store is renamed; the store cannot be used afterwards.
    public func close() throws {
        do {
            try pool.close()
        } catch {
            throw StoreError(.unavailable, "cannot close the SQLite store \(path): \(Self.reason(error))")
        }
    }

    /// The SQLite journal mode in force (`wal`).
    public func journalMode() async throws -> String {
        try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    // MARK: Migrations

    public func migrate() async throws {
        do {
            // DatabaseMigrator is synchronous; run it off the cooperative pool.
            let pool = self.pool
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                DispatchQueue.global().async { continuation.resume(with: Result { try SQLiteMigrations.migrator.migrate(pool) }) }
            }
        } catch {
            throw StoreError(.migration, "cannot migrate the store \(path): \(Self.reason(error))")
        }
    }

    public func appliedMigrations() async throws -> [String] {
        try await run { db in try SQLiteMigrations.migrator.appliedMigrations(db) }
    }

    /// Runs raw SQL in one write transaction, errors mapped like every other write's: for the backend-specific tests
    /// (`@testable import`) of constraints the API itself never lets a caller reach.
    func execute(rawSQL sql: String) async throws {
        try await write { db in try db.execute(sql: sql) }
    }

    static func seconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970.rounded(.down)) }
    static func date(_ seconds: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(seconds)) }

    // MARK: Plumbing

    func run<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.unavailable, "reading the store \(path) failed: \(Self.reason(error))")
        }
    }

    /// An error thrown by a caller's check inside a transaction: rolls the transaction back and reaches the caller as
    /// it was, not as a store failure.
    struct CallerRefusal: Error {
        let underlying: any Error
    }

    func write(_ body: @escaping @Sendable (Database) throws -> Void) async throws {
        try await writeReturning(body)
    }

    func writeReturning<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(body)
        } catch let refusal as CallerRefusal {
            throw refusal.underlying
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.storeError(writing: error, path: path)
        }
    }
}
