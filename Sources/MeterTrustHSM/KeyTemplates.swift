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
