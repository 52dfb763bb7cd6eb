import CPKCS11
import Logging
import SwiftASN1

/// Backup: the backup key, and wrapping and unwrapping private keys under it (``KeyWrapping``).
extension HSMToken {
    /// Finds the AES secret key labelled `label` (the backup key).
    public func findSecretKey(label: String) throws -> HSMSecretKey {
        let handles = try findObjects([
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)), .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
        ])
        guard handles.count == 1 else {
            throw HSMError.make(.keyNotFound, "\(handles.isEmpty ? "no secret key" : "\(handles.count) secret keys") labelled \"\(label)\" on token \(self.label)")
        }
        return HSMSecretKey(label: label, handle: handles[0])
    }

    /// Wraps `key`'s private half under `wrappingKey` with CKM_AES_KEY_WRAP_PAD (RFC 5649): the token encrypts the
    /// key's PKCS#8 encoding. The token refuses (CKR_KEY_UNEXTRACTABLE / CKR_KEY_NOT_WRAPPABLE) unless the key was
    /// generated for backup and the wrapping key is trusted.
    public func wrap(_ key: HSMKey, with wrappingKey: HSMSecretKey) throws -> [UInt8] {
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_AES_KEY_WRAP_PAD), pParameter: nil, ulParameterLen: 0)
        return try pool.withSession { session in
            var length: CK_ULONG = 0
            try module.check("C_WrapKey", context: "wrapping \(key.label) under \(wrappingKey.label)") {
                $0.C_WrapKey(session, &mechanism, wrappingKey.handle, key.privateHandle, nil, &length)
            }
            var wrapped = [UInt8](repeating: 0, count: Int(length))
            try module.check("C_WrapKey", context: "wrapping \(key.label) under \(wrappingKey.label)") {
                $0.C_WrapKey(session, &mechanism, wrappingKey.handle, key.privateHandle, &wrapped, &length)
            }
            return Array(wrapped.prefix(Int(length)))
        }
    }

    /// Imports the backup key rebuilt from k shares as a private *session* object that can only unwrap, and only
    /// into sensitive private keys extractable solely under a trusted key (``KeyTemplates/restoreKey(label:value:)``);
    /// it disappears with the session pool. The caller wipes `value` afterwards.
    public func importUnwrappingKey(_ value: [UInt8], label: String) throws -> HSMSecretKey {
        guard value.count == 32 else { throw HSMError.make(.invalidKeyMaterial, "a backup key is 32 bytes, not \(value.count)") }
        var handle: CK_OBJECT_HANDLE = 0
        try withTemplate(KeyTemplates.restoreKey(label: label, value: value)) { attributes, count in
            try module.check("C_CreateObject", context: "importing the backup key") {
                $0.C_CreateObject(loginSession, attributes, count, &handle)
            }
        }
        return HSMSecretKey(label: label, handle: handle)
    }

    /// Unwraps a private key wrapped by ``wrap(_:with:)`` into a token object (sensitive; extractable only under a
    /// trusted key, as before; copyable only if `sessionCopies`), and creates its public half from `publicPoint`.
    /// Returns the restored pair.
    public func unwrap(
        _ wrapped: [UInt8], with unwrappingKey: HSMSecretKey, curve: ECCurve, label: String, id: [UInt8], publicPoint: [UInt8],
        sessionCopies: Bool = false
    ) throws -> HSMKey {
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_AES_KEY_WRAP_PAD), pParameter: nil, ulParameterLen: 0)
        let privateTemplate = KeyTemplates.privateKey(label: label, id: id, policy: HSMKeyPolicy(backup: true, sessionCopies: sessionCopies))
        var encodedPoint = DER.Serializer()
        try encodedPoint.serialize(ASN1OctetString(contentBytes: publicPoint[...]))
        let publicTemplate = KeyTemplates.publicKey(curve: curve, label: label, id: id)
            + [.bytes(CK_ATTRIBUTE_TYPE(CKA_EC_POINT), encodedPoint.serializedBytes)]
        var privateHandle: CK_OBJECT_HANDLE = 0
        var publicHandle: CK_OBJECT_HANDLE = 0
        var input = wrapped
        try pool.withSession { session in
            try withTemplate(privateTemplate) { attributes, count in
                try module.check("C_UnwrapKey", context: "unwrapping \(label)") {
                    $0.C_UnwrapKey(session, &mechanism, unwrappingKey.handle, &input, CK_ULONG(input.count), attributes, count, &privateHandle)
                }
            }
            try withTemplate(publicTemplate) { attributes, count in
                try module.check("C_CreateObject", context: "creating the public key of \(label)") {
                    $0.C_CreateObject(session, attributes, count, &publicHandle)
                }
            }
        }
        logger.info("restored key pair into HSM", metadata: ["label": "\(label)", "token": "\(self.label)"])
        return HSMKey(label: label, id: id, curve: curve, publicPoint: publicPoint, privateHandle: privateHandle, publicHandle: publicHandle)
    }

    /// Destroys a secret key object (a session copy of the backup key after a restore).
    public func destroy(_ key: HSMSecretKey) throws {
        try pool.withSession { session in
            try module.check("C_DestroyObject", context: "destroying secret key \(key.label)") {
                $0.C_DestroyObject(session, key.handle)
            }
        }
    }
}
