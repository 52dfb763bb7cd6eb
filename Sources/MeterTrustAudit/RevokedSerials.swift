/// One CA's revoked certificates as the audit log recorded them: serial (hex) → its revocation, and the serials in
/// the order they were recorded (what a CRL publisher adds to its shards since a count it saw before).
///
/// **Why not a dictionary.** The verified state is a value that readers keep while a refresh extends it
/// (``VerifiedStateCache``): with a plain dictionary, the first revocation added after a copy copies every revocation
/// the CA has, so a `revoke --list` of a million (a thousand audit entries, each refreshing the state) copied
/// hundreds of millions of entries, and a server copied all of them on every refresh. Here the revocations live in
/// immutable runs shared by every copy, plus a small tail of the latest ones: copying is O(log n), adding one is
/// amortised O(log n) (runs merge like a binary counter: a run is merged into an older one of no greater size), and a
/// look-up asks at most one dictionary per run (about log₂(n / 1,024) + 1).
public struct RevokedSerials: Sendable, Hashable {
    /// Revocations recorded together, never changed once made (every copy of the state shares them).
    final class Run: Sendable {
        let revocations: [String: SecurityState.Revocation]
        let order: [String]

        init(revocations: [String: SecurityState.Revocation], order: [String]) {
            self.revocations = revocations
            self.order = order
        }

        /// `older` then `newer`, as one run.
        init(merging older: Run, _ newer: Run) {
            var revocations = older.revocations
            revocations.reserveCapacity(older.order.count + newer.order.count)
            revocations.merge(newer.revocations) { first, _ in first }
            self.revocations = revocations
            self.order = older.order + newer.order
        }
    }

    /// The most revocations the mutable tail holds before it is frozen into a run.
    static let tailLimit = 1_024

    /// Oldest first; each run larger than the next.
    private var runs: [Run] = []
    private var tail: [String: SecurityState.Revocation] = [:]
    private var tailOrder: [String] = []
    /// How many revocations this holds.
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// The revocation of the certificate `serial`, if recorded.
    public subscript(serial: String) -> SecurityState.Revocation? {
        if let revocation = tail[serial] { return revocation }
        for run in runs.reversed() {
            if let revocation = run.revocations[serial] { return revocation }
        }
        return nil
    }

    /// Records `revocation` for `serial` unless it is revoked already (a revocation is final: the first one stands).
    /// Whether it was added.
    @discardableResult
    public mutating func insert(_ revocation: SecurityState.Revocation, serial: String) -> Bool {
        guard self[serial] == nil else { return false }
        tail[serial] = revocation
        tailOrder.append(serial)
        count += 1
        if tailOrder.count >= Self.tailLimit { freezeTail() }
        return true
    }

    private mutating func freezeTail() {
        var run = Run(revocations: tail, order: tailOrder)
        tail = [:]
        tailOrder = []
        while let last = runs.last, last.order.count <= run.order.count {
            runs.removeLast()
            run = Run(merging: last, run)
        }
        runs.append(run)
    }

    /// Calls `body` with each revocation in the order recorded, from the `offset`-th on (0: all of them).
    public func forEach(from offset: Int = 0, _ body: (String, SecurityState.Revocation) throws -> Void) rethrows {
        var skip = max(0, offset)
        for run in runs {
            if skip >= run.order.count {
                skip -= run.order.count
                continue
            }
            for serial in run.order[skip...] { try body(serial, run.revocations[serial]!) }
            skip = 0
        }
        guard skip < tailOrder.count else { return }
        for serial in tailOrder[skip...] { try body(serial, tail[serial]!) }
    }

    /// The sizes of the runs (oldest first) and of the tail: what a copy costs (tests hold it to O(log n)).
    var layout: (runs: [Int], tail: Int) { (runs.map(\.order.count), tailOrder.count) }

    /// How many of this value's runs `other` shares (the same objects, not equal copies).
    func sharedRuns(with other: RevokedSerials) -> Int {
        let mine = Set(runs.map(ObjectIdentifier.init))
        return other.runs.filter { mine.contains(ObjectIdentifier($0)) }.count
    }

    /// Equal when they hold the same revocations in the same order (however they are laid out in runs).
    public static func == (lhs: RevokedSerials, rhs: RevokedSerials) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var left: [(String, SecurityState.Revocation)] = []
        left.reserveCapacity(lhs.count)
        lhs.forEach { left.append(($0, $1)) }
        var index = 0
        var equal = true
        rhs.forEach { serial, revocation in
            if equal, left[index].0 != serial || left[index].1 != revocation { equal = false }
            index += 1
        }
        return equal
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
    }
}
