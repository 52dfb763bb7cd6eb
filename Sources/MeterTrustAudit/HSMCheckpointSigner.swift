import Crypto
import MeterTrustHSM

/// Checkpoints signed by the audit key on the HSM (P-256, CKM_ECDSA over SHA-256).
public struct HSMCheckpointSigner: CheckpointSigner {
    public let token: HSMToken
    public let key: HSMKey
    public let keyName: String
    public let publicKey: P256.Signing.PublicKey

    public init(token: HSMToken, key: HSMKey, keyName: String) throws {
        guard key.curve == .p256 else { throw AuditError(.signature, "the audit key \(key.label) must be P-256") }
        self.token = token
        self.key = key
        self.keyName = keyName
        self.publicKey = try P256.Signing.PublicKey(x963Representation: key.publicPoint)
    }

    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        try token.sign(message: message, with: key)
    }
}
