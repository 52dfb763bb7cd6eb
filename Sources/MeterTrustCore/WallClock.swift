import Foundation

/// Where a rule reads the time from. Domain code takes a clock instead of calling `Date()`, so a test can move
/// time forward (a request's expiry, a certificate's validity) without sleeping on the real clock.
public protocol WallClock: Sendable {
    func now() -> Date
}

/// The system's clock.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that stands still until told to move: for tests, and for replaying an event at the time it happened.
public final class ManualClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    public init(_ start: Date = Date()) { current = start }

    public func now() -> Date { lock.withLock { current } }

    public func advance(by interval: TimeInterval) { lock.withLock { current += interval } }

    public func set(_ date: Date) { lock.withLock { current = date } }
}
