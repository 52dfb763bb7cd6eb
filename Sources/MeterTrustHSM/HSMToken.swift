import CPKCS11
import Crypto
import Dispatch
import Foundation
import Logging
import SwiftASN1

/// A logged-in PKCS#11 token with a pool of sessions: MeterTrust's key manager.
///
/// Every method that talks to the token blocks its thread; the `async` variants run on the HSM's own dispatch
/// queue so they never block a NIO event loop or the cooperative pool.
public final class HSMToken: Sendable {
    public let module: PKCS11Module
    public let slot: CK_SLOT_ID
    public let label: String
    private let loginSession: CK_SESSION_HANDLE
    private let pool: SessionPool
    let logger: Logger
    private static let queue = DispatchQueue(label: "metertrust.hsm", attributes: .concurrent)

    /// Number of sessions, i.e. of operations that can run at once.
    public var sessionCount: Int { pool.capacity }

    /// Loads the module, finds the token by label, logs in with the configured PIN, and opens the session pool.
    public static func open(_ configuration: HSMConfiguration, logger: Logger = Logger(label: "metertrust.hsm")) throws -> HSMToken {
        let module = try PKCS11Module.load(path: configuration.modulePath)
        let slot = try module.slot(forTokenLabel: configuration.tokenLabel)
        let sessions = max(1, configuration.sessionCount ?? ProcessInfo.processInfo.activeProcessorCount)
        return try HSMToken(
            module: module, slot: slot, label: configuration.tokenLabel, pin: configuration.pinSource,
            sessionCount: sessions, logger: logger
        )
    }

    private init(module: PKCS11Module, slot: CK_SLOT_ID, label: String, pin: PINSource, sessionCount: Int, logger: Logger) throws {
        func openSession() throws -> CK_SESSION_HANDLE {
            var session: CK_SESSION_HANDLE = 0
            try module.check("C_OpenSession", context: "opening a session on token \(label)") {
                $0.C_OpenSession(slot, CK_FLAGS(CKF_SERIAL_SESSION | CKF_RW_SESSION), nil, nil, &session)
            }
            return session
        }
        let loginSession = try openSession()
        var pinBytes = try pin.read()
        defer { for index in pinBytes.indices { pinBytes[index] = 0 } }
        let rv = module.functions.pointee.C_Login(loginSession, CK_USER_TYPE(CKU_USER), &pinBytes, CK_ULONG(pinBytes.count))
        guard rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN else {
            _ = module.functions.pointee.C_CloseSession(loginSession)
            throw HSMError.pkcs11("C_Login", rv, context: "logging in to token \(label) with the PIN from \(pin)")
        }
        var sessions: [CK_SESSION_HANDLE] = []
        for _ in 0..<sessionCount { sessions.append(try openSession()) }
        self.module = module
        self.slot = slot
        self.label = label
        self.loginSession = loginSession
        self.pool = SessionPool(sessions: sessions)
        self.logger = logger
        logger.debug("opened HSM token", metadata: ["token": "\(label)", "sessions": "\(sessionCount)"])
    }

    deinit {
        for session in pool.drain() { _ = module.functions.pointee.C_CloseSession(session) }
        _ = module.functions.pointee.C_CloseSession(loginSession)
    }

    /// Runs blocking token work on the HSM queue and resumes the caller when it is done.
    public func perform<R: Sendable>(_ work: @escaping @Sendable (HSMToken) throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            HSMToken.queue.async {
                continuation.resume(with: Result { try work(self) })
            }
        }
    }

    // MARK: Keys

    /// Generates an EC key pair on the token. The private key is CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE and signs
    /// only; `policy` says whether it may also be wrapped under the trusted backup key and copied into session
    /// objects (``HSMKeyPolicy``). The public half is a private object too (``KeyTemplates/publicKey(curve:label:id:)``).
    public func generateKeyPair(curve: ECCurve, label: String, id: [UInt8]? = nil, policy: HSMKeyPolicy = .signingOnly) throws -> HSMKey {
        let keyID = id ?? Array(SHA256.hash(data: Array(label.utf8) + randomBytes(16)).prefix(16))
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_EC_KEY_PAIR_GEN), pParameter: nil, ulParameterLen: 0)
        let publicTemplate = KeyTemplates.publicKey(curve: curve, label: label, id: keyID)
        let privateTemplate = KeyTemplates.privateKey(label: label, id: keyID, policy: policy)
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
        logger.info("generated key pair in HSM", metadata: ["label": "\(label)", "curve": "\(curve.rawValue)"])
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
        try findKey(matching: .bytes(CK_ATTRIBUTE_TYPE(CKA_ID), id), description: "CKA_ID \(hex(id))")
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

    func findObjects(_ template: [PKCS11Attribute]) throws -> [CK_OBJECT_HANDLE] {
        try pool.withSession { session in try module.findObjects(in: session, matching: template) }
    }

    /// Every object of class `objectClass` this login sees.
    func objects(ofClass objectClass: CK_ULONG) throws -> [CK_OBJECT_HANDLE] {
        try findObjects([.ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), objectClass)])
    }

    /// C_CopyObject inside the token with `template`.
    @discardableResult
    func copyObject(_ handle: CK_OBJECT_HANDLE, _ template: [PKCS11Attribute], context: String) throws -> CK_OBJECT_HANDLE {
        var copy: CK_OBJECT_HANDLE = 0
        try pool.withSession { session in
            try withTemplate(template) { attributes, count in
                try module.check("C_CopyObject", context: context) { $0.C_CopyObject(session, handle, attributes, count, &copy) }
            }
        }
        return copy
    }

    func setAttributes(_ handle: CK_OBJECT_HANDLE, _ template: [PKCS11Attribute], context: String) throws {
        try pool.withSession { session in
            try withTemplate(template) { attributes, count in
                try module.check("C_SetAttributeValue", context: context) { $0.C_SetAttributeValue(session, handle, attributes, count) }
            }
        }
    }

    func createObject(_ template: [PKCS11Attribute], context: String) throws {
        var handle: CK_OBJECT_HANDLE = 0
        try pool.withSession { session in
            try withTemplate(template) { attributes, count in
                try module.check("C_CreateObject", context: context) { $0.C_CreateObject(session, attributes, count, &handle) }
            }
        }
    }

    func destroyObject(_ handle: CK_OBJECT_HANDLE, context: String) throws {
        try pool.withSession { session in
            try module.check("C_DestroyObject", context: context) { $0.C_DestroyObject(session, handle) }
        }
    }

    /// Reads one attribute of an object; fails with the token's CKR_ for sensitive or unextractable values.
    func attribute(_ type: CK_ATTRIBUTE_TYPE, of object: CK_OBJECT_HANDLE) throws -> [UInt8] {
        try pool.withSession { session in
            var probe = CK_ATTRIBUTE(type: type, pValue: nil, ulValueLen: 0)
            try module.check("C_GetAttributeValue", context: "reading attribute 0x\(String(type, radix: 16))") {
                $0.C_GetAttributeValue(session, object, &probe, 1)
            }
            var value = [UInt8](repeating: 0, count: Int(probe.ulValueLen))
            try value.withUnsafeMutableBytes { buffer in
                var attribute = CK_ATTRIBUTE(type: type, pValue: buffer.baseAddress, ulValueLen: CK_ULONG(buffer.count))
                try module.check("C_GetAttributeValue", context: "reading attribute 0x\(String(type, radix: 16))") {
                    $0.C_GetAttributeValue(session, object, &attribute, 1)
                }
            }
            return value
        }
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

    // MARK: Backup: wrap and unwrap

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

    // MARK: Signing

    /// Signs a digest computed by the caller with CKM_ECDSA; returns the raw r||s the token produced.
    public func signDigest(_ digest: [UInt8], with key: HSMKey) throws -> [UInt8] {
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_ECDSA), pParameter: nil, ulParameterLen: 0)
        return try pool.withSession { session in
            try module.check("C_SignInit", context: "signing with \(key.label)") {
                $0.C_SignInit(session, &mechanism, key.privateHandle)
            }
            var signature = [UInt8](repeating: 0, count: 2 * key.curve.coordinateLength)
            var length = CK_ULONG(signature.count)
            var input = digest
            try module.check("C_Sign", context: "signing with \(key.label)") {
                $0.C_Sign(session, &input, CK_ULONG(input.count), &signature, &length)
            }
            return Array(signature.prefix(Int(length)))
        }
    }

    /// Hashes `message` in software with the curve's hash (SHA-256 for P-256, SHA-384 for P-384), signs the digest
    /// in the HSM, and returns the ECDSA signature DER-encoded (ECDSA-Sig-Value, RFC 3279 §2.2.3).
    public func sign(message: some DataProtocol, with key: HSMKey) throws -> [UInt8] {
        switch key.curve {
        case .p256:
            let raw = try signDigest(Array(SHA256.hash(data: message)), with: key)
            return Array(try P256.Signing.ECDSASignature(rawRepresentation: raw).derRepresentation)
        case .p384:
            let raw = try signDigest(Array(SHA384.hash(data: message)), with: key)
            return Array(try P384.Signing.ECDSASignature(rawRepresentation: raw).derRepresentation)
        }
    }
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
