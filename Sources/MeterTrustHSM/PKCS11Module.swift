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
            if let diagnosis = SoftHSMEnvironment(modulePath: path)?.initializationFailure(initRV) { throw diagnosis }
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

    /// Slots that hold a token, with their token labels. A slot whose token cannot be read just now (another process
    /// is initialising it or rewriting its files: SoftHSM2 answers CKR_GENERAL_ERROR) is left out and counted in
    /// `unreadable`.
    public func tokens() throws -> [(slot: CK_SLOT_ID, label: String, initialized: Bool)] {
        try readTokens().tokens
    }

    private func readTokens() throws -> (tokens: [(slot: CK_SLOT_ID, label: String, initialized: Bool)], unreadable: Int) {
        var count: CK_ULONG = 0
        try check("C_GetSlotList") { $0.C_GetSlotList(CK_BBOOL(CK_TRUE), nil, &count) }
        var slots = [CK_SLOT_ID](repeating: 0, count: Int(count))
        try check("C_GetSlotList") { $0.C_GetSlotList(CK_BBOOL(CK_TRUE), &slots, &count) }
        var tokens: [(slot: CK_SLOT_ID, label: String, initialized: Bool)] = []
        var unreadable = 0
        for slot in slots.prefix(Int(count)) {
            var info = CK_TOKEN_INFO()
            let rv = functions.pointee.C_GetTokenInfo(slot, &info)
            guard rv == CKR_OK else {
                guard rv == CKR_GENERAL_ERROR || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_ERROR else {
                    throw HSMError.pkcs11("C_GetTokenInfo", rv)
                }
                unreadable += 1
                continue
            }
            let label = withUnsafeBytes(of: info.label) { String(decoding: $0, as: UTF8.self) }
                .trimmingCharacters(in: .whitespaces)
            tokens.append((slot, label, info.flags & CK_FLAGS(CKF_TOKEN_INITIALIZED) != 0))
        }
        return (tokens, unreadable)
    }

    /// Finds the slot whose token carries `label`. If it is not found while some token could not be read, looks
    /// again a few times (the token may be the one being rewritten).
    public func slot(forTokenLabel label: String) throws -> CK_SLOT_ID {
        var attempt = 0
        while true {
            let (tokens, unreadable) = try readTokens()
            let matches = tokens.filter { $0.initialized && $0.label == label }
            if matches.isEmpty, unreadable > 0, attempt < 20 {
                attempt += 1
                usleep(50_000)
                continue
            }
            guard let match = matches.first else {
                if let diagnosis = SoftHSMEnvironment(modulePath: path)?.tokenNotFound(label: label) { throw diagnosis }
                throw HSMError.make(
                    .tokenNotFound,
                    "no initialised token labelled \"\(label)\" in \(path): create it (metertrust hsm init-token --label \(label)) or fix hsm.tokenLabel"
                )
            }
            guard matches.count == 1 else {
                throw HSMError.make(.tokenNotFound, "\(matches.count) tokens are labelled \"\(label)\": labels must be unique")
            }
            return match.slot
        }
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

/// One PKCS#11 attribute value in a template, owned by Swift.
struct PKCS11Attribute {
    var type: CK_ATTRIBUTE_TYPE
    var value: [UInt8]
    /// For array-valued attributes (CKA_UNWRAP_TEMPLATE, CKA_WRAP_TEMPLATE): the nested template.
    var nested: [PKCS11Attribute]? = nil

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

    /// An attribute whose value is itself a template (PKCS#11 v2.40 §4.1.3, CKF_ARRAY_ATTRIBUTE).
    static func template(_ type: CK_ATTRIBUTE_TYPE, _ attributes: [PKCS11Attribute]) -> PKCS11Attribute {
        PKCS11Attribute(type: type, value: [], nested: attributes)
    }
}

/// Lends `attributes` to C as a `CK_ATTRIBUTE` array for the duration of `body` (nested templates included).
func withTemplate<R>(
    _ attributes: [PKCS11Attribute],
    _ body: (UnsafeMutablePointer<CK_ATTRIBUTE>?, CK_ULONG) throws -> R
) rethrows -> R {
    var allocations: [UnsafeMutableRawPointer] = []
    defer { allocations.forEach { $0.deallocate() } }
    func lay(_ attributes: [PKCS11Attribute]) -> UnsafeMutablePointer<CK_ATTRIBUTE> {
        let array = UnsafeMutablePointer<CK_ATTRIBUTE>.allocate(capacity: max(attributes.count, 1))
        allocations.append(UnsafeMutableRawPointer(array))
        for (index, attribute) in attributes.enumerated() {
            if let nested = attribute.nested {
                let inner = lay(nested)
                array[index] = CK_ATTRIBUTE(
                    type: attribute.type, pValue: UnsafeMutableRawPointer(inner),
                    ulValueLen: CK_ULONG(nested.count * MemoryLayout<CK_ATTRIBUTE>.stride)
                )
            } else {
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(attribute.value.count, 1), alignment: 16)
                allocations.append(buffer)
                attribute.value.withUnsafeBytes { source in
                    if let base = source.baseAddress { buffer.copyMemory(from: base, byteCount: source.count) }
                }
                array[index] = CK_ATTRIBUTE(type: attribute.type, pValue: buffer, ulValueLen: CK_ULONG(attribute.value.count))
            }
        }
        return array
    }
    let template = lay(attributes)
    return try body(template, CK_ULONG(attributes.count))
}
