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
    func revocation(issuer: String, serial: String) async throws -> (reason: Int, date: Date)?
}
