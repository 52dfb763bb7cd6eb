import Crypto
import Foundation
import MeterTrustCore
import MeterTrustStore
import SwiftASN1
import X509

/// Device certificates at the HSM's speed: the factory engine's path from a meter's CSR to a signed, recorded
/// certificate, for one ``CertificateSigner`` at one point in time (the engine makes one per round).
///
/// A request in the factory shape (``DeviceRequest``) is checked on the octets and its certificate is filled into a
/// ``TBSCertificateTemplate``; any other request, and every request that fails a check, goes to the signer's model
/// path, which issues or refuses exactly as for a single `metertrust issue`. Both paths give the same certificate
/// for the same request, octet for octet up to serial and signature; a test holds them to that.
public struct TemplateIssuer: Sendable {
    public let signer: CertificateSigner
    /// Templates by the key usage they carry: [digitalSignature, keyAgreement] for a profile that lets the request
    /// choose, the profile's one usage otherwise.
    private let templates: [TBSCertificateTemplate]
    private let choosesUsage: Bool
    private let hardwareType: [UInt8]
    /// The notBefore of every certificate from these templates: the second they were laid out for.
    public var notBefore: Date { templates[0].notBefore }

    /// Whether certificates issued at `now` get these templates' notBefore (the same second): then a caller can keep
    /// using them instead of laying out new ones.
    public func isCurrent(at now: Date) -> Bool {
        now.timeIntervalSince1970.rounded(.down) == notBefore.timeIntervalSince1970
    }

    /// Templates for `signer` at `now`; nil when its profile has none (not a device profile, or subject keys not
    /// on P-256): then use the signer itself.
    public static func make(signer: CertificateSigner, now: Date = Date()) throws -> TemplateIssuer? {
        let profile = signer.profile
        // A profile whose certificates name their shard's CRL (device-operational: `<ca>/<shard>.crl`) has no fixed
        // layout, the DP's length follows the serial; it takes the signer's path (EST issues one at a time anyway).
        guard profile.isDeviceProfile, profile.subject == .empty || profile.subject == .deviceURN,
            profile.allowedCurves.contains(.p256), !profile.crlDistributionPoint
        else { return nil }
        let usages: [KeyUsage]
        switch profile.keyUsage {
        case .signatureOrKeyAgreement: usages = [KeyUsage(digitalSignature: true), KeyUsage(keyAgreement: true)]
        case .fixed(let usage): usages = [usage]
        }
        let templates = try usages.map {
            try TBSCertificateTemplate.layOut(
                signer: signer.signer, profile: profile, policy: signer.policy, settings: signer.settings,
                hardwareType: signer.hardwareType, keyUsage: $0, now: now
            )
        }
        var serializer = DER.Serializer()
        try serializer.serialize(signer.hardwareType)
        var reader = DERReader(serializer.serializedBytes)
        guard let content = reader.read(DERTag.objectIdentifier) else { throw PKIError(.issuance, "device type OID does not encode") }
        return TemplateIssuer(
            signer: signer, templates: templates, choosesUsage: usages.count == 2,
            hardwareType: Array(serializer.serializedBytes[content])
        )
    }

    /// Checks `csr` (DER) for meter `eui64` and signs its certificate in the HSM. Refusals are ``PKIError``s with the
    /// model path's messages. The result is **not stored**: store it before it leaves the process. Blocks on the
    /// HSM; call from a worker thread.
    public func signUnstored(csr der: [UInt8], for eui64: EUI64, batch: String? = nil, position: Int64? = nil) throws -> CertificateRecord {
        guard let request = DeviceRequest.read(der, profile: signer.profile),
            request.claimedEUI64 == nil || request.claimedEUI64 == eui64,
            request.claimedHardwareType.map({ $0.elementsEqual(hardwareType) }) ?? true
        else {
            // Not the factory shape, or a check fails: the full check decides, and explains.
            return try signer.signUnstored(csr: der, for: eui64, batch: batch, position: position)
        }
        let template = choosesUsage && request.requestedKeyUsage == .keyAgreement ? templates[1] : templates[0]
        let values = TBSCertificateTemplate.Values(
            serial: SerialNumbers.randomBytes(), point: request.point, eui64: eui64, subjectKeyIdentifier: request.subjectKeyIdentifier
        )
        let tbs = template.fill(values)
        let key = signer.signer.key.signer
        let digest: [UInt8]
        switch key.curve {
        case .p256: digest = Array(SHA256.hash(data: tbs))
        case .p384: digest = Array(SHA384.hash(data: tbs))
        }
        let signature = try key.signature(digest: digest)
        let certificate = template.certificate(tbs: tbs, signature: signature)
        return CertificateRecord(
            issuer: signer.authority.name, serial: hexString(values.serial), profile: signer.profile.name, kind: signer.profile.recordKind,
            subject: template.subjectDescription(eui64), eui64: eui64.description, notBefore: template.notBefore,
            notAfter: template.notAfter, fingerprintSHA256: hexString(SHA256.hash(data: certificate)), der: certificate,
            batch: batch, batchPosition: position,
            subjectKeyDigest: SubjectKeyDigest.of(header: DeviceRequest.p256KeyPrefix, rest: request.point),
            shard: signer.authority.shardCount.shard(ofSerial: values.serial)
        )
    }
}
