import Foundation

/// Certificates: what an issuer needs. Uniqueness of (issuer, serial) is the database's constraint, so it holds
/// across every node that shares the store.
public protocol CertificateStore: Sendable {
    /// Stores one certificate. Throws ``StoreError/Code/duplicate`` if the issuer already used the serial.
    func insertCertificate(_ certificate: CertificateRecord) async throws
    /// Stores several certificates in one transaction: all or none.
    func insertCertificates(_ certificates: [CertificateRecord]) async throws
    /// Certificates with this serial issued by registered CAs (unique per issuer, so at most one per CA).
    func certificates(serial: String) async throws -> [CertificateRecord]
    func certificate(issuer: String, serial: String) async throws -> CertificateRecord?
    func certificateCount(issuer: String?) async throws -> Int
}

/// Certificate authorities of the hierarchy.
public protocol CertificateAuthorityStore: Sendable {
    /// Stores a new CA and its own certificate together, in one transaction.
    func insertCertificateAuthority(_ authority: CertificateAuthorityRecord, certificate: CertificateRecord) async throws
    func certificateAuthority(named name: String) async throws -> CertificateAuthorityRecord?
    func certificateAuthorities() async throws -> [CertificateAuthorityRecord]
}

/// What the factory's batch engine needs: batches, and device identity certificates unique per meter.
public protocol ProvisioningStore: CertificateStore {
    /// Records a new batch, or returns the existing one with the same id and manifest (a resumed run). A different
    /// manifest under an existing id is refused with ``StoreError/Code/duplicate``.
    func beginBatch(_ batch: BatchRecord) async throws -> BatchRecord
    func completeBatch(id: String, at date: Date) async throws
    func batch(id: String) async throws -> BatchRecord?
    /// The device identity certificates already held for these meters (EUI-64 as 16 lowercase hex digits).
    func deviceIdentities(eui64s: [String]) async throws -> [String: DeviceIdentityEntry]
    /// Stores device identity certificates in one transaction. A meter that already has one (the database's
    /// uniqueness of the device-identity EUI-64) is skipped: the result says, per record, whether it was stored.
    /// Any other violation (a serial used twice) fails the whole transaction.
    func insertDeviceIdentities(_ certificates: [CertificateRecord]) async throws -> [Bool]
    /// A batch's certificates in input order, after `position`, at most `limit` of them.
    func batchCertificates(batch: String, afterPosition position: Int64, limit: Int) async throws -> [CertificateRecord]
    func batchCertificateCount(batch: String) async throws -> Int
}

/// The audit log's entries (append-only, by position) and its signed checkpoints.
public protocol AuditStore: Sendable {
    /// Appends one entry in one transaction: `make` receives the current last entry (nil for the first) and returns
    /// the new entry's bytes. Returns the new entry's position. Positions are unique by primary key, so two writers
    /// can never both append the same position.
    func appendAuditEntry(_ make: @escaping @Sendable (AuditRow?) throws -> [UInt8]) async throws -> Int64
    func auditEntries(after position: Int64, limit: Int) async throws -> [AuditRow]
    func auditEntryCount() async throws -> Int64
    /// Stores a signed checkpoint note for a tree size (idempotent).
    func insertAuditCheckpoint(size: Int64, note: String) async throws
    func auditCheckpoints() async throws -> [AuditCheckpointRow]
}

/// Custodians, quorum policies, requests and approvals, and the backup key's shares. Run-once and one approval
/// per custodian per request are the database's constraints.
public protocol QuorumStore: Sendable {
    /// Registers the first custodians and the policies in one transaction; refused with
    /// ``StoreError/Code/duplicate`` if the quorum was bootstrapped before.
    func bootstrapQuorum(custodians: [CustodianRecord], policies: [QuorumPolicyRecord]) async throws
    func isQuorumBootstrapped() async throws -> Bool
    /// Every custodian ever registered, removed ones included.
    func custodians() async throws -> [CustodianRecord]
    func insertCustodian(_ custodian: CustodianRecord) async throws
    /// Marks a custodian removed (their approvals stop counting) if `check`, run in the same serialised write
    /// transaction on the custodians as they are then, does not throw; notFound if there is no such active one.
    func removeCustodian(named name: String, at date: Date, ifAllowed check: @escaping @Sendable ([CustodianRecord]) throws -> Void) async throws
    func quorumPolicies() async throws -> [QuorumPolicyRecord]
    func setQuorumPolicy(_ policy: QuorumPolicyRecord) async throws
    func insertAdminRequest(_ request: AdminRequestRecord) async throws
    func adminRequest(id: String) async throws -> AdminRequestRecord?
    /// Requests, newest first, optionally only those in `state`.
    func adminRequests(state: AdminRequestRecord.State?, limit: Int) async throws -> [AdminRequestRecord]
    /// Stores an approval; ``StoreError/Code/duplicate`` if this custodian already approved this request.
    func insertApproval(_ approval: ApprovalRecord) async throws
    func approvals(requestID: String) async throws -> [ApprovalRecord]
    /// Moves a pending request to `executing`; false if it is not pending (already run, running or failed).
    /// This is the run-once guard: of any number of concurrent callers on any number of nodes, one gets true.
    func claimAdminRequest(id: String, by custodian: String, at date: Date) async throws -> Bool
    func finishAdminRequest(id: String, state: AdminRequestRecord.State, outcome: String) async throws
    /// Records the deployment's backup key; ``StoreError/Code/duplicate`` if it has one.
    func setBackupKey(_ record: BackupKeyRecord) async throws
    /// Replaces the backup key labelled `label` (a reshare); notFound if that is not the current one.
    func replaceBackupKey(_ record: BackupKeyRecord, replacing label: String) async throws
    /// Forgets the backup key labelled `label` (a ceremony rolled back before it finished).
    func deleteBackupKey(label: String) async throws
    func backupKey() async throws -> BackupKeyRecord?
    /// Marks a CA destroyed (its key was destroyed in the HSM); its certificates stay on record.
    func markCertificateAuthorityDestroyed(named name: String, at date: Date) async throws
    /// Records the revocation of a certificate (RFC 5280 reason code).
    func revokeCertificate(issuer: String, serial: String, reason: Int, at date: Date) async throws
    func revocation(issuer: String, serial: String) async throws -> (reason: Int, date: Date)?
}

/// Everything MeterTrust persists. SQLite (``SQLiteStore``) is the embedded implementation; a PostgreSQL
/// implementation fulfils the same protocol. Nothing here assumes one process or one node: uniqueness is enforced by
/// constraints, all calls are async, values are plain Swift types.
public protocol MeterTrustStore: CertificateStore, CertificateAuthorityStore, ProvisioningStore, AuditStore, QuorumStore {
    /// Applies pending schema migrations; idempotent.
    func migrate() async throws
    /// Identifiers of the migrations applied, oldest first.
    func appliedMigrations() async throws -> [String]
}
