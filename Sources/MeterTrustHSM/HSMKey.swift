import CPKCS11

/// An EC key pair whose private half lives on the token.
///
/// Holds only references (object handle, label, CKA_ID) and the public point; the private key never leaves
/// the HSM.
public struct HSMKey: Sendable, Hashable {
    /// CKA_LABEL shared by the private and public objects.
    public let label: String
    /// CKA_ID shared by the private and public objects.
    public let id: [UInt8]
    public let curve: ECCurve
    /// The public key as an uncompressed SEC1 point (04 || X || Y).
    public let publicPoint: [UInt8]
    /// Handle of the private key object, valid for the life of the token's sessions in this process.
    let privateHandle: CK_OBJECT_HANDLE
    /// Handle of the public key object.
    let publicHandle: CK_OBJECT_HANDLE
}

/// What the token says about how a private key is protected (PKCS#11 v3.0 §4.9, "Private key objects").
public struct HSMKeyProtection: Sendable, Hashable {
    public var isToken: Bool
    public var isPrivate: Bool
    public var isSensitive: Bool
    public var isExtractable: Bool
    public var alwaysSensitive: Bool
    public var neverExtractable: Bool
    /// CKA_WRAP_WITH_TRUSTED: the token wraps the key only under a CKA_TRUSTED key.
    public var wrapWithTrusted: Bool
}

/// A secret (AES) key on the token: the backup key, or its session copy during a restore.
public struct HSMSecretKey: Sendable, Hashable {
    public let label: String
    let handle: CK_OBJECT_HANDLE
}
