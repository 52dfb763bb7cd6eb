import Crypto
import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustStore
import SwiftASN1
import X509

/// Everything that goes into one certificate before it is signed, assembled by applying a profile.
struct CertificateContents: Sendable {
    let profile: CertificateProfile
    let subject: DistinguishedName
    let publicKey: Certificate.PublicKey
    let keyUsage: KeyUsage
    let device: (eui64: EUI64, hardwareType: ASN1ObjectIdentifier)?
    /// The subject key identifier, when the caller already has it (from the CSR); otherwise computed.
    var subjectKeyIdentifier: [UInt8]? = nil
    /// dNSNames for profiles with ``CertificateProfile/dnsNameSAN``.
    var dnsNames: [String] = []
    /// iPAddresses for profiles with ``CertificateProfile/ipAddressSAN``.
    var ipAddresses: [IPAddress] = []

    /// Who signs: the CA's name, key and certificate (nil for the self-signed root).
    struct Signer: Sendable {
        let authorityName: String
        let name: DistinguishedName
        let key: HSMSigningKey
        let keyIdentifier: [UInt8]?
        let notAfter: Date?
        /// The CA's shard count: an end entity's CRL distribution point is its serial's shard of the CA's CRL.
        var shards: ShardCount = .default
    }

    /// Signs the contents with `signer`'s HSM key, blocking on the HSM: call from the HSM queue or a worker
    /// thread, never from an event loop. `now` is truncated to whole seconds.
    ///
    /// `issuerKey` replaces the HSM key only where the certificate is a layout, never issued: the templates of
    /// ``TBSCertificateTemplate`` are laid out by this very function with a throwaway software key.
    func sign(
        by signer: Signer, policy: ASN1ObjectIdentifier, settings: PKISettings, now: Date = Date(),
        serialNumber: Certificate.SerialNumber = SerialNumbers.random(), issuerKey: Certificate.PrivateKey? = nil
    ) throws -> Certificate {
        let notBefore = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        var notAfter: Date
        switch profile.validity {
        case .noExpiry:
            notAfter = Self.noWellDefinedExpiration
        case .years(let years):
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            notAfter = calendar.date(byAdding: .year, value: years, to: notBefore)!
            if let issuerNotAfter = signer.notAfter, issuerNotAfter < notAfter { notAfter = issuerNotAfter }
        case .days(let days):
            notAfter = notBefore.addingTimeInterval(TimeInterval(days) * 86_400)
            if let issuerNotAfter = signer.notAfter, issuerNotAfter < notAfter { notAfter = issuerNotAfter }
        }
        let extensions = try makeExtensions(signer: signer, policy: policy, settings: settings, serialNumber: serialNumber)
        return try Certificate(
            version: .v3, serialNumber: serialNumber, publicKey: publicKey, notValidBefore: notBefore,
            notValidAfter: notAfter, issuer: signer.name, subject: subject,
            signatureAlgorithm: signer.key.defaultSignatureAlgorithm, extensions: extensions,
            issuerPrivateKey: issuerKey ?? Certificate.PrivateKey(signer.key)
        )
    }

    /// 99991231235959Z (RFC 5280 §4.1.2.5).
    static let noWellDefinedExpiration = Date(timeIntervalSince1970: 253_402_300_799)

    private func makeExtensions(
        signer: Signer, policy: ASN1ObjectIdentifier, settings: PKISettings, serialNumber: Certificate.SerialNumber
    ) throws -> Certificate.Extensions {
        var extensions: [Certificate.Extension] = []
        if let constraint = profile.certificateAuthority {
            extensions.append(
                try Certificate.Extension(.isCertificateAuthority(maxPathLength: constraint.pathLength), critical: true)
            )
        }
        extensions.append(try Certificate.Extension(keyUsage, critical: true))
        if !profile.extendedKeyUsage.isEmpty {
            extensions.append(try Certificate.Extension(try ExtendedKeyUsage(profile.extendedKeyUsage), critical: false))
        }
        if profile.hardwareModuleName {
            guard let device else { throw PKIError(.issuance, "profile \(profile.name) needs the meter's EUI-64") }
            let name = HardwareModuleName(hardwareType: device.hardwareType, serialNumber: device.eui64.bytes)
            let otherName = GeneralName.OtherName(typeID: HardwareModuleName.otherNameTypeID, value: try ASN1Any(erasing: name))
            extensions.append(try Certificate.Extension(SubjectAlternativeNames([.otherName(otherName)]), critical: true))
        }
        if profile.dnsNameSAN || profile.ipAddressSAN {
            guard profile.dnsNameSAN || dnsNames.isEmpty, profile.ipAddressSAN || ipAddresses.isEmpty else {
                throw PKIError(.requestExceedsProfile, "profile \(profile.name) does not allow those kinds of names")
            }
            guard !dnsNames.isEmpty || !ipAddresses.isEmpty else {
                throw PKIError(.issuance, "profile \(profile.name) needs at least one \(profile.ipAddressSAN ? "DNS name or IP address" : "DNS name")")
            }
            let names: [GeneralName] = dnsNames.map { .dnsName($0) } + ipAddresses.map { .ipAddress(ASN1OctetString(contentBytes: $0.octets[...])) }
            extensions.append(try Certificate.Extension(SubjectAlternativeNames(names), critical: false))
        }
        extensions.append(
            try Certificate.Extension(
                SubjectKeyIdentifier(keyIdentifier: try (subjectKeyIdentifier ?? KeyIdentifier.method2(publicKey))[...]), critical: false
            )
        )
        if let authorityKeyIdentifier = signer.keyIdentifier {
            extensions.append(
                try Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: authorityKeyIdentifier[...]), critical: false)
            )
        }
        extensions.append(
            try Self.encoded(CertificatePolicies([policy]), oid: CertificatePolicies.oid, critical: true)
        )
        if profile.crlDistributionPoint {
            // The CA's own certificate points at its issuer's CRL; an end entity at the shard of its CA's CRL that
            // lists it once revoked (its serial's shard, fixed at issuance: ShardCount).
            let url = profile.certificateAuthority != nil
                ? "\(settings.crlBaseURL)\(signer.authorityName).crl"
                : "\(settings.crlBaseURL)\(signer.authorityName)/\(signer.shards.shard(ofSerial: serialNumber.bytes)).crl"
            extensions.append(try Self.encoded(CRLDistributionPoints(uris: [url]), oid: CRLDistributionPoints.oid, critical: false))
        }
        if profile.ocspAccess {
            let access = AuthorityInformationAccess([.init(method: .ocspServer, location: .uniformResourceIdentifier(settings.ocspURL))])
            extensions.append(try Certificate.Extension(access, critical: false))
        }
        if profile.ocspNoCheck {
            // id-pkix-ocsp-nocheck: NULL.
            extensions.append(Certificate.Extension(oid: [1, 3, 6, 1, 5, 5, 7, 48, 1, 5], critical: false, value: [0x05, 0x00]))
        }
        return try Certificate.Extensions(extensions)
    }

    private static func encoded(_ value: some DERSerializable, oid: ASN1ObjectIdentifier, critical: Bool) throws -> Certificate.Extension {
        var serializer = DER.Serializer()
        try serializer.serialize(value)
        return Certificate.Extension(oid: oid, critical: critical, value: serializer.serializedBytes[...])
    }
}

extension Certificate {
    /// The store's record of this certificate; a meter's certificate carries its key's digest (the store keeps each
    /// key for one meter), every certificate its shard under `shards`, the issuing CA's count (from the serial's
    /// octets at hand, no DER parsed).
    func record(
        issuer: String, shards: ShardCount, profile: CertificateProfile, eui64: EUI64?, batch: String? = nil, position: Int64? = nil
    ) throws -> CertificateRecord {
        let der = try derBytes
        return CertificateRecord(
            issuer: issuer, serial: serialHex, profile: profile.name, kind: profile.recordKind, subject: subject.description,
            eui64: eui64?.description, notBefore: notValidBefore, notAfter: notValidAfter,
            fingerprintSHA256: hexString(SHA256.hash(data: der)), der: der, batch: batch, batchPosition: position,
            subjectKeyDigest: eui64 == nil ? nil : try SubjectKeyDigest.of(certificate: der),
            shard: shards.shard(ofSerial: serialNumber.bytes)
        )
    }
}
