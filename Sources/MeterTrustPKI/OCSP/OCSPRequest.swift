import SwiftASN1
import X509

/// The certificate an OCSP request asks about (RFC 6960 §4.1.1), as sent: the responder answers with the same
/// CertID, so its DER is kept.
///
/// ```
/// CertID ::= SEQUENCE {
///     hashAlgorithm       AlgorithmIdentifier,
///     issuerNameHash      OCTET STRING, -- Hash of issuer's DN
///     issuerKeyHash       OCTET STRING, -- Hash of issuer's public key
///     serialNumber        CertificateSerialNumber }
/// ```
public struct OCSPCertID: Sendable, Hashable {
    public enum HashAlgorithm: Sendable, Hashable {
        case sha1, sha256, sha384, sha512
        /// An algorithm this responder does not compute (the certificate is answered `unknown`).
        case other

        static let oids: [(ASN1ObjectIdentifier, HashAlgorithm)] = [
            ([1, 3, 14, 3, 2, 26], .sha1), ([2, 16, 840, 1, 101, 3, 4, 2, 1], .sha256),
            ([2, 16, 840, 1, 101, 3, 4, 2, 2], .sha384), ([2, 16, 840, 1, 101, 3, 4, 2, 3], .sha512),
        ]
    }

    public var hashAlgorithm: HashAlgorithm
    public var issuerNameHash: [UInt8]
    public var issuerKeyHash: [UInt8]
    /// The serial's INTEGER content octets, normalised as the store keeps them (a leading 0x00 only where needed).
    public var serial: [UInt8]
    /// The CertID exactly as the request encoded it.
    public var der: [UInt8]

    init(node: ASN1Node) throws {
        var coder = DER.Serializer()
        coder.serializeRawBytes(node.encodedBytes)
        der = coder.serializedBytes
        (hashAlgorithm, issuerNameHash, issuerKeyHash, serial) = try DER.sequence(node, identifier: .sequence) { nodes in
            let algorithm = try DER.sequence(nodes.next().orThrow(), identifier: .sequence) { inner -> HashAlgorithm in
                let oid = try ASN1ObjectIdentifier(derEncoded: inner.next().orThrow())
                // Parameters: absent or NULL; anything else is read past.
                while inner.next() != nil {}
                return HashAlgorithm.oids.first { $0.0 == oid }?.1 ?? .other
            }
            let name = try ASN1OctetString(derEncoded: nodes.next().orThrow())
            let key = try ASN1OctetString(derEncoded: nodes.next().orThrow())
            let serial = try ArraySlice<UInt8>(derEncoded: nodes.next().orThrow())
            guard serial.count <= 20 else { throw ASN1Error.invalidASN1Object(reason: "a serial number is at most 20 octets") }
            return (algorithm, Array(name.bytes), Array(key.bytes), Array(Certificate.SerialNumber(bytes: serial).bytes))
        }
    }
}

/// An OCSP request (RFC 6960 §4.1.1), what a responder needs of it: the certificates asked about and the nonce.
/// A request signature (optionalSignature) is not required and not checked.
///
/// ```
/// OCSPRequest ::= SEQUENCE {
///     tbsRequest                  TBSRequest,
///     optionalSignature   [0]     EXPLICIT Signature OPTIONAL }
/// TBSRequest ::= SEQUENCE {
///     version             [0]     EXPLICIT Version DEFAULT v1,
///     requestorName       [1]     EXPLICIT GeneralName OPTIONAL,
///     requestList                 SEQUENCE OF Request,
///     requestExtensions   [2]     EXPLICIT Extensions OPTIONAL }
/// Request ::= SEQUENCE {
///     reqCert                     CertID,
///     singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
/// ```
public struct OCSPRequest: Sendable, Hashable {
    /// The most certificates one request may ask about.
    public static let maximumCertificates = 64
    /// RFC 9654: a nonce of 1 to 128 octets; a responder answers a longer one malformedRequest.
    public static let nonceLengths = 1...128
    static let nonceOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 2]

    public var certificates: [OCSPCertID]
    /// The nonce extension's extnValue, as sent (echoed in the response), or nil.
    public var nonceExtensionValue: [UInt8]?

    /// Parses a DER OCSPRequest; ``PKIError`` (malformed request) for anything that is not one, has no or too many
    /// certificates, an empty or overlong nonce, or bytes after it.
    public init(derEncoded bytes: [UInt8]) throws {
        do {
            let root = try DER.parse(bytes)
            guard root.encodedBytes.count == bytes.count else { throw ASN1Error.invalidASN1Object(reason: "trailing bytes") }
            (certificates, nonceExtensionValue) = try DER.sequence(root, identifier: .sequence) { nodes in
                let parsed = try DER.sequence(nodes.next().orThrow(), identifier: .sequence) { tbs -> ([OCSPCertID], [UInt8]?) in
                    _ = try DER.optionalExplicitlyTagged(&tbs, tagNumber: 0, tagClass: .contextSpecific) { node -> Int in
                        let version = try Int(derEncoded: node)
                        guard version == 0 else { throw ASN1Error.invalidASN1Object(reason: "OCSP request version \(version + 1)") }
                        return version
                    }
                    _ = try DER.optionalExplicitlyTagged(&tbs, tagNumber: 1, tagClass: .contextSpecific) { $0 }
                    var certificates: [OCSPCertID] = []
                    try DER.sequence(tbs.next().orThrow(), identifier: .sequence) { requests in
                        while let request = requests.next() {
                            guard certificates.count < Self.maximumCertificates else {
                                throw ASN1Error.invalidASN1Object(reason: "more than \(Self.maximumCertificates) certificates")
                            }
                            try DER.sequence(request, identifier: .sequence) { fields in
                                certificates.append(try OCSPCertID(node: fields.next().orThrow()))
                                // singleRequestExtensions: none is understood; none is critical to a responder.
                                _ = try DER.optionalExplicitlyTagged(&fields, tagNumber: 0, tagClass: .contextSpecific) { $0 }
                            }
                        }
                    }
                    guard !certificates.isEmpty else { throw ASN1Error.invalidASN1Object(reason: "no certificate asked about") }
                    let nonce = try DER.optionalExplicitlyTagged(&tbs, tagNumber: 2, tagClass: .contextSpecific) { node -> [UInt8]? in
                        let extensions = try DER.sequence(of: Certificate.Extension.self, identifier: .sequence, rootNode: node)
                        guard let nonce = extensions.first(where: { $0.oid == Self.nonceOID }) else { return nil }
                        let value = try ASN1OctetString(derEncoded: Array(nonce.value))
                        guard Self.nonceLengths.contains(value.bytes.count) else {
                            throw ASN1Error.invalidASN1Object(reason: "a nonce of \(value.bytes.count) octets")
                        }
                        return Array(nonce.value)
                    } ?? nil
                    return (certificates, nonce)
                }
                // optionalSignature [0]: not required, not checked.
                _ = try DER.optionalExplicitlyTagged(&nodes, tagNumber: 0, tagClass: .contextSpecific) { $0 }
                return parsed
            }
        } catch let error as ASN1Error {
            throw PKIError(.malformedRequest, "not an OCSP request MeterTrust answers: \(error.reason)")
        }
    }
}

extension ASN1Error {
    /// The reason without the library's file and line (its description is `ASN1Error.CODE: REASON FILE:LINE`).
    var reason: String {
        let text = String(describing: self)
        guard let colon = text.range(of: ": ") else { return "malformed DER" }
        var words = text[colon.upperBound...].split(separator: " ")
        if !words.isEmpty { words.removeLast() }
        let reason = words.joined(separator: " ")
        return reason.isEmpty ? "malformed DER (\(code))" : reason
    }
}

extension Optional where Wrapped == ASN1Node {
    func orThrow() throws -> ASN1Node {
        guard let self else { throw ASN1Error.invalidASN1Object(reason: "a field is missing") }
        return self
    }
}
