import Dispatch
import Foundation
import GRDB

/// The embedded store: one SQLite file in WAL mode (GRDB `DatabasePool`: one writer, concurrent readers).
public final class SQLiteStore: MeterTrustStore {
    public let path: String
    private let pool: DatabasePool

    /// Opens (creating if needed) the database at `path`. Call ``migrate()`` before first use.
    public init(path: String) throws {
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

    /// The SQLite journal mode in force (`wal`).
    public func journalMode() async throws -> String {
        try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    // MARK: Migrations

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        // Each migration is append-only: never edit one that has shipped, add a new one.
        migrator.registerMigration("0001-certificates-and-authorities") { db in
            try db.execute(sql: """
                CREATE TABLE certificates (
                    issuer TEXT NOT NULL,
                    serial TEXT NOT NULL,
                    profile TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    eui64 TEXT,
                    not_before BIGINT NOT NULL,
                    not_after BIGINT NOT NULL,
                    fingerprint_sha256 TEXT NOT NULL,
                    der BLOB NOT NULL,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (issuer, serial)
                );
                CREATE INDEX certificates_serial ON certificates (serial);
                CREATE INDEX certificates_eui64 ON certificates (eui64);
                CREATE TABLE certificate_authorities (
                    name TEXT NOT NULL PRIMARY KEY,
                    role TEXT NOT NULL,
                    parent TEXT REFERENCES certificate_authorities (name),
                    key_label TEXT NOT NULL UNIQUE,
                    key_id TEXT NOT NULL,
                    curve TEXT NOT NULL,
                    certificate_serial TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                );
                CREATE UNIQUE INDEX one_root ON certificate_authorities (role) WHERE role = 'root';
                """)
        }
        return migrator
    }

    public func migrate() async throws {
        do {
            // DatabaseMigrator is synchronous; run it off the cooperative pool.
            let pool = self.pool
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                DispatchQueue.global().async { continuation.resume(with: Result { try Self.migrator.migrate(pool) }) }
            }
        } catch {
            throw StoreError(.migration, "cannot migrate the store \(path): \(Self.reason(error))")
        }
    }

    public func appliedMigrations() async throws -> [String] {
        try await run { db in try Self.migrator.appliedMigrations(db) }
    }

    // MARK: Certificates

    public func insertCertificate(_ certificate: CertificateRecord) async throws {
        try await insertCertificates([certificate])
    }

    public func insertCertificates(_ certificates: [CertificateRecord]) async throws {
        try await write { db in
            for certificate in certificates { try Self.insert(certificate, into: db) }
        }
    }

    private static func insert(_ c: CertificateRecord, into db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO certificates
                (issuer, serial, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                c.issuer, c.serial, c.profile, c.subject, c.eui64, Int64(c.notBefore.timeIntervalSince1970),
                Int64(c.notAfter.timeIntervalSince1970), c.fingerprintSHA256, Data(c.der),
                Int64(c.createdAt.timeIntervalSince1970),
            ]
        )
    }

    public func certificates(serial: String) async throws -> [CertificateRecord] {
        try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM certificates WHERE serial = ? ORDER BY issuer", arguments: [serial])
                .map(Self.certificate(from:))
        }
    }

    public func certificate(issuer: String, serial: String) async throws -> CertificateRecord? {
        try await run { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM certificates WHERE issuer = ? AND serial = ?", arguments: [issuer, serial]
            ).map(Self.certificate(from:))
        }
    }

    public func certificateCount(issuer: String?) async throws -> Int {
        try await run { db in
            if let issuer {
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM certificates WHERE issuer = ?", arguments: [issuer]) ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM certificates") ?? 0
        }
    }

    private static func certificate(from row: Row) -> CertificateRecord {
        CertificateRecord(
            issuer: row["issuer"], serial: row["serial"], profile: row["profile"], subject: row["subject"],
            eui64: row["eui64"], notBefore: Date(timeIntervalSince1970: TimeInterval(row["not_before"] as Int64)),
            notAfter: Date(timeIntervalSince1970: TimeInterval(row["not_after"] as Int64)),
            fingerprintSHA256: row["fingerprint_sha256"], der: Array(row["der"] as Data),
            createdAt: Date(timeIntervalSince1970: TimeInterval(row["created_at"] as Int64))
        )
    }

    // MARK: Certificate authorities

    public func insertCertificateAuthority(_ authority: CertificateAuthorityRecord, certificate: CertificateRecord) async throws {
        try await write { db in
            try Self.insert(certificate, into: db)
            try db.execute(
                sql: """
                    INSERT INTO certificate_authorities
                    (name, role, parent, key_label, key_id, curve, certificate_serial, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    authority.name, authority.role.rawValue, authority.parent, authority.keyLabel, authority.keyID,
                    authority.curve, authority.certificateSerial, Int64(authority.createdAt.timeIntervalSince1970),
                ]
            )
        }
    }

    public func certificateAuthority(named name: String) async throws -> CertificateAuthorityRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM certificate_authorities WHERE name = ?", arguments: [name])
                .map(Self.authority(from:))
        }
    }

    public func certificateAuthorities() async throws -> [CertificateAuthorityRecord] {
        try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM certificate_authorities ORDER BY created_at, name")
                .map(Self.authority(from:))
        }
    }

    private static func authority(from row: Row) throws -> CertificateAuthorityRecord {
        let roleName: String = row["role"]
        guard let role = CertificateAuthorityRole(rawValue: roleName) else {
            throw StoreError(.corrupt, "certificate authority \(row["name"] as String) has unknown role \(roleName)")
        }
        return CertificateAuthorityRecord(
            name: row["name"], role: role, parent: row["parent"], keyLabel: row["key_label"], keyID: row["key_id"],
            curve: row["curve"], certificateSerial: row["certificate_serial"],
            createdAt: Date(timeIntervalSince1970: TimeInterval(row["created_at"] as Int64))
        )
    }

    // MARK: Plumbing

    private func run<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.unavailable, "reading the store \(path) failed: \(Self.reason(error))")
        }
    }

    private func write(_ body: @escaping @Sendable (Database) throws -> Void) async throws {
        do {
            try await pool.write(body)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError(.duplicate, "the store refused a duplicate: \(error.message ?? "constraint violated")")
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.unavailable, "writing to the store \(path) failed: \(Self.reason(error))")
        }
    }

    private static func reason(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error.resultCode)" }
        return "\(error)"
    }
}
