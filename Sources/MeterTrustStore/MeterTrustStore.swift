import Foundation

/// Everything MeterTrust persists. SQLite (`SQLiteStore` (module MeterTrustStoreSQLite)) is the embedded implementation; a PostgreSQL
/// implementation fulfils the same protocol. Nothing here assumes one process or one node: uniqueness is enforced by
/// constraints, all calls are async, values are plain Swift types.
public protocol MeterTrustStore: CertificateStore, CertificateAuthorityStore, ProvisioningStore, AuditStore, QuorumStore, RevocationStore, OnboardingStore,
    PresharedKeyStore
{
    /// Applies pending schema migrations; idempotent.
    func migrate() async throws
    /// Identifiers of the migrations applied, oldest first.
    func appliedMigrations() async throws -> [String]
}

/// The views the CA hierarchy reads and writes: CAs, their certificates and revocations. Batches, the quorum and the
/// audit log are other views, carried by the code that needs them.
public typealias HierarchyStore = CertificateAuthorityStore & CertificateStore & RevocationStore
