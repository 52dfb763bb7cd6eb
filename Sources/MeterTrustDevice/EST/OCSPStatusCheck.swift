import Crypto
import Foundation
import MeterTrustCore
import SwiftASN1
import X509

/// The meter's OCSP client (RFC 6960): one request for one certificate (a SHA-256 CertID and a fresh nonce), and
/// the answer verified before it is believed: a successful basic response, signed (ECDSA) by the issuer itself or by
/// a responder the issuer certified for id-kp-OCSPSigning and valid now, naming that responder, echoing the nonce,
/// with a single response for exactly this CertID whose thisUpdate is not in the future and whose nextUpdate has not
/// passed (a clock skew of `skew` allowed). Anything else is an ``OCSPStatusCheck/Failure``.
///
/// Written here rather than swift-certificates' `OCSPVerifierPolicy`, which cannot validate a responder whose
/// certificates carry a critical certificatePolicies extension (all of MeterTrust's do, as the profiles require).
public enum OCSPStatusCheck {
    public enum Status: Equatable, Sendable {
        case good
        case revoked(at: Date, reason: Int?)
        case unknown
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    static let nonceOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 2]
    static let basicOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 1]
    static let sha256OID: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 2, 1]
    static let skew: TimeInterval = 300
    /// The most an answer may be (a few certificates and a signature fit many times over).
    public static let maximumResponseSize = 64 * 1024

    /// The CertID of `certificate` issued by `issuer`, SHA-256 (RFC 6960 §4.1.1): the DER and its fields.
    static func certID(of certificate: Certificate, issuer: Certificate) throws -> (der: [UInt8], nameHash: [UInt8], keyHash: [UInt8], serial: [UInt8]) {
        var name = DER.Serializer()
        try name.serialize(issuer.subject)
        let nameHash = Array(SHA256.hash(data: name.serializedBytes))
        let keyHash = Array(SHA256.hash(data: try keyBits(issuer.publicKey)))
        let serial = Array(certificate.serialNumber.bytes)
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.appendConstructedNode(identifier: .sequence) { coder in try coder.serialize(sha256OID) }
            try coder.serialize(ASN1OctetString(contentBytes: nameHash[...]))
            try coder.serialize(ASN1OctetString(contentBytes: keyHash[...]))
            try coder.serialize(ArraySlice(serial))
        }
        return (coder.serializedBytes, nameHash, keyHash, serial)
    }

    /// The subjectPublicKey BIT STRING's value (the uncompressed point) of an EC key.
    static func keyBits(_ key: Certificate.PublicKey) throws -> [UInt8] {
        if let p256 = P256.Signing.PublicKey(key) { return Array(p256.x963Representation) }
        if let p384 = P384.Signing.PublicKey(key) { return Array(p384.x963Representation) }
        throw Failure("the issuer's key is not EC P-256 or P-384")
    }

    /// The DER OCSPRequest for `certificate`, with `nonce` (RFC 9654) in a nonce extension.
    public static func request(for certificate: Certificate, issuer: Certificate, nonce: [UInt8]) throws -> [UInt8] {
        let id = try certID(of: certificate, issuer: issuer)
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.appendConstructedNode(identifier: .sequence) { coder in coder.serializeRawBytes(id.der) }
                }
                try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific)) { coder in
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.appendConstructedNode(identifier: .sequence) { coder in
                            try coder.serialize(nonceOID)
                            try coder.serialize(ASN1OctetString(contentBytes: try nonceValue(nonce)[...]))
                        }
                    }
                }
            }
        }
        return coder.serializedBytes
    }

    /// The nonce extension's extnValue: an OCTET STRING holding the nonce.
    static func nonceValue(_ nonce: [UInt8]) throws -> [UInt8] {
        var coder = DER.Serializer()
        try coder.serialize(ASN1OctetString(contentBytes: nonce[...]))
        return coder.serializedBytes
    }

    /// What the DER OCSPResponse `der` says of `certificate`, once verified as described above.
    public static func status(of der: [UInt8], certificate: Certificate, issuer: Certificate, nonce: [UInt8], now: Date = Date()) throws -> Status {
        guard der.count <= maximumResponseSize else { throw Failure("the OCSP answer is larger than \(maximumResponseSize) octets") }
        let basic: ASN1Node
        do {
            let root = try DER.parse(der)
            guard root.encodedBytes.count == der.count else { throw Failure("trailing bytes after the OCSP answer") }
            basic = try DER.sequence(root, identifier: .sequence) { nodes -> ASN1Node in
                let status = try Int(derEncoded: required(nodes.next()), withIdentifier: .enumerated)
                guard status == 0 else {
                    let names = [1: "malformedRequest", 2: "internalError", 3: "tryLater", 5: "sigRequired", 6: "unauthorized"]
                    throw Failure("the OCSP responder answered \(names[status] ?? "status \(status)")")
                }
                return try DER.explicitlyTagged(required(nodes.next()), tagNumber: 0, tagClass: .contextSpecific) { bytes in
                    try DER.sequence(bytes, identifier: .sequence) { fields in
                        guard try ASN1ObjectIdentifier(derEncoded: required(fields.next())) == basicOID else { throw Failure("not a basic OCSP response") }
                        return try DER.parse(Array(ASN1OctetString(derEncoded: required(fields.next())).bytes))
                    }
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure("the OCSP answer is not DER: \(error)")
        }
        return try verified(basic: basic, certificate: certificate, issuer: issuer, nonce: nonce, now: now)
    }

    private static func verified(basic: ASN1Node, certificate: Certificate, issuer: Certificate, nonce: [UInt8], now: Date) throws -> Status {
        struct Single {
            var nameHash: [UInt8], keyHash: [UInt8], serial: [UInt8], algorithm: ASN1ObjectIdentifier
            var status: Status, thisUpdate: Date, nextUpdate: Date?
        }
        let (tbs, algorithm, signature, certificates) = try DER.sequence(basic, identifier: .sequence) { nodes in
            let tbs = try required(nodes.next())
            let algorithm = try DER.sequence(required(nodes.next()), identifier: .sequence) { try ASN1ObjectIdentifier(derEncoded: required($0.next())) }
            let signature = try ASN1BitString(derEncoded: required(nodes.next()))
            let certificates = try DER.optionalExplicitlyTagged(&nodes, tagNumber: 0, tagClass: .contextSpecific) { node in
                try DER.sequence(of: Certificate.self, identifier: .sequence, rootNode: node)
            } ?? []
            return (tbs, algorithm, Array(signature.bytes), certificates)
        }
        var responder: (byName: DistinguishedName?, byKey: [UInt8]?) = (nil, nil)
        var singles: [Single] = []
        var echoed: [UInt8]?
        try DER.sequence(tbs, identifier: .sequence) { nodes in
            _ = try DER.optionalExplicitlyTagged(&nodes, tagNumber: 0, tagClass: .contextSpecific) { try Int(derEncoded: $0) }
            let id = try required(nodes.next())
            switch id.identifier {
            case ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific):
                responder.byName = try DER.explicitlyTagged(id, tagNumber: 1, tagClass: .contextSpecific) { try DistinguishedName(derEncoded: $0) }
            case ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific):
                responder.byKey = try DER.explicitlyTagged(id, tagNumber: 2, tagClass: .contextSpecific) { Array(try ASN1OctetString(derEncoded: $0).bytes) }
            default:
                throw Failure("the OCSP answer names its responder in no known way")
            }
            _ = try GeneralizedTime(derEncoded: required(nodes.next()))
            try DER.sequence(required(nodes.next()), identifier: .sequence) { list in
                while let node = list.next() {
                    guard singles.count < 64 else { throw Failure("more than 64 answers in one OCSP response") }
                    singles.append(try DER.sequence(node, identifier: .sequence) { fields in
                        let (algorithm, nameHash, keyHash, serial) = try DER.sequence(required(fields.next()), identifier: .sequence) { id in
                            let algorithm = try DER.sequence(required(id.next()), identifier: .sequence) { inner -> ASN1ObjectIdentifier in
                                let oid = try ASN1ObjectIdentifier(derEncoded: required(inner.next()))
                                while inner.next() != nil {}
                                return oid
                            }
                            return (
                                algorithm, Array(try ASN1OctetString(derEncoded: required(id.next())).bytes),
                                Array(try ASN1OctetString(derEncoded: required(id.next())).bytes),
                                Array(Certificate.SerialNumber(bytes: try ArraySlice<UInt8>(derEncoded: required(id.next()))).bytes)
                            )
                        }
                        let statusNode = try required(fields.next())
                        let status: Status
                        switch statusNode.identifier {
                        case ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific): status = .good
                        case ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific): status = .unknown
                        case ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific):
                            status = try DER.sequence(statusNode, identifier: ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific)) { info in
                                let at = try date(GeneralizedTime(derEncoded: required(info.next())))
                                let reason = try DER.optionalExplicitlyTagged(&info, tagNumber: 0, tagClass: .contextSpecific) {
                                    try Int(derEncoded: $0, withIdentifier: .enumerated)
                                }
                                return .revoked(at: at, reason: reason)
                            }
                        default:
                            throw Failure("an OCSP answer with an unknown certificate status")
                        }
                        let thisUpdate = try date(GeneralizedTime(derEncoded: required(fields.next())))
                        let nextUpdate = try DER.optionalExplicitlyTagged(&fields, tagNumber: 0, tagClass: .contextSpecific) { try date(GeneralizedTime(derEncoded: $0)) }
                        _ = try DER.optionalExplicitlyTagged(&fields, tagNumber: 1, tagClass: .contextSpecific) { $0 }
                        return Single(nameHash: nameHash, keyHash: keyHash, serial: serial, algorithm: algorithm, status: status, thisUpdate: thisUpdate, nextUpdate: nextUpdate)
                    })
                }
            }
            echoed = try DER.optionalExplicitlyTagged(&nodes, tagNumber: 1, tagClass: .contextSpecific) { node -> [UInt8]? in
                let extensions = try DER.sequence(of: Certificate.Extension.self, identifier: .sequence, rootNode: node)
                return extensions.first { $0.oid == nonceOID }.map { Array($0.value) }
            } ?? nil
        }

        // Who signed: the issuer, or a responder it certified for OCSP signing, valid now; named by the answer.
        let signer = try ([issuer] + certificates).first { candidate in
            if let byKey = responder.byKey { return (try? Array(Insecure.SHA1.hash(data: keyBits(candidate.publicKey)))) == byKey }
            return responder.byName == candidate.subject
        }.map { candidate -> Certificate in
            guard candidate != issuer else { return candidate }
            guard candidate.issuer == issuer.subject, issuer.publicKey.isValidSignature(candidate.signature, for: candidate) else {
                throw Failure("the OCSP responder's certificate is not issued by the certificate's issuer")
            }
            guard let usage = try? candidate.extensions.extendedKeyUsage, usage.contains(.ocspSigning) else {
                throw Failure("the OCSP responder's certificate is not for OCSP signing")
            }
            guard candidate.notValidBefore <= now.addingTimeInterval(skew), now < candidate.notValidAfter else {
                throw Failure("the OCSP responder's certificate is not valid now")
            }
            return candidate
        }
        guard let signer else { throw Failure("the OCSP answer is signed by no one the meter can check (neither the issuer nor a responder it certified)") }
        let signatureAlgorithm: Certificate.SignatureAlgorithm
        switch algorithm {
        case [1, 2, 840, 10045, 4, 3, 2]: signatureAlgorithm = .ecdsaWithSHA256
        case [1, 2, 840, 10045, 4, 3, 3]: signatureAlgorithm = .ecdsaWithSHA384
        case [1, 2, 840, 10045, 4, 3, 4]: signatureAlgorithm = .ecdsaWithSHA512
        default: throw Failure("the OCSP answer is signed with an algorithm the meter does not accept (\(algorithm))")
        }
        guard signer.publicKey.isValidSignature(signature, for: tbs.encodedBytes, signatureAlgorithm: signatureAlgorithm) else {
            throw Failure("the OCSP answer's signature does not verify")
        }
        guard echoed == (try nonceValue(nonce)) else { throw Failure("the OCSP answer does not echo the meter's nonce (a replayed answer?)") }
        let id = try certID(of: certificate, issuer: issuer)
        guard let single = singles.first(where: { $0.algorithm == sha256OID && $0.nameHash == id.nameHash && $0.keyHash == id.keyHash && $0.serial == id.serial }) else {
            throw Failure("the OCSP answer says nothing of the server's certificate")
        }
        guard single.thisUpdate <= now.addingTimeInterval(skew) else { throw Failure("the OCSP answer is from the future (thisUpdate \(single.thisUpdate))") }
        if let next = single.nextUpdate, next < now.addingTimeInterval(-skew) { throw Failure("the OCSP answer is stale (nextUpdate \(next))") }
        return single.status
    }

    private static func required(_ node: ASN1Node?) throws -> ASN1Node {
        guard let node else { throw Failure("the OCSP answer is missing a field") }
        return node
    }

    private static func date(_ time: GeneralizedTime) throws -> Date {
        var components = DateComponents()
        (components.year, components.month, components.day) = (time.year, time.month, time.day)
        (components.hour, components.minute, components.second) = (time.hours, time.minutes, time.seconds)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: components) else { throw Failure("an OCSP time that is no date") }
        return date
    }
}
