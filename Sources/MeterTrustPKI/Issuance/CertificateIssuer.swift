import Logging
import MeterTrustStore
import SwiftASN1
import X509

/// A request to issue one certificate from a PKCS#10 CSR.
public struct IssuanceRequest: Sendable {
    /// The CSR, PEM or DER.
    public var csr: [UInt8]
    /// Name of a requestable profile (`device-identity`, `device-operational`).
    public var profile: String
    /// Name of the issuing CA; may be omitted when exactly one CA of the profile's issuer role exists.
    public var authority: String?
    /// The meter's EUI-64; may be omitted when the CSR names it.
    public var eui64: EUI64?
    /// hwType of the HardwareModuleName; defaults to the deployment's device-type OID.
    public var hardwareType: String?

    public init(csr: [UInt8], profile: String, authority: String? = nil, eui64: EUI64? = nil, hardwareType: String? = nil) {
        self.csr = csr
        self.profile = profile
        self.authority = authority
        self.eui64 = eui64
        self.hardwareType = hardwareType
    }
}

/// A certificate that has been issued and stored.
public struct IssuedCertificate: Sendable {
    public let certificate: Certificate
    public let record: CertificateRecord
    /// The issuing CA's certificate first, the root's last.
    public let chain: [Certificate]
}

/// Issues certificates from CSRs: checks the request, applies the profile, signs in the HSM, stores, returns.
public struct CertificateIssuer: Sendable {
    public let hierarchy: CAHierarchy
    private let logger: Logger

    public init(hierarchy: CAHierarchy, logger: Logger = Logger(label: "metertrust.issuer")) {
        self.hierarchy = hierarchy
        self.logger = logger
    }

    public func issue(_ request: IssuanceRequest) async throws -> IssuedCertificate {
        let profile = try CertificateProfile.requestable(named: request.profile)
        let authority = try await issuingAuthority(request.authority, for: profile)
        let csr = try CSRCheck.validate(der: try CSRCheck.decode(request.csr), profile: profile)
        return try await issue(csr, profile: profile, by: authority, eui64: request.eui64, hardwareType: request.hardwareType)
    }

    /// Issues from an already validated CSR. The certificate is in the store before this returns.
    public func issue(
        _ csr: ValidatedCSR, profile: CertificateProfile, by authority: CertificateAuthority, eui64: EUI64?,
        hardwareType: String?
    ) async throws -> IssuedCertificate {
        guard authority.role == profile.issuerRole else {
            throw PKIError(
                .invalidArgument,
                "CA \(authority.name) is a \(authority.role.rawValue) CA; profile \(profile.name) is issued by a \(profile.issuerRole?.rawValue ?? "self-signed") CA"
            )
        }
        let device = try deviceIdentity(csr: csr, profile: profile, eui64: eui64, hardwareType: hardwareType)
        let keyUsage: KeyUsage
        switch profile.keyUsage {
        case .fixed(let usage): keyUsage = usage
        case .signatureOrKeyAgreement: keyUsage = csr.requestedKeyUsage ?? KeyUsage(digitalSignature: true)
        }
        let subject: DistinguishedName
        switch profile.subject {
        case .empty: subject = DistinguishedName()
        case .deviceURN: subject = try DistinguishedName { CommonName(device!.eui64.deviceURN) }
        case .authority: throw PKIError(.issuance, "profile \(profile.name) is for CAs; create CAs with metertrust ca")
        }
        let contents = CertificateContents(
            profile: profile, subject: subject, publicKey: csr.publicKey, keyUsage: keyUsage, device: device
        )
        let signer = try authority.signer
        // A serial collision (2^-127 per pair) is refused by the store's (issuer, serial) key; draw again.
        for attempt in 1...3 {
            let certificate = try await contents.sign(by: signer, settings: hierarchy.settings)
            let record = try certificate.record(issuer: authority.name, profile: profile, eui64: device?.eui64)
            do {
                try await hierarchy.store.insertCertificate(record)
            } catch let error as StoreError where error.code == .duplicate && attempt < 3 {
                logger.warning("serial collision, drawing again", metadata: ["ca": "\(authority.name)"])
                continue
            }
            logger.info(
                "issued certificate",
                metadata: ["ca": "\(authority.name)", "serial": "\(record.serial)", "profile": "\(profile.name)", "eui64": "\(record.eui64 ?? "")"]
            )
            return IssuedCertificate(certificate: certificate, record: record, chain: authority.chain)
        }
        throw PKIError(.issuance, "could not draw a unique serial for CA \(authority.name)")
    }

    private func issuingAuthority(_ name: String?, for profile: CertificateProfile) async throws -> CertificateAuthority {
        if let name { return try await hierarchy.authority(named: name) }
        guard let role = profile.issuerRole else { throw PKIError(.invalidArgument, "profile \(profile.name) is self-signed") }
        let candidates = try await hierarchy.authorities(role: role)
        guard candidates.count == 1 else {
            let names = candidates.map(\.name).joined(separator: ", ")
            throw PKIError(
                .unknownAuthority,
                candidates.isEmpty
                    ? "there is no \(role.rawValue) CA to issue \(profile.name) certificates: create one with metertrust ca"
                    : "name the issuing CA with --ca (\(role.rawValue) CAs: \(names))"
            )
        }
        return try await hierarchy.authority(named: candidates[0].name)
    }

    private func deviceIdentity(
        csr: ValidatedCSR, profile: CertificateProfile, eui64: EUI64?, hardwareType: String?
    ) throws -> (eui64: EUI64, hardwareType: ASN1ObjectIdentifier)? {
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
        let type = try hardwareType.map { try PKISettings.oid($0, setting: "device type") } ?? hierarchy.settings.defaultDeviceType()
        if let claimedType = csr.claimedHardwareType, claimedType != type {
            throw PKIError(.requestExceedsProfile, "the CSR names device type \(claimedType.dotted) for meter \(eui); this issuance is for device type \(type.dotted)")
        }
        return (eui, type)
    }
}
