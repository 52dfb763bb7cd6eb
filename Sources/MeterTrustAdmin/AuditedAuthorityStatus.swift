import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore
import X509

/// Whether a CA may issue, as the verified audit log says: a CA the log revoked or destroyed is refused even if
/// someone deleted its revocation row or cleared `destroyed_at` in the database.
public struct AuditedAuthorityStatus: AuthorityStatusSource {
    public let audit: AuditLog

    public init(audit: AuditLog) {
        self.audit = audit
    }

    public func refusal(for authority: CertificateAuthorityRecord, certificate: Certificate) async throws -> String? {
        let state = try await audit.verifiedState()
        if state.destroyedAuthorities.contains(authority.name) {
            return "CA \(authority.name) was destroyed (audit log); it issues nothing more"
        }
        if certificate.issuer != certificate.subject, state.isRevoked(serial: certificate.serialHex) {
            return "CA \(authority.name) was revoked (audit log); it issues nothing more"
        }
        return nil
    }
}
