import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore
import X509

/// Whether a CA may issue, as the verified audit log says: a CA the log revoked or destroyed is refused even if
/// someone deleted its revocation row or cleared `destroyed_at` in the database.
///
/// Every CA load asks (a server loads CAs per request), so the state comes from a ``VerifiedStateCache`` with no
/// maximum age: verified again whenever the log grew, but only what was appended.
public struct AuditedAuthorityStatus: AuthorityStatusSource {
    public let audit: AuditLog
    let cache: VerifiedStateCache

    public init(audit: AuditLog) {
        self.audit = audit
        self.cache = VerifiedStateCache(audit: audit, maximumAge: .zero)
    }

    public func refusal(for authority: CertificateAuthorityRecord, certificate: Certificate) async throws -> String? {
        let state = try await cache.state()
        if state.destroyedAuthorities.contains(authority.name) {
            return "CA \(authority.name) was destroyed (audit log); it issues nothing more"
        }
        if certificate.issuer != certificate.subject, state.isRevoked(serial: certificate.serialHex) {
            return "CA \(authority.name) was revoked (audit log); it issues nothing more"
        }
        return nil
    }
}
