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
    /// Whether a caller is asking the store whether the log grew.
    private var checking = false

    public init(audit: AuditLog, maximumAge: Duration = .seconds(1)) {
        self.audit = audit
        self.maximumAge = maximumAge
    }

    /// The verified state, refreshed when the log's size changed and the cached state is older than ``maximumAge``.
    ///
    /// Once the cached state is older than that, one caller asks the store whether the log grew (and, if it did,
    /// verifies what was appended); the callers that come meanwhile are answered from the cached state rather than
    /// each asking the store too (under load they would queue on it every ``maximumAge``). So a state is at most
    /// ``maximumAge`` plus one such check old.
    public func state() async throws -> SecurityState {
        guard let cached = lock.withLock({ cached }) else { return try await refresh() }
        if ContinuousClock.now - cached.at < maximumAge { return cached.state }
        let mine = lock.withLock { () -> Bool in
            if checking { return false }
            checking = true
            return true
        }
        guard mine else { return cached.state }
        defer { lock.withLock { checking = false } }
        if try await audit.store.auditEntryCount() == cached.entries {
            lock.withLock { self.cached?.at = ContinuousClock.now }
            return cached.state
        }
        return try await refresh()
    }

    /// Verifies what was appended since the cached state (all of the log if there is none), one refresh at a time.
    private func refresh() async throws -> SecurityState {
        try await refreshing.run { [self] in
            // Another caller may have refreshed while this one waited.
            if let recent = lock.withLock({ cached }), ContinuousClock.now - recent.at < maximumAge { return recent.state }
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
