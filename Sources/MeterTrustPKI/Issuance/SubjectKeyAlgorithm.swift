import MeterTrustCore
import MeterTrustHSM
import SwiftASN1

/// The algorithm of a subject public key as written in its SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), read before
/// any library tries to load the key so that a refusal can name what was offered ("EC P-192", "RSA-1024").
///
/// ```
/// SubjectPublicKeyInfo  ::=  SEQUENCE  {
///      algorithm            AlgorithmIdentifier,
///      subjectPublicKey     BIT STRING  }
/// ```
enum SubjectKeyAlgorithm: Hashable, Sendable, CustomStringConvertible {
    case ec(curve: ASN1ObjectIdentifier?)
    case rsa(bits: Int)
    case other(ASN1ObjectIdentifier)

    static let idECPublicKey: ASN1ObjectIdentifier = [1, 2, 840, 10045, 2, 1]
    static let rsaEncryption: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 1]

    private static let curveNames: [ASN1ObjectIdentifier: String] = [
        [1, 2, 840, 10045, 3, 1, 1]: "P-192", [1, 3, 132, 0, 33]: "P-224", [1, 2, 840, 10045, 3, 1, 7]: "P-256",
        [1, 3, 132, 0, 34]: "P-384", [1, 3, 132, 0, 35]: "P-521", [1, 3, 132, 0, 10]: "secp256k1",
    ]

    /// The MeterTrust curve, if the key is EC on one.
    var curve: ECCurve? {
        guard case .ec(let oid?) = self else { return nil }
        return ECCurve.allCases.first { $0.oid == oid }
    }

    var description: String {
        switch self {
        case .ec(let curve?): return "EC \(Self.curveNames[curve] ?? "curve \(curve.dotted)")"
        case .ec(nil): return "EC with explicit or missing curve parameters"
        case .rsa(let bits): return "RSA-\(bits)"
        case .other(let oid): return "algorithm \(oid.dotted)"
        }
    }

    /// Reads the algorithm and the subjectPublicKey bits from the SubjectPublicKeyInfo node.
    static func read(spki: ASN1Node) throws -> (algorithm: SubjectKeyAlgorithm, subjectPublicKey: ArraySlice<UInt8>) {
        try DER.sequence(spki, identifier: .sequence) { nodes in
            guard let algorithm = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "empty SubjectPublicKeyInfo") }
            let key = try ASN1BitString(derEncoded: &nodes)
            let kind = try DER.sequence(algorithm, identifier: .sequence) { algorithmNodes -> SubjectKeyAlgorithm in
                let oid = try ASN1ObjectIdentifier(derEncoded: &algorithmNodes)
                let parameters = algorithmNodes.next()
                switch oid {
                case Self.idECPublicKey:
                    return .ec(curve: parameters.flatMap { try? ASN1ObjectIdentifier(derEncoded: $0) })
                case Self.rsaEncryption:
                    return .rsa(bits: Self.modulusBits(Array(key.bytes)))
                default:
                    return .other(oid)
                }
            }
            return (kind, key.bytes)
        }
    }

    /// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 §A.1.1).
    private static func modulusBits(_ bytes: [UInt8]) -> Int {
        guard let node = try? DER.parse(bytes),
            let modulus = try? DER.sequence(node, identifier: .sequence, { nodes -> ArraySlice<UInt8> in
                let modulus = try ArraySlice<UInt8>(derEncoded: &nodes)
                _ = nodes.next()
                return modulus
            })
        else { return 0 }
        let significant = modulus.drop { $0 == 0 }
        guard let first = significant.first else { return 0 }
        return (significant.count - 1) * 8 + (8 - first.leadingZeroBitCount)
    }
}
