import Crypto
import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustStore
import SwiftASN1
import X509

/// Everything needed to turn checked requests into certificates of one profile from one CA, worked out once:
/// the CA's signer and key identifier, the policy OID, the device type. Shared by single issuance and the factory's
/// batch engine; safe to use from many threads at once (each signature takes its own HSM session).
public struct CertificateSigner: Sendable {
    public let authority: CertificateAuthority
    public let profile: CertificateProfile
    public let settings: PKISettings
    /// hwType for the HardwareModuleName of device profiles.
    public let hardwareType: ASN1ObjectIdentifier
    let signer: CertificateContents.Signer
    let policy: ASN1ObjectIdentifier

    public init(authority: CertificateAuthority, profile: CertificateProfile, settings: PKISettings, hardwareType: ASN1ObjectIdentifier? = nil) throws {
        guard authority.role == profile.issuerRole else {
            throw PKIError(
                .invalidArgument,
                "CA \(authority.name) is a \(authority.role.rawValue) CA; profile \(profile.name) is issued by a \(profile.issuerRole?.rawValue ?? "self-signed") CA"
            )
        }
        self.authority = authority
        self.profile = profile
        self.settings = settings
        self.hardwareType = try hardwareType ?? settings.defaultDeviceType()
        self.signer = try authority.signer
        self.policy = try settings.policyOID()
    }

    /// Checks `csr` (DER) against the profile and the meter it is for, then signs in the HSM.
    ///
    /// The result is **not stored**: the caller must store it before it leaves the process. Blocks on the HSM; call
    /// from a worker thread or the HSM queue.
    public func signUnstored(csr der: [UInt8], for eui64: EUI64?, batch: String? = nil, position: Int64? = nil) throws -> CertificateRecord {
        let csr = try CSRCheck.validate(der: der, profile: profile)
        return try signUnstored(csr, for: eui64, batch: batch, position: position).record
    }

    /// Signs an already checked request. The result is not stored (see ``signUnstored(csr:for:batch:position:)``).
    public func signUnstored(_ csr: ValidatedCSR, for eui64: EUI64?, batch: String? = nil, position: Int64? = nil) throws -> (certificate: Certificate, record: CertificateRecord) {
        let (certificate, device) = try certificate(csr, for: eui64, now: Date(), serialNumber: SerialNumbers.random())
        let record = try certificate.record(
            issuer: authority.name, shards: authority.shardCount, profile: profile, eui64: device?.eui64, batch: batch, position: position
        )
        return (certificate, record)
    }

    /// The model path's certificate for `csr`, signed in the HSM, at `now` with `serialNumber` (tests compare the
    /// templates of ``TemplateIssuer`` with it).
    func certificate(
        _ csr: ValidatedCSR, for eui64: EUI64?, now: Date, serialNumber: Certificate.SerialNumber
    ) throws -> (Certificate, device: (eui64: EUI64, hardwareType: ASN1ObjectIdentifier)?) {
        let device = try deviceIdentity(csr: csr, eui64: eui64)
        let keyUsage: KeyUsage
        switch profile.keyUsage {
        case .fixed(let usage): keyUsage = usage
        case .signatureOrKeyAgreement: keyUsage = csr.requestedKeyUsage ?? KeyUsage(digitalSignature: true)
        }
        let subject: DistinguishedName
        switch profile.subject {
        case .empty: subject = DistinguishedName()
        case .deviceURN:
            guard let device else { throw PKIError(.issuance, "profile \(profile.name) names the meter, and the request names none") }
            subject = try DistinguishedName { CommonName(device.eui64.deviceURN) }
        case .authority: throw PKIError(.issuance, "profile \(profile.name) is for CAs; create CAs with metertrust ca")
        case .named, .accountMember: throw PKIError(.issuance, "profile \(profile.name) needs a name: use signNamed")
        }
        let contents = CertificateContents(
            profile: profile, subject: subject, publicKey: csr.publicKey, keyUsage: keyUsage, device: device,
            subjectKeyIdentifier: csr.subjectKeyIdentifier
        )
        return (try contents.sign(by: signer, policy: policy, settings: settings, now: now, serialNumber: serialNumber), device)
    }

    /// Signs a request under a profile whose subject the issuer names (custodian, tls-server): `CN=commonName`,
    /// `OU=organizationalUnit` if given, and `dnsNames` in the SAN where the profile has one. A CSR subject that is
    /// not empty must name the same CN. The result is not stored.
    public func signNamed(
        _ csr: ValidatedCSR, commonName: String, organizationalUnit: String?, organization: String? = nil, dnsNames: [String] = []
    ) throws -> (certificate: Certificate, record: CertificateRecord) {
        let requested = csr.request.subject.flatMap { Array($0) }
        if !requested.isEmpty {
            let names = requested.filter { $0.type == .RDNAttributeType.commonName }.compactMap { String($0.value) }
            guard names == [commonName] else {
                throw PKIError(.requestExceedsProfile, "the CSR subject \"\(csr.request.subject)\" does not name \(commonName)")
            }
        }
        let key = try PublicKeyInfo(publicKey: csr.publicKey)
        return try signNamed(
            key, commonName: commonName, organizationalUnit: organizationalUnit, organization: organization, dnsNames: dnsNames,
            subjectKeyIdentifier: csr.subjectKeyIdentifier
        )
    }

    /// Signs a certificate for a public key the caller vouches for (an HSM key made here: the TLS server's), with
    /// `dnsNames` and `ipAddresses` in the SAN where the profile allows them.
    public func signNamed(
        _ key: PublicKeyInfo, commonName: String, organizationalUnit: String?, organization: String? = nil, dnsNames: [String] = [],
        ipAddresses: [IPAddress] = [], subjectKeyIdentifier: [UInt8]? = nil
    ) throws -> (certificate: Certificate, record: CertificateRecord) {
        switch profile.subject {
        case .named:
            guard organization == nil else { throw PKIError(.issuance, "profile \(profile.name) names no organization") }
        case .accountMember:
            guard let organization, !organization.isEmpty, organizationalUnit == nil else {
                throw PKIError(.issuance, "profile \(profile.name) names its account as O, and nothing else")
            }
        case .authority, .empty, .deviceURN:
            throw PKIError(.issuance, "profile \(profile.name) does not take a name")
        }
        guard profile.allowedCurves.contains(where: { $0.rawValue == key.curveName }) else {
            throw PKIError(.keyNotAllowed, "profile \(profile.name) requires a key on \(profile.allowedCurves.map(\.rawValue).joined(separator: " or "))")
        }
        let subject = try DistinguishedName {
            CommonName(commonName)
            if let organization { OrganizationName(organization) }
            if let organizationalUnit { OrganizationalUnitName(organizationalUnit) }
        }
        let keyUsage: KeyUsage
        switch profile.keyUsage {
        case .fixed(let usage): keyUsage = usage
        case .signatureOrKeyAgreement: keyUsage = KeyUsage(digitalSignature: true)
        }
        let contents = CertificateContents(
            profile: profile, subject: subject, publicKey: key.publicKey, keyUsage: keyUsage, device: nil,
            subjectKeyIdentifier: subjectKeyIdentifier, dnsNames: dnsNames, ipAddresses: ipAddresses
        )
        let certificate = try contents.sign(by: signer, policy: policy, settings: settings)
        return (certificate, try certificate.record(issuer: authority.name, shards: authority.shardCount, profile: profile, eui64: nil))
    }

    private func deviceIdentity(csr: ValidatedCSR, eui64: EUI64?) throws -> (eui64: EUI64, hardwareType: ASN1ObjectIdentifier)? {
        guard profile.hardwareModuleName else { return nil }
        if let eui64, let claimed = csr.claimedEUI64, claimed != eui64 {
            throw PKIError(.requestExceedsProfile, "the CSR claims EUI-64 \(claimed) but the request is for meter \(eui64)")
        }
        guard let eui = eui64 ?? csr.claimedEUI64 else {
            throw PKIError(
                .invalidArgument,
                "profile \(profile.name) needs the meter's EUI-64: pass --eui64 or put a HardwareModuleName in the CSR"
            )
        }
        if let claimedType = csr.claimedHardwareType, claimedType != hardwareType {
            throw PKIError(
                .requestExceedsProfile,
                "the CSR names device type \(claimedType.dotted) for meter \(eui); this issuance is for device type \(hardwareType.dotted)"
            )
        }
        return (eui, hardwareType)
    }
}

/// A public key and the curve it is on.
public struct PublicKeyInfo: Sendable {
    public let publicKey: Certificate.PublicKey
    public let curveName: String

    public init(publicKey: Certificate.PublicKey) throws {
        self.publicKey = publicKey
        if P256.Signing.PublicKey(publicKey) != nil {
            curveName = ECCurve.p256.rawValue
        } else if P384.Signing.PublicKey(publicKey) != nil {
            curveName = ECCurve.p384.rawValue
        } else {
            throw PKIError(.keyNotAllowed, "the key is not an EC P-256 or P-384 key")
        }
    }
}
