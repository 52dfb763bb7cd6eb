import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustStore
import X509

/// `metertrust bench enroll`: an upload of N meters through the real path (streamed parse, staging in chunks, the
/// store's checks over the staged rows, the first-to-claim commit), timed from the first byte read to the commit.
///
/// Set-up, not timed: a Manufacturer Device CA with a software key (its self-signed certificate stored as a CA's),
/// an Operational CA, N device identity records inserted directly into the store (random fingerprints, a placeholder
/// DER: nothing is signed in an HSM), an account, and the body written to a file: a plain list (`eui64` per line)
/// or an enrollment manifest signed by that software key.
public struct EnrollmentBenchmark: Sendable {
    public struct Result: Codable, Sendable {
        public var count: Int
        public var format: String
        public var bodyBytes: Int
        public var setupSeconds: Double
        /// Reading, parsing and staging the body.
        public var stagingSeconds: Double
        /// The signature (manifest), the store's checks and the commit.
        public var finishSeconds: Double
        public var uploadSeconds: Double
        public var metersPerSecond: Double
        public var claimed: Int64
        /// Peak resident memory during the upload (the peak is reset after the set-up), and over the whole run.
        public var uploadPeakMemoryMB: Double
        public var peakMemoryMB: Double
        public var cores: Int
    }

    public let store: any MeterTrustStore
    public let workDirectory: URL

    public init(store: any MeterTrustStore, workDirectory: URL) {
        self.store = store
        self.workDirectory = workDirectory
    }

    public func run(count: Int, format: EnrollmentUploadRecord.Format, progress: EnrollmentProgress? = nil) async throws -> Result {
        let setupStart = ContinuousClock.now
        let tag = UUID().uuidString.prefix(8).lowercased()
        let manufacturer = "bench-mfr-\(tag)"
        let operational = "bench-op-\(tag)"
        let key = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName(manufacturer) }
        let caCertificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey), notValidBefore: Date(),
            notValidAfter: Date().addingTimeInterval(86400 * 365), issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0)) }, issuerPrivateKey: .init(key)
        )
        let caDER = try caCertificate.derBytes
        for (name, role, serial, der) in [(manufacturer, "manufacturer", caCertificate.serialHex, caDER), (operational, "operational", "01", [UInt8]([0x30, 0x03, 0x02, 0x01, 0x01]))] {
            try await store.insertCertificateAuthority(
                CertificateAuthorityRecord(name: name, roleName: role, parent: nil, keyLabel: "bench/\(name)", keyID: "00", curve: "P-256", certificateSerial: serial),
                certificate: CertificateRecord(
                    issuer: name, serial: serial, profile: "\(role)-ca", kind: .authority, subject: "CN=\(name)", eui64: nil, notBefore: Date(),
                    notAfter: Date().addingTimeInterval(86400 * 365), fingerprintSHA256: hexString(SHA256.hash(data: der)), der: der
                )
            )
        }
        // Meters under a random 16-bit prefix, so runs sharing one database do not collide.
        let prefix = UInt64.random(in: 0x0200...0xFEFF) << 48
        func meter(_ i: Int) -> String { EUI64(prefix | UInt64(i)).description }
        func fingerprint(_ i: Int) -> String { var n = UInt64(i) ^ prefix; return hexString(SHA256.hash(data: withUnsafeBytes(of: &n) { Data($0) })) }
        let now = Date()
        for start in stride(from: 0, to: count, by: 10_000) {
            let records = (start..<min(start + 10_000, count)).map { i in
                CertificateRecord(
                    issuer: manufacturer, serial: String(format: "%016llx", UInt64(i) + 1), profile: "device-identity", kind: .deviceIdentity, subject: "",
                    eui64: meter(i), notBefore: now, notAfter: Date(timeIntervalSince1970: 253_402_300_799), fingerprintSHA256: fingerprint(i),
                    der: [0x30, 0x03, 0x02, 0x01, 0x01], createdAt: now
                )
            }
            _ = try await store.insertDeviceIdentities(records)
            progress?("set-up", Int64(start + records.count))
        }
        let audit = AuditLog(store: store, signer: nil, origin: "bench.metertrust/enroll")
        let onboarding = Onboarding(store: store, audit: audit, limits: EnrollmentLimits(maximumMeters: max(count, 1_100_000), maximumBytes: max(256 << 20, count * 160)))
        let account = "bench-\(tag)"
        _ = try await onboarding.createAccount(id: account, displayName: "Bench", operationalCA: operational, manufacturers: [manufacturer], actor: "bench")

        // The body, written to a file and hashed as it goes.
        let path = workDirectory.appendingPathComponent("enroll-\(tag).\(format == .list ? "txt" : "json")")
        FileManager.default.createFile(atPath: path.path, contents: nil)
        let writer = try FileHandle(forWritingTo: path)
        var hasher = SHA256()
        var buffer = Data()
        func emit(_ text: String) throws {
            buffer.append(contentsOf: Array(text.utf8))
            if buffer.count >= 1 << 20 { hasher.update(data: buffer); try writer.write(contentsOf: buffer); buffer.removeAll(keepingCapacity: true) }
        }
        if format == .list {
            try emit("# bench list of \(count) meters\n")
            for i in 0..<count { try emit(meter(i) + "\n") }
        } else {
            try emit("""
                {
                  "format": "\(EnrollmentManifest.formatName)",
                  "version": 1,
                  "batch": "bench-\(tag)",
                  "manufacturer": "\(manufacturer)",
                  "manufacturerCA": {"certificateSHA256":"\(hexString(SHA256.hash(data: caDER)))","serial":"\(caCertificate.serialHex)","subject":"CN=\(manufacturer)"},
                  "deviceType": "2.999.2.1",
                  "signatureAlgorithm": "ecdsa-with-SHA256",
                  "created": "\(ISO8601DateFormatter().string(from: now))",
                  "meters": [
                """)
            for i in 0..<count { try emit("\(i == 0 ? "" : ",")\n    {\"eui64\": \"\(meter(i))\", \"certificateSHA256\": \"\(fingerprint(i))\"}") }
            try emit("\n  ],\n  \"count\": \(count)\n}\n")
        }
        hasher.update(data: buffer)
        try writer.write(contentsOf: buffer)
        try writer.close()
        let signature = format == .manifest ? Array(try key.signature(for: hasher.finalize()).derRepresentation) : nil
        let bodyBytes = (try FileManager.default.attributesOfItem(atPath: path.path)[.size] as? Int) ?? 0
        defer { try? FileManager.default.removeItem(at: path) }
        let setupSeconds = Self.seconds(ContinuousClock.now - setupStart)

        // Timed: from the first byte read to the commit.
        Self.resetPeakMemory()
        let start = ContinuousClock.now
        let session = try await onboarding.beginUpload(account: account, format: format, manufacturer: manufacturer, signature: signature, actor: "bench", progress: progress)
        let reader = try FileHandle(forReadingFrom: path)
        while let piece = try reader.read(upToCount: 1 << 20), !piece.isEmpty {
            try await session.append([UInt8](piece))
        }
        try reader.close()
        let staged = ContinuousClock.now
        let result = try await session.finish()
        let end = ContinuousClock.now
        let upload = Self.seconds(end - start)
        return Result(
            count: count, format: format.rawValue, bodyBytes: bodyBytes, setupSeconds: setupSeconds, stagingSeconds: Self.seconds(staged - start),
            finishSeconds: Self.seconds(end - staged), uploadSeconds: upload, metersPerSecond: Double(count) / max(upload, 1e-9), claimed: result.claimed,
            uploadPeakMemoryMB: Self.memoryMB("VmHWM:"), peakMemoryMB: Self.memoryMB("VmHWM:", total: true),
            cores: ProcessInfo.processInfo.activeProcessorCount
        )
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// The process's peak resident memory before the reset (Linux keeps none after it: remembered here).
    nonisolated(unsafe) private static var peakBeforeReset: Double = 0

    /// Resets the kernel's peak-RSS mark (`/proc/self/clear_refs` ← 5), so VmHWM measures from now on.
    static func resetPeakMemory() {
        peakBeforeReset = memoryMB("VmHWM:")
        try? Data("5".utf8).write(to: URL(fileURLWithPath: "/proc/self/clear_refs"))
    }

    static func memoryMB(_ field: String, total: Bool = false) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) })
        else { return 0 }
        let now = (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
        return total ? max(now, peakBeforeReset) : now
    }
}
