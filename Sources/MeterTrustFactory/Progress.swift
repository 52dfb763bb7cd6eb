/// Where a long batch reports how far it got. The CLI draws a bar on a terminal and plain lines otherwise.
public protocol BatchProgress: Sendable {
    /// `done` of `total` units of `phase` ("issuing", "writing bundles", ...) are finished.
    func update(phase: String, done: Int, total: Int)
    /// As above, where only `rated` of the `done` units count toward the rate shown: while issuing, the certificates
    /// issued (not meters refused or issued earlier), so that the bar's rate is the batch report's
    /// `certificatesPerSecond` (certificates issued / issuance wall time).
    func update(phase: String, done: Int, total: Int, rated: Int)
    /// `phase` is over.
    func finish(phase: String)
}

extension BatchProgress {
    public func update(phase: String, done: Int, total: Int, rated: Int) {
        update(phase: phase, done: done, total: total)
    }
}

/// Reports nothing.
public struct SilentProgress: BatchProgress {
    public init() {}
    public func update(phase: String, done: Int, total: Int) {}
    public func finish(phase: String) {}
}
