import Foundation
import Crypto
import SwiftASN1

/// The name the store keeps a subject public key under: the first 16 octets of SHA-256 over the key's DER
/// SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), as it appears in the certificate. Two certificates carry the same key
/// exactly when their digests agree (up to a 2^-64 birthday bound over the whole fleet), so one meter's key seen on
/// another meter's request is found by a primary-key probe of 16 octets.
public enum SubjectKeyDigest {
    /// Octets of the digest.
    public static let length = 16

    /// The digest of a DER SubjectPublicKeyInfo.
    public static func of(subjectPublicKeyInfo spki: some DataProtocol) -> [UInt8] {
        Array(SHA256.hash(data: spki).prefix(length))
    }

    /// The digest of a SubjectPublicKeyInfo given as a fixed header and the rest (a P-256 key's header and its point),
    /// without joining them: the factory's hot path hashes the octets it already holds.
    public static func of(header: [UInt8], rest: ArraySlice<UInt8>) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: header)
        hasher.update(data: rest)
        return Array(hasher.finalize().prefix(length))
    }

    /// The digest of the subject key of a DER certificate (for certificates stored before the store kept digests).
    ///
    /// ```
    /// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
    ///                            validity, subject, subjectPublicKeyInfo, ... }, ... }
    /// ```
    public static func of(certificate der: [UInt8]) throws -> [UInt8] {
        do {
            let root = try DER.parse(der)
            guard case .constructed(let outer) = root.content, let tbs = outer.first(where: { _ in true }),
                case .constructed(let fields) = tbs.content
            else { throw CoreError(.malformedInput, "the certificate is not a DER SEQUENCE of a tbsCertificate") }
            var nodes = fields.makeIterator()
            var next = nodes.next()
            if next?.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) { next = nodes.next() }
            // serialNumber (next), signature, issuer, validity, subject: then the key.
            for _ in 0..<5 { next = nodes.next() }
            guard let spki = next, spki.identifier == .sequence else {
                throw CoreError(.malformedInput, "the certificate has no subjectPublicKeyInfo")
            }
            return of(subjectPublicKeyInfo: spki.encodedBytes)
        } catch let error as CoreError {
            throw error
        } catch {
            throw CoreError(.malformedInput, "the certificate is not valid DER")
        }
    }
}
