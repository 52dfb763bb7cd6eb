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
        migrator.registerMigration("0004-quorum") { db in
            try db.execute(sql: """
                CREATE TABLE quorum_bootstrap (
                    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
                    created_at BIGINT NOT NULL
                );
                CREATE TABLE custodians (
                    name TEXT NOT NULL PRIMARY KEY,
                    role TEXT NOT NULL,
                    certificate BLOB NOT NULL,
                    fingerprint_sha256 TEXT NOT NULL UNIQUE,
                    registered_at BIGINT NOT NULL,
                    registered_by TEXT,
                    removed_at BIGINT
                );
                CREATE TABLE quorum_policies (
                    operation_class TEXT NOT NULL PRIMARY KEY,
                    required INTEGER NOT NULL CHECK (required >= 1),
                    approver_roles TEXT NOT NULL,
                    requester_may_approve INTEGER NOT NULL,
                    updated_at BIGINT NOT NULL,
                    updated_by TEXT
                );
                CREATE TABLE admin_requests (
                    id TEXT NOT NULL PRIMARY KEY,
                    document BLOB NOT NULL,
                    operation TEXT NOT NULL,
                    requester TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'executing', 'executed', 'failed')),
                    executed_at BIGINT,
                    executed_by TEXT,
                    outcome TEXT
                );
                CREATE INDEX admin_requests_by_state ON admin_requests (state, created_at);
                CREATE TABLE approvals (
                    request_id TEXT NOT NULL REFERENCES admin_requests (id),
                    custodian TEXT NOT NULL REFERENCES custodians (name),
                    document BLOB NOT NULL,
                    received_at BIGINT NOT NULL,
                    PRIMARY KEY (request_id, custodian)
                );
                CREATE TABLE backup_key (
                    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
                    label TEXT NOT NULL,
                    threshold INTEGER NOT NULL,
                    shares BLOB NOT NULL,
                    key_check_value TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                );
                CREATE TABLE revocations (
                    issuer TEXT NOT NULL,
                    serial TEXT NOT NULL,
                    reason INTEGER NOT NULL,
                    revoked_at BIGINT NOT NULL,
                    PRIMARY KEY (issuer, serial),
                    FOREIGN KEY (issuer, serial) REFERENCES certificates (issuer, serial)
                );
                ALTER TABLE certificate_authorities ADD COLUMN destroyed_at BIGINT;
                """)
        }
        migrator.registerMigration("0005-key-custody") { db in
            // The security officer's PIN, split like the backup key; and no backup document kept in a request's
            // outcome any more (they were served to every custodian): only the executor gets one, once.
            try db.execute(sql: """
                ALTER TABLE backup_key ADD COLUMN so_pin_shares BLOB;
                UPDATE admin_requests SET outcome = json_remove(outcome, '$.backup')
                    WHERE operation = 'backup.export' AND outcome IS NOT NULL AND json_valid(outcome);
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
            let insert = try BulkStatement(db, sql: """
                INSERT INTO certificates
                (issuer, serial, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at,
                 batch, batch_position)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (eui64) WHERE profile = 'device-identity' DO NOTHING
                """)
            return try certificates.map { c in
                // The columns of `arguments(_:)`, in its order.
                insert.bind(1, c.issuer)
                insert.bind(2, c.serial)
                insert.bind(3, c.profile)
                insert.bind(4, c.subject)
                insert.bind(5, c.eui64)
                insert.bind(6, Int64(c.notBefore.timeIntervalSince1970))
                insert.bind(7, Int64(c.notAfter.timeIntervalSince1970))
                insert.bind(8, c.fingerprintSHA256)
                insert.bind(9, blob: c.der)
                insert.bind(10, Int64(c.createdAt.timeIntervalSince1970))
                insert.bind(11, c.batch)
                insert.bind(12, c.batchPosition)
                return try insert.run() == 1
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
            createdAt: Date(timeIntervalSince1970: TimeInterval(row["created_at"] as Int64)),
            destroyedAt: (row["destroyed_at"] as Int64?).map(date)
        )
    }

    // MARK: Quorum

    public func bootstrapQuorum(custodians: [CustodianRecord], policies: [QuorumPolicyRecord]) async throws {
        try await write { db in
            try db.execute(sql: "INSERT INTO quorum_bootstrap (id, created_at) VALUES (1, ?)", arguments: [Self.seconds(Date())])
            for custodian in custodians { try Self.insert(custodian, into: db) }
            for policy in policies { try Self.upsert(policy, into: db) }
        }
    }

    public func isQuorumBootstrapped() async throws -> Bool {
        try await run { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM quorum_bootstrap") ?? 0 > 0 }
    }

    public func custodians() async throws -> [CustodianRecord] {
        try await run { db in try Self.custodians(in: db) }
    }

    private static func custodians(in db: Database) throws -> [CustodianRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM custodians ORDER BY registered_at, name").map { row in
            CustodianRecord(
                name: row["name"], role: row["role"], certificateDER: Array(row["certificate"] as Data),
                fingerprintSHA256: row["fingerprint_sha256"], registeredAt: Self.date(row["registered_at"]),
                registeredBy: row["registered_by"], removedAt: (row["removed_at"] as Int64?).map(Self.date)
            )
        }
    }

    public func insertCustodian(_ custodian: CustodianRecord) async throws {
        try await write { db in try Self.insert(custodian, into: db) }
    }

    private static func insert(_ custodian: CustodianRecord, into db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO custodians (name, role, certificate, fingerprint_sha256, registered_at, registered_by, removed_at)
                VALUES (?, ?, ?, ?, ?, ?, NULL)
                """,
            arguments: [
                custodian.name, custodian.role, Data(custodian.certificateDER), custodian.fingerprintSHA256,
                seconds(custodian.registeredAt), custodian.registeredBy,
            ]
        )
    }

    public func removeCustodian(
        named name: String, at date: Date, ifAllowed check: @escaping @Sendable ([CustodianRecord]) throws -> Void
    ) async throws {
        // GRDB runs writes one at a time on its writer (SQLite takes its write lock at BEGIN IMMEDIATE), so the check
        // sees every removal committed before it: two concurrent removals cannot both pass it.
        try await write { db in
            do {
                try check(try Self.custodians(in: db))
            } catch {
                throw CallerRefusal(underlying: error)
            }
            try db.execute(
                sql: "UPDATE custodians SET removed_at = ? WHERE name = ? AND removed_at IS NULL", arguments: [Self.seconds(date), name]
            )
            guard db.changesCount == 1 else { throw StoreError(.notFound, "there is no registered custodian \(name)") }
        }
    }

    public func quorumPolicies() async throws -> [QuorumPolicyRecord] {
        try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM quorum_policies ORDER BY operation_class").map { row in
                QuorumPolicyRecord(
                    operationClass: row["operation_class"], required: row["required"],
                    approverRoles: (row["approver_roles"] as String).split(separator: ",").map(String.init),
                    requesterMayApprove: row["requester_may_approve"], updatedAt: Self.date(row["updated_at"]),
                    updatedBy: row["updated_by"]
                )
            }
        }
    }

    public func setQuorumPolicy(_ policy: QuorumPolicyRecord) async throws {
        try await write { db in try Self.upsert(policy, into: db) }
    }

    private static func upsert(_ policy: QuorumPolicyRecord, into db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO quorum_policies (operation_class, required, approver_roles, requester_may_approve, updated_at, updated_by)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (operation_class) DO UPDATE SET required = excluded.required, approver_roles = excluded.approver_roles,
                requester_may_approve = excluded.requester_may_approve, updated_at = excluded.updated_at, updated_by = excluded.updated_by
                """,
            arguments: [
                policy.operationClass, policy.required, policy.approverRoles.joined(separator: ","), policy.requesterMayApprove,
                seconds(policy.updatedAt), policy.updatedBy,
            ]
        )
    }

    public func insertAdminRequest(_ request: AdminRequestRecord) async throws {
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO admin_requests (id, document, operation, requester, created_at, expires_at, state)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    request.id, Data(request.document), request.operation, request.requester, Self.seconds(request.createdAt),
                    Self.seconds(request.expiresAt), request.state.rawValue,
                ]
            )
        }
    }

    public func adminRequest(id: String) async throws -> AdminRequestRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM admin_requests WHERE id = ?", arguments: [id]).map(Self.adminRequest(from:))
        }
    }

    public func adminRequests(state: AdminRequestRecord.State?, limit: Int) async throws -> [AdminRequestRecord] {
        try await run { db in
            if let state {
                return try Row.fetchAll(
                    db, sql: "SELECT * FROM admin_requests WHERE state = ? ORDER BY created_at DESC, id LIMIT ?", arguments: [state.rawValue, limit]
                ).map(Self.adminRequest(from:))
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM admin_requests ORDER BY created_at DESC, id LIMIT ?", arguments: [limit])
                .map(Self.adminRequest(from:))
        }
    }

    private static func adminRequest(from row: Row) -> AdminRequestRecord {
        AdminRequestRecord(
            id: row["id"], document: Array(row["document"] as Data), operation: row["operation"], requester: row["requester"],
            createdAt: date(row["created_at"]), expiresAt: date(row["expires_at"]),
            state: AdminRequestRecord.State(rawValue: row["state"]) ?? .failed,
            executedAt: (row["executed_at"] as Int64?).map(date), executedBy: row["executed_by"], outcome: row["outcome"]
        )
    }

    public func insertApproval(_ approval: ApprovalRecord) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO approvals (request_id, custodian, document, received_at) VALUES (?, ?, ?, ?)",
                arguments: [approval.requestID, approval.custodian, Data(approval.document), Self.seconds(approval.receivedAt)]
            )
        }
    }

    public func approvals(requestID: String) async throws -> [ApprovalRecord] {
        try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM approvals WHERE request_id = ? ORDER BY received_at, custodian", arguments: [requestID]).map {
                ApprovalRecord(
                    requestID: $0["request_id"], custodian: $0["custodian"], document: Array($0["document"] as Data),
                    receivedAt: Self.date($0["received_at"])
                )
            }
        }
    }

    public func claimAdminRequest(id: String, by custodian: String, at date: Date) async throws -> Bool {
        try await writeReturning { db in
            try db.execute(
                sql: "UPDATE admin_requests SET state = 'executing', executed_at = ?, executed_by = ? WHERE id = ? AND state = 'pending'",
                arguments: [Self.seconds(date), custodian, id]
            )
            return db.changesCount == 1
        }
    }

    public func finishAdminRequest(id: String, state: AdminRequestRecord.State, outcome: String) async throws {
        try await write { db in
            try db.execute(
                sql: "UPDATE admin_requests SET state = ?, outcome = ? WHERE id = ? AND state = 'executing'",
                arguments: [state.rawValue, outcome, id]
            )
            guard db.changesCount == 1 else { throw StoreError(.notFound, "request \(id) is not being executed") }
        }
    }

    public func setBackupKey(_ record: BackupKeyRecord) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO backup_key (id, label, threshold, shares, key_check_value, created_at, so_pin_shares) VALUES (1, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    record.label, record.threshold, Data(record.shares), record.keyCheckValue, Self.seconds(record.createdAt),
                    record.securityOfficerPINShares.map { Data($0) },
                ]
            )
        }
    }

    public func replaceBackupKey(_ record: BackupKeyRecord, replacing label: String) async throws {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE backup_key SET label = ?, threshold = ?, shares = ?, key_check_value = ?, created_at = ?, so_pin_shares = ?
                    WHERE id = 1 AND label = ?
                    """,
                arguments: [
                    record.label, record.threshold, Data(record.shares), record.keyCheckValue, Self.seconds(record.createdAt),
                    record.securityOfficerPINShares.map { Data($0) }, label,
                ]
            )
            guard db.changesCount == 1 else { throw StoreError(.notFound, "the backup key \(label) is no longer the deployment's backup key") }
        }
    }

    public func deleteBackupKey(label: String) async throws {
        try await write { db in
            try db.execute(sql: "DELETE FROM backup_key WHERE id = 1 AND label = ?", arguments: [label])
        }
    }

    public func backupKey() async throws -> BackupKeyRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM backup_key WHERE id = 1").map {
                BackupKeyRecord(
                    label: $0["label"], threshold: $0["threshold"], shares: Array($0["shares"] as Data),
                    keyCheckValue: $0["key_check_value"], createdAt: Self.date($0["created_at"]),
                    securityOfficerPINShares: ($0["so_pin_shares"] as Data?).map { Array($0) }
                )
            }
        }
    }

    public func markCertificateAuthorityDestroyed(named name: String, at date: Date) async throws {
        try await write { db in
            try db.execute(
                sql: "UPDATE certificate_authorities SET destroyed_at = ? WHERE name = ? AND destroyed_at IS NULL",
                arguments: [Self.seconds(date), name]
            )
            guard db.changesCount == 1 else { throw StoreError(.notFound, "there is no live CA \(name)") }
        }
    }

    public func revokeCertificate(issuer: String, serial: String, reason: Int, at date: Date) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO revocations (issuer, serial, reason, revoked_at) VALUES (?, ?, ?, ?)",
                arguments: [issuer, serial, reason, Self.seconds(date)]
            )
        }
    }

    public func revocation(issuer: String, serial: String) async throws -> (reason: Int, date: Date)? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT reason, revoked_at FROM revocations WHERE issuer = ? AND serial = ?", arguments: [issuer, serial])
                .map { (reason: $0["reason"] as Int, date: Self.date($0["revoked_at"])) }
        }
    }

    private static func seconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970.rounded(.down)) }
    private static func date(_ seconds: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(seconds)) }

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

    /// An error thrown by a caller's check inside a transaction: rolls the transaction back and reaches the caller as
    /// it was, not as a store failure.
    private struct CallerRefusal: Error {
        let underlying: any Error
    }

    private func write(_ body: @escaping @Sendable (Database) throws -> Void) async throws {
        try await writeReturning(body)
    }

    private func writeReturning<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(body)
        } catch let refusal as CallerRefusal {
            throw refusal.underlying
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
