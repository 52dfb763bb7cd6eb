import Crypto
import Dispatch
import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustStore

/// `metertrust bench psk`: how fast the platform finds a meter's PSK at the handshake, beside the limit measured in
/// the same run.
///
/// Set-up, not timed: a PSK master key generated in the HSM, a batch record naming it, and N device identity records
/// of that batch stored directly (placeholder DER: nothing is signed). Then, timed:
/// - the limit D: raw derivations (``HSMToken/derivePSK(for:master:)``, one C_SignInit + C_Sign each) on `threads`
///   threads, the master key found once;
/// - the rate R: ``PSKResolver`` for every meter, `threads` at a time, as the PSK listener's callbacks call it (the
///   store's two reads, the key found by label, the derivation);
/// and the ratio R/D. The master key is destroyed at the end.
public struct PSKBenchmark: Sendable {
    public struct Result: Codable, Sendable {
        public var count: Int
        public var threads: Int
        public var sessions: Int
        public var cores: Int
        public var rawDerivationsPerSecond: Double
        public var resolutionsPerSecond: Double
        public var ratio: Double
        /// Mean latency of one resolution (as a handshake waits for it), milliseconds.
        public var meanResolutionMilliseconds: Double
        public var setupSeconds: Double
    }

    public let store: any MeterTrustStore
    public let token: HSMToken
    public let threads: Int

    public init(store: any MeterTrustStore, token: HSMToken, threads: Int) {
        self.store = store
        self.token = token
        self.threads = max(1, threads)
    }

    public func run(count: Int, progress: (@Sendable (String, Int) -> Void)? = nil) async throws -> Result {
        let setupStart = ContinuousClock.now
        let tag = UUID().uuidString.prefix(8).lowercased()
        let manufacturer = "bench-mfr-\(tag)"
        let batch = "bench-psk-\(tag)"
        let placeholder: [UInt8] = [0x30, 0x03, 0x02, 0x01, 0x01]
        try await store.insertCertificateAuthority(
            CertificateAuthorityRecord(name: manufacturer, roleName: "manufacturer", parent: nil, keyLabel: "bench/\(manufacturer)", keyID: "00", curve: "P-256", certificateSerial: "01"),
            certificate: CertificateRecord(
                issuer: manufacturer, serial: "01", profile: "manufacturer-ca", kind: .authority, subject: "CN=\(manufacturer)", eui64: nil, notBefore: Date(),
                notAfter: Date().addingTimeInterval(86400), fingerprintSHA256: hexString(SHA256.hash(data: placeholder)), der: placeholder
            )
        )
        let label = KeyLabel.unique(KeyLabel.pskMaster, batch)
        let master = try await token.perform { try $0.generatePSKMasterKey(label: label) }
        defer { try? token.destroy(master) }
        _ = try await store.beginBatch(BatchRecord(id: batch, manufacturer: manufacturer, manifestSHA256: "00", meterCount: Int64(count), pskMasterKeyLabel: label))
        let prefix = UInt64.random(in: 0x0200...0xFEFF) << 48
        let meters = (0..<count).map { EUI64(prefix | UInt64($0)) }
        let now = Date()
        for start in stride(from: 0, to: count, by: 10_000) {
            let records = (start..<min(start + 10_000, count)).map { i in
                CertificateRecord(
                    issuer: manufacturer, serial: String(format: "%016llx", UInt64(i) + 2), profile: "device-identity", kind: .deviceIdentity, subject: "",
                    eui64: meters[i].description, notBefore: now, notAfter: Date(timeIntervalSince1970: 253_402_300_799),
                    fingerprintSHA256: hexString(SHA256.hash(data: meters[i].bytes)), der: placeholder, createdAt: now, batch: batch, batchPosition: Int64(i)
                )
            }
            _ = try await store.insertDeviceIdentities(records)
            progress?("set-up", start + records.count)
        }
        let setupSeconds = Self.seconds(ContinuousClock.now - setupStart)

        // D: raw derivations on `threads` threads.
        let threads = self.threads
        let token = self.token
        let rawStart = ContinuousClock.now
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                let failure = LockedError()
                DispatchQueue.concurrentPerform(iterations: threads) { thread in
                    do {
                        for i in stride(from: thread, to: count, by: threads) { _ = try token.derivePSK(for: meters[i], master: master) }
                    } catch {
                        failure.set(error)
                    }
                }
                if let error = failure.value { continuation.resume(throwing: error) } else { continuation.resume() }
            }
        }
        let rawSeconds = Self.seconds(ContinuousClock.now - rawStart)

        // R: the resolver, `threads` resolutions in flight.
        let resolver = PSKResolver(store: store, token: token)
        let resolveStart = ContinuousClock.now
        let total = try await withThrowingTaskGroup(of: Double.self) { group in
            for thread in 0..<threads {
                group.addTask {
                    var waited = 0.0
                    for i in stride(from: thread, to: count, by: threads) {
                        let start = ContinuousClock.now
                        _ = try await resolver.presharedKey(for: meters[i])
                        waited += Self.seconds(ContinuousClock.now - start)
                        if thread == 0, i % 1000 == 0 { progress?("resolving", i) }
                    }
                    return waited
                }
            }
            return try await group.reduce(0, +)
        }
        let resolveSeconds = Self.seconds(ContinuousClock.now - resolveStart)
        let raw = Double(count) / rawSeconds
        let resolved = Double(count) / resolveSeconds
        return Result(
            count: count, threads: threads, sessions: token.sessionCount, cores: ProcessInfo.processInfo.activeProcessorCount,
            rawDerivationsPerSecond: raw, resolutionsPerSecond: resolved, ratio: resolved / raw,
            meanResolutionMilliseconds: total / Double(count) * 1000, setupSeconds: setupSeconds
        )
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// The first error of several threads.
final class LockedError: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?
    func set(_ new: any Error) { lock.withLock { if error == nil { error = new } } }
    var value: (any Error)? { lock.withLock { error } }
}
