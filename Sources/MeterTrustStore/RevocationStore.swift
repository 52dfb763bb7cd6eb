import Foundation

/// Revocation of certificates and destruction of certificate authorities: what ends a certificate's or a CA's life.
/// The records stay; these mark them.
public protocol RevocationStore: Sendable {
    /// Marks a CA destroyed (its key was destroyed in the HSM); its certificates stay on record.
    /// ``StoreError/Code/notFound`` if there is no such CA or it was destroyed before.
    func markCertificateAuthorityDestroyed(named name: String, at date: Date) async throws
    /// Records the revocation of a certificate (RFC 5280 reason code): ``StoreError/Code/duplicate`` if it was
    /// revoked before, ``StoreError/Code/foreignKey`` if the store holds no such certificate.
    func revokeCertificate(issuer: String, serial: String, reason: Int, at date: Date) async throws
    /// Records the revocations of `records` in one transaction, skipping any already recorded or naming a certificate
    /// the store does not hold; returns how many it recorded. For bulk revocation (the audit log holds the truth; these
    /// rows are the index a listing reads).
    func recordRevocations(_ records: [RevocationRecord]) async throws -> Int
    func revocation(issuer: String, serial: String) async throws -> (reason: Int, date: Date)?
    /// Every revocation in (issuer, serial) order, `limit` at a time after `position` (keyset paging).
    func revocations(after position: CertificateListPosition?, limit: Int) async throws -> [RevocationRecord]
}

/// One recorded revocation.
public struct RevocationRecord: Sendable, Hashable {
    public var issuer: String
    public var serial: String
    /// RFC 5280 §5.3.1 reason code.
    public var reason: Int
    public var revokedAt: Date

    public init(issuer: String, serial: String, reason: Int, revokedAt: Date) {
        self.issuer = issuer
        self.serial = serial
        self.reason = reason
        self.revokedAt = revokedAt
    }
}
