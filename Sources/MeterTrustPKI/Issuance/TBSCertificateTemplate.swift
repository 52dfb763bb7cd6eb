import Crypto
import Foundation
import MeterTrustCore
import SwiftASN1
import X509

/// A device certificate's TBSCertificate for one CA, one profile, one key usage and one second, laid out by the
/// model path (``CertificateContents`` on swift-certificates) and kept as octets, with slots for the fields that
/// differ from meter to meter: serial, subject key, EUI-64 (in the HardwareModuleName, and in the subject for
/// profiles that name the meter there) and subject key identifier. All of them have a fixed length, so filling the
/// slots gives, octet for octet, what the model would have built for the same values.
///
/// That is not assumed: ``layOut(signer:profile:policy:settings:hardwareType:keyUsage:now:)`` finds the slots in one
/// model-built sample and then checks the template against a second, independent one, and refuses to exist if they
/// differ. The hot path then writes ~100 octets into a copy instead of building a model, its DER and its key.
struct TBSCertificateTemplate: Sendable {
    enum Field: Sendable, CaseIterable {
        case serial, point, eui64, eui64Hex, subjectKeyIdentifier

        var length: Int {
            switch self {
            case .serial: return SerialNumbers.length
            case .point: return 65
            case .eui64, .subjectKeyIdentifier: return 8
            case .eui64Hex: return 16
            }
        }
    }

    struct Slot: Sendable {
        let field: Field
        let offset: Int
    }

    /// The per-certificate values.
    struct Values {
        /// 16 octets, the serial INTEGER's content (``SerialNumbers/randomBytes()``).
        var serial: [UInt8]
        /// The uncompressed P-256 point, 65 octets.
        var point: ArraySlice<UInt8>
        var eui64: EUI64
        var subjectKeyIdentifier: [UInt8]

        /// Random values: a fresh key, serial, EUI-64 and identifier.
        static func sample() -> Values {
            Values(
                serial: SerialNumbers.randomBytes(), point: Array(P256.Signing.PrivateKey().publicKey.x963Representation)[...],
                eui64: EUI64(UInt64.random(in: .min ... .max)), subjectKeyIdentifier: (0..<8).map { _ in .random(in: .min ... .max) }
            )
        }

        func octets(_ field: Field) -> [UInt8] {
            switch field {
            case .serial: return serial
            case .point: return Array(point)
            case .eui64: return eui64.bytes
            case .eui64Hex: return Array(eui64.description.utf8)
            case .subjectKeyIdentifier: return subjectKeyIdentifier
            }
        }
    }

    let bytes: [UInt8]
    let slots: [Slot]
    /// The signature's AlgorithmIdentifier as the TBSCertificate has it; the certificate repeats it.
    let signatureAlgorithm: [UInt8]
    let notBefore: Date
    let notAfter: Date
    /// The record's subject text: constant, or `prefix + EUI-64 hex + suffix` when the subject names the meter.
    private let subjectText: (prefix: String, suffix: String?)

    /// The TBSCertificate for `values`.
    func fill(_ values: Values) -> [UInt8] {
        precondition(values.serial.count == Field.serial.length && values.point.count == Field.point.length
            && values.subjectKeyIdentifier.count == Field.subjectKeyIdentifier.length)
        var tbs = bytes
        tbs.withUnsafeMutableBufferPointer { output in
            for slot in slots {
                switch slot.field {
                case .serial: Self.copy(values.serial, to: output, at: slot.offset)
                case .point: Self.copy(values.point, to: output, at: slot.offset)
                case .eui64: Self.copy(values.eui64.bytes, to: output, at: slot.offset)
                case .subjectKeyIdentifier: Self.copy(values.subjectKeyIdentifier, to: output, at: slot.offset)
                case .eui64Hex:
                    var index = slot.offset
                    for byte in values.eui64.bytes {
                        output[index] = Self.hexDigits[Int(byte >> 4)]
                        output[index + 1] = Self.hexDigits[Int(byte & 0x0F)]
                        index += 2
                    }
                }
            }
        }
        return tbs
    }

    /// The Certificate: `tbs`, the signature algorithm and the DER ECDSA-Sig-Value `signature` in a BIT STRING.
    func certificate(tbs: [UInt8], signature: [UInt8]) -> [UInt8] {
        let bitString = signature.count + 1
        let content = tbs.count + signatureAlgorithm.count + DERWriter.headerLength(bitString) + bitString
        var der: [UInt8] = []
        der.reserveCapacity(content + DERWriter.headerLength(content))
        DERWriter.appendHeader(DERTag.sequence, length: content, to: &der)
        der.append(contentsOf: tbs)
        der.append(contentsOf: signatureAlgorithm)
        DERWriter.appendHeader(DERTag.bitString, length: bitString, to: &der)
        der.append(0)
        der.append(contentsOf: signature)
        return der
    }

    /// The subject as the store records it (RFC 4514 text, as swift-certificates writes it).
    func subjectDescription(_ eui64: EUI64) -> String {
        guard let suffix = subjectText.suffix else { return subjectText.prefix }
        return subjectText.prefix + eui64.description + suffix
    }

    /// Lays out the template for certificates `signer` issues under the device profile `profile` with `keyUsage`
    /// at `now`, and checks it against an independent model-built sample.
    static func layOut(
        signer: CertificateContents.Signer, profile: CertificateProfile, policy: ASN1ObjectIdentifier, settings: PKISettings,
        hardwareType: ASN1ObjectIdentifier, keyUsage: KeyUsage, now: Date
    ) throws -> TBSCertificateTemplate {
        guard profile.isDeviceProfile, profile.subject == .empty || profile.subject == .deviceURN else {
            throw PKIError(.issuance, "profile \(profile.name) has no certificate template")
        }
        // The layout's signatures are never used; only the algorithm must match the CA's.
        let layoutKey: Certificate.PrivateKey
        switch signer.key.key.curve {
        case .p256: layoutKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        case .p384: layoutKey = Certificate.PrivateKey(P384.Signing.PrivateKey())
        }
        func model(_ values: Values) throws -> Certificate {
            let subject = profile.subject == .deviceURN ? try DistinguishedName { CommonName(values.eui64.deviceURN) } : DistinguishedName()
            let contents = CertificateContents(
                profile: profile, subject: subject,
                publicKey: Certificate.PublicKey(try P256.Signing.PublicKey(x963Representation: values.point)), keyUsage: keyUsage,
                device: (values.eui64, hardwareType), subjectKeyIdentifier: values.subjectKeyIdentifier
            )
            return try contents.sign(
                by: signer, policy: policy, settings: settings, now: now,
                serialNumber: Certificate.SerialNumber(bytes: values.serial), issuerKey: layoutKey
            )
        }

        let sample = Values.sample()
        let layout = try model(sample)
        let bytes = Array(layout.tbsCertificateBytes)
        var slots: [Slot] = []
        for field in Field.allCases {
            let offsets = occurrences(of: sample.octets(field), in: bytes)
            let expected = field == .eui64Hex ? (profile.subject == .deviceURN ? 1 : 0) : 1
            guard offsets.count == expected else {
                throw PKIError(.issuance, "the \(profile.name) template found \(offsets.count) places for the \(field), expected \(expected)")
            }
            slots += offsets.map { Slot(field: field, offset: $0) }
        }
        var reader = DERReader(bytes)
        guard var fields = reader.enter(DERTag.sequence), fields.read(DERTag.contextConstructed(0)) != nil,
            fields.read(DERTag.integer) != nil, let algorithm = fields.readAny(), algorithm.tag == DERTag.sequence
        else { throw PKIError(.issuance, "the \(profile.name) template has no signature algorithm") }
        let description = layout.subject.description
        let hexDigits = sample.eui64.description
        let subjectText: (String, String?)
        if let range = description.range(of: hexDigits) {
            subjectText = (String(description[..<range.lowerBound]), String(description[range.upperBound...]))
        } else {
            subjectText = (description, nil)
        }
        let template = TBSCertificateTemplate(
            bytes: bytes, slots: slots, signatureAlgorithm: Array(bytes[algorithm.whole]), notBefore: layout.notValidBefore,
            notAfter: layout.notValidAfter, subjectText: subjectText
        )

        // The check: a second sample, every value different, built both ways.
        let check = Values.sample()
        let expected = try model(check)
        guard template.fill(check) == Array(expected.tbsCertificateBytes),
            template.subjectDescription(check.eui64) == expected.subject.description
        else {
            throw PKIError(.issuance, "the \(profile.name) certificate template does not reproduce the model's TBSCertificate")
        }
        return template
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func copy(_ source: some Collection<UInt8>, to output: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        var index = offset
        for byte in source {
            output[index] = byte
            index += 1
        }
    }

    private static func occurrences(of pattern: [UInt8], in bytes: [UInt8]) -> [Int] {
        guard !pattern.isEmpty, bytes.count >= pattern.count else { return [] }
        return (0...(bytes.count - pattern.count)).filter { start in
            bytes[start..<(start + pattern.count)].elementsEqual(pattern)
        }
    }
}
