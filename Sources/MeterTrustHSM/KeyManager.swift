/// What MeterTrust needs of a key store: make, find, use and destroy signing key pairs whose private halves never
/// leave it. After smallstep's `KeyManager` (crypto/kms/apiv1: `CreateKey`, `GetPublicKey`, `CreateSigner`), with
/// optional abilities as protocols of their own: wrapping for backup is ``KeyWrapping``.
///
/// ``HSMToken`` (PKCS#11) is the implementation. A consumer that only makes, finds or signs takes this view.
public protocol KeyManager: AnyObject, Sendable {
    /// Generates an EC key pair: private half sensitive, never extractable unless `policy` allows backup.
    func generateKeyPair(curve: ECCurve, label: String, id: [UInt8]?, policy: HSMKeyPolicy) throws -> HSMKey
    /// The key pair labelled `label`; `HSMError.Code.keyNotFound` unless there is exactly one.
    func findKey(label: String) throws -> HSMKey
    /// The key pair with identifier `id`; `HSMError.Code.keyNotFound` unless there is exactly one.
    func findKey(id: [UInt8]) throws -> HSMKey
    /// The signer for `key`.
    func signer(for key: HSMKey) -> HSMSigner
    /// Destroys both halves of `key`.
    func destroy(_ key: HSMKey) throws
}

/// The optional ability to back keys up: wrap a private key under a secret key and unwrap it into a key store again.
/// Kept apart from ``KeyManager`` (as smallstep keeps its optional abilities apart) so that code which only signs
/// cannot reach it.
public protocol KeyWrapping: AnyObject, Sendable {
    /// The secret key labelled `label` (the backup key).
    func findSecretKey(label: String) throws -> HSMSecretKey
    /// `key`'s private half wrapped under `wrappingKey` (RFC 5649); refused unless the key was made for backup.
    func wrap(_ key: HSMKey, with wrappingKey: HSMSecretKey) throws -> [UInt8]
    /// Imports a secret key that can only unwrap, for the life of the sessions.
    func importUnwrappingKey(_ value: [UInt8], label: String) throws -> HSMSecretKey
    /// Unwraps a private key made by ``wrap(_:with:)`` and creates its public half from `publicPoint`.
    func unwrap(
        _ wrapped: [UInt8], with unwrappingKey: HSMSecretKey, curve: ECCurve, label: String, id: [UInt8], publicPoint: [UInt8],
        sessionCopies: Bool
    ) throws -> HSMKey
    /// Destroys a secret key.
    func destroy(_ key: HSMSecretKey) throws
}

extension HSMToken: KeyManager, KeyWrapping {}
