import Foundation

/// Certificate authorities of the hierarchy.
public protocol CertificateAuthorityStore: Sendable {
    /// Stores a new CA and its own certificate together, in one transaction.
    func insertCertificateAuthority(_ authority: CertificateAuthorityRecord, certificate: CertificateRecord) async throws
    func certificateAuthority(named name: String) async throws -> CertificateAuthorityRecord?
    func certificateAuthorities() async throws -> [CertificateAuthorityRecord]
}
