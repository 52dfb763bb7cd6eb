import CPKCS11
import Dispatch
import Foundation
import Logging
import Synchronization

/// A logged-in PKCS#11 token with a pool of sessions: MeterTrust's ``KeyManager`` and ``KeyWrapping``.
///
/// Every method that talks to the token blocks its thread; the `async` variants run on the HSM's own dispatch
/// queue so they never block a NIO event loop or the cooperative pool.
public final class HSMToken: Sendable {
    public let module: PKCS11Module
    public let slot: CK_SLOT_ID
    public let label: String
    let loginSession: CK_SESSION_HANDLE
    let pool: SessionPool
    let logger: Logger
    private let closed = Mutex(false)
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
        close()
    }

    /// Closes the session pool and the login session (the token is logged out with its last session). Call it once
    /// nothing uses the token any more (`serve` does after its listeners stopped); idempotent.
    public func close() {
        guard closed.withLock({ closed in defer { closed = true }; return !closed }) else { return }
        for session in pool.drain() { _ = module.functions.pointee.C_CloseSession(session) }
        _ = module.functions.pointee.C_CloseSession(loginSession)
        logger.debug("closed HSM token sessions", metadata: ["token": "\(label)"])
    }

    /// Opens and closes a fresh session on the token's slot: whether the HSM answers now (readiness probes).
    public func probeSession() throws {
        var session: CK_SESSION_HANDLE = 0
        try module.check("C_OpenSession", context: "opening a session on token \(label)") {
            $0.C_OpenSession(slot, CK_FLAGS(CKF_SERIAL_SESSION), nil, nil, &session)
        }
        _ = module.functions.pointee.C_CloseSession(session)
    }

    /// Runs blocking token work on the HSM queue and resumes the caller when it is done.
    public func perform<R: Sendable>(_ work: @escaping @Sendable (HSMToken) throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            HSMToken.queue.async {
                continuation.resume(with: Result { try work(self) })
            }
        }
    }
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}
