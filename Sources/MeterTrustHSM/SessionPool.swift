import CPKCS11
import Dispatch
import Synchronization

/// A fixed set of PKCS#11 sessions, each lent to one thread at a time.
///
/// PKCS#11 sessions are not safe for concurrent use (SoftHSM2 wants one per thread), so a caller checks a session
/// out, uses it, and returns it. The pool's size is the number of concurrent signers.
final class SessionPool: Sendable {
    let capacity: Int
    private let available: DispatchSemaphore
    private let idle: Mutex<[CK_SESSION_HANDLE]>

    init(sessions: [CK_SESSION_HANDLE]) {
        self.capacity = sessions.count
        self.available = DispatchSemaphore(value: sessions.count)
        self.idle = Mutex(sessions)
    }

    /// Runs `body` with a session of its own; blocks while all sessions are in use. Never call on an event loop.
    func withSession<R>(_ body: (CK_SESSION_HANDLE) throws -> R) rethrows -> R {
        available.wait()
        let session = idle.withLock { $0.removeLast() }
        defer {
            idle.withLock { $0.append(session) }
            available.signal()
        }
        return try body(session)
    }

    /// All sessions, for closing. Only valid when none is checked out.
    func drain() -> [CK_SESSION_HANDLE] {
        idle.withLock { sessions in
            defer { sessions.removeAll() }
            return sessions
        }
    }
}
