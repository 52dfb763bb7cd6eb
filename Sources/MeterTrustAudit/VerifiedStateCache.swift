import Foundation

/// The audit log's verified security state (``AuditLog/verifiedState()``) for decisions taken at fleet rates (EST
/// enrollments, every CA a server loads): verified again only when the log has changed size since the last
/// verification, and then at most once per `maximumAge`, instead of on every request; and each refresh checks only
/// what was appended since (``AuditLog/verifiedPrefix(extending:)``), so its cost does not grow with the log.
///
/// **Why it is safe.** The state held is one ``AuditLog/verifiedState()`` returned: the replay of entries a checkpoint
/// signed by the audit key covers, consistent with the head kept in the HSM. Someone with the database can change rows
/// between refreshes, but nothing they change is believed until the next refresh verifies it, and a refresh that finds
/// tampering throws (the caller refuses), it never keeps a weaker state. What the cache costs: a revocation recorded
/// by another node (or this one) takes effect here within `maximumAge` (1 s by default) rather than at once.
public final class VerifiedStateCache: @unchecked Sendable {
    public let audit: AuditLog
    public let maximumAge: Duration

    private let lock = NSLock()
    private var cached: (state: SecurityState, prefix: VerifiedLogPrefix, entries: Int64, at: ContinuousClock.Instant)?
    /// One refresh at a time; the others wait for it rather than each replaying the log.
    private let refreshing = RefreshGate()

    public init(audit: AuditLog, maximumAge: Duration = .seconds(1)) {
        self.audit = audit
        self.maximumAge = maximumAge
    }

    /// The verified state, refreshed when the log's size changed and the cached state is older than ``maximumAge``.
    public func state() async throws -> SecurityState {
        if let fresh = try await freshEnough() { return fresh }
        return try await refreshing.run { [self] in
            if let fresh = try await freshEnough() { return fresh }
            // Only what was appended since the last verification is read and checked (VerifiedLogPrefix). The prefix
            // is taken out of the cache so it is extended in place, not copied (readers keep the state meanwhile);
            // a refresh that fails leaves none, and the next one verifies the whole log.
            let prior = lock.withLock { () -> VerifiedLogPrefix in
                guard var entry = cached else { return .empty }
                let prefix = entry.prefix
                entry.prefix = .empty
                cached = entry
                return prefix
            }
            let prefix = try await audit.verifiedPrefix(extending: prior)
            let entries = Int64(prefix.entryCount)
            lock.withLock { cached = (prefix.state, prefix, entries, ContinuousClock.now) }
            return prefix.state
        }
    }

    /// Forgets the cached state: the next ``state()`` verifies the log again.
    public func invalidate() {
        lock.withLock { cached = nil }
    }

    private func freshEnough() async throws -> SecurityState? {
        guard let cached = lock.withLock({ cached }) else { return nil }
        if ContinuousClock.now - cached.at < maximumAge { return cached.state }
        // Older than maximumAge: still good while the log has not changed size.
        guard try await audit.store.auditEntryCount() == cached.entries else { return nil }
        lock.withLock { self.cached?.at = ContinuousClock.now }
        return cached.state
    }
}

/// Runs one body at a time (FIFO), for async callers.
actor RefreshGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if busy {
            await withCheckedContinuation { waiters.append($0) }
        } else {
            busy = true
        }
        defer {
            if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
        }
        return try await body()
    }
}
