import Crypto
import Foundation
import MeterTrustHSM
import SwiftASN1
import X509

/// A swift-certificates `CustomPrivateKey` whose private half is on the HSM: certificates, CRLs and responses built
/// with swift-certificates are signed by `C_Sign` over a digest computed here. A thin adapter on ``HSMSigner``.
public struct HSMSigningKey: CustomPrivateKey {
    public let signer: HSMSigner

    public var token: HSMToken { signer.token }
    public var key: HSMKey { signer.key }

    public init(token: HSMToken, key: HSMKey) {
        self.signer = token.signer(for: key)
    }

    public var publicKey: Certificate.PublicKey {
        // The point came from the token as CKA_EC_POINT; `validated(token:key:)` checks it when a CA is loaded.
        switch try! signer.publicKey() {
        case .p256(let key): return Certificate.PublicKey(key)
        case .p384(let key): return Certificate.PublicKey(key)
        }
    }

    /// Checks that the token's public point is a valid point on the key's curve.
    public static func validated(token: HSMToken, key: HSMKey) throws -> HSMSigningKey {
        let signingKey = HSMSigningKey(token: token, key: key)
        do {
            _ = try signingKey.signer.publicKey()
        } catch {
            throw PKIError(.issuance, "the HSM key \(key.label) has an invalid public point")
        }
        return signingKey
    }

    public var defaultSignatureAlgorithm: Certificate.SignatureAlgorithm {
        key.curve == .p256 ? .ecdsaWithSHA256 : .ecdsaWithSHA384
    }

    public var supportedSignatureAlgorithms: [Certificate.SignatureAlgorithm] { [defaultSignatureAlgorithm] }

    public func signSynchronously(
        bytes: some DataProtocol,
        signatureAlgorithm: Certificate.SignatureAlgorithm
    ) throws -> Certificate.Signature {
        try checkAlgorithm(signatureAlgorithm)
        let der = try signer.signature(for: bytes)
        return try Certificate.Signature(signatureAlgorithm: signatureAlgorithm, signatureBytes: ASN1BitString(bytes: der[...]))
    }

    public func signAsynchronously(
        bytes: some DataProtocol & Sendable,
        signatureAlgorithm: Certificate.SignatureAlgorithm
    ) async throws -> Certificate.Signature {
        try checkAlgorithm(signatureAlgorithm)
        let der = try await signer.signatureOnHSMQueue(for: bytes)
        return try Certificate.Signature(signatureAlgorithm: signatureAlgorithm, signatureBytes: ASN1BitString(bytes: der[...]))
    }

    private func checkAlgorithm(_ signatureAlgorithm: Certificate.SignatureAlgorithm) throws {
        guard signatureAlgorithm == defaultSignatureAlgorithm else {
            throw PKIError(.issuance, "the \(key.curve.rawValue) key \(key.label) signs with \(defaultSignatureAlgorithm) only")
        }
    }

    /// Signs a digest computed by the caller (SHA-256 for a P-256 key, SHA-384 for P-384) in the HSM and returns the
    /// DER ECDSA-Sig-Value, for detached signatures over documents too large to hold.
    public func sign(digest: [UInt8]) throws -> [UInt8] {
        try signer.signature(digest: digest)
    }

    // PEMSerializable: an HSM key has no exportable encoding.
    public static var defaultPEMDiscriminator: String { "PRIVATE KEY" }

    public func serialize(into coder: inout DER.Serializer) throws {
        throw PKIError(.invalidArgument, "the HSM key \(key.label) cannot be exported")
    }

    public static func == (lhs: HSMSigningKey, rhs: HSMSigningKey) -> Bool {
        lhs.signer == rhs.signer
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(signer)
    }
}
