import CPKCS11

/// What a key pair made on the token may be used for beyond signing.
///
/// Every private key MeterTrust generates is CKA_PRIVATE, CKA_SENSITIVE, signing only (no decrypt, unwrap, derive
/// or sign-recover). The two abilities below are the only ones a key may have in addition, and only where a use needs
/// them.
public struct HSMKeyPolicy: Sendable, Hashable {
    /// CKA_EXTRACTABLE with CKA_WRAP_WITH_TRUSTED: the token wraps the key only under a CKA_TRUSTED key (the backup
    /// key), never in clear and never under a key a user made.
    public var backup: Bool
    /// CKA_COPYABLE and CKA_MODIFIABLE: the key can be copied inside the token into a session object
    /// (``HSMToken/sessionCopy(of:)``), which the factory's batch signing relies on (a session object saves SoftHSM2
    /// rebuilding the key on every C_SignInit, a quarter of each signature's CPU). SoftHSM2 applies a copy's template
    /// only to a modifiable object, so such a key is modifiable too. Neither ability can weaken the key: a copy cannot
    /// make it public (CKR_TEMPLATE_INCONSISTENT), CKA_SENSITIVE and CKA_WRAP_WITH_TRUSTED cannot go back to false,
    /// CKA_EXTRACTABLE cannot become true (PKCS#11 v3.0 §4.9, enforced by SoftHSM2).
    public var sessionCopies: Bool

    public init(backup: Bool = false, sessionCopies: Bool = false) {
        self.backup = backup
        self.sessionCopies = sessionCopies
    }

    /// Sign only; neither copyable nor modifiable nor extractable.
    public static let signingOnly = HSMKeyPolicy()
}

/// The PKCS#11 templates of every object MeterTrust creates. Each is as tight as its use allows; what each
/// attribute defends against is in docs/threat-model.md ("Key custody").
enum KeyTemplates {
    /// The public half of an EC key pair. CKA_PRIVATE true although nothing in it is secret: a session without a
    /// login then cannot see, copy or destroy it (a public object is usable by any session, PIN or not).
    static func publicKey(curve: ECCurve, label: String, id: [UInt8]) -> [PKCS11Attribute] {
        [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_PUBLIC_KEY)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_KEY_TYPE), CK_ULONG(CKK_EC)),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_MODIFIABLE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_COPYABLE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_VERIFY), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_ENCRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_WRAP), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DERIVE), false),
            .bytes(CK_ATTRIBUTE_TYPE(CKA_EC_PARAMS), curve.ecParameters),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
            .bytes(CK_ATTRIBUTE_TYPE(CKA_ID), id),
        ]
    }

    /// The attributes that make a private key's protection; shared by generation, unwrap and the unwrap template
    /// of the restore key, so a restored key is held to exactly what a generated one is.
    static func privateKeyProtection(backup: Bool) -> [PKCS11Attribute] {
        [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_PRIVATE_KEY)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_KEY_TYPE), CK_ULONG(CKK_EC)),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SENSITIVE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_EXTRACTABLE), backup),
            .bool(CK_ATTRIBUTE_TYPE(CKA_WRAP_WITH_TRUSTED), backup),
        ]
    }

    /// The private half: sensitive, signing only; see ``HSMKeyPolicy``. Destroyable, because `ca.destroy` (under
    /// quorum) must be able to end a key; a session without a login cannot reach a private object at all.
    static func privateKey(label: String, id: [UInt8], policy: HSMKeyPolicy) -> [PKCS11Attribute] {
        privateKeyProtection(backup: policy.backup) + [
            .bool(CK_ATTRIBUTE_TYPE(CKA_COPYABLE), policy.sessionCopies),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DESTROYABLE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN_RECOVER), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DECRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_UNWRAP), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DERIVE), false),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
            .bytes(CK_ATTRIBUTE_TYPE(CKA_ID), id),
            // Last: SoftHSM 2.6.1 applies a template in order and, under C_UnwrapKey, refuses every attribute after
            // CKA_MODIFIABLE false (CKR_ATTRIBUTE_READ_ONLY; 2.7 exempts unwrapping as it does generation).
            .bool(CK_ATTRIBUTE_TYPE(CKA_MODIFIABLE), policy.sessionCopies),
        ]
    }

    /// The backup key on the source token, created by the security officer: it can only wrap.
    ///
    /// - CKA_TRUSTED (only the SO may set it), so the token wraps CKA_WRAP_WITH_TRUSTED keys under it and under no
    ///   other key.
    /// - CKA_UNWRAP, CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_DERIVE false: nothing wrapped under it can be
    ///   unwrapped on this token, by anyone; unwrapping needs the key rebuilt from k shares on a target token.
    /// - CKA_SENSITIVE true, CKA_EXTRACTABLE false from creation: its value is never readable from the token.
    /// - CKA_MODIFIABLE and CKA_COPYABLE false: no session, PIN or not, can turn unwrap on or make a copy that could.
    /// - CKA_PRIVATE false is forced: an SO session cannot create private objects (SoftHSM2, PKCS#11 §4.1.1).
    /// - CKA_DESTROYABLE true: `backup reshare` must remove it. A session without a PIN can therefore destroy it;
    ///   that only denies service (existing backups stay restorable from their shares, reshare makes a new key).
    static func trustedBackupKey(label: String, value: [UInt8]) -> [PKCS11Attribute] {
        [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_KEY_TYPE), CK_ULONG(CKK_AES)),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SENSITIVE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_EXTRACTABLE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TRUSTED), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_WRAP), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_UNWRAP), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_ENCRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DECRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_VERIFY), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DERIVE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_MODIFIABLE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_COPYABLE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DESTROYABLE), true),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
            .bytes(CK_ATTRIBUTE_TYPE(CKA_VALUE), value),
        ]
    }

    /// A per-batch PSK master key (``HSMToken/generatePSKMasterKey(label:)``): an HMAC-SHA256 key that can only sign.
    ///
    /// - CKK_GENERIC_SECRET, 32 octets, made by CKM_GENERIC_SECRET_KEY_GEN inside the token: its value never exists
    ///   outside it.
    /// - CKA_PRIVATE: a session without the PIN cannot find, use or destroy it.
    /// - CKA_SENSITIVE true, CKA_EXTRACTABLE false: neither readable nor wrappable, by anyone.
    /// - CKA_SIGN only (CKM_SHA256_HMAC is a C_Sign mechanism): no derive, unwrap, encrypt or decrypt, so it cannot be
    ///   the base of a C_DeriveKey that yields a readable key, nor an oracle for anything but the PSK derivation.
    /// - CKA_COPYABLE and CKA_MODIFIABLE false: no session can copy it or turn another ability on.
    static func pskMasterKey(label: String) -> [PKCS11Attribute] {
        secretKeyProtection(keyType: CK_ULONG(CKK_GENERIC_SECRET), label: label) + [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_VALUE_LEN), 32),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_VERIFY), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_ENCRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DECRYPT), false),
        ] + Self.immutable
    }

    /// The key that seals imported (OEM-generated) PSKs for the store (``HSMToken/generateSealingKey(label:)``): an
    /// AES-256 key that can only encrypt and decrypt (CKM_AES_GCM through C_Encrypt/C_Decrypt), private, sensitive,
    /// unextractable, neither copyable nor modifiable.
    static func pskSealingKey(label: String) -> [PKCS11Attribute] {
        secretKeyProtection(keyType: CK_ULONG(CKK_AES), label: label) + [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_VALUE_LEN), 32),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_VERIFY), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_ENCRYPT), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DECRYPT), true),
        ] + Self.immutable
    }

    /// What every secret key MeterTrust generates for its own use shares: a private token object, sensitive and
    /// unextractable from creation, that can neither wrap, unwrap nor derive.
    private static func secretKeyProtection(keyType: CK_ULONG, label: String) -> [PKCS11Attribute] {
        [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_KEY_TYPE), keyType),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SENSITIVE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_EXTRACTABLE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_WRAP), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_UNWRAP), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DERIVE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DESTROYABLE), true),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
        ]
    }

    /// Last in a template: SoftHSM 2.6.1 refuses attributes after CKA_MODIFIABLE false in some calls (see
    /// ``privateKey(label:id:policy:)``).
    private static let immutable: [PKCS11Attribute] = [
        .bool(CK_ATTRIBUTE_TYPE(CKA_COPYABLE), false),
        .bool(CK_ATTRIBUTE_TYPE(CKA_MODIFIABLE), false),
    ]

    /// The private half of the PSK onboarding key (HPKE recipient of OEM-generated PSKs): CKA_DERIVE only, for
    /// CKM_ECDH1_DERIVE. Private, sensitive, unextractable, neither copyable nor modifiable, and no signing: it must
    /// not double as a signing key (a signature oracle) nor sign as a CA would.
    static func keyAgreementPrivateKey(label: String, id: [UInt8]) -> [PKCS11Attribute] {
        privateKeyProtection(backup: false) + [
            .bool(CK_ATTRIBUTE_TYPE(CKA_DESTROYABLE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN_RECOVER), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DECRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_UNWRAP), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DERIVE), true),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
            .bytes(CK_ATTRIBUTE_TYPE(CKA_ID), id),
        ] + Self.immutable
    }

    /// The output of one CKM_ECDH1_DERIVE (CKD_NULL: the shared point's x-coordinate): a *session* object, private,
    /// readable (not sensitive, extractable) and with no ability at all. It is read once and destroyed at once; see
    /// ``HSMToken/keyAgreement(_:peerPoint:)`` for why this is the one value that leaves the token.
    static func derivedSharedSecret(length: Int) -> [PKCS11Attribute] {
        [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_KEY_TYPE), CK_ULONG(CKK_GENERIC_SECRET)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_VALUE_LEN), CK_ULONG(length)),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SENSITIVE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_EXTRACTABLE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_VERIFY), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_ENCRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DECRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_WRAP), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_UNWRAP), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DERIVE), false),
        ]
    }

    /// The backup key rebuilt from k shares on the target token of a restore: a private *session* object that can
    /// only unwrap, and only into private keys protected as ``privateKeyProtection(backup:)`` with backup true
    /// (CKA_UNWRAP_TEMPLATE: SoftHSM2 refuses a C_UnwrapKey whose template lacks or differs from any of them).
    static func restoreKey(label: String, value: [UInt8]) -> [PKCS11Attribute] {
        [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_KEY_TYPE), CK_ULONG(CKK_AES)),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SENSITIVE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_EXTRACTABLE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_MODIFIABLE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_COPYABLE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_UNWRAP), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_WRAP), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_ENCRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DECRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SIGN), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DERIVE), false),
            .template(CK_ATTRIBUTE_TYPE(CKA_UNWRAP_TEMPLATE), privateKeyProtection(backup: true)),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
            .bytes(CK_ATTRIBUTE_TYPE(CKA_VALUE), value),
        ]
    }
}
