import CPKCS11

/// Who logs in to a token (PKCS#11 v3.0 §6.7.1, CKU_USER / CKU_SO).
public enum HSMUserType: Sendable, Hashable, CustomStringConvertible {
    case user
    case securityOfficer

    var pkcs11: CK_USER_TYPE { self == .user ? CK_USER_TYPE(CKU_USER) : CK_USER_TYPE(CKU_SO) }
    public var description: String { self == .user ? "user" : "security officer" }
}

extension PKCS11Module {
    /// Checks that `pin` logs in to token `tokenLabel` as `userType` (a fresh session, C_Login, C_Logout), so a
    /// ceremony finds a wrong or missing PIN before it changes anything. Needs a process in which nobody is logged
    /// in to that token yet (PKCS#11 allows one login type per application).
    public func checkLogin(tokenLabel: String, as userType: HSMUserType, pin: PINSource) throws {
        var bytes = try pin.read()
        defer { for index in bytes.indices { bytes[index] = 0 } }
        try checkLogin(tokenLabel: tokenLabel, as: userType, pin: bytes, describedAs: "\(pin)")
    }

    /// ``checkLogin(tokenLabel:as:pin:)`` with the PIN's bytes (one rebuilt from shares).
    public func checkLogin(tokenLabel: String, as userType: HSMUserType, pin: [UInt8], describedAs description: String) throws {
        let session = try loggedInSession(tokenLabel: tokenLabel, as: userType, pin: pin, describedAs: description)
        _ = functions.pointee.C_Logout(session)
        _ = functions.pointee.C_CloseSession(session)
    }

    /// Runs `body` in a read-write security-officer session on token `tokenLabel`, then logs out and closes it.
    /// Ceremonies record in the store between token calls, so `body` is async; they run in the CLI, never on an
    /// event loop. The caller owns and wipes `pin`.
    public func withSecurityOfficerSession<R: Sendable>(
        tokenLabel: String, pin: [UInt8], describedAs description: String,
        _ body: (SecurityOfficerSession) async throws -> R
    ) async throws -> R {
        let session = try loggedInSession(tokenLabel: tokenLabel, as: .securityOfficer, pin: pin, describedAs: description)
        defer {
            _ = functions.pointee.C_Logout(session)
            _ = functions.pointee.C_CloseSession(session)
        }
        return try await body(SecurityOfficerSession(module: self, session: session, tokenLabel: tokenLabel))
    }

    /// A read-write session on token `tokenLabel` logged in as `userType` (read-write: the security officer cannot
    /// log in while a read-only session exists, CKR_SESSION_READ_ONLY_EXISTS). The caller logs out and closes it.
    private func loggedInSession(tokenLabel: String, as userType: HSMUserType, pin: [UInt8], describedAs description: String) throws -> CK_SESSION_HANDLE {
        let slot = try slot(forTokenLabel: tokenLabel)
        var session: CK_SESSION_HANDLE = 0
        try check("C_OpenSession", context: "opening a session on token \(tokenLabel)") {
            $0.C_OpenSession(slot, CK_FLAGS(CKF_SERIAL_SESSION | CKF_RW_SESSION), nil, nil, &session)
        }
        var bytes = pin
        defer { for index in bytes.indices { bytes[index] = 0 } }
        do {
            try check("C_Login", context: "logging in to token \(tokenLabel) as \(userType) with the PIN from \(description)") {
                $0.C_Login(session, userType.pkcs11, &bytes, CK_ULONG(bytes.count))
            }
        } catch {
            _ = functions.pointee.C_CloseSession(session)
            throw error
        }
        return session
    }

    /// Every object in `session` that matches `template` (C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal).
    func findObjects(in session: CK_SESSION_HANDLE, matching template: [PKCS11Attribute]) throws -> [CK_OBJECT_HANDLE] {
        try withTemplate(template) { attributes, count in
            try check("C_FindObjectsInit") { $0.C_FindObjectsInit(session, attributes, count) }
        }
        defer { _ = functions.pointee.C_FindObjectsFinal(session) }
        var found: [CK_OBJECT_HANDLE] = []
        var batch = [CK_OBJECT_HANDLE](repeating: 0, count: 16)
        while true {
            var returned: CK_ULONG = 0
            try check("C_FindObjects") { $0.C_FindObjects(session, &batch, CK_ULONG(batch.count), &returned) }
            if returned == 0 { break }
            found.append(contentsOf: batch.prefix(Int(returned)))
        }
        return found
    }
}

/// A logged-in security-officer session: the backup-key and SO-PIN ceremonies, nothing else. Lives only inside
/// `PKCS11Module.withSecurityOfficerSession`.
public struct SecurityOfficerSession {
    let module: PKCS11Module
    let session: CK_SESSION_HANDLE
    public let tokenLabel: String

    /// Creates the AES-256 backup key (``KeyTemplates/trustedBackupKey(label:value:)``: trusted, wrap only,
    /// unmodifiable, uncopyable, never readable) and returns its value exactly once so the caller can split it.
    ///
    /// The value is drawn from the token's random number generator (C_GenerateRandom), mixed by XOR with the
    /// kernel's, and created as a sensitive object with C_CreateObject. (C_GenerateKey would make the token draw it,
    /// but its value could then only be read out by generating it non-sensitive and sealing it afterwards with
    /// C_SetAttributeValue, which needs the key to stay modifiable and copyable for ever.) The caller wipes the bytes.
    public func createTrustedBackupKey(label: String) throws -> [UInt8] {
        guard try secretKeys(label: label).isEmpty else {
            throw HSMError.make(.configuration, "token \(tokenLabel) already has a secret key labelled \"\(label)\"")
        }
        var value = [UInt8](repeating: 0, count: 32)
        try module.check("C_GenerateRandom", context: "drawing the backup key on token \(tokenLabel)") {
            $0.C_GenerateRandom(session, &value, CK_ULONG(value.count))
        }
        var generator = SystemRandomNumberGenerator()
        for index in value.indices { value[index] ^= UInt8.random(in: .min ... .max, using: &generator) }
        var handle: CK_OBJECT_HANDLE = 0
        do {
            try withTemplate(KeyTemplates.trustedBackupKey(label: label, value: value)) { attributes, count in
                try module.check("C_CreateObject", context: "creating the backup key on token \(tokenLabel)") {
                    $0.C_CreateObject(session, attributes, count, &handle)
                }
            }
        } catch {
            for index in value.indices { value[index] = 0 }
            throw error
        }
        return value
    }

    /// Destroys every secret key labelled `label` (the backup key being replaced); returns how many there were.
    @discardableResult
    public func destroySecretKeys(label: String) throws -> Int {
        let handles = try secretKeys(label: label)
        for handle in handles {
            try module.check("C_DestroyObject", context: "destroying secret key \(label) on token \(tokenLabel)") {
                $0.C_DestroyObject(session, handle)
            }
        }
        return handles.count
    }

    /// How many secret keys labelled `label` the token holds.
    public func secretKeyCount(label: String) throws -> Int { try secretKeys(label: label).count }

    /// Changes the security officer's PIN (C_SetPIN in this SO session). The caller wipes both.
    public func changePIN(from old: [UInt8], to new: [UInt8]) throws {
        var old = old
        var new = new
        defer {
            for index in old.indices { old[index] = 0 }
            for index in new.indices { new[index] = 0 }
        }
        try module.check("C_SetPIN", context: "changing the security officer's PIN on token \(tokenLabel)") {
            $0.C_SetPIN(session, &old, CK_ULONG(old.count), &new, CK_ULONG(new.count))
        }
    }

    private func secretKeys(label: String) throws -> [CK_OBJECT_HANDLE] {
        try module.findObjects(
            in: session, matching: [.ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)), .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label)]
        )
    }
}
