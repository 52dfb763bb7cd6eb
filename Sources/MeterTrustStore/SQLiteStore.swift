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
        migrator.registerMigration("0002-factory-batches") { db in
            try db.execute(sql: """
                ALTER TABLE certificates ADD COLUMN batch TEXT;
                ALTER TABLE certificates ADD COLUMN batch_position BIGINT;
                CREATE UNIQUE INDEX device_identity_per_meter ON certificates (eui64) WHERE profile = 'device-identity';
                CREATE INDEX certificates_batch ON certificates (batch, batch_position);
                CREATE TABLE batches (
                    id TEXT NOT NULL PRIMARY KEY,
                    manufacturer TEXT NOT NULL REFERENCES certificate_authorities (name),
                    manifest_sha256 TEXT NOT NULL,
                    meter_count BIGINT NOT NULL,
                    created_at BIGINT NOT NULL,
                    completed_at BIGINT
                );
                """)
        }
        migrator.registerMigration("0003-audit-log") { db in
            try db.execute(sql: """
                CREATE TABLE audit_entries (
                    position BIGINT NOT NULL PRIMARY KEY,
                    entry BLOB NOT NULL,
                    created_at BIGINT NOT NULL
                );
                CREATE TABLE audit_checkpoints (
                    size BIGINT NOT NULL PRIMARY KEY,
                    note TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                );
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
                (issuer, serial, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at,
                 batch, batch_position)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: arguments(c)
        )
    }

    private static func arguments(_ c: CertificateRecord) -> StatementArguments {
        [
            c.issuer, c.serial, c.profile, c.subject, c.eui64, Int64(c.notBefore.timeIntervalSince1970),
            Int64(c.notAfter.timeIntervalSince1970), c.fingerprintSHA256, Data(c.der),
            Int64(c.createdAt.timeIntervalSince1970), c.batch, c.batchPosition,
        ]
    }

    public func certificates(serial: String) async throws -> [CertificateRecord] {
        try await run { db in
            // One primary-key probe per CA: the (issuer, serial) key serves this without an index of its own, which
            // would cost every issuance a random B-tree insert.
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM certificates WHERE issuer IN (SELECT name FROM certificate_authorities) AND serial = ? ORDER BY issuer",
                arguments: [serial]
            )
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
            createdAt: Date(timeIntervalSince1970: TimeInterval(row["created_at"] as Int64)),
            batch: row["batch"], batchPosition: row["batch_position"]
        )
    }

    // MARK: Factory batches

    public func beginBatch(_ batch: BatchRecord) async throws -> BatchRecord {
        try await writeReturning { db in
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ?", arguments: [batch.id]) {
                let existing = Self.batch(from: row)
                guard existing.manifestSHA256 == batch.manifestSHA256, existing.manufacturer == batch.manufacturer else {
                    throw StoreError(
                        .duplicate,
                        "batch \(batch.id) already exists with a different manifest: give a changed batch a new id"
                    )
                }
                return existing
            }
            try db.execute(
                sql: "INSERT INTO batches (id, manufacturer, manifest_sha256, meter_count, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [batch.id, batch.manufacturer, batch.manifestSHA256, batch.meterCount, Int64(batch.createdAt.timeIntervalSince1970)]
            )
            return batch
        }
    }

    public func completeBatch(id: String, at date: Date) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE batches SET completed_at = ? WHERE id = ?", arguments: [Int64(date.timeIntervalSince1970), id])
        }
    }

    public func batch(id: String) async throws -> BatchRecord? {
        try await run { db in try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ?", arguments: [id]).map(Self.batch(from:)) }
    }

    private static func batch(from row: Row) -> BatchRecord {
        BatchRecord(
            id: row["id"], manufacturer: row["manufacturer"], manifestSHA256: row["manifest_sha256"], meterCount: row["meter_count"],
            createdAt: Date(timeIntervalSince1970: TimeInterval(row["created_at"] as Int64)),
            completedAt: (row["completed_at"] as Int64?).map { Date(timeIntervalSince1970: TimeInterval($0)) }
        )
    }

    public func deviceIdentities(eui64s: [String]) async throws -> [String: DeviceIdentityEntry] {
        guard !eui64s.isEmpty else { return [:] }
        return try await run { db in
            var found: [String: DeviceIdentityEntry] = [:]
            // Bounded IN lists: SQLite's default limit on host parameters is 32766.
            for start in stride(from: 0, to: eui64s.count, by: 1000) {
                let slice = Array(eui64s[start..<min(start + 1000, eui64s.count)])
                let placeholders = Array(repeating: "?", count: slice.count).joined(separator: ",")
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT eui64, issuer, serial, batch, batch_position FROM certificates
                        WHERE profile = 'device-identity' AND eui64 IN (\(placeholders))
                        """,
                    arguments: StatementArguments(slice)
                )
                for row in rows {
                    let eui: String = row["eui64"]
                    found[eui] = DeviceIdentityEntry(
                        eui64: eui, issuer: row["issuer"], serial: row["serial"], batch: row["batch"], batchPosition: row["batch_position"]
                    )
                }
            }
            return found
        }
    }

    public func insertDeviceIdentities(_ certificates: [CertificateRecord]) async throws -> [Bool] {
        try await writeReturning { db in
            let statement = try db.cachedStatement(sql: """
                INSERT INTO certificates
                (issuer, serial, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at,
                 batch, batch_position)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (eui64) WHERE profile = 'device-identity' DO NOTHING
                """)
            return try certificates.map { certificate in
                statement.setUncheckedArguments(Self.arguments(certificate))
                try statement.execute()
                return db.changesCount == 1
            }
        }
    }

    public func batchCertificates(batch: String, afterPosition position: Int64, limit: Int) async throws -> [CertificateRecord] {
        try await run { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM certificates WHERE batch = ? AND batch_position > ? ORDER BY batch_position LIMIT ?",
                arguments: [batch, position, limit]
            ).map(Self.certificate(from:))
        }
    }

    public func batchCertificateCount(batch: String) async throws -> Int {
        try await run { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM certificates WHERE batch = ?", arguments: [batch]) ?? 0 }
    }

    // MARK: Audit log

    public func appendAuditEntry(_ make: @escaping @Sendable (AuditRow?) throws -> [UInt8]) async throws -> Int64 {
        try await writeReturning { db in
            let last = try Row.fetchOne(db, sql: "SELECT position, entry FROM audit_entries ORDER BY position DESC LIMIT 1")
                .map { AuditRow(position: $0["position"], entry: Array($0["entry"] as Data)) }
            let position = (last?.position ?? -1) + 1
            let entry = try make(last)
            try db.execute(
                sql: "INSERT INTO audit_entries (position, entry, created_at) VALUES (?, ?, ?)",
                arguments: [position, Data(entry), Int64(Date().timeIntervalSince1970)]
            )
            return position
        }
    }

    public func auditEntries(after position: Int64, limit: Int) async throws -> [AuditRow] {
        try await run { db in
            try Row.fetchAll(
                db, sql: "SELECT position, entry FROM audit_entries WHERE position > ? ORDER BY position LIMIT ?", arguments: [position, limit]
            ).map { AuditRow(position: $0["position"], entry: Array($0["entry"] as Data)) }
        }
    }

    public func auditEntryCount() async throws -> Int64 {
        try await run { db in try Int64.fetchOne(db, sql: "SELECT count(*) FROM audit_entries") ?? 0 }
    }

    public func insertAuditCheckpoint(size: Int64, note: String) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?) ON CONFLICT (size) DO NOTHING",
                arguments: [size, note, Int64(Date().timeIntervalSince1970)]
            )
        }
    }

    public func auditCheckpoints() async throws -> [AuditCheckpointRow] {
        try await run { db in
            try Row.fetchAll(db, sql: "SELECT size, note FROM audit_checkpoints ORDER BY size").map {
                AuditCheckpointRow(size: $0["size"], note: $0["note"])
            }
        }
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
        try await writeReturning(body)
    }

    private func writeReturning<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(body)
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
