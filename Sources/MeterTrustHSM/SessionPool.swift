import CPKCS11
import Dispatch
import Metrics
import Synchronization

/// A fixed set of PKCS#11 sessions, each lent to one thread at a time.
///
/// PKCS#11 sessions are not safe for concurrent use (SoftHSM2 wants one per thread), so a caller checks a session
/// out, uses it, and returns it. The pool's size is the number of concurrent signers.
///
/// The queue is reported through swift-metrics: gauges `metertrust_hsm_session_waiters` (callers waiting for a
/// session) and `metertrust_hsm_sessions_in_use`.
final class SessionPool: Sendable {
    let capacity: Int
    private let available: DispatchSemaphore
    private let idle: Mutex<[CK_SESSION_HANDLE]>
    /// Callers waiting for a session, and sessions lent out.
    private let queue = Mutex((waiting: 0, inUse: 0))

    init(sessions: [CK_SESSION_HANDLE]) {
        self.capacity = sessions.count
        self.available = DispatchSemaphore(value: sessions.count)
        self.idle = Mutex(sessions)
    }

    /// Runs `body` with a session of its own; blocks while all sessions are in use. Never call on an event loop.
    func withSession<R>(_ body: (CK_SESSION_HANDLE) throws -> R) rethrows -> R {
        report { $0.waiting += 1 }
        available.wait()
        let session = idle.withLock { $0.removeLast() }
        report { $0.waiting -= 1; $0.inUse += 1 }
        defer {
            idle.withLock { $0.append(session) }
            report { $0.inUse -= 1 }
            available.signal()
        }
        return try body(session)
    }

    private func report(_ change: (inout (waiting: Int, inUse: Int)) -> Void) {
        let now = queue.withLock { state in
            change(&state)
            return state
        }
        Gauge(label: "metertrust_hsm_session_waiters").record(now.waiting)
        Gauge(label: "metertrust_hsm_sessions_in_use").record(now.inUse)
    }

    /// All sessions, for closing. Only valid when none is checked out.
    func drain() -> [CK_SESSION_HANDLE] {
        idle.withLock { sessions in
            defer { sessions.removeAll() }
            return sessions
        }
    }
}
