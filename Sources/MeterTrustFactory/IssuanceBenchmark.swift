import Crypto
import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore
import SwiftASN1
import X509

/// `metertrust bench issuance`: issues N device identity certificates from N pre-made CSRs through the real path
/// (CSR check, profile, HSM signature over PKCS#11, store) and, in the same run, on the same token with the same
/// number of threads and sessions, measures the two limits that path cannot beat: raw `C_Sign` throughput (S) and
/// raw CSR verification throughput (V). The combined limit is 1 / (1/S + 1/V).
public struct IssuanceBenchmark: Sendable {
    public struct Report: Codable, Sendable {
        public var count: Int
        public var cores: Int
        public var threads: Int
        public var sessions: Int
        public var issued: Int
        public var issuanceSeconds: Double
        public var certificatesPerSecond: Double
        /// S: raw ECDSA P-256 C_Sign per second, `threads` threads, each on its own session.
        public var rawSignPerSecond: Double
        /// V: raw CSR parse + signature verification per second on `threads` threads.
        public var rawCSRVerifyPerSecond: Double
        /// 1 / (1/S + 1/V).
        public var combinedLimitPerSecond: Double
        /// certificatesPerSecond / combinedLimitPerSecond.
        public var ratio: Double
        /// Peak resident memory of the process (VmHWM), MB.
        public var peakMemoryMB: Double
        public var csrPreparationSeconds: Double
        /// Process CPU time (user + system) per operation, microseconds: what each costs regardless of how busy the
        /// machine's other tenants keep its cores.
        public var cpuMicrosecondsPerCertificate: Double
        public var cpuMicrosecondsPerRawSign: Double
        public var cpuMicrosecondsPerRawCSRVerify: Double
    }

    public let hierarchy: CAHierarchy
    public let store: any ProvisioningStore
    public let threads: Int
    /// How long each raw limit is measured.
    public let limitSeconds: Double

    /// The manufacturer CA the run creates under the hierarchy's root (unique per run where several bench processes
    /// share one store).
    public let manufacturerName: String

    public init(hierarchy: CAHierarchy, store: any ProvisioningStore, threads: Int, limitSeconds: Double = 3, manufacturerName: String = "bench-mfr") {
        self.hierarchy = hierarchy
        self.store = store
        self.threads = max(1, threads)
        self.limitSeconds = limitSeconds
        self.manufacturerName = manufacturerName
    }

    public func run(count: Int, workDirectory: URL, progress: any BatchProgress) async throws -> Report {
        // The batch engine signs with a session copy of the CA key (see BatchRunner); so do the raw limits.
        let manufacturer = try await hierarchy.createAuthority(role: .manufacturer, name: manufacturerName, organization: "Bench")
            .withSessionKey()
        defer { try? manufacturer.releaseSessionKey() }
        let hardwareType = try hierarchy.settings.defaultDeviceType()

        // N pre-made CSRs, in a file: memory does not grow with N.
        let prepared = Date()
        let csrPath = workDirectory.appendingPathComponent("csrs.txt").path
        // Each run draws its own range of 2^32 EUI-64s, so several runs can share one store.
        let first: UInt64 = 0x0024_BE00_0000_0000 | (UInt64.random(in: 0..<(1 << 16)) << 32)
        try await Self.makeCSRs(count: count, hardwareType: hardwareType, path: csrPath, threads: threads, progress: progress, first: first)
        let preparation = Date().timeIntervalSince(prepared)

        // The limits, with the same threads, sessions and key: each measured twice before the issuance run and once
        // after it, interleaved, and the fastest measurement kept. A noisy neighbour can lower a limit, so keeping
        // the best cannot flatter the ratio.
        var (rawSign, signCPU) = (0.0, 0.0)
        var (rawVerify, verifyCPU) = (0.0, 0.0)
        func measureLimits() async throws {
            let sign = try await measureSign(key: manufacturer.signingKey.key)
            if sign.perSecond > rawSign { (rawSign, signCPU) = sign }
            let verify = try await measureVerify(csrPath: csrPath)
            if verify.perSecond > rawVerify { (rawVerify, verifyCPU) = verify }
        }
        for _ in 0..<2 { try await measureLimits() }

        // The real path.
        _ = try await store.beginBatch(BatchRecord(id: manufacturerName, manufacturer: manufacturer.name, manifestSHA256: "bench", meterCount: Int64(count)))
        let signer = try CertificateSigner(authority: manufacturer, profile: .deviceIdentity, settings: hierarchy.settings, hardwareType: hardwareType)
        let engine = IssuanceEngine(signer: signer, store: store, workers: threads)
        var reader = try CSRListReader(path: csrPath)
        let started = Date()
        let cpuStarted = Self.cpuSeconds()
        let counts = try await engine.run(
            batch: manufacturerName,
            next: {
                while let line = try reader.next() {
                    if case .request(let number, let eui, let csr) = line { return IssuanceItem(position: number, eui64: eui, csr: csr) }
                }
                return nil
            },
            refused: { throw FactoryError(.input, "benchmark CSR refused: \($0.description)") },
            progress: { progress.update(phase: "issuing", done: $0.done, total: count) }
        )
        let elapsed = Date().timeIntervalSince(started)
        let issuanceCPU = Self.cpuSeconds() - cpuStarted
        progress.finish(phase: "issuing")
        try await measureLimits()
        let stored = try await store.batchCertificateCount(batch: manufacturerName)
        guard stored == count, counts.issued == count else {
            throw FactoryError(.output, "benchmark issued \(counts.issued) and stored \(stored) of \(count) certificates")
        }
        let rate = Double(count) / elapsed
        let limit = 1 / (1 / rawSign + 1 / rawVerify)
        return Report(
            count: count, cores: ProcessInfo.processInfo.activeProcessorCount, threads: threads, sessions: hierarchy.token.sessionCount,
            issued: counts.issued, issuanceSeconds: elapsed, certificatesPerSecond: rate, rawSignPerSecond: rawSign,
            rawCSRVerifyPerSecond: rawVerify, combinedLimitPerSecond: limit, ratio: rate / limit,
            peakMemoryMB: Self.peakMemoryMB(), csrPreparationSeconds: preparation,
            cpuMicrosecondsPerCertificate: issuanceCPU / Double(count) * 1e6, cpuMicrosecondsPerRawSign: signCPU,
            cpuMicrosecondsPerRawCSRVerify: verifyCPU
        )
    }

    /// S: `threads` threads each signing a fixed SHA-256 digest with CKM_ECDSA on its own session.
    private func measureSign(key: HSMKey) async throws -> (perSecond: Double, cpuMicroseconds: Double) {
        let token = hierarchy.token
        let digest = Array(SHA256.hash(data: Array("benchmark".utf8)))
        return try await measure { _, _ in _ = try token.signDigest(digest, with: key) }
    }

    /// V: `threads` threads each parsing CSRs and verifying their self-signatures (proof of possession), with the
    /// same octet-level reader the issuance path uses (``DeviceRequest/verifiesProofOfPossession(_:)``): the
    /// cheapest way this code base has to verify a CSR, so the limit is as high as it can honestly be.
    private func measureVerify(csrPath: String) async throws -> (perSecond: Double, cpuMicroseconds: Double) {
        var reader = try CSRListReader(path: csrPath)
        var sample: [[UInt8]] = []
        while sample.count < 4096, let line = try reader.next() {
            if case .request(_, _, let csr) = line { sample.append(csr) }
        }
        let csrs = sample
        return try await measure { worker, iteration in
            guard DeviceRequest.verifiesProofOfPossession(csrs[(worker + iteration * self.threads) % csrs.count]) else {
                throw FactoryError(.input, "a benchmark CSR does not verify")
            }
        }
    }

    /// Runs `operation(worker, iteration)` on `threads` threads for `limitSeconds`; returns operations per second
    /// and process CPU microseconds per operation.
    private func measure(_ operation: @escaping @Sendable (Int, Int) throws -> Void) async throws -> (perSecond: Double, cpuMicroseconds: Double) {
        let seconds = limitSeconds
        let started = Date()
        let cpuStarted = Self.cpuSeconds()
        let counts = await onEachWorker(threads) { worker -> Result<Int, any Error> in
            Result {
                var done = 0
                let deadline = Date().addingTimeInterval(seconds)
                while Date() < deadline {
                    for _ in 0..<64 {
                        try operation(worker, done)
                        done += 1
                    }
                }
                return done
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        let cpu = Self.cpuSeconds() - cpuStarted
        let done = Double(try counts.map { try $0.get() }.reduce(0, +))
        return (done / elapsed, cpu / done * 1e6)
    }

    /// The EUI-64 the CSR list starts from unless said otherwise.
    public static let firstMeter: UInt64 = 0x0024_BEFF_FE00_0000

    /// Writes a CSR list of `count` meters from `first` (default 0024befffe000000) upwards, each CSR made by its own
    /// fresh key, on `threads` threads in rounds.
    public static func makeCSRs(
        count: Int, hardwareType: ASN1ObjectIdentifier, path: String, threads: Int, progress: any BatchProgress, first: UInt64 = firstMeter
    ) async throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw FactoryError(.output, "cannot create \(path)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var position = 0
        progress.update(phase: "making CSRs", done: 0, total: count)  // the phase's clock starts now
        while position < count {
            let range = position..<min(position + 4096, count)
            let lines = await parallelMap(count: range.count, workers: threads) { index -> Result<String, any Error> in
                Result {
                    let eui = EUI64(first + UInt64(range.lowerBound + index))
                    let csr = try DeviceIdentityRequest.der(eui64: eui, privateKey: P256.Signing.PrivateKey(), hardwareType: hardwareType)
                    return CSRListReader.line(eui64: eui, csr: csr)
                }
            }
            try handle.write(contentsOf: Data(try lines.map { try $0.get() }.joined().utf8))
            position = range.upperBound
            progress.update(phase: "making CSRs", done: position, total: count)
        }
        try handle.close()
        progress.finish(phase: "making CSRs")
    }

    /// User + system CPU seconds of this process so far.
    public static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Peak resident set size (VmHWM in /proc/self/status), MB.
    public static func peakMemoryMB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return 0 }
        let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        return kilobytes / 1024
    }
}
