import Logging
import MeterTrustCore
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

/// Issues single certificates from CSRs: checks the request, applies the profile, signs in the HSM, stores, and
/// only then returns.
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
        let hardwareType = try request.hardwareType.map { try PKISettings.oid($0, setting: "device type") }
        let signer = try CertificateSigner(authority: authority, profile: profile, settings: hierarchy.settings, hardwareType: hardwareType)
        let csr = try CSRCheck.validate(der: try CSRCheck.decode(request.csr), profile: profile)
        return try await signAndStore(by: authority, profile: profile) { try signer.signUnstored(csr, for: request.eui64) }
    }

    /// Issues a device certificate for a request already checked against `profile` (``CSRCheck/validate(der:profile:)``)
    /// from `authority`, for meter `eui64` with `hardwareType` in its HardwareModuleName, on the same path as
    /// ``issue(_:)``: signed on the HSM queue, stored before it is returned, a serial collision drawn again. The
    /// request must not name another meter or device type (``CertificateSigner`` refuses it).
    public func issue(
        _ csr: ValidatedCSR, profile: CertificateProfile, authority: CertificateAuthority, eui64: EUI64, hardwareType: ASN1ObjectIdentifier
    ) async throws -> IssuedCertificate {
        let signer = try CertificateSigner(authority: authority, profile: profile, settings: hierarchy.settings, hardwareType: hardwareType)
        return try await signAndStore(by: authority, profile: profile) { try signer.signUnstored(csr, for: eui64) }
    }

    /// Issues a certificate under a profile whose subject the issuer names (``CertificateSigner/signNamed(_:commonName:organizationalUnit:dnsNames:)``:
    /// custodian, tls-server) from `authority`, on the same path as ``issue(_:)``: signed in the HSM, stored, a serial
    /// collision drawn again.
    public func issueNamed(
        _ csr: ValidatedCSR, profile: CertificateProfile, authority: CertificateAuthority, commonName: String, organizationalUnit: String?,
        organization: String? = nil, dnsNames: [String] = []
    ) async throws -> IssuedCertificate {
        let signer = try CertificateSigner(authority: authority, profile: profile, settings: hierarchy.settings)
        return try await signAndStore(by: authority, profile: profile) {
            try signer.signNamed(csr, commonName: commonName, organizationalUnit: organizationalUnit, organization: organization, dnsNames: dnsNames)
        }
    }

    /// Signs with `sign` on the HSM queue and stores the result; a serial collision (2^-80 within a millisecond) is
    /// refused by the store's (issuer, serial) key, and a new serial drawn. A meter that already has its device
    /// identity (`pki.already-issued`) or a key that belongs to another meter (`pki.key-reused`) is refused by the
    /// store's constraints, with the store's message naming the certificate or the meter.
    private func signAndStore(
        by authority: CertificateAuthority, profile: CertificateProfile, _ sign: @escaping @Sendable () throws -> (certificate: Certificate, record: CertificateRecord)
    ) async throws -> IssuedCertificate {
        for attempt in 1...3 {
            let (certificate, record) = try await hierarchy.token.perform { _ in try sign() }
            do {
                try await hierarchy.store.insertCertificate(record)
            } catch let error as StoreError where error.code == .serialInUse && attempt < 3 {
                // Only the serial's uniqueness is a collision; the store names the others (the meter already
                // provisioned, its key another meter's), and drawing again cannot help with them.
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
}
