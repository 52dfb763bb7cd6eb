import CPKCS11
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A PKCS#11 module (shared library) loaded with `dlopen` and initialised once per process.
///
/// PKCS#11 allows one `C_Initialize` per process, so modules are shared: ``load(path:)`` returns the same instance
/// for the same path. The function list is immutable after loading and the module is initialised with
/// `CKF_OS_LOCKING_OK`, which makes it safe to call from several threads (each on its own session).
public final class PKCS11Module: @unchecked Sendable {
    public let path: String
    let functions: UnsafeMutablePointer<CK_FUNCTION_LIST>
    private let handle: UnsafeMutableRawPointer

    private static let loaded = Mutex<[String: PKCS11Module]>([:])

    /// Loads and initialises the module at `path`, or returns the instance already loaded.
    public static func load(path: String) throws -> PKCS11Module {
        try loaded.withLock { modules in
            if let module = modules[path] { return module }
            let module = try PKCS11Module(path: path)
            modules[path] = module
            return module
        }
    }

    private init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw HSMError.make(
                .moduleLoad,
                "the PKCS#11 module \(path) does not exist: install it (for SoftHSM2: apt-get install softhsm2) or fix hsm.modulePath"
            )
        }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw HSMError.make(.moduleLoad, "cannot load the PKCS#11 module \(path): \(reason)")
        }
        typealias GetFunctionList = @convention(c) (UnsafeMutablePointer<UnsafeMutablePointer<CK_FUNCTION_LIST>?>?) -> CK_RV
        guard let symbol = dlsym(handle, "C_GetFunctionList") else {
            dlclose(handle)
            throw HSMError.make(.moduleLoad, "\(path) is not a PKCS#11 module: it has no C_GetFunctionList")
        }
        let getFunctionList = unsafeBitCast(symbol, to: GetFunctionList.self)
        var list: UnsafeMutablePointer<CK_FUNCTION_LIST>?
        let rv = getFunctionList(&list)
        guard rv == CKR_OK, let list else {
            dlclose(handle)
            throw HSMError.pkcs11("C_GetFunctionList", rv)
        }
        var args = CK_C_INITIALIZE_ARGS()
        args.flags = CK_FLAGS(CKF_OS_LOCKING_OK)
        let initRV = withUnsafeMutablePointer(to: &args) { list.pointee.C_Initialize!(UnsafeMutableRawPointer($0)) }
        guard initRV == CKR_OK || initRV == CKR_CRYPTOKI_ALREADY_INITIALIZED else {
            dlclose(handle)
            throw HSMError.pkcs11("C_Initialize", initRV)
        }
        self.path = path
        self.handle = handle
        self.functions = list
    }

    /// Calls a PKCS#11 function and turns any return value but CKR_OK into an ``HSMError``.
    @inline(__always)
    func check(_ operation: String, context: String? = nil, _ call: (CK_FUNCTION_LIST) -> CK_RV) throws {
        let rv = call(functions.pointee)
        guard rv == CKR_OK else { throw HSMError.pkcs11(operation, rv, context: context) }
    }

    /// Slots that hold a token, with their token labels.
    public func tokens() throws -> [(slot: CK_SLOT_ID, label: String, initialized: Bool)] {
        var count: CK_ULONG = 0
        try check("C_GetSlotList") { $0.C_GetSlotList(CK_BBOOL(CK_TRUE), nil, &count) }
        var slots = [CK_SLOT_ID](repeating: 0, count: Int(count))
        try check("C_GetSlotList") { $0.C_GetSlotList(CK_BBOOL(CK_TRUE), &slots, &count) }
        return try slots.prefix(Int(count)).map { slot in
            var info = CK_TOKEN_INFO()
            try check("C_GetTokenInfo") { $0.C_GetTokenInfo(slot, &info) }
            let label = withUnsafeBytes(of: info.label) { String(decoding: $0, as: UTF8.self) }
                .trimmingCharacters(in: .whitespaces)
            let initialized = info.flags & CK_FLAGS(CKF_TOKEN_INITIALIZED) != 0
            return (slot, label, initialized)
        }
    }

    /// Finds the slot whose token carries `label`.
    public func slot(forTokenLabel label: String) throws -> CK_SLOT_ID {
        let matches = try tokens().filter { $0.initialized && $0.label == label }
        guard let match = matches.first else {
            throw HSMError.make(
                .tokenNotFound,
                "no initialised token labelled \"\(label)\" in \(path): create it (softhsm2-util --init-token --free --label \(label)) or fix hsm.tokenLabel"
            )
        }
        guard matches.count == 1 else {
            throw HSMError.make(.tokenNotFound, "\(matches.count) tokens are labelled \"\(label)\": labels must be unique")
        }
        return match.slot
    }

    /// Initialises a new token in the first free slot and sets its user PIN (what `softhsm2-util --init-token
    /// --free` does). Used to set up project-local and test tokens; a production HSM is initialised by its own
    /// ceremony.
    public func initializeToken(label: String, securityOfficerPIN: [UInt8], userPIN: [UInt8]) throws {
        guard let free = try tokens().first(where: { !$0.initialized }) else {
            throw HSMError.make(.tokenNotFound, "the PKCS#11 module \(path) has no free slot for a new token")
        }
        var paddedLabel = [UInt8](repeating: UInt8(ascii: " "), count: 32)
        for (index, byte) in label.utf8.prefix(32).enumerated() { paddedLabel[index] = byte }
        var so = securityOfficerPIN
        var user = userPIN
        try check("C_InitToken", context: "initialising token \(label)") {
            $0.C_InitToken(free.slot, &so, CK_ULONG(so.count), &paddedLabel)
        }
        let slot = try slot(forTokenLabel: label)
        var session: CK_SESSION_HANDLE = 0
        try check("C_OpenSession") { $0.C_OpenSession(slot, CK_FLAGS(CKF_SERIAL_SESSION | CKF_RW_SESSION), nil, nil, &session) }
        defer { _ = functions.pointee.C_CloseSession(session) }
        try check("C_Login", context: "logging in as security officer") { $0.C_Login(session, CK_USER_TYPE(CKU_SO), &so, CK_ULONG(so.count)) }
        defer { _ = functions.pointee.C_Logout(session) }
        try check("C_InitPIN") { $0.C_InitPIN(session, &user, CK_ULONG(user.count)) }
    }
}

extension PKCS11Module {
    /// Generates the AES-256 backup key on token `tokenLabel` in a security-officer session and returns its value
    /// exactly once, so the caller can split it into shares.
    ///
    /// PKCS#11 lets only the security officer set CKA_TRUSTED, and keys made with CKA_WRAP_WITH_TRUSTED can be
    /// wrapped only under a trusted key. The key is generated by the token with CKA_SENSITIVE false so its value can
    /// be read once; then, in the same session, it is made CKA_SENSITIVE true and CKA_EXTRACTABLE false (one-way
    /// changes the token enforces), so from then on it never leaves the HSM again. It can wrap and unwrap only (no
    /// encrypt/decrypt). It is a public object because a security-officer session cannot create private ones.
    ///
    /// Must run in a process where no user is logged in to the token (PKCS#11 allows one login type at a time).
    /// The caller wipes the returned bytes.
    public func generateTrustedBackupKey(tokenLabel: String, securityOfficerPIN: PINSource, label: String) throws -> [UInt8] {
        let slot = try slot(forTokenLabel: tokenLabel)
        var session: CK_SESSION_HANDLE = 0
        try check("C_OpenSession", context: "opening a session on token \(tokenLabel)") {
            $0.C_OpenSession(slot, CK_FLAGS(CKF_SERIAL_SESSION | CKF_RW_SESSION), nil, nil, &session)
        }
        defer { _ = functions.pointee.C_CloseSession(session) }
        var pin = try securityOfficerPIN.read()
        defer { for index in pin.indices { pin[index] = 0 } }
        try check("C_Login", context: "logging in to token \(tokenLabel) as security officer with the PIN from \(securityOfficerPIN)") {
            $0.C_Login(session, CK_USER_TYPE(CKU_SO), &pin, CK_ULONG(pin.count))
        }
        defer { _ = functions.pointee.C_Logout(session) }
        var existing: CK_ULONG = 0
        var found: CK_OBJECT_HANDLE = 0
        try withTemplate([.ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)), .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label)]) { attributes, count in
            try check("C_FindObjectsInit") { $0.C_FindObjectsInit(session, attributes, count) }
        }
        try check("C_FindObjects") { $0.C_FindObjects(session, &found, 1, &existing) }
        _ = functions.pointee.C_FindObjectsFinal(session)
        guard existing == 0 else {
            throw HSMError.make(.configuration, "token \(tokenLabel) already has a backup key labelled \"\(label)\"; a token has one backup key")
        }
        let template: [PKCS11Attribute] = [
            .ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_KEY_TYPE), CK_ULONG(CKK_AES)),
            .ulong(CK_ATTRIBUTE_TYPE(CKA_VALUE_LEN), 32),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TOKEN), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_PRIVATE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_SENSITIVE), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_EXTRACTABLE), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_TRUSTED), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_WRAP), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_UNWRAP), true),
            .bool(CK_ATTRIBUTE_TYPE(CKA_ENCRYPT), false),
            .bool(CK_ATTRIBUTE_TYPE(CKA_DECRYPT), false),
            .string(CK_ATTRIBUTE_TYPE(CKA_LABEL), label),
        ]
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_AES_KEY_GEN), pParameter: nil, ulParameterLen: 0)
        var handle: CK_OBJECT_HANDLE = 0
        try withTemplate(template) { attributes, count in
            try check("C_GenerateKey", context: "generating the backup key on token \(tokenLabel)") {
                $0.C_GenerateKey(session, &mechanism, attributes, count, &handle)
            }
        }
        var value = [UInt8](repeating: 0, count: 32)
        do {
            try value.withUnsafeMutableBytes { buffer in
                var attribute = CK_ATTRIBUTE(type: CK_ATTRIBUTE_TYPE(CKA_VALUE), pValue: buffer.baseAddress, ulValueLen: CK_ULONG(buffer.count))
                try check("C_GetAttributeValue", context: "reading the new backup key once") { $0.C_GetAttributeValue(session, handle, &attribute, 1) }
            }
            try withTemplate([.bool(CK_ATTRIBUTE_TYPE(CKA_SENSITIVE), true), .bool(CK_ATTRIBUTE_TYPE(CKA_EXTRACTABLE), false)]) { attributes, count in
                try check("C_SetAttributeValue", context: "sealing the backup key") { $0.C_SetAttributeValue(session, handle, attributes, count) }
            }
        } catch {
            for index in value.indices { value[index] = 0 }
            _ = functions.pointee.C_DestroyObject(session, handle)
            throw error
        }
        return value
    }
}

/// One PKCS#11 attribute value in a template, owned by Swift.
struct PKCS11Attribute {
    var type: CK_ATTRIBUTE_TYPE
    var value: [UInt8]

    static func bool(_ type: CK_ATTRIBUTE_TYPE, _ value: Bool) -> PKCS11Attribute {
        PKCS11Attribute(type: type, value: [value ? 1 : 0])
    }

    static func ulong(_ type: CK_ATTRIBUTE_TYPE, _ value: CK_ULONG) -> PKCS11Attribute {
        PKCS11Attribute(type: type, value: withUnsafeBytes(of: value) { Array($0) })
    }

    static func bytes(_ type: CK_ATTRIBUTE_TYPE, _ value: [UInt8]) -> PKCS11Attribute {
        PKCS11Attribute(type: type, value: value)
    }

    static func string(_ type: CK_ATTRIBUTE_TYPE, _ value: String) -> PKCS11Attribute {
        PKCS11Attribute(type: type, value: Array(value.utf8))
    }
}

/// Lends `attributes` to C as a `CK_ATTRIBUTE` array for the duration of `body`.
func withTemplate<R>(
    _ attributes: [PKCS11Attribute],
    _ body: (UnsafeMutablePointer<CK_ATTRIBUTE>?, CK_ULONG) throws -> R
) rethrows -> R {
    let buffers = attributes.map { attribute -> UnsafeMutableRawPointer in
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(attribute.value.count, 1), alignment: 16)
        attribute.value.withUnsafeBytes { source in
            if let base = source.baseAddress { buffer.copyMemory(from: base, byteCount: source.count) }
        }
        return buffer
    }
    defer { buffers.forEach { $0.deallocate() } }
    var template = zip(attributes, buffers).map { attribute, buffer in
        CK_ATTRIBUTE(type: attribute.type, pValue: buffer, ulValueLen: CK_ULONG(attribute.value.count))
    }
    return try template.withUnsafeMutableBufferPointer { try body($0.baseAddress, CK_ULONG($0.count)) }
}
