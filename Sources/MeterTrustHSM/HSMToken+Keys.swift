import CPKCS11
import Crypto
import Logging
import MeterTrustCore
import SwiftASN1

/// Key pairs: generation, look-up, destruction, session copies, and what the token says about their protection.
extension HSMToken {
    /// Generates an EC key pair on the token. The private key is CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE and signs
    /// only; `policy` says whether it may also be wrapped under the trusted backup key and copied into session
    /// objects (``HSMKeyPolicy``). The public half is a private object too (``KeyTemplates/publicKey(curve:label:id:)``).
    public func generateKeyPair(curve: ECCurve, label: String, id: [UInt8]? = nil, policy: HSMKeyPolicy = .signingOnly) throws -> HSMKey {
        let keyID = id ?? Array(SHA256.hash(data: Array(label.utf8) + randomBytes(16)).prefix(16))
        let key = try generatePair(curve: curve, label: label, id: keyID, privateTemplate: KeyTemplates.privateKey(label: label, id: keyID, policy: policy))
        logger.info("generated key pair in HSM", metadata: ["label": "\(label)", "curve": "\(curve.rawValue)"])
        return key
    }

    /// C_GenerateKeyPair with the public half of ``KeyTemplates/publicKey(curve:label:id:)`` and `privateTemplate`.
    func generatePair(curve: ECCurve, label: String, id keyID: [UInt8], privateTemplate: [PKCS11Attribute]) throws -> HSMKey {
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_EC_KEY_PAIR_GEN), pParameter: nil, ulParameterLen: 0)
        let publicTemplate = KeyTemplates.publicKey(curve: curve, label: label, id: keyID)
        var publicHandle: CK_OBJECT_HANDLE = 0
        var privateHandle: CK_OBJECT_HANDLE = 0
        try pool.withSession { session in
            try withTemplate(publicTemplate) { publicAttributes, publicCount in
                try withTemplate(privateTemplate) { privateAttributes, privateCount in
                    try module.check("C_GenerateKeyPair", context: "generating \(curve.rawValue) key \(label)") {
                        $0.C_GenerateKeyPair(
                            session, &mechanism, publicAttributes, publicCount, privateAttributes, privateCount,
                            &publicHandle, &privateHandle
                        )
                    }
                }
            }
        }
        let point = try publicPoint(ofPublicKey: publicHandle)
        return HSMKey(label: label, id: keyID, curve: curve, publicPoint: point, privateHandle: privateHandle, publicHandle: publicHandle)
    }

    /// Destroys both halves of a key pair (used to clean up after a CA creation that could not be recorded).
    public func destroy(_ key: HSMKey) throws {
        try pool.withSession { session in
            try module.check("C_DestroyObject", context: "destroying private key \(key.label)") {
                $0.C_DestroyObject(session, key.privateHandle)
            }
            try module.check("C_DestroyObject", context: "destroying public key \(key.label)") {
                $0.C_DestroyObject(session, key.publicHandle)
            }
        }
        logger.info("destroyed key pair in HSM", metadata: ["label": "\(key.label)"])
    }

    /// A session-object copy of `key`'s private half, made inside the token with `C_CopyObject`: CKA_TOKEN false,
    /// sensitive and unextractable like the original (PKCS#11 does not let a copy weaken either). It never leaves the
    /// HSM and disappears when ``destroySessionCopy(_:)`` is called or the token is closed.
    ///
    /// Why: SoftHSM2 rebuilds a token key from its object file on every `C_SignInit` (open, lock, read, decrypt);
    /// a session object skips that, which saves about a quarter of the CPU of each batch signature.
    public func sessionCopy(of key: HSMKey) throws -> HSMKey {
        var copy: CK_OBJECT_HANDLE = 0
        try withTemplate([.bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), false)]) { attributes, count in
            try module.check("C_CopyObject", context: "copying \(key.label) into a session object") {
                $0.C_CopyObject(loginSession, key.privateHandle, attributes, count, &copy)
            }
        }
        logger.info("made a session copy of a key inside the HSM", metadata: ["label": "\(key.label)"])
        return HSMKey(label: key.label, id: key.id, curve: key.curve, publicPoint: key.publicPoint, privateHandle: copy, publicHandle: key.publicHandle)
    }

    /// Destroys a session copy made by ``sessionCopy(of:)`` (the token object stays).
    public func destroySessionCopy(_ copy: HSMKey) throws {
        try pool.withSession { session in
            try module.check("C_DestroyObject", context: "destroying the session copy of \(copy.label)") {
                $0.C_DestroyObject(session, copy.privateHandle)
            }
        }
    }

    /// Labels of every private key on the token (inventory; the keys themselves stay where they are).
    public func privateKeyLabels() throws -> [String] {
        try findObjects([.ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_PRIVATE_KEY))]).map {
            String(decoding: try attribute(CK_ATTRIBUTE_TYPE(CKA_LABEL), of: $0), as: UTF8.self)
        }.sorted()
    }

    /// Finds the key pair whose objects carry CKA_LABEL `label`.
    public func findKey(label: String) throws -> HSMKey {
        try findKey(matching: .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label), description: "label \"\(label)\"")
    }

    /// Finds the key pair whose objects carry CKA_ID `id`.
    public func findKey(id: [UInt8]) throws -> HSMKey {
        try findKey(matching: .bytes(CK_ATTRIBUTE_TYPE(CKA_ID), id), description: "CKA_ID \(hexString(id))")
    }

    private func findKey(matching match: PKCS11Attribute, description: String) throws -> HSMKey {
        let privateKeys = try findObjects([.ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_PRIVATE_KEY)), match])
        let publicKeys = try findObjects([.ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_PUBLIC_KEY)), match])
        guard privateKeys.count == 1, publicKeys.count == 1 else {
            let found = privateKeys.isEmpty ? "no key" : "\(privateKeys.count) keys"
            throw HSMError.make(.keyNotFound, "\(found) with \(description) on token \(self.label)")
        }
        let label = String(decoding: try attribute(CK_ATTRIBUTE_TYPE(CKA_LABEL), of: privateKeys[0]), as: UTF8.self)
        let id = try self.attribute(CK_ATTRIBUTE_TYPE(CKA_ID), of: privateKeys[0])
        let parameters = try self.attribute(CK_ATTRIBUTE_TYPE(CKA_EC_PARAMS), of: publicKeys[0])
        guard let curve = ECCurve.allCases.first(where: { $0.ecParameters == parameters }) else {
            throw HSMError.make(.invalidKeyMaterial, "the key with \(description) is not on P-256 or P-384")
        }
        let point = try publicPoint(ofPublicKey: publicKeys[0])
        return HSMKey(label: label, id: id, curve: curve, publicPoint: point, privateHandle: privateKeys[0], publicHandle: publicKeys[0])
    }

    private func publicPoint(ofPublicKey handle: CK_OBJECT_HANDLE) throws -> [UInt8] {
        // CKA_EC_POINT is the DER encoding of an OCTET STRING around the SEC1 point (PKCS#11 v3.0 §2.3.3).
        let encoded = try attribute(CK_ATTRIBUTE_TYPE(CKA_EC_POINT), of: handle)
        do {
            return Array(try ASN1OctetString(derEncoded: encoded).bytes)
        } catch {
            throw HSMError.make(.invalidKeyMaterial, "the token returned a CKA_EC_POINT that is not a DER OCTET STRING")
        }
    }

    /// The private key's attribute value (CKA_VALUE). For every key MeterTrust makes this fails with
    /// CKR_ATTRIBUTE_SENSITIVE: it exists so tests and audits can show that it does.
    public func readPrivateValue(of key: HSMKey) throws -> [UInt8] {
        try attribute(CK_ATTRIBUTE_TYPE(CKA_VALUE), of: key.privateHandle)
    }

    /// How the token protects `key`'s private half.
    public func protection(of key: HSMKey) throws -> HSMKeyProtection {
        func flag(_ type: Int32) throws -> Bool {
            try attribute(CK_ATTRIBUTE_TYPE(type), of: key.privateHandle).first == 1
        }
        return HSMKeyProtection(
            isToken: try flag(Int32(CKA_TOKEN)), isPrivate: try flag(Int32(CKA_PRIVATE)),
            isSensitive: try flag(Int32(CKA_SENSITIVE)), isExtractable: try flag(Int32(CKA_EXTRACTABLE)),
            alwaysSensitive: try flag(Int32(CKA_ALWAYS_SENSITIVE)), neverExtractable: try flag(Int32(CKA_NEVER_EXTRACTABLE)),
            wrapWithTrusted: try flag(Int32(CKA_WRAP_WITH_TRUSTED))
        )
    }
}
