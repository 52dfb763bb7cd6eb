import Crypto
import MeterTrustCore

/// A meter's PKCS#10 request in the one shape a factory line makes it, read and checked without building a model:
/// the issuance hot path.
///
/// ```
/// CertificationRequest ::= SEQUENCE {
///     certificationRequestInfo SEQUENCE {
///         version        INTEGER 0,
///         subject        empty, or CN=urn:dev:mac:<16 hex digits>,
///         subjectPKInfo  EC P-256, named curve, uncompressed point,
///         attributes [0] none, or one extensionRequest holding only
///                        subjectAltName (one HardwareModuleName with an 8-octet hwSerialNum),
///                        keyUsage (digitalSignature or keyAgreement), basicConstraints (cA FALSE) },
///     signatureAlgorithm ecdsa-with-SHA256,
///     signature          BIT STRING (ECDSA-Sig-Value) }
/// ```
///
/// It is a shortcut, never a second judge: ``read(_:profile:)`` returns a request only if every check of
/// ``CSRCheck/validate(der:profile:)`` would pass with the same result (proof of possession included); anything else,
/// including every request that check refuses, returns nil, and the caller runs the full check, which accepts or
/// refuses and says why. A differential test holds the two to agreement on mutated requests.
public struct DeviceRequest: Sendable, Hashable {
    /// The subject key's uncompressed point (65 octets), on the curve (the signature check loaded it).
    public let point: ArraySlice<UInt8>
    /// The EUI-64 the request names (HardwareModuleName or subject), if any.
    public let claimedEUI64: EUI64?
    /// Content octets of the hwType OID the request names, if any.
    public let claimedHardwareType: ArraySlice<UInt8>?
    /// The key usage the request asks for, if any.
    public let requestedKeyUsage: Usage?
    /// The 8-octet method-2 subject key identifier.
    public let subjectKeyIdentifier: [UInt8]

    public enum Usage: Sendable, Hashable {
        case digitalSignature
        case keyAgreement
    }

    /// Reads `der` as a device request for `profile` (a device profile) and checks its proof of possession; nil if
    /// it is not in the shape above or any check fails (run ``CSRCheck`` then).
    public static func read(_ der: [UInt8], profile: CertificateProfile) -> DeviceRequest? {
        guard profile.isDeviceProfile, profile.allowedCurves.contains(.p256), der.count <= CSRCheck.maximumSize,
            let envelope = Envelope(der), envelope.isProofOfPossession
        else { return nil }
        var info = DERReader(der, range: envelope.attributesAndRest)
        // attributes [0] IMPLICIT SET OF Attribute: none, or exactly one extensionRequest.
        guard var attributes = info.enter(DERTag.contextConstructed(0)), info.isAtEnd else { return nil }
        var extensions = Extensions()
        if !attributes.isAtEnd {
            guard var attribute = attributes.enter(DERTag.sequence), attributes.isAtEnd,
                attribute.read(exactly: Self.extensionRequestOID),
                var values = attribute.enter(DERTag.set), attribute.isAtEnd,
                let requested = values.read(DERTag.sequence), values.isAtEnd,
                let read = Extensions(der, range: requested)
            else { return nil }
            extensions = read
        }
        // The subject may name the meter; if the HardwareModuleName does too, they must agree.
        var claimed = extensions.hardwareSerial.map { try? EUI64(bytes: der[$0]) } ?? nil
        if let subjectEUI = envelope.subjectEUI64 {
            if let claimedEUI = claimed, claimedEUI != subjectEUI { return nil }
            claimed = subjectEUI
        }
        if let usage = extensions.keyUsage {
            switch profile.keyUsage {
            case .signatureOrKeyAgreement: break
            case .fixed(let allowed):
                guard usage == .digitalSignature ? allowed.digitalSignature : allowed.keyAgreement else { return nil }
            }
        }
        return DeviceRequest(
            point: der[envelope.point], claimedEUI64: claimed, claimedHardwareType: extensions.hardwareType.map { der[$0] },
            requestedKeyUsage: extensions.keyUsage, subjectKeyIdentifier: KeyIdentifier.method2(subjectPublicKey: der[envelope.point])
        )
    }

    /// Parses the envelope of a P-256 request and verifies its self-signature: the proof-of-possession step alone,
    /// which the benchmark measures as the raw CSR verification limit. False for anything not in the shape above.
    public static func verifiesProofOfPossession(_ der: [UInt8]) -> Bool {
        Envelope(der)?.isProofOfPossession ?? false
    }

    // MARK: Encodings

    /// SubjectPublicKeyInfo up to the point: SEQUENCE, AlgorithmIdentifier {id-ecPublicKey, prime256v1}, BIT STRING
    /// header (66 octets, 0 unused bits).
    static let p256KeyPrefix: [UInt8] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE,
        0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ]
    /// AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758 §3.2: no parameters).
    static let ecdsaWithSHA256: [UInt8] = [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]
    /// version INTEGER 0.
    static let version0: [UInt8] = [0x02, 0x01, 0x00]
    /// id-ExtensionRequest (PKCS #9, 1.2.840.113549.1.9.14).
    static let extensionRequestOID: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x0E]
    /// id-at-commonName.
    static let commonNameOID: [UInt8] = [0x06, 0x03, 0x55, 0x04, 0x03]
    static let deviceURNPrefix = Array(EUI64.deviceURNPrefix.utf8)

    /// The outer structure, the subject and the key.
    private struct Envelope {
        let der: [UInt8]
        /// The whole certificationRequestInfo encoding (what the signature covers).
        let info: Range<Int>
        /// From the attributes to the end of the info's content.
        let attributesAndRest: Range<Int>
        let point: Range<Int>
        /// Content octets of the ECDSA-Sig-Value BIT STRING, without the unused-bits octet.
        let signature: Range<Int>
        let subjectEUI64: EUI64?

        init?(_ der: [UInt8]) {
            var outer = DERReader(der)
            guard var request = outer.enter(DERTag.sequence), outer.isAtEnd,
                let info = request.readAny(), info.tag == DERTag.sequence,
                request.read(exactly: DeviceRequest.ecdsaWithSHA256),
                let signature = request.read(DERTag.bitString), request.isAtEnd,
                signature.count > 1, der[signature.lowerBound] == 0
            else { return nil }
            var fields = DERReader(der, range: info.content)
            guard fields.read(exactly: DeviceRequest.version0), let subject = fields.read(DERTag.sequence),
                fields.read(exactly: DeviceRequest.p256KeyPrefix)
            else { return nil }
            // The uncompressed point: 0x04 and 64 octets, the rest of the BIT STRING.
            let pointStart = fields.position
            guard info.content.upperBound - pointStart >= 65, der[pointStart] == 0x04 else { return nil }
            let afterPoint = pointStart + 65
            if subject.isEmpty {
                subjectEUI64 = nil
            } else {
                guard let eui = Self.deviceURN(der, subject: subject) else { return nil }
                subjectEUI64 = eui
            }
            self.der = der
            self.info = info.whole
            self.attributesAndRest = afterPoint..<info.content.upperBound
            self.point = pointStart..<afterPoint
            self.signature = (signature.lowerBound + 1)..<signature.upperBound
        }

        /// RDNSequence of one RDN of one AttributeTypeAndValue, CN = urn:dev:mac:<16 hex digits>.
        private static func deviceURN(_ der: [UInt8], subject: Range<Int>) -> EUI64? {
            var name = DERReader(der, range: subject)
            guard var rdn = name.enter(DERTag.set), name.isAtEnd,
                var attribute = rdn.enter(DERTag.sequence), rdn.isAtEnd,
                attribute.read(exactly: DeviceRequest.commonNameOID),
                let value = attribute.readAny(), attribute.isAtEnd,
                value.tag == DERTag.utf8String || value.tag == DERTag.printableString
            else { return nil }
            let text = der[value.content]
            let prefix = DeviceRequest.deviceURNPrefix
            guard text.count == prefix.count + 16, text.starts(with: prefix) else { return nil }
            return EUI64(asciiHex: text.dropFirst(prefix.count))
        }

        /// The self-signature verifies with the request's own key.
        var isProofOfPossession: Bool {
            guard let key = try? P256.Signing.PublicKey(x963Representation: der[point]),
                let signature = try? P256.Signing.ECDSASignature(derRepresentation: der[self.signature])
            else { return false }
            return key.isValidSignature(signature, for: SHA256.hash(data: der[info]))
        }
    }

    /// The requested extensions this shortcut understands; any other makes the request not its shape.
    private struct Extensions {
        var hardwareType: Range<Int>?
        var hardwareSerial: Range<Int>?
        var keyUsage: Usage?

        init() {}

        init?(_ der: [UInt8], range: Range<Int>) {
            var list = DERReader(der, range: range)
            var seen: UInt32 = 0
            while !list.isAtEnd {
                guard var element = list.enter(DERTag.sequence),
                    let oid = element.read(DERTag.objectIdentifier), oid.count == 3,
                    der[oid.lowerBound] == 0x55, der[oid.lowerBound + 1] == 0x1D
                else { return nil }
                let kind = der[oid.lowerBound + 2]
                guard kind < 32, seen & (1 << kind) == 0 else { return nil }
                seen |= 1 << kind
                if element.nextTag == DERTag.boolean {
                    guard element.read(exactly: [0x01, 0x01, 0xFF]) else { return nil }
                }
                guard let value = element.read(DERTag.octetString), element.isAtEnd else { return nil }
                switch kind {
                case 17:  // subjectAltName: exactly one otherName HardwareModuleName
                    guard let (type, serial) = Self.hardwareModuleName(der, value: value) else { return nil }
                    hardwareType = type
                    hardwareSerial = serial
                case 15:  // keyUsage
                    if der[value].elementsEqual([0x03, 0x02, 0x07, 0x80]) {
                        keyUsage = .digitalSignature
                    } else if der[value].elementsEqual([0x03, 0x02, 0x03, 0x08]) {
                        keyUsage = .keyAgreement
                    } else {
                        return nil
                    }
                case 19:  // basicConstraints cA FALSE, no pathLenConstraint
                    guard der[value].elementsEqual([0x30, 0x00]) else { return nil }
                default:
                    return nil
                }
            }
        }

        /// GeneralNames { [0] otherName { id-on-hardwareModuleName, [0] EXPLICIT { hwType, hwSerialNum (8) } } }.
        private static func hardwareModuleName(_ der: [UInt8], value: Range<Int>) -> (Range<Int>, Range<Int>)? {
            var outer = DERReader(der, range: value)
            guard var names = outer.enter(DERTag.sequence), outer.isAtEnd,
                var otherName = names.enter(DERTag.contextConstructed(0)), names.isAtEnd,
                otherName.read(exactly: Self.hardwareModuleNameOID),
                var explicit = otherName.enter(DERTag.contextConstructed(0)), otherName.isAtEnd,
                var name = explicit.enter(DERTag.sequence), explicit.isAtEnd,
                let type = name.read(DERTag.objectIdentifier), Self.isWellFormedOID(der[type]),
                let serial = name.read(DERTag.octetString), name.isAtEnd, serial.count == 8
            else { return nil }
            return (type, serial)
        }

        /// id-on-hardwareModuleName, 1.3.6.1.5.5.7.8.4.
        static let hardwareModuleNameOID: [UInt8] = [0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x04]

        /// X.690 §8.19: at least one subidentifier, each minimal (no leading 0x80) and terminated.
        private static func isWellFormedOID(_ content: ArraySlice<UInt8>) -> Bool {
            guard let last = content.last, last & 0x80 == 0 else { return false }
            var startsSubidentifier = true
            for octet in content {
                if startsSubidentifier && octet == 0x80 { return false }
                startsSubidentifier = octet & 0x80 == 0
            }
            return true
        }
    }
}
