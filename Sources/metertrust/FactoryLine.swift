import Crypto
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustPKI
import MeterTrustStore
import SwiftASN1

/// The demo's factory line: simulated meters and the factory tool going through the five provisioning stages.
struct FactoryLine {
    let directory: URL
    let hierarchy: CAHierarchy
    let store: any ProvisioningStore
    let manufacturer: String
    let deviceType: ASN1ObjectIdentifier

    struct Outcome {
        var report: BatchReport
        var bundles: [ProvisioningBundle]
        var outputDirectory: URL
        /// What a configurator says when used after finalize.
        var lockError: String
    }

    func run(meters count: Int, progress: (String) -> Void) async throws -> Outcome {
        let factory = directory.appendingPathComponent("factory")
        try FileManager.default.createDirectory(at: factory, withIntermediateDirectories: true)
        let image = Data("MeterTrust demo firmware 1.0.0\n".utf8) + Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let first = try EUI64("0024befffe800001")
        let meters = (0..<count).map { EUI64(first.value + UInt64($0)) }
        func meterDirectory(_ eui: EUI64) -> URL { directory.appendingPathComponent("meters/\(eui)") }

        // Stage 1: inject the image. Stage 2: each meter generates its key and CSR.
        var csrList = ""
        let pin = hexString(SHA256.hash(data: try await hierarchy.rootAuthority().certificate.derBytes))
        for eui in meters {
            let configurator = try FactoryConfigurator.injectImage(image, eui64: eui, trustAnchorSHA256: pin, into: meterDirectory(eui))
            csrList += CSRListReader.line(eui64: eui, csr: try configurator.generateIdentity(hardwareType: deviceType))
        }
        // One rogue line, to show a refusal: a CSR that claims to be another meter.
        let rogue = EUI64(first.value + UInt64(count) + 100)
        csrList += CSRListReader.line(eui64: rogue, csr: try MeterIdentity(eui64: first).certificateSigningRequestDER(hardwareType: deviceType))
        try Data(csrList.utf8).write(to: factory.appendingPathComponent("csrs.txt"))
        progress("stages 1-2: \(count) meters imaged, keys generated on the meters, CSRs collected")

        // The platform issues the batch.
        let manifest: [String: Any] = [
            "format": BatchManifest.formatName, "version": 1, "batch": "demo-batch-1", "manufacturer": manufacturer,
            "deviceType": deviceType.dotted, "firmware": ["sha256": hexString(SHA256.hash(data: image)), "name": "demo-1.0.0"],
            "bootstrapServerURI": "coaps+tcp://bootstrap.north-utility.example:5684",
            "meters": ["eui64s": meters.map(\.description) + [rogue.description]], "keyGeneration": "on-device", "csrs": "csrs.txt",
            "parameters": ["meterClass": "residential", "tariffRegion": "north"],
        ]
        let manifestPath = factory.appendingPathComponent("batch.json")
        try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys]).write(to: manifestPath)
        let output = factory.appendingPathComponent("out")
        let report = try await BatchRunner(hierarchy: hierarchy, store: store).run(manifestPath: manifestPath.path, outputDirectory: output)
        progress("factory batch: \(report.counts.issued) issued, \(report.refusalsTotal) refused")

        // Stage 3: the factory tool writes each bundle into its meter; stage 4: the configurator validates and stores
        // it; stage 5: finalize and lock.
        var bundles: [ProvisioningBundle] = []
        let lines = String(decoding: try Data(contentsOf: output.appendingPathComponent("bundles.jsonl")), as: UTF8.self)
        for line in lines.split(separator: "\n") {
            let bundle = try JSONDecoder().decode(ProvisioningBundle.self, from: Data(line.utf8))
            let configurator = FactoryConfigurator(directory: meterDirectory(try EUI64(bundle.eui64)))
            bundles.append(try await configurator.install(bundle: Data(line.utf8)))
            try configurator.finalize()
        }
        progress("stages 3-5: \(bundles.count) bundles installed, validated, finalized; configurators locked")

        var lockError = "(no error)"
        do {
            _ = try FactoryConfigurator(directory: meterDirectory(meters[0])).generateIdentity(hardwareType: deviceType)
        } catch let error as ConfiguratorError {
            lockError = error.message
        }
        return Outcome(report: report, bundles: bundles, outputDirectory: output, lockError: lockError)
    }
}
