import CPKCS11

/// What the token reports about one object MeterTrust made: enough to see that its attributes are as tight as
/// ``KeyTemplates`` makes them, on a token made by an earlier version too.
public struct HSMObjectAttributes: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case privateKey = "private-key"
        case publicKey = "public-key"
        case secretKey = "secret-key"
    }

    public var label: String
    public var kind: Kind
    public var isPrivate: Bool
    public var isModifiable: Bool
    public var isCopyable: Bool
    public var isDestroyable: Bool
    /// CKA_UNWRAP, CKA_DECRYPT or CKA_DERIVE: abilities no MeterTrust key on the source token needs.
    public var canUnwrapDecryptOrDerive: Bool
    /// What an operator should do about it, if anything.
    public var finding: String?
}

extension HSMToken {
    /// Every private, public and secret key object whose label starts with `labelPrefix`, with its attributes.
    public func objectInventory(labelPrefix: String = "metertrust/") throws -> [HSMObjectAttributes] {
        var inventory: [HSMObjectAttributes] = []
        for (kind, objectClass) in [
            (HSMObjectAttributes.Kind.privateKey, CK_ULONG(CKO_PRIVATE_KEY)), (.publicKey, CK_ULONG(CKO_PUBLIC_KEY)), (.secretKey, CK_ULONG(CKO_SECRET_KEY)),
        ] {
            for handle in try objects(ofClass: objectClass) {
                let label = String(decoding: try attribute(CK_ATTRIBUTE_TYPE(CKA_LABEL), of: handle), as: UTF8.self)
                guard label.hasPrefix(labelPrefix) else { continue }
                func flag(_ type: Int32) -> Bool { (try? attribute(CK_ATTRIBUTE_TYPE(type), of: handle))?.first == 1 }
                let abilities = kind == .publicKey
                    ? flag(Int32(CKA_ENCRYPT)) || flag(Int32(CKA_WRAP)) || flag(Int32(CKA_DERIVE))
                    : flag(Int32(CKA_UNWRAP)) || flag(Int32(CKA_DECRYPT)) || flag(Int32(CKA_DERIVE))
                var entry = HSMObjectAttributes(
                    label: label, kind: kind, isPrivate: flag(Int32(CKA_PRIVATE)), isModifiable: flag(Int32(CKA_MODIFIABLE)),
                    isCopyable: flag(Int32(CKA_COPYABLE)), isDestroyable: flag(Int32(CKA_DESTROYABLE)), canUnwrapDecryptOrDerive: abilities,
                    finding: nil
                )
                switch kind {
                case .publicKey where !entry.isPrivate:
                    entry.finding = "a public object: a session without a PIN can destroy or copy it; run metertrust hsm harden"
                case .secretKey where label.hasPrefix("\(KeyLabel.prefix)/\(KeyLabel.pskSealing)/") && !entry.isModifiable && !entry.isCopyable:
                    break  // encrypt and decrypt are what it is for (sealing imported PSKs); it cannot wrap or derive
                case .secretKey where entry.canUnwrapDecryptOrDerive || entry.isModifiable || entry.isCopyable:
                    entry.finding = "a backup key made before key custody: it can unwrap or be changed; replace it with backup.reshare"
                case .privateKey where Self.isKeyAgreementKey(label) && !entry.isModifiable && !entry.isCopyable:
                    break  // derive is its one use (the PSK onboarding key: HPKE recipient)
                case .privateKey where entry.canUnwrapDecryptOrDerive:
                    entry.finding = "a private key that can unwrap, decrypt or derive; no MeterTrust key needs that"
                default:
                    break
                }
                inventory.append(entry)
            }
        }
        return inventory.sorted { ($0.label, $0.kind.rawValue) < ($1.label, $1.kind.rawValue) }
    }

    /// What ``harden(labelPrefix:)`` changed.
    public struct Hardening: Sendable, Hashable, Codable {
        /// Public halves re-created as private objects.
        public var madePrivate: [String] = []
        /// Private keys whose decrypt, unwrap, derive and sign-recover abilities were switched off.
        public var abilitiesRemoved: [String] = []

        public init() {}
    }

    /// Tightens, in place, what an earlier version left looser on objects under `labelPrefix`:
    /// - public halves that are public objects are re-created as private ones (C_CopyObject with CKA_PRIVATE true,
    ///   then the public original destroyed), so a session without a PIN cannot see, copy or destroy them;
    /// - private keys that may decrypt, unwrap, derive or sign-recover (a template that did not say otherwise gets
    ///   the token's defaults, which on SoftHSM2 include CKA_DERIVE: an ECDH oracle on a CA key) lose those abilities
    ///   (C_SetAttributeValue; such keys are still modifiable). CKA_MODIFIABLE and CKA_COPYABLE themselves cannot be
    ///   narrowed after creation; neither lets anyone weaken the key (see ``HSMKeyPolicy``).
    public func harden(labelPrefix: String = "metertrust/") throws -> Hardening {
        var result = Hardening()
        for handle in try objects(ofClass: CK_ULONG(CKO_PUBLIC_KEY)) {
            let label = String(decoding: try attribute(CK_ATTRIBUTE_TYPE(CKA_LABEL), of: handle), as: UTF8.self)
            guard label.hasPrefix(labelPrefix), try attribute(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), of: handle).first != 1 else { continue }
            try copyObject(handle, [.bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), true), .bool(CK_ATTRIBUTE_TYPE(CKA_MODIFIABLE), false)], context: "making the public half of \(label) private")
            try destroyObject(handle, context: "destroying the public copy of \(label)")
            result.madePrivate.append(label)
        }
        let abilities = [CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE, CKA_SIGN_RECOVER].map { CK_ATTRIBUTE_TYPE($0) }
        for handle in try objects(ofClass: CK_ULONG(CKO_PRIVATE_KEY)) {
            let label = String(decoding: try attribute(CK_ATTRIBUTE_TYPE(CKA_LABEL), of: handle), as: UTF8.self)
            guard label.hasPrefix(labelPrefix), !Self.isKeyAgreementKey(label), try abilities.contains(where: { try attribute($0, of: handle).first == 1 }) else { continue }
            try setAttributes(handle, abilities.map { .bool($0, false) }, context: "removing decrypt, unwrap and derive from \(label)")
            result.abilitiesRemoved.append(label)
        }
        if result != Hardening() {
            logger.notice("hardened token objects", metadata: ["madePrivate": "\(result.madePrivate.count)", "abilitiesRemoved": "\(result.abilitiesRemoved.count)"])
        }
        return result
    }

    /// The PSK onboarding key: made with CKA_DERIVE as its only ability (and unmodifiable), which harden keeps.
    static func isKeyAgreementKey(_ label: String) -> Bool {
        label.hasPrefix("\(KeyLabel.prefix)/\(KeyLabel.pskOnboarding)/")
    }
}
