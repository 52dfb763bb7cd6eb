import Foundation
import MeterTrustCore
import MeterTrustPKI

/// The input of a factory batch: who makes the meters, what they run, where they bootstrap, which meters.
///
/// Format `metertrust-batch`, version 1 (JSON):
/// ```json
/// {
///   "format": "metertrust-batch", "version": 1,
///   "batch": "acme-2026-11-line3",
///   "manufacturer": "acme",
///   "deviceType": "2.999.2.1",
///   "firmware": { "sha256": "<64 hex digits>" },
///   "bootstrapServerURI": "coaps+tcp://bootstrap.example.net:5684",
///   "meters": { "start": "0024befffe800000", "count": 1000 }     // or { "eui64s": ["...", ...] }
///   "keyGeneration": "on-device",                                 // or "factory" (weaker, see README)
///   "keyMode": "certificate",                                     // or "psk": each meter also gets a TLS PSK
///   "csrs": "csrs.txt",                                           // on-device: the meters' CSRs
///   "parameters": { "meterClass": "residential" }
/// }
/// ```
public struct BatchManifest: Codable, Sendable {
    public static let formatName = "metertrust-batch"
    public static let maximumMeters = 10_000_000

    public var format: String
    public var version: Int
    public var batch: String
    public var manufacturer: String
    /// hwType of the meters' HardwareModuleName; the deployment default when absent.
    public var deviceType: String?
    public var firmware: Firmware
    public var bootstrapServerURI: String
    public var meters: Meters
    public var keyGeneration: KeyGeneration?
    /// How the meters authenticate to the platform besides their identity certificate (absent: `certificate`).
    public var keyMode: KeyMode?
    /// CSR list (see ``CSRList``), relative to the manifest's directory; required for on-device key generation.
    public var csrs: String?
    public var parameters: [String: String]?

    public struct Firmware: Codable, Sendable {
        public var sha256: String
        public var name: String?
    }

    public struct Meters: Codable, Sendable {
        public var start: String?
        public var count: Int?
        public var eui64s: [String]?
    }

    public enum KeyGeneration: String, Codable, Sendable {
        /// The meter generates its key and sends a CSR; the key never leaves it. The default.
        case onDevice = "on-device"
        /// The factory tool generates the key and writes it into the bundle. Weaker: the key exists outside the
        /// meter, in the factory tool's memory and output.
        case factory
    }

    public var keyGenerationMode: KeyGeneration { keyGeneration ?? .onDevice }

    /// `keyMode`: whether the batch's meters get a PSK. It is independent of `keyGeneration`: a PSK meter still gets
    /// its device identity certificate (IDevID) from its CSR or a factory key, as any meter, since onboarding (the
    /// signed enrollment manifest, claims) names meters by their IDevID; its IDevID may be keyAgreement-only (a
    /// meter that cannot sign a TLS handshake), and such a meter enrolls over the PSK listener.
    public enum KeyMode: String, Codable, Sendable {
        /// The meters authenticate with their certificates only. The default.
        case certificate
        /// Each meter also gets a TLS PSK, derived in the HSM from a master key made for this batch
        /// (HMAC-SHA256 over "MeterTrust PSK v1" ‖ 0x00 ‖ EUI-64); it is written into that meter's bundle only.
        case psk
    }

    public var credentialMode: KeyMode { keyMode ?? .certificate }

    /// Reads and checks a manifest; every problem is one ``FactoryError`` naming the field.
    public static func load(from data: Data) throws -> BatchManifest {
        let manifest: BatchManifest
        do {
            manifest = try JSONDecoder().decode(BatchManifest.self, from: data)
        } catch {
            throw FactoryError(.invalidManifest, JSONInput.problem(error, in: "the batch manifest") + " (format \(formatName) version 1, see the README)")
        }
        do {
            try manifest.validate()
        } catch let error as PKIError {
            throw FactoryError(.invalidManifest, "the batch manifest is invalid: \(error.message)")
        }
        return manifest
    }

    func validate() throws {
        guard format == Self.formatName, version == 1 else {
            throw FactoryError(.invalidManifest, "the batch manifest must have format \(Self.formatName) version 1 (found \(format) version \(version))")
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard (1...128).contains(batch.count), batch.allSatisfy({ allowed.contains($0) }) else {
            throw FactoryError(.invalidManifest, "batch id \"\(batch)\" must be 1 to 128 letters, digits, '-', '_' or '.'")
        }
        guard isLowercaseHex(firmware.sha256.lowercased(), count: 64) else {
            throw FactoryError(.invalidManifest, "firmware.sha256 must be the image's SHA-256 as 64 hex digits")
        }
        do {
            try BootstrapURI.check(bootstrapServerURI)
        } catch {
            throw FactoryError(.invalidManifest, "\(error)")
        }
        if let deviceType { _ = try PKISettings.oid(deviceType, setting: "deviceType") }
        switch (meters.start, meters.count, meters.eui64s) {
        case (let start?, let count?, nil):
            let first: EUI64
            do { first = try EUI64(start) } catch let error as CoreError {
                throw FactoryError(.invalidManifest, "meters.start: \(error.message)")
            }
            guard (1...Self.maximumMeters).contains(count) else {
                throw FactoryError(.invalidManifest, "meters.count must be between 1 and \(Self.maximumMeters)")
            }
            guard UInt64(count - 1) <= UInt64.max - first.value else {
                throw FactoryError(.invalidManifest, "meters.start + meters.count runs past the last EUI-64")
            }
        case (nil, nil, let list?):
            guard (1...Self.maximumMeters).contains(list.count) else {
                throw FactoryError(.invalidManifest, "meters.eui64s must list between 1 and \(Self.maximumMeters) meters")
            }
        default:
            throw FactoryError(.invalidManifest, "meters must be either {\"start\", \"count\"} or {\"eui64s\": [...]}")
        }
        if keyGenerationMode == .onDevice && csrs == nil {
            throw FactoryError(.invalidManifest, "keyGeneration on-device needs \"csrs\": the file of the meters' CSRs")
        }
    }

    /// Number of meters the batch names (malformed entries included).
    public var meterCount: Int { meters.count ?? meters.eui64s?.count ?? 0 }
}

/// The meters of a batch, enumerated without materialising a range.
struct BatchMeters: Sendable {
    private let start: UInt64?
    private let count: Int
    private let list: [String]
    private let index: [EUI64: Int]

    init(_ meters: BatchManifest.Meters) throws {
        if let start = meters.start, let count = meters.count {
            self.start = try EUI64(start).value
            self.count = count
            self.list = []
            self.index = [:]
        } else {
            self.start = nil
            self.list = meters.eui64s ?? []
            self.count = list.count
            var index: [EUI64: Int] = [:]
            for (position, text) in list.enumerated() {
                if let eui = try? EUI64(text), index[eui] == nil { index[eui] = position }
            }
            self.index = index
        }
    }

    var total: Int { count }

    /// Position of `eui` in the batch, or nil if the batch does not name it.
    func position(of eui: EUI64) -> Int? {
        if let start {
            guard eui.value >= start, eui.value - start < UInt64(count) else { return nil }
            return Int(eui.value - start)
        }
        return index[eui]
    }

    /// The meter at `position` as written in the manifest.
    func name(at position: Int) -> String {
        if let start { return EUI64(start + UInt64(position)).description }
        return list[position]
    }

    /// The meter at `position`, if its EUI-64 is well-formed.
    func eui(at position: Int) -> EUI64? {
        if let start { return EUI64(start + UInt64(position)) }
        return try? EUI64(list[position])
    }
}
