import Foundation
import MeterTrustCore
import MeterTrustStore

/// The role a certificate authority plays in the hierarchy. The store keeps it as its raw value
/// (``CertificateAuthorityRecord/roleName``): never rename a case.
public enum CertificateAuthorityRole: String, Sendable, Hashable, Codable, CaseIterable {
    case root
    case manufacturer
    case operational
    case admin
    /// Certifies the platform's own servers (tls-server): never a utility's operational CA.
    case service
    /// The Operator CA: certifies utility operators (profile utility-operator), never custodians, so an operator's
    /// certificate never passes the admin API.
    case `operator`
}

extension CertificateAuthorityRecord {
    /// A record of a CA playing `role`.
    public init(
        name: String, role: CertificateAuthorityRole, parent: String?, keyLabel: String, keyID: String, curve: String,
        certificateSerial: String, createdAt: Date = Date(), destroyedAt: Date? = nil, shardCount: Int = ShardCount.default.value
    ) {
        self.init(
            name: name, roleName: role.rawValue, parent: parent, keyLabel: keyLabel, keyID: keyID, curve: curve,
            certificateSerial: certificateSerial, createdAt: createdAt, destroyedAt: destroyedAt, shardCount: shardCount
        )
    }

    /// The CA's role; nil if the store holds a role name this version does not know.
    public var role: CertificateAuthorityRole? { CertificateAuthorityRole(rawValue: roleName) }

    /// The CA's role, or the reason the record cannot be used.
    public func knownRole() throws -> CertificateAuthorityRole {
        guard let role else {
            throw PKIError(.unknownAuthority, "certificate authority \(name) has a role this version does not know (\(roleName)); the store is newer or damaged")
        }
        return role
    }
}
