import Foundation
import MeterTrustAudit
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore

/// A custodian's admin certificate (profile custodian: CN=name, OU=role, clientAuth) from the deployment's one Admin
/// CA, on the PKI's issuance path (``CertificateIssuer/issueNamed(_:profile:authority:commonName:organizationalUnit:dnsNames:)``:
/// signed in the HSM, stored, a serial collision drawn again). A certificate grants nothing by itself: the custodian
/// counts once registered (bootstrap or `custodian.add`).
public enum CustodianCertification {
    /// Issues the certificate for the CSR `csr` (PEM or DER), recorded in the audit log as `certificate.issue` by
    /// `actor` (intent first).
    public static func issue(csr: [UInt8], name: String, role: CustodianRole, service: AdminService, actor: String) async throws -> IssuedCertificate {
        let adminCA = try await service.adminAuthority()
        let validated = try CSRCheck.validate(der: try CSRCheck.decode(csr), profile: .custodian)
        return try await service.audit.audited(
            actor: actor, action: "certificate.issue", subject: name, details: ["profile": CertificateProfile.custodian.name, "role": role.rawValue],
            recordingIntent: true
        ) {
            let issued = try await CertificateIssuer(hierarchy: service.hierarchy).issueNamed(
                validated, profile: .custodian, authority: adminCA, commonName: name, organizationalUnit: role.rawValue
            )
            return (issued, ["serial": issued.record.serial])
        }
    }
}
