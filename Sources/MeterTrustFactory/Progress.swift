/// Where a long batch reports how far it got. The CLI draws a bar on a terminal and plain lines otherwise.
public protocol BatchProgress: Sendable {
    /// `done` of `total` units of `phase` ("issuing", "writing bundles", ...) are finished.
    func update(phase: String, done: Int, total: Int)
    /// `phase` is over.
    func finish(phase: String)
}

/// Reports nothing.
public struct SilentProgress: BatchProgress {
    public init() {}
    public func update(phase: String, done: Int, total: Int) {}
    public func finish(phase: String) {}
}
