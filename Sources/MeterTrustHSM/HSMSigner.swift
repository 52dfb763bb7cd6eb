import Crypto
import Foundation
import MeterTrustCore

/// One key pair on the token, ready to sign: the single path from a message or a digest to an ECDSA signature made
/// in the HSM. The X.509 signing key (`HSMSigningKey`), the TLS server key (`HSMTLSKey`) and the audit checkpoint
/// signer (`HSMCheckpointSigner`) are thin adapters on it.
///
/// The message is hashed in software with the curve's hash, the digest signed in the token with CKM_ECDSA (PKCS#11
/// v3.0 §2.3.1), and the raw `r ‖ s` the token returns DER-encoded by ``ECDSASignatureEncoding``. Every method but
/// ``signatureOnHSMQueue(for:)`` blocks its thread on the token.
public struct HSMSigner: Sendable, Hashable {
    public let token: HSMToken
    public let key: HSMKey

    public init(token: HSMToken, key: HSMKey) {
        self.token = token
        self.key = key
    }

    public var curve: ECCurve { key.curve }

    /// The curve's hash of `message`: SHA-256 for P-256, SHA-384 for P-384 (RFC 5758 §3.2).
    public func digest(of message: some DataProtocol) -> [UInt8] {
        switch key.curve {
        case .p256: return Array(SHA256.hash(data: message))
        case .p384: return Array(SHA384.hash(data: message))
        }
    }

    /// Signs `digest` with CKM_ECDSA and returns the raw `r ‖ s` the token made, two halves of the coordinate size.
    public func rawSignature(digest: [UInt8]) throws -> [UInt8] {
        let raw = try token.signDigest(digest, with: key)
        guard raw.count == 2 * key.curve.coordinateLength else {
            throw HSMError.make(.invalidKeyMaterial, "the token returned a \(raw.count)-octet signature for the \(key.curve.rawValue) key \(key.label)")
        }
        return raw
    }

    /// Signs `digest` (computed by the caller with the curve's hash) and returns the DER ECDSA-Sig-Value
    /// (RFC 3279 §2.2.3).
    public func signature(digest: [UInt8]) throws -> [UInt8] {
        try ECDSASignatureEncoding.der(raw: rawSignature(digest: digest))
    }

    /// Hashes `message` with the curve's hash, signs the digest, and returns the DER ECDSA-Sig-Value.
    public func signature(for message: some DataProtocol) throws -> [UInt8] {
        try signature(digest: digest(of: message))
    }

    /// ``signature(for:)`` run on the HSM's dispatch queue (``HSMToken/perform(_:)``), so that neither a NIO event
    /// loop nor the cooperative pool blocks on the token.
    public func signatureOnHSMQueue(for message: some DataProtocol & Sendable) async throws -> [UInt8] {
        try await token.perform { [self] _ in try signature(for: message) }
    }

    /// The public half, checked to be a valid point on the key's curve.
    public func publicKey() throws -> HSMPublicKey {
        do {
            switch key.curve {
            case .p256: return .p256(try P256.Signing.PublicKey(x963Representation: key.publicPoint))
            case .p384: return .p384(try P384.Signing.PublicKey(x963Representation: key.publicPoint))
            }
        } catch {
            throw HSMError.make(.invalidKeyMaterial, "the HSM key \(key.label) has an invalid \(key.curve.rawValue) public point")
        }
    }

    public static func == (lhs: HSMSigner, rhs: HSMSigner) -> Bool {
        lhs.token === rhs.token && lhs.key == rhs.key
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(token))
        hasher.combine(key)
    }
}

/// The public half of an HSM key pair, as swift-crypto verifies with it.
public enum HSMPublicKey: Sendable {
    case p256(P256.Signing.PublicKey)
    case p384(P384.Signing.PublicKey)
}
