/// Certificates: what an issuer needs. Uniqueness of (issuer, serial) is the database's constraint, so it holds
/// across every node that shares the store.
public protocol CertificateStore: Sendable {
    /// Stores one certificate. Throws ``StoreError/Code/duplicate`` if the issuer already used the serial.
    func insertCertificate(_ certificate: CertificateRecord) async throws
    /// Stores several certificates in one transaction: all or none.
    func insertCertificates(_ certificates: [CertificateRecord]) async throws
    /// Certificates with this serial (unique per issuer, so at most one per CA).
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

/// Everything MeterTrust persists. SQLite (``SQLiteStore``) is the embedded implementation; a PostgreSQL
/// implementation fulfils the same protocol. Nothing here assumes one process or one node: uniqueness is enforced by
/// constraints, all calls are async, values are plain Swift types.
public protocol MeterTrustStore: CertificateStore, CertificateAuthorityStore {
    /// Applies pending schema migrations; idempotent.
    func migrate() async throws
    /// Identifiers of the migrations applied, oldest first.
    func appliedMigrations() async throws -> [String]
}
