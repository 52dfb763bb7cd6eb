import Crypto
import Foundation
import Logging
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore
import X509

/// What a batch run did.
public struct BatchReport: Codable, Sendable {
    public var format = "metertrust-batch-report"
    public var version = 1
    public var batch: String
    public var manufacturer: String
    public var keyGeneration: String
    /// `certificate`, or `psk` when each meter's bundle also carries its PSK.
    public var keyMode: String = BatchManifest.KeyMode.certificate.rawValue
    /// The batch's PSK master key in the HSM (CKA_LABEL), for a `psk` batch.
    public var pskMasterKeyLabel: String?
    /// Meters the manifest names.
    public var meters: Int
    public var counts: IssuanceCounts
    /// Meters of the batch holding a certificate now (this run and earlier ones).
    public var provisioned: Int
    public var durationSeconds: Double
    /// Wall time of the issuing phase alone (checking CSRs, signing, storing), without the manifest checks and the
    /// outputs.
    public var issuanceSeconds: Double
    /// The batch's one rate figure: certificates issued by this run / ``issuanceSeconds``; the progress bar shows
    /// the same.
    public var certificatesPerSecond: Double
    public var outputDirectory: String
    /// The first refusals (all of them are in `report.json` and `refusals.jsonl`).
    public var refusals: [Refusal]
    public var refusalsTotal: Int
}

/// Runs a factory batch end to end: checks the manifest, issues every meter's device identity certificate through
/// the ``IssuanceEngine``, and writes the batch's outputs from what the store holds:
///
/// - `bundles.jsonl`: one ``ProvisioningBundle`` per provisioned meter, in input order;
/// - `enrollment-manifest.json` and `enrollment-manifest.json.sig` (see ``EnrollmentManifest``);
/// - `report.json`: the counts and every refusal; `refusals.jsonl`: the refusals, one per line;
/// - `manufacturer-ca.pem`, `root-ca.pem`.
///
/// Running the same manifest again (after a crash or a kill) resumes: meters already issued are not issued again, and
/// the outputs are written anew from the store.
public struct BatchRunner: Sendable {
    public let hierarchy: CAHierarchy
    /// Where batches and their device identity certificates are recorded.
    public let store: any ProvisioningStore
    public let workers: Int
    /// How this deployment registers a manufacturer now, for the advice an unregistered one gets.
    public let registration: ManufacturerRegistration
    private let logger: Logger

    /// How a manufacturer is registered: directly on the HSM host before the bootstrap ceremony, under quorum after.
    public enum ManufacturerRegistration: Sendable {
        case direct
        case underQuorum

        func advice(for manufacturer: String) -> String {
            switch self {
            case .direct:
                return "create its CA with metertrust ca create-manufacturer --name \(manufacturer) --organization \"<organization name>\""
            case .underQuorum:
                return "register it under quorum: metertrust admin request manufacturer.register name=\(manufacturer) organization=\"<organization name>\", approved and executed"
            }
        }
    }

    public init(
        hierarchy: CAHierarchy, store: any ProvisioningStore, workers: Int? = nil, registration: ManufacturerRegistration = .direct, logger: Logger = Logger(label: "metertrust.factory")
    ) {
        self.hierarchy = hierarchy
        self.store = store
        self.workers = workers ?? hierarchy.token.sessionCount
        self.registration = registration
        self.logger = logger
    }

    public func run(manifestPath: String, outputDirectory: URL, progress: any BatchProgress = SilentProgress()) async throws -> BatchReport {
        guard let manifestData = FileManager.default.contents(atPath: manifestPath) else {
            throw FactoryError(.input, "cannot read the batch manifest \(manifestPath)")
        }
        let manifest = try BatchManifest.load(from: manifestData)
        let baseDirectory = URL(fileURLWithPath: manifestPath).deletingLastPathComponent()
        let started = Date()

        // The manufacturer must be registered: its Manufacturer Device CA exists.
        guard let record = try await hierarchy.store.certificateAuthority(named: manifest.manufacturer), record.role == .manufacturer else {
            throw FactoryError(
                .unregisteredManufacturer,
                "manufacturer \(manifest.manufacturer) is not registered: \(registration.advice(for: manifest.manufacturer))"
            )
        }
        // Long batches sign with a session copy of the CA key, made inside the HSM and destroyed after the batch.
        let authority = try await hierarchy.authority(named: manifest.manufacturer).withSessionKey()
        defer { try? authority.releaseSessionKey() }
        let hardwareType = try manifest.deviceType.map { try PKISettings.oid($0, setting: "deviceType") } ?? hierarchy.settings.defaultDeviceType()
        let signer = try CertificateSigner(authority: authority, profile: .deviceIdentity, settings: hierarchy.settings, hardwareType: hardwareType)
        let meters = try BatchMeters(manifest.meters)

        do {
            try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        } catch {
            throw FactoryError(.output, "cannot create the output directory \(outputDirectory.path)")
        }
        let csrPath: String
        switch manifest.keyGenerationMode {
        case .onDevice:
            csrPath = URL(fileURLWithPath: manifest.csrs!, relativeTo: baseDirectory).path
        case .factory:
            csrPath = try await FactoryKeys.prepare(
                meters: meters, hardwareType: hardwareType, in: outputDirectory, workers: workers, progress: progress
            )
        }
        let pskMaster = try await beginBatch(manifest, manifestSHA256: hexString(SHA256.hash(data: manifestData)), meterCount: meters.total)

        // Issue.
        var refusals = try RefusalLog(path: outputDirectory.appendingPathComponent("refusals.jsonl").path)
        var reader = try CSRListReader(path: csrPath)
        var seen = Bitset(count: meters.total)
        let engine = IssuanceEngine(signer: signer, store: store, workers: workers)
        let total = meters.total
        let issuingStarted = Date()
        var counts = try await engine.run(
            batch: manifest.batch,
            next: {
                while let line = try reader.next() {
                    switch line {
                    case .refused(let refusal):
                        try refusals.add(refusal)
                    case .request(let number, let eui, let csr):
                        guard let position = meters.position(of: eui) else {
                            try refusals.add(Refusal(line: number, meter: eui.description, reason: "meter \(eui) is not in batch \(manifest.batch)"))
                            continue
                        }
                        seen.set(position)
                        return IssuanceItem(position: number, eui64: eui, csr: csr)
                    }
                }
                return nil
            },
            refused: { try refusals.add($0) },
            progress: { progress.update(phase: "issuing", done: $0.done, total: total, rated: $0.issued) }
        )
        let issuanceSeconds = Date().timeIntervalSince(issuingStarted)
        progress.finish(phase: "issuing")
        for position in 0..<meters.total where !seen.contains(position) {
            let name = meters.name(at: position)
            let reason = meters.eui(at: position) == nil
                ? "\"\(name)\" in the batch manifest is not an EUI-64 (16 hex digits)"
                : "no CSR for meter \(name) in \(csrPath)"
            try refusals.add(Refusal(line: nil, meter: name, reason: reason))
        }
        counts.refused = refusals.count

        // A batch in which no meter holds a certificate signs nothing: no bundles, no enrollment manifest (an empty
        // signed manifest would tell a utility the batch was fine). Its report says why each meter was refused.
        if counts.issued + counts.alreadyIssued == 0 {
            let duration = Date().timeIntervalSince(started)
            let report = BatchReport(
                batch: manifest.batch, manufacturer: manifest.manufacturer, keyGeneration: manifest.keyGenerationMode.rawValue, keyMode: manifest.credentialMode.rawValue, pskMasterKeyLabel: pskMaster?.label,
                meters: meters.total, counts: counts, provisioned: 0, durationSeconds: duration, issuanceSeconds: issuanceSeconds,
                certificatesPerSecond: 0, outputDirectory: outputDirectory.path, refusals: refusals.first, refusalsTotal: refusals.count
            )
            try refusals.close()
            let reportFile = outputDirectory.appendingPathComponent("report.json")
            try writeReport(report, refusalsPath: refusals.path, to: reportFile)
            let first = refusals.first.first.map { "; the first: \($0.description)" } ?? ""
            throw FactoryError(
                .everyMeterRefused,
                "every meter of batch \(manifest.batch) was refused (\(refusals.count) refusals\(first)): nothing was issued and no enrollment manifest was signed; see \(reportFile.path), fix the inputs and run again"
            )
        }

        // Outputs, from the store.
        let provisioned = try await BatchOutput(
            manifest: manifest, authority: authority, store: store, directory: outputDirectory,
            factoryKeys: manifest.keyGenerationMode == .factory ? outputDirectory.appendingPathComponent(FactoryKeys.keyFile).path : nil,
            pskMaster: pskMaster, hardwareType: hardwareType
        ).write(progress: progress)
        try await store.completeBatch(id: manifest.batch, at: Date())

        let duration = Date().timeIntervalSince(started)
        let report = BatchReport(
            batch: manifest.batch, manufacturer: manifest.manufacturer, keyGeneration: manifest.keyGenerationMode.rawValue, keyMode: manifest.credentialMode.rawValue, pskMasterKeyLabel: pskMaster?.label,
            meters: meters.total, counts: counts, provisioned: provisioned, durationSeconds: duration, issuanceSeconds: issuanceSeconds,
            certificatesPerSecond: issuanceSeconds > 0 ? Double(counts.issued) / issuanceSeconds : 0, outputDirectory: outputDirectory.path,
            refusals: refusals.first, refusalsTotal: refusals.count
        )
        try refusals.close()
        try writeReport(report, refusalsPath: refusals.path, to: outputDirectory.appendingPathComponent("report.json"))
        logger.info("batch done", metadata: ["batch": "\(manifest.batch)", "issued": "\(counts.issued)", "refused": "\(counts.refused)"])
        return report
    }

    /// Records the batch; for a `psk` batch first makes its PSK master key in the HSM (or, on a resumed run, finds the
    /// one the batch record names) and records its label with the batch. Two runs of a new batch at once may each make
    /// a key: the store keeps the first record, and the other run destroys its own key and uses the recorded one.
    private func beginBatch(_ manifest: BatchManifest, manifestSHA256: String, meterCount: Int) async throws -> HSMSecretKey? {
        let token = hierarchy.token
        var made: HSMSecretKey?
        if manifest.credentialMode == .psk, try await store.batch(id: manifest.batch)?.pskMasterKeyLabel == nil {
            let label = KeyLabel.unique(KeyLabel.pskMaster, manifest.batch)
            made = try await token.perform { try $0.generatePSKMasterKey(label: label) }
        }
        let record: BatchRecord
        do {
            record = try await store.beginBatch(
                BatchRecord(
                    id: manifest.batch, manufacturer: manifest.manufacturer, manifestSHA256: manifestSHA256, meterCount: Int64(meterCount),
                    pskMasterKeyLabel: made?.label
                )
            )
        } catch {
            if let made { try? await token.perform { try $0.destroy(made) } }
            throw error
        }
        if let made, record.pskMasterKeyLabel != made.label {
            try await token.perform { try $0.destroy(made) }
        }
        guard manifest.credentialMode == .psk else { return nil }
        guard let label = record.pskMasterKeyLabel else {
            throw FactoryError(.input, "batch \(manifest.batch) was begun without a PSK master key: give the psk batch a new id")
        }
        if let made, made.label == label { return made }
        let master = try await token.perform { try $0.findSecretKey(label: label) }
        logger.info("resumed a psk batch with its master key", metadata: ["batch": "\(manifest.batch)", "pskMasterKey": "\(label)"])
        return master
    }

    /// `report.json`: the report with every refusal, streamed from `refusals.jsonl`.
    private func writeReport(_ report: BatchReport, refusalsPath: String, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var summary = report
        summary.refusals = []
        var head = String(decoding: try encoder.encode(summary), as: UTF8.self)
        // Replace the empty list with the full one, streamed.
        guard let range = head.range(of: "\"refusals\" : [\n\n  ]") ?? head.range(of: "\"refusals\" : [\n\n]") ?? head.range(of: "\"refusals\" : []") else {
            throw FactoryError(.output, "cannot lay out report.json")
        }
        let tail = String(head[range.upperBound...])
        head = String(head[..<range.lowerBound])
        let temporary = url.path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data((head + "\"refusals\" : [").utf8)) else {
            throw FactoryError(.output, "cannot write \(url.path)")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        try handle.seekToEnd()
        if let lines = LineReader(path: refusalsPath, maximumLineLength: 1 << 20) {
            var first = true
            while let (_, line) = try lines.next() {
                guard let line, !line.isEmpty else { continue }
                try handle.write(contentsOf: Data((first ? "\n    " : ",\n    ").utf8) + Data(line))
                first = false
            }
        }
        try handle.write(contentsOf: Data(("\n  ]" + tail).utf8))
        try handle.close()
        _ = try? FileManager.default.removeItem(at: url)
        try FileManager.default.moveItem(atPath: temporary, toPath: url.path)
    }
}

/// Refusals appended to `refusals.jsonl` as they happen; the first few kept for display.
struct RefusalLog {
    let path: String
    private let handle: FileHandle
    private(set) var count = 0
    private(set) var first: [Refusal] = []
    private let encoder: JSONEncoder

    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw FactoryError(.output, "cannot create \(path)") }
        self.path = path
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    mutating func add(_ refusal: Refusal) throws {
        count += 1
        if first.count < 20 { first.append(refusal) }
        try handle.write(contentsOf: try encoder.encode(refusal) + Data("\n".utf8))
    }

    func close() throws { try handle.close() }
}

/// One bit per meter of the batch.
struct Bitset {
    private var words: [UInt64]
    init(count: Int) { words = Array(repeating: 0, count: (count + 63) / 64) }
    mutating func set(_ index: Int) { words[index >> 6] |= 1 << UInt64(index & 63) }
    func contains(_ index: Int) -> Bool { words[index >> 6] & (1 << UInt64(index & 63)) != 0 }
}
