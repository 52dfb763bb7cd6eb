import Crypto
import X509

/// Key identifiers by RFC 5280 §4.2.1.2 method 2: "a four-bit type field with the value 0100 followed by the
/// least significant 60 bits of the SHA-1 hash of the value of the BIT STRING subjectPublicKey (excluding the tag,
/// length, and number of unused bits)". 8 octets, as the GB SMKI profile requires.
public enum KeyIdentifier {
    /// The 8-octet method-2 identifier of an uncompressed EC point (the subjectPublicKey BIT STRING's value).
    public static func method2(subjectPublicKey: some Sequence<UInt8>) -> [UInt8] {
        let digest = Array(Insecure.SHA1.hash(data: Array(subjectPublicKey)))
        var identifier = Array(digest.suffix(8))
        identifier[0] = 0x40 | (identifier[0] & 0x0F)
        return identifier
    }

    /// The method-2 identifier of a certificate public key.
    public static func method2(_ publicKey: Certificate.PublicKey) throws -> [UInt8] {
        method2(subjectPublicKey: try ECPublicKey(publicKey).point)
    }
}

/// An EC public key on a curve MeterTrust accepts, with its uncompressed point.
struct ECPublicKey {
    let curveName: String
    let point: [UInt8]

    init(_ key: Certificate.PublicKey) throws {
        if let p256 = P256.Signing.PublicKey(key) {
            self.curveName = "P-256"
            self.point = Array(p256.x963Representation)
        } else if let p384 = P384.Signing.PublicKey(key) {
            self.curveName = "P-384"
            self.point = Array(p384.x963Representation)
        } else {
            throw PKIError(.keyNotAllowed, "the key is not an EC P-256 or P-384 key")
        }
    }
}
