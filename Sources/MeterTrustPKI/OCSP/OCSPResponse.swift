import Crypto
import Foundation
import SwiftASN1
import X509

/// What a responder says of one certificate (RFC 6960 §4.2.1 CertStatus).
public enum OCSPCertificateStatus: Sendable, Hashable {
    case good
    case revoked(at: Date, reason: RevocationReason)
    /// Not a certificate this responder knows of that issuer.
    case unknown
}

/// One certificate's answer.
///
/// ```
/// SingleResponse ::= SEQUENCE {
///    certID                       CertID,
///    certStatus                   CertStatus,
///    thisUpdate                   GeneralizedTime,
///    nextUpdate         [0]       EXPLICIT GeneralizedTime OPTIONAL,
///    singleExtensions   [1]       EXPLICIT Extensions OPTIONAL }
/// CertStatus ::= CHOICE {
///     good        [0]     IMPLICIT NULL,
///     revoked     [1]     IMPLICIT RevokedInfo,
///     unknown     [2]     IMPLICIT UnknownInfo }
/// RevokedInfo ::= SEQUENCE {
///     revocationTime              GeneralizedTime,
///     revocationReason    [0]     EXPLICIT CRLReason OPTIONAL }
/// ```
public struct OCSPSingleResponse: Sendable, Hashable {
    public var certID: OCSPCertID
    public var status: OCSPCertificateStatus
    public var thisUpdate: Date
    public var nextUpdate: Date

    public init(certID: OCSPCertID, status: OCSPCertificateStatus, thisUpdate: Date, nextUpdate: Date) {
        self.certID = certID
        self.status = status
        self.thisUpdate = thisUpdate
        self.nextUpdate = nextUpdate
    }

    func serialize(into coder: inout DER.Serializer) throws {
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            coder.serializeRawBytes(certID.der)
            switch status {
            case .good:
                coder.appendPrimitiveNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { _ in }
            case .revoked(let at, let reason):
                try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific)) { coder in
                    try coder.serialize(try GeneralizedTime(at))
                    if reason != .unspecified {
                        try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                            try reason.rawValue.serialize(into: &coder, withIdentifier: .enumerated)
                        }
                    }
                }
            case .unknown:
                coder.appendPrimitiveNode(identifier: ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific)) { _ in }
            }
            try coder.serialize(try GeneralizedTime(thisUpdate))
            try coder.serialize(try GeneralizedTime(nextUpdate), explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific)
        }
    }
}

/// An OCSP response (RFC 6960 §4.2.1): a status alone, or a BasicOCSPResponse signed by a delegated responder
/// (profile ocsp-signer), identified by the SHA-1 hash of its key, its certificate included.
///
/// ```
/// OCSPResponse ::= SEQUENCE {
///    responseStatus         OCSPResponseStatus,
///    responseBytes          [0] EXPLICIT ResponseBytes OPTIONAL }
/// ResponseBytes ::=       SEQUENCE {
///    responseType   OBJECT IDENTIFIER,            -- id-pkix-ocsp-basic
///    response       OCTET STRING }
/// BasicOCSPResponse       ::= SEQUENCE {
///    tbsResponseData      ResponseData,
///    signatureAlgorithm   AlgorithmIdentifier,
///    signature            BIT STRING,
///    certs            [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ResponseData ::= SEQUENCE {
///    version              [0] EXPLICIT Version DEFAULT v1,
///    responderID              ResponderID,        -- byKey [2] KeyHash
///    producedAt               GeneralizedTime,
///    responses                SEQUENCE OF SingleResponse,
///    responseExtensions   [1] EXPLICIT Extensions OPTIONAL }
/// ```
public enum OCSPResponse {
    /// OCSPResponseStatus.
    public enum Status: Int, Sendable {
        case successful = 0, malformedRequest = 1, internalError = 2, tryLater = 3, sigRequired = 5, unauthorized = 6
    }

    static let basicOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 1]

    /// An unsuccessful response: the status alone (never signed, RFC 6960 §2.3).
    public static func unsuccessful(_ status: Status) -> [UInt8] {
        var coder = DER.Serializer()
        try! coder.appendConstructedNode(identifier: .sequence) { coder in
            try status.rawValue.serialize(into: &coder, withIdentifier: .enumerated)
        }
        return coder.serializedBytes
    }

    /// The responder's KeyHash: SHA-1 of its subjectPublicKey BIT STRING's value.
    public static func keyHash(of certificate: Certificate) throws -> [UInt8] {
        Array(Insecure.SHA1.hash(data: try ECPublicKey(certificate.publicKey).point))
    }

    /// A successful response's DER, the ResponseData signed by `sign` (DER ECDSA-Sig-Value over its bytes; blocking
    /// on the HSM: call from the HSM queue or a worker thread).
    public static func successful(
        responderKeyHash: [UInt8], producedAt: Date, responses: [OCSPSingleResponse], nonceExtensionValue: [UInt8]?,
        signerCertificate: [UInt8], algorithm: SignatureAlgorithmIdentifier, sign: (_ tbs: [UInt8]) throws -> [UInt8]
    ) throws -> [UInt8] {
        var data = DER.Serializer()
        try data.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(ASN1OctetString(contentBytes: responderKeyHash[...]), explicitlyTaggedWithTagNumber: 2, tagClass: .contextSpecific)
            try coder.serialize(try GeneralizedTime(producedAt))
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                for response in responses { try response.serialize(into: &coder) }
            }
            if let nonceExtensionValue {
                try coder.serialize(explicitlyTaggedWithTagNumber: 1, tagClass: .contextSpecific) { coder in
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(Certificate.Extension(oid: OCSPRequest.nonceOID, critical: false, value: nonceExtensionValue[...]))
                    }
                }
            }
        }
        let tbs = data.serializedBytes
        let signature = try sign(tbs)
        var basic = DER.Serializer()
        try basic.appendConstructedNode(identifier: .sequence) { coder in
            coder.serializeRawBytes(tbs)
            try coder.serialize(algorithm)
            try coder.serialize(ASN1BitString(bytes: signature[...]))
            try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                try coder.appendConstructedNode(identifier: .sequence) { coder in coder.serializeRawBytes(signerCertificate) }
            }
        }
        var response = DER.Serializer()
        try response.appendConstructedNode(identifier: .sequence) { coder in
            try Status.successful.rawValue.serialize(into: &coder, withIdentifier: .enumerated)
            try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.serialize(basicOID)
                    try coder.serialize(ASN1OctetString(contentBytes: basic.serializedBytes[...]))
                }
            }
        }
        return response.serializedBytes
    }
}

extension OCSPCertID {
    /// What a CertID of `algorithm` names an issuer by: the hashes of its name's DER and of its key (the
    /// subjectPublicKey BIT STRING's value). A responder computes them once per CA and algorithm.
    public struct IssuerHashes: Sendable, Hashable {
        public var algorithm: HashAlgorithm
        public var nameHash: [UInt8]
        public var keyHash: [UInt8]
    }

    /// The issuer hashes of this CertID.
    public var issuerHashes: IssuerHashes { IssuerHashes(algorithm: hashAlgorithm, nameHash: issuerNameHash, keyHash: issuerKeyHash) }

    /// The hashes by which each algorithm this responder computes names `issuer`.
    public static func issuerHashes(of issuer: Certificate) throws -> [IssuerHashes] {
        var coder = DER.Serializer()
        try coder.serialize(issuer.subject)
        let name = coder.serializedBytes
        let key = try ECPublicKey(issuer.publicKey).point
        return [
            IssuerHashes(algorithm: .sha1, nameHash: Array(Insecure.SHA1.hash(data: name)), keyHash: Array(Insecure.SHA1.hash(data: key))),
            IssuerHashes(algorithm: .sha256, nameHash: Array(SHA256.hash(data: name)), keyHash: Array(SHA256.hash(data: key))),
            IssuerHashes(algorithm: .sha384, nameHash: Array(SHA384.hash(data: name)), keyHash: Array(SHA384.hash(data: key))),
            IssuerHashes(algorithm: .sha512, nameHash: Array(SHA512.hash(data: name)), keyHash: Array(SHA512.hash(data: key))),
        ]
    }
}
