import Crypto
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import NIOCore
import NIOPosix
import Synchronization
import X509

/// `bench est`'s client: every meter of the fleet once, `concurrency` at a time, each a new connection (a full TLS
/// handshake, no resumption: each meter's client has its own TLS context) and one `simpleenroll` of its pre-made
/// CSR, read by the meter's own ``ESTClient`` and ``ESTResponse`` (a certs-only CMS holding a certificate counts as
/// an enrollment). The same client runs against nginx and against our EST server.
struct ESTLoad {
    struct Run: Codable, Sendable {
        var target: String
        var meters: Int
        var concurrency: Int
        var succeeded: Int
        var failed: Int
        var seconds: Double
        var enrollmentsPerSecond: Double
        var p50Milliseconds: Double
        var p99Milliseconds: Double
        /// Peak resident memory of the server's processes (VmHWM from /proc), MB.
        var serverPeakMemoryMB: Double
        /// CPU time per enrollment (user + system, from /proc and getrusage), microseconds: the server's processes,
        /// and the client's (this process), which shares the machine's cores with the server.
        var serverCPUMicrosecondsPerEnrollment: Double
        var clientCPUMicrosecondsPerEnrollment: Double
        /// The first failure's message, if any failed.
        var firstFailure: String?
    }

    /// How a meter authenticates in this run.
    enum Credential: Sendable {
        /// Its factory identity, with the manufacturer CA as its chain; the server verified against `trustAnchor`.
        case identity(chain: [Certificate], trustAnchor: Certificate)
        /// Its pre-shared key, TLS 1.2.
        case preSharedKey(@Sendable (EUI64) -> PresharedKey)
    }

    let fleet: SimulatedFleet
    let concurrency: Int
    let group: any EventLoopGroup
    let progress: TerminalProgress

    func run(target: String, server: ESTServerAddress, credential: Credential, serverPID: Int32) async -> Run {
        let meters = fleet.meters
        let next = Counter()
        let done = Counter()
        let progress = self.progress
        let started = ContinuousClock.now
        let serverCPU = ServerProcess.cpuSeconds(of: serverPID)
        let clientCPU = IssuanceBenchmark.cpuSeconds()
        let group = self.group
        let phase = "enrolling at \(target)"
        let outcomes = await withTaskGroup(of: (latencies: [Double], failed: Int, firstFailure: String?).self) { tasks in
            for _ in 0..<concurrency {
                tasks.addTask {
                    var latencies: [Double] = []
                    var failed = 0
                    var firstFailure: String?
                    while true {
                        let index = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                        guard index < meters.count else { break }
                        let meter = meters[index]
                        let begin = ContinuousClock.now
                        do {
                            try await Self.enroll(meter, at: server, credential: credential, group: group)
                            let elapsed = ContinuousClock.now - begin
                            latencies.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
                        } catch {
                            failed += 1
                            if firstFailure == nil { firstFailure = Output.message(for: error) }
                        }
                        done.value.wrappingAdd(1, ordering: .relaxed)
                    }
                    return (latencies, failed, firstFailure)
                }
            }
            tasks.addTask {
                while done.value.load(ordering: .relaxed) < meters.count {
                    progress.update(phase: phase, done: done.value.load(ordering: .relaxed), total: meters.count)
                    try? await Task.sleep(for: .milliseconds(200))
                }
                return ([], 0, nil)
            }
            var all: [(latencies: [Double], failed: Int, firstFailure: String?)] = []
            for await outcome in tasks { all.append(outcome) }
            return all
        }
        let elapsed = ContinuousClock.now - started
        let serverCPUUsed = ServerProcess.cpuSeconds(of: serverPID) - serverCPU
        let clientCPUUsed = IssuanceBenchmark.cpuSeconds() - clientCPU
        progress.finish(phase: phase)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let latencies = outcomes.flatMap(\.latencies).sorted()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int((p * Double(latencies.count)).rounded(.up)) - 1)]
        }
        return Run(
            target: target, meters: meters.count, concurrency: concurrency, succeeded: latencies.count, failed: outcomes.map(\.failed).reduce(0, +),
            seconds: seconds, enrollmentsPerSecond: Double(latencies.count) / seconds, p50Milliseconds: percentile(0.5),
            p99Milliseconds: percentile(0.99), serverPeakMemoryMB: ServerProcess.peakMemoryMB(of: serverPID),
            serverCPUMicrosecondsPerEnrollment: serverCPUUsed / Double(max(1, meters.count)) * 1e6,
            clientCPUMicrosecondsPerEnrollment: clientCPUUsed / Double(max(1, meters.count)) * 1e6,
            firstFailure: outcomes.compactMap(\.firstFailure).first
        )
    }

    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    /// One meter's enrollment: its own TLS context, one connection, `simpleenroll`, the answer read.
    static func enroll(_ meter: SimulatedFleet.Meter, at server: ESTServerAddress, credential: Credential, group: any EventLoopGroup) async throws {
        let tls: ESTCredential
        let anchors: [Certificate]
        switch credential {
        case .identity(let chain, let trustAnchor):
            tls = .certificate(try Certificate(derEncoded: meter.identity), chain: chain, key: meter.identityKey)
            anchors = [trustAnchor]
        case .preSharedKey(let key):
            tls = .preSharedKey(identity: meter.eui64.description, key: key(meter.eui64))
            anchors = []
        }
        var client = try ESTClient(server: server, credential: tls, trustAnchors: anchors, group: group)
        client.maximumRetries = 0
        let response = try await client.exchange(.simpleenroll, body: meter.operationalRequest)
        guard case .certificates = try response.meaning(of: .simpleenroll, from: server.description) else {
            throw ESTClientError(.estBadResponse, "simpleenroll answered no certificate")
        }
    }
}
