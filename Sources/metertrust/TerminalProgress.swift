import Foundation
import MeterTrustFactory
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Progress on stderr: a bar with rate and ETA on a terminal, a plain line every few seconds otherwise.
final class TerminalProgress: BatchProgress {
    private struct State {
        var phase = ""
        var started = Date()
        var lastDraw = Date.distantPast
    }

    private let state = Mutex(State())
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private let quiet: Bool

    /// With `--json` and stderr not a terminal (a script reading it), nothing: stderr then carries only the JSON
    /// error object, if any.
    init(quiet: Bool = false) {
        self.quiet = quiet || (Output.jsonRequested && isatty(STDERR_FILENO) != 1)
    }

    func update(phase: String, done: Int, total: Int) {
        update(phase: phase, done: done, total: total, rated: done)
    }

    /// The rate shown is `rated` per second of the phase's wall time (while issuing: certificates issued, the batch
    /// report's `certificatesPerSecond`); the ETA follows `done`.
    func update(phase: String, done: Int, total: Int, rated: Int) {
        guard !quiet else { return }
        let line: String? = state.withLock { state in
            let now = Date()
            if state.phase != phase {
                state.phase = phase
                state.started = now
                state.lastDraw = .distantPast
            }
            let interval = isTerminal ? 0.1 : 5.0
            guard now.timeIntervalSince(state.lastDraw) >= interval || done >= total else { return nil }
            state.lastDraw = now
            let elapsed = max(now.timeIntervalSince(state.started), 0.001)
            let rate = Double(rated) / elapsed
            let pace = Double(done) / elapsed
            let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
            let eta = pace > 0 ? Self.duration(Double(total - done) / pace) : "-"
            let numbers = "\(done)/\(total) \(String(format: "%.1f", fraction * 100))% \(Self.rate(rate))/s ETA \(eta)"
            if isTerminal {
                let width = 30
                let filled = Int(fraction * Double(width))
                return "\r\(phase) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(numbers)\u{1B}[K"
            }
            return "\(phase): \(numbers)\n"
        }
        if let line { FileHandle.standardError.write(Data(line.utf8)) }
    }

    func finish(phase: String) {
        guard !quiet else { return }
        let elapsed = state.withLock { Date().timeIntervalSince($0.started) }
        FileHandle.standardError.write(Data(((isTerminal ? "\r\u{1B}[K" : "") + "\(phase): done in \(Self.duration(elapsed))\n").utf8))
    }

    static func rate(_ value: Double) -> String {
        value >= 10_000 ? String(format: "%.1fk", value / 1000) : String(format: "%.0f", value)
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 3600 ? String(format: "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60) : String(format: "%d:%02d", total / 60, total % 60)
    }
}
