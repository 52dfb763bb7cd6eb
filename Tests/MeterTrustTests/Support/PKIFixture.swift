import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore
import MeterTrustStoreSQLite
import SwiftASN1
import X509

/// A hierarchy on a fresh SoftHSM2 token and SQLite store: root, manufacturer "acme", operational "north",
/// admin "admin".
struct PKIFixture {
    let token: HSMToken
    let store: SQLiteStore
    let hierarchy: CAHierarchy
    let root: CertificateAuthority
    let manufacturer: CertificateAuthority
    let operational: CertificateAuthority
    let admin: CertificateAuthority

    var issuer: CertificateIssuer { CertificateIssuer(hierarchy: hierarchy) }

    static let deviceType: ASN1ObjectIdentifier = [2, 999, 2, 1]

    /// The audit log of this deployment, signed by an audit key made in the HSM (certified by the root) and anchored
    /// in the HSM, as `metertrust audit init` makes it. Every call returns a log over the same key and head.
    func auditLog() async throws -> AuditLog {
        let origin = "test.metertrust/audit"
        let key: HSMKey
        if let existing = try? token.findKey(label: "metertrust/audit/test") {
            key = existing
        } else {
            key = try token.generateKeyPair(curve: .p256, label: "metertrust/audit/test")
        }
        return AuditLog(
            store: store, signer: try HSMCheckpointSigner(token: token, key: key, keyName: origin), origin: origin,
            anchor: HSMAuditAnchor(token: token, origin: origin)
        )
    }

    static func make() async throws -> PKIFixture {
        let token = try TestEnvironment.openToken()
        let store = try await TestEnvironment.makeStore()
        let hierarchy = CAHierarchy(token: token, store: store, settings: PKISettings())
        let root = try await hierarchy.createRoot(name: "test-root", organization: "MeterTrust Test")
        let manufacturer = try await hierarchy.createAuthority(role: .manufacturer, name: "acme", organization: "Acme Meters")
        let operational = try await hierarchy.createAuthority(role: .operational, name: "north", organization: "North Utility")
        let admin = try await hierarchy.createAuthority(role: .admin, name: "admin")
        return PKIFixture(
            token: token, store: store, hierarchy: hierarchy, root: root, manufacturer: manufacturer,
            operational: operational, admin: admin
        )
    }

    /// A CSR signed by `key` with the given subject and requested extensions.
    static func csr(
        key: P256.Signing.PrivateKey = P256.Signing.PrivateKey(), subject: DistinguishedName = DistinguishedName(),
        extensions: [Certificate.Extension]
    ) throws -> [UInt8] {
        let attributes: CertificateSigningRequest.Attributes = extensions.isEmpty
            ? CertificateSigningRequest.Attributes()
            : CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: try Certificate.Extensions(extensions)))])
        let request = try CertificateSigningRequest(
            version: .v1, subject: subject, privateKey: Certificate.PrivateKey(key), attributes: attributes,
            signatureAlgorithm: .ecdsaWithSHA256
        )
        var serializer = DER.Serializer()
        try serializer.serialize(request)
        return serializer.serializedBytes
    }

    /// The requested critical SAN with one HardwareModuleName.
    static func hardwareModuleNameSAN(_ eui64: EUI64, type: ASN1ObjectIdentifier = deviceType, extra: [GeneralName] = []) throws -> Certificate.Extension {
        let name = HardwareModuleName(hardwareType: type, serialNumber: eui64.bytes)
        let otherName = GeneralName.OtherName(typeID: HardwareModuleName.otherNameTypeID, value: try ASN1Any(erasing: name))
        return try Certificate.Extension(SubjectAlternativeNames([.otherName(otherName)] + extra), critical: true)
    }
}
