import Foundation
import MeterTrustCore

/// The bound on enrollments a node works on at once: those in flight (checking, signing in the HSM, storing) plus
/// those waiting for an HSM session. A request beyond it is refused at once with `est.busy` (HTTP 503 with
/// Retry-After) rather than queued without limit: a fleet powering up after an outage must meet back-pressure, not
/// a server whose memory and latency grow until every meter times out.
///
/// A count under a lock, per process: each node bounds its own HSM queue (the bound is of this node's resources; no
/// other node needs to know it).
public final class EnrollmentQueue: @unchecked Sendable {
    /// The most enrollments in flight or waiting at once.
    public let limit: Int
    public static let defaultLimit = 64

    private let lock = NSLock()
    private var occupied = 0
    private var refusedCount = 0

    public init(limit: Int = EnrollmentQueue.defaultLimit) {
        self.limit = max(1, limit)
    }

    /// Runs `body` holding one place in the queue, or refuses with `est.busy` if every place is taken.
    public func admit<T>(_ body: () async throws -> T) async throws -> T {
        let admitted = lock.withLock {
            guard occupied < limit else {
                refusedCount += 1
                return false
            }
            occupied += 1
            return true
        }
        guard admitted else {
            throw OnboardingError(.estBusy, "the enrollment queue is full (\(limit) enrollments in flight or waiting for the HSM): retry after the Retry-After seconds")
        }
        defer { lock.withLock { occupied -= 1 } }
        return try await body()
    }

    /// Enrollments in flight or waiting now.
    public var inFlight: Int { lock.withLock { occupied } }
    /// Enrollments refused as busy since the start.
    public var refused: Int { lock.withLock { refusedCount } }
}
