import Foundation
import SwiftASN1
import X509

/// A "certs-only" CMS message (RFC 5652 SignedData with no signers and no content, RFC 7030 §4.1.3 and §4.2.3, the
/// `application/pkcs7-mime; smime-type=certs-only` of EST): how an EST server hands out the CA certificates and an
/// issued certificate, and what the meter reads.
///
/// ```
/// ContentInfo ::= SEQUENCE {
///     contentType ContentType,                    -- id-signedData 1.2.840.113549.1.7.2
///     content [0] EXPLICIT ANY DEFINED BY contentType }
/// SignedData ::= SEQUENCE {
///     version CMSVersion,                         -- 1
///     digestAlgorithms SET OF DigestAlgorithmIdentifier,    -- empty
///     encapContentInfo EncapsulatedContentInfo,   -- { id-data }, no eContent
///     certificates [0] IMPLICIT CertificateSet OPTIONAL,
///     crls [1] IMPLICIT RevocationInfoChoices OPTIONAL,
///     signerInfos SET OF SignerInfo }             -- empty
/// ```
///
/// Decoding is bounded (``maximumDERSize``, ``maximumCertificates``) and takes what a peer may add: version 1 or 3,
/// a `crls` field (skipped). It refuses signers and encapsulated content: a certs-only message has neither.
public struct CertsOnlyCMS: Hashable, Sendable {
    public static let signedData: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 7, 2]
    public static let data: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 7, 1]
    /// Largest message decoded: 64 KiB, room for a chain of a few dozen certificates.
    public static let maximumDERSize = 65_536
    public static let maximumCertificates = 16

    /// The certificates: for `simpleenroll` only the issued one, for `cacerts` the CA certificates. Encoded in DER
    /// set order, so a decoded message lists them in that order, not necessarily the order given.
    public var certificates: [Certificate]

    public init(certificates: [Certificate]) {
        self.certificates = certificates
    }

    /// The DER of the ContentInfo.
    public func derBytes() throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(Self.signedData)
            try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { coder in
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.serialize(1)
                    try coder.appendConstructedNode(identifier: .set) { _ in }
                    try coder.appendConstructedNode(identifier: .sequence) { coder in try coder.serialize(Self.data) }
                    try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { coder in
                        // A SET OF in DER is sorted by its elements' encodings (X.690 §11.6). simpleenroll's answer
                        // holds one certificate (RFC 7030 §4.2.3); a reader of cacerts finds the chain by names.
                        for der in Self.setOrder(try certificates.map { try $0.derBytes }) {
                            coder.serializeRawBytes(der)
                        }
                    }
                    try coder.appendConstructedNode(identifier: .set) { _ in }
                }
            }
        }
        return serializer.serializedBytes
    }

    /// The message in `der`, bounded; every failure is `input.malformed` naming what is wrong.
    public init(derEncoded der: [UInt8]) throws {
        guard der.count <= Self.maximumDERSize else {
            throw CoreError(.malformedInput, "the certs-only CMS message is \(der.count) octets, more than \(Self.maximumDERSize)")
        }
        do {
            let root = try DER.parse(der)
            self.certificates = try DER.sequence(root, identifier: .sequence) { nodes in
                let type = try ASN1ObjectIdentifier(derEncoded: &nodes)
                guard type == Self.signedData else { throw CoreError(.malformedInput, "the CMS message is not SignedData (\(type))") }
                guard let wrapped = nodes.next(), wrapped.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific),
                    case .constructed(let inner) = wrapped.content
                else { throw CoreError(.malformedInput, "the CMS message has no [0] content") }
                var innerNodes = inner.makeIterator()
                guard let signedData = innerNodes.next(), innerNodes.next() == nil else {
                    throw CoreError(.malformedInput, "the CMS content is not one SignedData")
                }
                guard nodes.next() == nil else { throw CoreError(.malformedInput, "the CMS ContentInfo has trailing fields") }
                return try Self.certificates(inSignedData: signedData)
            }
        } catch let error as CoreError {
            throw error
        } catch {
            throw CoreError(.malformedInput, "the certs-only CMS message is not valid DER: \(error)")
        }
    }

    private static func certificates(inSignedData node: ASN1Node) throws -> [Certificate] {
        try DER.sequence(node, identifier: .sequence) { nodes in
            let version = try Int(derEncoded: &nodes)
            guard version == 1 || version == 3 else { throw CoreError(.malformedInput, "the SignedData version is \(version)") }
            guard let digests = nodes.next(), digests.identifier == .set else {
                throw CoreError(.malformedInput, "the SignedData has no digestAlgorithms")
            }
            _ = digests
            guard let encapsulatedNode = nodes.next() else { throw CoreError(.malformedInput, "the SignedData has no encapContentInfo") }
            try DER.sequence(encapsulatedNode, identifier: .sequence) { encapsulated in
                let type = try ASN1ObjectIdentifier(derEncoded: &encapsulated)
                guard type == Self.data, encapsulated.next() == nil else {
                    throw CoreError(.malformedInput, "a certs-only message encapsulates no content (found \(type) with content)")
                }
            }
            var certificates: [Certificate] = []
            var next = nodes.next()
            if let node = next, node.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) {
                guard case .constructed(let children) = node.content else {
                    throw CoreError(.malformedInput, "the SignedData certificates are not a set")
                }
                for child in children {
                    guard certificates.count < maximumCertificates else {
                        throw CoreError(.malformedInput, "the certs-only message holds more than \(maximumCertificates) certificates")
                    }
                    certificates.append(try Certificate(derEncoded: child))
                }
                next = nodes.next()
            }
            if let node = next, node.identifier == ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific) {
                next = nodes.next()
            }
            guard let signers = next, signers.identifier == .set, case .constructed(let signerNodes) = signers.content else {
                throw CoreError(.malformedInput, "the SignedData has no signerInfos")
            }
            var signerIterator = signerNodes.makeIterator()
            guard signerIterator.next() == nil else {
                throw CoreError(.malformedInput, "a certs-only message has no signers")
            }
            guard nodes.next() == nil else { throw CoreError(.malformedInput, "the SignedData has trailing fields") }
            return certificates
        }
    }

    /// `encodings` in DER SET OF order: ascending octets, the shorter first on a common prefix.
    private static func setOrder(_ encodings: [[UInt8]]) -> [[UInt8]] {
        encodings.sorted { $0.lexicographicallyPrecedes($1) }
    }
}

extension CertsOnlyCMS {
    /// RFC 7030 §4.1.3 body: base64 of the DER with line breaks every 64 characters.
    public func base64Body() throws -> String {
        Base64Body.encode(try derBytes())
    }
}

/// Base64 bodies of EST (RFC 7030 §4: "base64 encoded" with Content-Transfer-Encoding; RFC 8951 relaxes the header):
/// written with CRLF every 64 characters, read bounded and tolerant of white space, strict on everything else.
public enum Base64Body {
    public static func encode(_ bytes: [UInt8]) -> String {
        let text = Data(bytes).base64EncodedString(options: [.lineLength64Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        return text + "\r\n"
    }

    /// The octets of a base64 body of at most `maximumLength` characters; white space (CR, LF, space, tab) is
    /// skipped, any other character outside the alphabet or a bad padding is `input.malformed`.
    public static func decode(_ body: some Collection<UInt8>, maximumLength: Int) throws -> [UInt8] {
        guard body.count <= maximumLength else {
            throw CoreError(.malformedInput, "the base64 body is \(body.count) octets, more than \(maximumLength)")
        }
        var compact: [UInt8] = []
        compact.reserveCapacity(body.count)
        for octet in body where !(octet == 0x0D || octet == 0x0A || octet == 0x20 || octet == 0x09) {
            compact.append(octet)
        }
        guard !compact.isEmpty else { throw CoreError(.malformedInput, "the body is empty: expected base64 DER") }
        guard let data = Data(base64Encoded: Data(compact)) else {
            throw CoreError(.malformedInput, "the body is not base64 (RFC 7030 §4: base64-encoded DER)")
        }
        return [UInt8](data)
    }
}
