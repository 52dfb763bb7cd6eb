import Foundation
@testable import MeterTrustAudit
import Testing

/// ``RevokedSerials`` against the plain model it replaces (a dictionary and an array in log order): the same answers
/// for every look-up and every `forEach(from:)` at every size, copies that later insertions leave alone, and copies
/// that share what they hold (the cost of a copy stays O(log n)).
@Suite("RevokedSerials: one CA's revocations, shared by every copy of the verified state")
struct RevokedSerialsTests {
    static func revocation(_ n: Int) -> SecurityState.Revocation {
        SecurityState.Revocation(reason: n % 10, revokedAt: Date(timeIntervalSince1970: TimeInterval(1_700_000_000 + n)), invalidityDate: n % 3 == 0 ? Date(timeIntervalSince1970: 1_600_000_000) : nil)
    }

    @Test("answers as a dictionary and an ordered list would, across run merges; the first revocation of a serial stands")
    func matchesTheModel() {
        var generator = SystemRandomNumberGenerator()
        var serials = RevokedSerials()
        var model: [String: SecurityState.Revocation] = [:]
        var order: [String] = []
        // Past several merges (tail 1,024), with repeats that must be refused.
        for n in 0..<9_000 {
            let serial = n % 7 == 6 && !order.isEmpty ? order[Int.random(in: 0..<order.count, using: &generator)] : String(format: "%032llx", UInt64.random(in: 0...UInt64.max, using: &generator))
            let added = serials.insert(Self.revocation(n), serial: serial)
            #expect(added == (model[serial] == nil), "insert \(n)")
            if model[serial] == nil {
                model[serial] = Self.revocation(n)
                order.append(serial)
            }
            if n % 997 == 0 || n == 8_999 {
                #expect(serials.count == order.count)
                for offset in [0, 1, 1_023, 1_024, 1_025, 2_048, order.count / 2, order.count - 1, order.count, order.count + 5] where offset >= 0 {
                    var seen: [String] = []
                    serials.forEach(from: offset) { serial, revocation in
                        seen.append(serial)
                        #expect(model[serial] == revocation)
                    }
                    #expect(seen == Array(order.dropFirst(offset)), "forEach(from: \(offset)) of \(order.count)")
                }
            }
        }
        for serial in order { #expect(serials[serial] == model[serial]) }
        #expect(serials["00"] == nil && serials[String(repeating: "f", count: 32)] == nil)
    }

    @Test("a copy keeps what it held while the original grows (the cache's readers keep their state during a refresh)")
    func copiesAreIndependent() {
        var serials = RevokedSerials()
        for n in 0..<3_000 { serials.insert(Self.revocation(n), serial: "a\(n)") }
        let copy = serials
        for n in 3_000..<6_000 { serials.insert(Self.revocation(n), serial: "a\(n)") }
        #expect(copy.count == 3_000 && serials.count == 6_000)
        #expect(copy["a2999"] != nil && copy["a3000"] == nil && serials["a5999"] != nil)
        var copied: [String] = []
        copy.forEach { serial, _ in copied.append(serial) }
        #expect(copied == (0..<3_000).map { "a\($0)" })
        #expect(copy != serials)
        var again = RevokedSerials()
        for n in 0..<3_000 { again.insert(Self.revocation(n), serial: "a\(n)") }
        #expect(again == copy, "equal by content and order, however the runs lie")
    }

    @Test("a copy of a million revocations shares them: at most log2(n / 1,024) + 1 runs and a tail under 1,024; adding to the original leaves the copy's runs the same objects")
    func copiesShareTheRuns() {
        var serials = RevokedSerials()
        for n in 0..<1_000_000 {
            serials.insert(Self.revocation(n), serial: String(format: "%032x", n))
            if n % 99_991 == 0 {
                let (runs, tail) = serials.layout
                #expect(tail < 1_024 && runs.count <= max(0, Int(log2(Double(serials.count) / 1_024)) + 1), "\(runs) + \(tail) at \(serials.count)")
                #expect(runs == runs.sorted(by: >), "runs shrink from oldest to newest: \(runs)")
                #expect(runs.reduce(tail, +) == serials.count)
            }
        }
        let kept = serials
        for n in 0..<1_000 { serials.insert(Self.revocation(n), serial: "r\(n)") }
        let keptRuns = kept.layout.runs
        // Freezing the tail merges only runs of no greater size than it: the large ones stay shared.
        #expect(kept.sharedRuns(with: serials) >= keptRuns.count - 2 && keptRuns.count >= 3, "\(keptRuns) vs \(serials.layout.runs)")
        #expect(kept.count == 1_000_000 && serials.count == 1_001_000 && kept["r999"] == nil && serials["r999"] != nil)
    }
}
