import Foundation
import MeterTrustCore
import MeterTrustHSM
import SwiftASN1
import X509

/// A PKCS#10 request (RFC 2986) that passed every check against a profile: well-formed, proof of possession,
/// allowed key, and asking for nothing the profile does not allow.
public struct ValidatedCSR: Sendable {
    public let request: CertificateSigningRequest
    public let publicKey: Certificate.PublicKey
    /// The EUI-64 the request names in its HardwareModuleName or subject, if any.
    public let claimedEUI64: EUI64?
    /// The hwType the request names in its HardwareModuleName, if any.
    public let claimedHardwareType: ASN1ObjectIdentifier?
    /// The key usage the request asks for, if any.
    public let requestedKeyUsage: KeyUsage?
    /// The subject key's 8-octet method-2 identifier (from the subjectPublicKey bits as the CSR carries them).
    public let subjectKeyIdentifier: [UInt8]
}

/// Checks PKCS#10 requests against a profile. Every refusal is a ``PKIError`` that says what was wrong.
public enum CSRCheck {
    /// Largest CSR accepted, in bytes: a P-256 request is under 1 KiB; bounding input bounds parsing.
    public static let maximumSize = 16 * 1024

    /// Decodes a CSR from PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`) or DER bytes.
    public static func decode(_ bytes: [UInt8]) throws -> [UInt8] {
        guard bytes.count <= maximumSize else {
            throw PKIError(.malformedRequest, "the CSR is \(bytes.count) bytes; the limit is \(maximumSize)")
        }
        guard let text = String(bytes: bytes, encoding: .utf8), text.contains("-----BEGIN") else { return bytes }
        do {
            let document = try PEMDocument(pemString: text)
            guard ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"].contains(document.discriminator) else {
                throw PKIError(.malformedRequest, "the PEM block is a \(document.discriminator), not a CERTIFICATE REQUEST")
            }
            return document.derBytes
        } catch let error as PKIError {
            throw error
        } catch {
            throw PKIError(.malformedRequest, "the CSR is not valid PEM: \(error)")
        }
    }

    /// Runs every check of `profile` on the DER request `der`.
    public static func validate(der: [UInt8], profile: CertificateProfile) throws -> ValidatedCSR {
        guard der.count <= maximumSize else {
            throw PKIError(.malformedRequest, "the CSR is \(der.count) bytes; the limit is \(maximumSize)")
        }
        // 1. Structure and key algorithm, read by hand so an unsupported key can be named.
        let root: ASN1Node
        let algorithm: SubjectKeyAlgorithm
        let subjectPublicKey: ArraySlice<UInt8>
        do {
            root = try DER.parse(der)
            (algorithm, subjectPublicKey) = try subjectKey(of: root)
        } catch {
            throw PKIError(.malformedRequest, "the CSR is not a DER PKCS#10 CertificationRequest")
        }
        guard let curve = algorithm.curve, profile.allowedCurves.contains(curve) else {
            let allowed = profile.allowedCurves.map { "EC \($0.rawValue)" }.joined(separator: " or ")
            throw PKIError(.keyNotAllowed, "the CSR's key is \(algorithm); profile \(profile.name) requires \(allowed)")
        }
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(derEncoded: root, withIdentifier: .sequence)
        } catch {
            throw PKIError(.malformedRequest, "the CSR is not a valid PKCS#10 CertificationRequest: \(error)")
        }
        // 2. Proof of possession (RFC 2986 §3: the request is signed with the subject's private key).
        guard [.ecdsaWithSHA256, .ecdsaWithSHA384].contains(request.signatureAlgorithm) else {
            throw PKIError(.badSignature, "the CSR is signed with \(request.signatureAlgorithm); use ECDSA with SHA-256 or SHA-384")
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw PKIError(.badSignature, "the CSR's signature does not verify with its own key: no proof of possession")
        }
        // 3. What it asks for.
        var claimedEUI64 = try claimedEUI64(in: request.subject, profile: profile)
        var claimedType: ASN1ObjectIdentifier?
        var keyUsage: KeyUsage?
        let requested: Certificate.Extensions
        do {
            requested = try request.attributes.extensionRequest?.extensions ?? Certificate.Extensions()
        } catch {
            throw PKIError(.malformedRequest, "the CSR's extensionRequest attribute is malformed: \(error)")
        }
        for requestedExtension in requested {
            switch requestedExtension.oid {
            case .X509ExtensionID.basicConstraints:
                let constraints = try parse("basicConstraints") { try BasicConstraints(requestedExtension) }
                if case .isCertificateAuthority = constraints {
                    throw PKIError(.requestExceedsProfile, "the CSR asks for a CA certificate; profile \(profile.name) issues end-entity certificates only")
                }
            case .X509ExtensionID.subjectAlternativeName:
                let names = try parse("subjectAltName") { try SubjectAlternativeNames(requestedExtension) }
                let hardwareName = try hardwareModuleName(in: Array(names), profile: profile)
                let eui = try EUI64(bytes: hardwareName.serialNumber)
                if let subjectEUI = claimedEUI64, subjectEUI != eui {
                    throw PKIError(.requestExceedsProfile, "the CSR names EUI-64 \(subjectEUI) in its subject but \(eui) in its HardwareModuleName")
                }
                claimedEUI64 = eui
                claimedType = hardwareName.hardwareType
            case .X509ExtensionID.keyUsage:
                let usage = try parse("keyUsage") { try KeyUsage(requestedExtension) }
                try check(usage, against: profile.keyUsage, profile: profile)
                keyUsage = usage
            case .X509ExtensionID.extendedKeyUsage:
                let usages = try parse("extendedKeyUsage") { try ExtendedKeyUsage(requestedExtension) }
                for usage in usages where !profile.extendedKeyUsage.contains(usage) {
                    throw PKIError(.requestExceedsProfile, "the CSR asks for extended key usage \(usage), which profile \(profile.name) does not allow")
                }
            default:
                throw PKIError(
                    .requestExceedsProfile,
                    "the CSR asks for extension \(requestedExtension.oid.dotted), which profile \(profile.name) does not allow; request only subjectAltName (HardwareModuleName), keyUsage or basicConstraints cA=FALSE"
                )
            }
        }
        return ValidatedCSR(
            request: request, publicKey: request.publicKey, claimedEUI64: claimedEUI64, claimedHardwareType: claimedType,
            requestedKeyUsage: keyUsage, subjectKeyIdentifier: KeyIdentifier.method2(subjectPublicKey: subjectPublicKey)
        )
    }

    private static func subjectKey(of root: ASN1Node) throws -> (SubjectKeyAlgorithm, ArraySlice<UInt8>) {
        // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature }
        // CertificationRequestInfo ::= SEQUENCE { version, subject, subjectPKInfo, attributes [0] }
        try DER.sequence(root, identifier: .sequence) { nodes in
            guard let info = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "empty CertificationRequest") }
            while nodes.next() != nil {}
            return try DER.sequence(info, identifier: .sequence) { infoNodes in
                _ = try Int(derEncoded: &infoNodes)
                _ = infoNodes.next()
                guard let spki = infoNodes.next() else { throw ASN1Error.invalidASN1Object(reason: "no subjectPKInfo") }
                while infoNodes.next() != nil {}
                return try SubjectKeyAlgorithm.read(spki: spki)
            }
        }
    }

    /// The subject of a device request may be empty or name the meter (CN=urn:dev:mac:<eui64>); nothing else.
    private static func claimedEUI64(in subject: DistinguishedName, profile: CertificateProfile) throws -> EUI64? {
        let attributes = subject.flatMap { Array($0) }
        if attributes.isEmpty { return nil }
        guard profile.isDeviceProfile else { return nil }
        if attributes.count == 1, attributes[0].type == .RDNAttributeType.commonName,
            let commonName = String(attributes[0].value), let eui = EUI64(deviceURN: commonName)
        {
            return eui
        }
        throw PKIError(
            .requestExceedsProfile,
            "the CSR subject \"\(subject)\" is not allowed by profile \(profile.name): leave it empty or use CN=urn:dev:mac:<eui64>"
        )
    }

    private static func hardwareModuleName(in names: [GeneralName], profile: CertificateProfile) throws -> HardwareModuleName {
        guard profile.hardwareModuleName else {
            throw PKIError(.requestExceedsProfile, "the CSR asks for a subjectAltName, which profile \(profile.name) does not allow")
        }
        guard names.count == 1, case .otherName(let otherName) = names[0],
            otherName.typeID == HardwareModuleName.otherNameTypeID, let value = otherName.value
        else {
            let listed = names.map { "\($0)" }.joined(separator: ", ")
            throw PKIError(
                .requestExceedsProfile,
                "the CSR asks for subjectAltName [\(listed)]; profile \(profile.name) allows exactly one HardwareModuleName"
            )
        }
        do {
            var serializer = DER.Serializer()
            try serializer.serialize(value)
            let name = try HardwareModuleName(derEncoded: serializer.serializedBytes)
            guard name.serialNumber.count == 8 else {
                throw PKIError(.requestExceedsProfile, "the CSR's HardwareModuleName hwSerialNum has \(name.serialNumber.count) bytes; an EUI-64 has 8")
            }
            return name
        } catch let error as PKIError {
            throw error
        } catch {
            throw PKIError(.malformedRequest, "the CSR's HardwareModuleName is malformed: \(error)")
        }
    }

    private static func check(_ usage: KeyUsage, against rule: CertificateProfile.KeyUsageRule, profile: CertificateProfile) throws {
        switch rule {
        case .fixed(let allowed):
            guard usage.isSubset(of: allowed) else {
                throw PKIError(.requestExceedsProfile, "the CSR asks for key usage \(usage); profile \(profile.name) allows \(allowed)")
            }
        case .signatureOrKeyAgreement:
            guard usage == KeyUsage(digitalSignature: true) || usage == KeyUsage(keyAgreement: true) else {
                throw PKIError(
                    .requestExceedsProfile,
                    "the CSR asks for key usage \(usage); profile \(profile.name) allows exactly one of digitalSignature or keyAgreement"
                )
            }
        }
    }

    private static func parse<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw PKIError(.malformedRequest, "the CSR's requested \(name) extension is malformed: \(error)")
        }
    }
}

extension KeyUsage {
    /// Every bit set here is set in `other`.
    func isSubset(of other: KeyUsage) -> Bool {
        let bits: [KeyPath<KeyUsage, Bool>] = [
            \.digitalSignature, \.nonRepudiation, \.keyEncipherment, \.dataEncipherment, \.keyAgreement,
            \.keyCertSign, \.cRLSign, \.encipherOnly, \.decipherOnly,
        ]
        return bits.allSatisfy { !self[keyPath: $0] || other[keyPath: $0] }
    }
}
