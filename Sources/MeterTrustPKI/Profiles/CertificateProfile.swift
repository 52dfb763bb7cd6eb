import MeterTrustCore
import MeterTrustHSM
import MeterTrustStore
import X509

/// A certificate profile: what the issuer puts in a certificate. Profiles are data; nothing in a request can widen
/// them (see ../shared/PROFILES.md, mirrored in the README).
public struct CertificateProfile: Sendable, Hashable {
    public enum Validity: Sendable, Hashable {
        /// `years` after issuance, never beyond the issuer's own notAfter.
        case years(Int)
        /// `days` after issuance, never beyond the issuer's own notAfter (short-lived: the OCSP signer, rolled).
        case days(Int)
        /// notAfter = 99991231235959Z, "no well-defined expiration date" (RFC 5280 §4.1.2.5).
        case noExpiry
    }

    public enum Subject: Sendable, Hashable {
        /// `CN=<name> <suffix>` and, if `organization`, `O=<organization>`.
        case authority(suffix: String, organization: Bool)
        /// Empty subject; identity is in the critical SAN (GB SMKI device profile).
        case empty
        /// `CN=urn:dev:mac:<eui64>` (RFC 9039).
        case deviceURN
        /// `CN=<name>` and, if given, `OU=<unit>`, both set by the issuer (custodian: OU is the role; tls-server).
        case named
        /// `CN=<name>, O=<account>`, both set by the issuer: a utility operator, whose O is the account it acts for
        /// and nothing else decides that.
        case accountMember
    }

    public enum KeyUsageRule: Sendable, Hashable {
        /// Exactly this key usage.
        case fixed(KeyUsage)
        /// Exactly one of digitalSignature and keyAgreement, chosen by the request; digitalSignature if it names none.
        case signatureOrKeyAgreement

        /// The key usage the profile prescribes when the request chooses nothing (the CA profiles' own).
        public var prescribed: KeyUsage {
            switch self {
            case .fixed(let usage): return usage
            case .signatureOrKeyAgreement: return KeyUsage(digitalSignature: true)
            }
        }
    }

    public let name: String
    /// Role of the issuing CA; nil for a self-signed certificate.
    public let issuerRole: CertificateAuthorityRole?
    public let validity: Validity
    public let subject: Subject
    /// nil: no basicConstraints. Otherwise critical basicConstraints cA=TRUE with this pathLen (nil: none).
    public let certificateAuthority: CertificateAuthorityConstraint?
    public let keyUsage: KeyUsageRule
    public let extendedKeyUsage: [ExtendedKeyUsage.Usage]
    /// Critical SAN with exactly one HardwareModuleName otherName.
    public let hardwareModuleName: Bool
    public let crlDistributionPoint: Bool
    public let ocspAccess: Bool
    /// Non-critical SAN with the dNSNames the issuer names (tls-server).
    public let dnsNameSAN: Bool
    /// The same SAN may carry iPAddress names the issuer names (tls-server: servers reached by address). A profile
    /// with ``dnsNameSAN`` or this needs at least one name of the kinds it allows.
    public let ipAddressSAN: Bool
    /// Curves the subject key may be on.
    public let allowedCurves: [ECCurve]
    /// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): a delegated OCSP responder's certificate is not itself checked.
    public internal(set) var ocspNoCheck = false

    public struct CertificateAuthorityConstraint: Sendable, Hashable {
        public let pathLength: Int?
    }

    public var isDeviceProfile: Bool { hardwareModuleName }

    private static let caUsage = KeyUsage(keyCertSign: true, cRLSign: true)

    public static let root = CertificateProfile(
        name: "root", issuerRole: nil, validity: .years(25), subject: .authority(suffix: "Root CA", organization: true),
        certificateAuthority: .init(pathLength: nil), keyUsage: .fixed(caUsage), extendedKeyUsage: [],
        hardwareModuleName: false, crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256, .p384]
    )
    public static let manufacturerCA = CertificateProfile(
        name: "manufacturer-ca", issuerRole: .root, validity: .years(15),
        subject: .authority(suffix: "Device CA", organization: true), certificateAuthority: .init(pathLength: 0),
        keyUsage: .fixed(caUsage), extendedKeyUsage: [], hardwareModuleName: false, crlDistributionPoint: false,
        ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256, .p384]
    )
    public static let operationalCA = CertificateProfile(
        name: "operational-ca", issuerRole: .root, validity: .years(10),
        subject: .authority(suffix: "Operational CA", organization: true), certificateAuthority: .init(pathLength: 0),
        keyUsage: .fixed(caUsage), extendedKeyUsage: [], hardwareModuleName: false, crlDistributionPoint: true,
        ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256, .p384]
    )
    public static let adminCA = CertificateProfile(
        name: "admin-ca", issuerRole: .root, validity: .years(10), subject: .authority(suffix: "Admin CA", organization: false),
        certificateAuthority: .init(pathLength: 0), keyUsage: .fixed(caUsage), extendedKeyUsage: [],
        hardwareModuleName: false, crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256, .p384]
    )
    /// The Service CA: certifies the platform's own servers (tls-server), so no utility's operational CA does.
    public static let serviceCA = CertificateProfile(
        name: "service-ca", issuerRole: .root, validity: .years(10), subject: .authority(suffix: "Service CA", organization: true),
        certificateAuthority: .init(pathLength: 0), keyUsage: .fixed(caUsage), extendedKeyUsage: [],
        hardwareModuleName: false, crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256, .p384]
    )
    /// IDevID: the factory identity of a meter, after the GB SMKI device certificate profile and IEEE 802.1AR.
    public static let deviceIdentity = CertificateProfile(
        name: "device-identity", issuerRole: .manufacturer, validity: .noExpiry, subject: .empty,
        certificateAuthority: nil, keyUsage: .signatureOrKeyAgreement, extendedKeyUsage: [], hardwareModuleName: true,
        crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256]
    )
    /// LDevID: the operational certificate a utility's Operational CA issues to a meter in its account.
    public static let deviceOperational = CertificateProfile(
        name: "device-operational", issuerRole: .operational, validity: .years(2), subject: .deviceURN,
        certificateAuthority: nil, keyUsage: .fixed(KeyUsage(digitalSignature: true)), extendedKeyUsage: [.clientAuth],
        hardwareModuleName: true, crlDistributionPoint: true, ocspAccess: true, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256]
    )

    /// The audit log's checkpoint signing key, certified by the root.
    public static let auditSigner = CertificateProfile(
        name: "audit-signer", issuerRole: .root, validity: .years(5), subject: .authority(suffix: "Audit Log", organization: false),
        certificateAuthority: nil, keyUsage: .fixed(KeyUsage(digitalSignature: true)), extendedKeyUsage: [],
        hardwareModuleName: false, crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256]
    )

    /// A custodian's admin certificate: TLS client authentication to the admin API and approval signatures.
    public static let custodian = CertificateProfile(
        name: "custodian", issuerRole: .admin, validity: .years(2), subject: .named, certificateAuthority: nil,
        keyUsage: .fixed(KeyUsage(digitalSignature: true)), extendedKeyUsage: [.clientAuth], hardwareModuleName: false,
        crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256]
    )

    /// The Operator CA: certifies the utilities' operators, apart from the Admin CA.
    public static let operatorCA = CertificateProfile(
        name: "operator-ca", issuerRole: .root, validity: .years(10), subject: .authority(suffix: "Operator CA", organization: true),
        certificateAuthority: .init(pathLength: 0), keyUsage: .fixed(caUsage), extendedKeyUsage: [],
        hardwareModuleName: false, crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256, .p384]
    )

    /// A utility operator's certificate: TLS client authentication to the account API, for the account its O names.
    public static let utilityOperator = CertificateProfile(
        name: "utility-operator", issuerRole: .operator, validity: .years(2), subject: .accountMember, certificateAuthority: nil,
        keyUsage: .fixed(KeyUsage(digitalSignature: true)), extendedKeyUsage: [.clientAuth], hardwareModuleName: false,
        crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256]
    )

    /// A TLS server (the admin API, later EST and CoAP servers), certified by the Service CA; its key stays in the HSM.
    public static let tlsServer = CertificateProfile(
        name: "tls-server", issuerRole: .service, validity: .years(1), subject: .named, certificateAuthority: nil,
        keyUsage: .fixed(KeyUsage(digitalSignature: true)), extendedKeyUsage: [.serverAuth], hardwareModuleName: false,
        crlDistributionPoint: false, ocspAccess: true, dnsNameSAN: true, ipAddressSAN: true, allowedCurves: [.p256]
    )

    /// A CA's delegated OCSP responder (RFC 6960 §4.2.2.2): issued by that CA (any CA but the root, whose responder
    /// is certified under quorum), key in the HSM, 30 days, rolled by the responder before a third of its life is left.
    public static let ocspSigner = CertificateProfile(
        name: "ocsp-signer", issuerRole: nil, validity: .days(30), subject: .authority(suffix: "OCSP Signer", organization: false),
        certificateAuthority: nil, keyUsage: .fixed(KeyUsage(digitalSignature: true)), extendedKeyUsage: [.ocspSigning],
        hardwareModuleName: false, crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256],
        ocspNoCheck: true
    )

    /// The root's delegated OCSP responder: as ``ocspSigner`` but issued by the root under quorum
    /// (`ocsp.certify-root-signer`), so it cannot be rolled online: a year, renewed by the custodians (the responder
    /// warns once two thirds of it have passed and stops answering for the root before it ends).
    public static let rootOCSPSigner = CertificateProfile(
        name: "root-ocsp-signer", issuerRole: .root, validity: .days(365), subject: .authority(suffix: "OCSP Signer", organization: false),
        certificateAuthority: nil, keyUsage: .fixed(KeyUsage(digitalSignature: true)), extendedKeyUsage: [.ocspSigning],
        hardwareModuleName: false, crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: false, ipAddressSAN: false, allowedCurves: [.p256],
        ocspNoCheck: true
    )

    /// Profiles a CSR can be issued under (`metertrust issue --profile`).
    public static let requestable: [CertificateProfile] = [.deviceIdentity, .deviceOperational]
    /// Every built-in profile.
    public static let all: [CertificateProfile] = [
        .root, .manufacturerCA, .operationalCA, .adminCA, .serviceCA, .operatorCA, .auditSigner, .custodian, .utilityOperator, .tlsServer, .ocspSigner,
        .rootOCSPSigner,
    ] + requestable

    /// The profile a CA of `role` gets its own certificate under.
    public static func forAuthority(_ role: CertificateAuthorityRole) -> CertificateProfile {
        switch role {
        case .root: return .root
        case .manufacturer: return .manufacturerCA
        case .operational: return .operationalCA
        case .admin: return .adminCA
        case .service: return .serviceCA
        case .operator: return .operatorCA
        }
    }

    /// The requestable profile called `name`.
    public static func requestable(named name: String) throws -> CertificateProfile {
        guard let profile = requestable.first(where: { $0.name == name }) else {
            let known = requestable.map(\.name).joined(separator: ", ")
            throw PKIError(.unknownProfile, "unknown profile \"\(name)\": use one of \(known)")
        }
        return profile
    }
}

extension CertificateProfile {
    /// The store's kind for certificates issued under this profile (what its queries and constraints go by).
    public var recordKind: CertificateRecord.Kind {
        if certificateAuthority != nil { return .authority }
        // By the profile's identity (its name), so a profile derived from one of these keeps its kind.
        if name == CertificateProfile.deviceIdentity.name { return .deviceIdentity }
        if name == CertificateProfile.deviceOperational.name { return .deviceOperational }
        return .service
    }
}
