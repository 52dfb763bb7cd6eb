import Crypto
import Foundation
import MeterTrustHSM
import SwiftASN1
import X509

/// A swift-certificates `CustomPrivateKey` whose private half is on the HSM: certificates, CRLs and responses built
/// with swift-certificates are signed by `C_Sign` over a digest computed here.
public struct HSMSigningKey: CustomPrivateKey {
    public let token: HSMToken
    public let key: HSMKey

    public init(token: HSMToken, key: HSMKey) {
        self.token = token
        self.key = key
    }

    public var publicKey: Certificate.PublicKey {
        // The point came from the token as CKA_EC_POINT and was validated when the key was loaded.
        switch key.curve {
        case .p256: return Certificate.PublicKey(try! P256.Signing.PublicKey(x963Representation: key.publicPoint))
        case .p384: return Certificate.PublicKey(try! P384.Signing.PublicKey(x963Representation: key.publicPoint))
        }
    }

    /// Checks that the token's public point is a valid point on the key's curve.
    public static func validated(token: HSMToken, key: HSMKey) throws -> HSMSigningKey {
        do {
            switch key.curve {
            case .p256: _ = try P256.Signing.PublicKey(x963Representation: key.publicPoint)
            case .p384: _ = try P384.Signing.PublicKey(x963Representation: key.publicPoint)
            }
        } catch {
            throw PKIError(.issuance, "the HSM key \(key.label) has an invalid public point")
        }
        return HSMSigningKey(token: token, key: key)
    }

    public var defaultSignatureAlgorithm: Certificate.SignatureAlgorithm {
        key.curve == .p256 ? .ecdsaWithSHA256 : .ecdsaWithSHA384
    }

    public var supportedSignatureAlgorithms: [Certificate.SignatureAlgorithm] { [defaultSignatureAlgorithm] }

    public func signSynchronously(
        bytes: some DataProtocol,
        signatureAlgorithm: Certificate.SignatureAlgorithm
    ) throws -> Certificate.Signature {
        guard signatureAlgorithm == defaultSignatureAlgorithm else {
            throw PKIError(.issuance, "the \(key.curve.rawValue) key \(key.label) signs with \(defaultSignatureAlgorithm) only")
        }
        let der = try token.sign(message: bytes, with: key)
        return try Certificate.Signature(signatureAlgorithm: signatureAlgorithm, signatureBytes: ASN1BitString(bytes: der[...]))
    }

    public func signAsynchronously(
        bytes: some DataProtocol & Sendable,
        signatureAlgorithm: Certificate.SignatureAlgorithm
    ) async throws -> Certificate.Signature {
        guard signatureAlgorithm == defaultSignatureAlgorithm else {
            throw PKIError(.issuance, "the \(key.curve.rawValue) key \(key.label) signs with \(defaultSignatureAlgorithm) only")
        }
        let der = try await token.perform { [key] in try $0.sign(message: bytes, with: key) }
        return try Certificate.Signature(signatureAlgorithm: signatureAlgorithm, signatureBytes: ASN1BitString(bytes: der[...]))
    }

    /// Signs a digest computed by the caller (SHA-256 for a P-256 key, SHA-384 for P-384) in the HSM and returns the
    /// DER ECDSA-Sig-Value, for detached signatures over documents too large to hold.
    public func sign(digest: [UInt8]) throws -> [UInt8] {
        let raw = try token.signDigest(digest, with: key)
        switch key.curve {
        case .p256: return Array(try P256.Signing.ECDSASignature(rawRepresentation: raw).derRepresentation)
        case .p384: return Array(try P384.Signing.ECDSASignature(rawRepresentation: raw).derRepresentation)
        }
    }

    // PEMSerializable: an HSM key has no exportable encoding.
    public static var defaultPEMDiscriminator: String { "PRIVATE KEY" }

    public func serialize(into coder: inout DER.Serializer) throws {
        throw PKIError(.invalidArgument, "the HSM key \(key.label) cannot be exported")
    }

    public static func == (lhs: HSMSigningKey, rhs: HSMSigningKey) -> Bool {
        lhs.token === rhs.token && lhs.key == rhs.key
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(token))
        hasher.combine(key)
    }
}
