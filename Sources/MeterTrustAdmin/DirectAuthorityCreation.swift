import Foundation
import MeterTrustCore
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
    public static func checkAllowed(
        role: CertificateAuthorityRole, name: String, organization: String? = nil, curve: ECCurve = .p256, backup: Bool = false,
        shards: ShardCount = .default, store: any QuorumStore, audit: AuditLog
    ) async throws {
        guard role != .root else { return }
        guard try await !isUnderQuorum(store: store, audit: audit) else {
            let request = requestCommand(role: role, name: name, organization: organization, curve: curve, backup: backup, shards: shards)
            throw QuorumError(
                .underQuorumControl, "creating a \(role.rawValue) CA is under quorum control since the bootstrap ceremony: \(request)"
            )
        }
    }

    /// Whether the bootstrap ceremony ran, so that CAs other than the root are made under quorum only: the verified
    /// log's word once it is signed (a deleted bootstrap row changes nothing), else the store's.
    public static func isUnderQuorum(store: any QuorumStore, audit: AuditLog) async throws -> Bool {
        if try await store.isQuorumBootstrapped() { return true }
        return audit.signer != nil ? try await audit.verifiedState().bootstrapped : false
    }

    /// The command that asks the quorum for this CA, with every parameter it needs (organization included: the
    /// one given, else a placeholder to fill in) and the options given.
    public static func requestCommand(
        role: CertificateAuthorityRole, name: String, organization: String?, curve: ECCurve = .p256, backup: Bool = false,
        shards: ShardCount = .default
    ) -> String {
        var parameters = role == .manufacturer ? ["manufacturer.register"] : ["ca.create", "kind=\(role.rawValue)"]
        parameters.append("name=\(shellQuoted(name))")
        parameters.append("organization=\(organization.map(shellQuoted) ?? "\"<organization name>\"")")
        if curve != .p256 { parameters.append("curve=\(curve.rawValue)") }
        if backup { parameters.append("backup=true") }
        if shards != .default { parameters.append("shards=\(shards.value)") }
        return "metertrust admin request " + parameters.joined(separator: " ")
    }

    private static func shellQuoted(_ value: String) -> String {
        value.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) } ? value : "\"" + value.replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// Creates the CA if ``checkAllowed(role:name:organization:curve:backup:shards:store:audit:)`` lets it (the quorum state read from `quorum`), recorded in `audit` as `ca.create` by
    /// `actor` (intent first).
    public static func create(
        role: CertificateAuthorityRole, name: String, organization: String?, curve: ECCurve, backup: Bool, shards: ShardCount = .default,
        hierarchy: CAHierarchy, quorum: any QuorumStore, audit: AuditLog, actor: String
    ) async throws -> CertificateAuthority {
        try await checkAllowed(
            role: role, name: name, organization: organization, curve: curve, backup: backup, shards: shards, store: quorum, audit: audit
        )
        return try await audit.audited(actor: actor, action: "ca.create", subject: name, details: ["role": role.rawValue], recordingIntent: true) {
            let authority = try await hierarchy.createAuthority(
                role: role, name: name, organization: organization, curve: curve, backup: backup, shards: shards
            )
            return (
                authority,
                ["key": authority.record.keyLabel, "serial": authority.certificate.serialHex, "curve": curve.rawValue, "shards": String(shards.value)]
            )
        }
    }
}
