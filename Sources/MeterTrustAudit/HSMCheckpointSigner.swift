import Crypto
import MeterTrustHSM

/// Checkpoints signed by the audit key on the HSM (P-256, CKM_ECDSA over SHA-256). A thin adapter on ``HSMSigner``.
public struct HSMCheckpointSigner: CheckpointSigner {
    public let signer: HSMSigner
    public let keyName: String
    public let publicKey: P256.Signing.PublicKey

    public var token: HSMToken { signer.token }
    public var key: HSMKey { signer.key }

    public init(token: HSMToken, key: HSMKey, keyName: String) throws {
        guard key.curve == .p256 else { throw AuditError(.signature, "the audit key \(key.label) must be P-256") }
        let signer = token.signer(for: key)
        guard case .p256(let publicKey) = try signer.publicKey() else {
            throw AuditError(.signature, "the audit key \(key.label) must be P-256")
        }
        self.signer = signer
        self.keyName = keyName
        self.publicKey = publicKey
    }

    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        try signer.signature(for: message)
    }
}
