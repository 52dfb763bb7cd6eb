import Foundation
import MeterTrustAudit
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore

/// Creating a CA outside the quorum (a console on the HSM host, `metertrust ca create-*`): the root at any time,
/// any other CA only until the bootstrap ceremony. Since then creating one is an operation under quorum
/// (`ca.create`, `manufacturer.register`), and every caller of this gets the same refusal.
public enum DirectAuthorityCreation {
    /// Refuses a CA other than the root once the quorum controls CA creation. Whether it does is the verified audit
    /// log's word (once the log is signed), not a row's: a deleted bootstrap row changes nothing.
    public static func checkAllowed(role: CertificateAuthorityRole, name: String, store: any QuorumStore, audit: AuditLog) async throws {
        guard role != .root else { return }
        var underQuorum = try await store.isQuorumBootstrapped()
        if !underQuorum, audit.signer != nil {
            underQuorum = try await audit.verifiedState().bootstrapped
        }
        guard !underQuorum else {
            let request = role == .manufacturer ? "manufacturer.register name=\(name)" : "ca.create kind=\(role.rawValue) name=\(name)"
            throw QuorumError(
                .underQuorumControl, "creating a \(role.rawValue) CA is under quorum control since the bootstrap ceremony: metertrust admin request \(request)"
            )
        }
    }

    /// Creates the CA if ``checkAllowed(role:name:store:audit:)`` lets it (the quorum state read from `quorum`), recorded in `audit` as `ca.create` by
    /// `actor` (intent first).
    public static func create(
        role: CertificateAuthorityRole, name: String, organization: String?, curve: ECCurve, backup: Bool, hierarchy: CAHierarchy, quorum: any QuorumStore,
        audit: AuditLog, actor: String
    ) async throws -> CertificateAuthority {
        try await checkAllowed(role: role, name: name, store: quorum, audit: audit)
        return try await audit.audited(actor: actor, action: "ca.create", subject: name, details: ["role": role.rawValue], recordingIntent: true) {
            let authority = try await hierarchy.createAuthority(role: role, name: name, organization: organization, curve: curve, backup: backup)
            return (authority, ["key": authority.record.keyLabel, "serial": authority.certificate.serialHex, "curve": curve.rawValue])
        }
    }
}
