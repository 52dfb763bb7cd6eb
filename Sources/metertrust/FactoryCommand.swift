import ArgumentParser
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustPKI

struct FactoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "factory",
        abstract: "Provision batches of meters for a registered manufacturer.",
        subcommands: [Run.self, Bundle.self]
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Issue a batch: device identity certificates, provisioning bundles, a signed enrollment manifest.",
            discussion: """
                The batch manifest (format metertrust-batch v1, see README) names the manufacturer, device type, firmware \
                digest, bootstrap server and meters. Running the same manifest again resumes it: meters already issued \
                are not issued again. Outputs go to --out: bundles.jsonl, enrollment-manifest.json(.sig), report.json.
                """
        )
        @Option(help: "Batch manifest (JSON).") var manifest: String
        @Option(help: "Output directory.") var out: String
        @Option(help: "Parallel signers (default: the HSM session count).") var workers: Int?
        @Flag(help: "No progress output.") var quiet = false
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let (store, hierarchy) = try await context.platform()
            let runner = BatchRunner(hierarchy: hierarchy, store: store, workers: workers)
            let report = try await context.audited("batch.run", subject: manifest, store: store, token: hierarchy.token) {
                let report = try await runner.run(
                    manifestPath: manifest, outputDirectory: URL(fileURLWithPath: out).standardizedFileURL,
                    progress: TerminalProgress(quiet: quiet)
                )
                let details = [
                    "batch": report.batch, "manufacturer": report.manufacturer, "issued": "\(report.counts.issued)",
                    "alreadyIssued": "\(report.counts.alreadyIssued)", "refused": "\(report.refusalsTotal)", "output": report.outputDirectory,
                ]
                return (report, details)
            }
            if output.json {
                try Output.json(report)
            } else {
                report.textLines().forEach { Output.line($0) }
            }
        }
    }

    struct Bundle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bundle", abstract: "Extract one meter's provisioning bundle from a batch's bundles.jsonl."
        )
        @Option(name: .customLong("batch-dir"), help: "The batch's output directory.") var batchDirectory: String
        @Option(help: "The meter's EUI-64.") var eui64: String
        @Option(help: "Write the bundle here (default: stdout).") var out: String?
        @OptionGroup var data: DataDirectoryOptions

        func run() async throws {
            let eui = try EUI64(eui64)
            let path = URL(fileURLWithPath: batchDirectory).appendingPathComponent("bundles.jsonl").path
            guard let bundle = try BundleFile.find(eui, in: path) else {
                throw CLIError(code: .notFound, "no bundle for meter \(eui) in \(path): the meter was refused or is not in this batch (see report.json)")
            }
            // Handing out a bundle (which may hold the meter's private key) is recorded where a deployment is at hand.
            if let context = Context.ifPresent(data) {
                let carriesKey = (try? JSONDecoder().decode(ProvisioningBundle.self, from: bundle))?.privateKey != nil
                try await context.audit(
                    AuditEvent(
                        actor: context.actor, action: "factory.bundle", subject: eui.description,
                        details: ["batchDirectory": batchDirectory, "privateKey": carriesKey ? "included" : "none", "out": out ?? "stdout"]
                    ),
                    store: try await context.openStore()
                )
            }
            if let out {
                // A bundle may carry the meter's private key (factory-keys mode): 0600 from creation.
                try SecretFile.write(Array(bundle), to: out)
            } else {
                FileHandle.standardOutput.write(bundle + Data("\n".utf8))
            }
        }
    }
}

extension BatchReport {
    func textLines() -> [String] {
        var lines = [
            "batch \(batch) for manufacturer \(manufacturer) (keys generated \(keyGeneration == "factory" ? "by the factory tool" : "on the meters"))",
            "  meters in manifest:  \(meters)",
            "  issued now:          \(counts.issued)",
            "  issued earlier:      \(counts.alreadyIssued)",
            "  refused:             \(refusalsTotal)",
            "  provisioned (total): \(provisioned)",
            "  time:                \(String(format: "%.2f", durationSeconds)) s (\(String(format: "%.0f", certificatesPerSecond)) certificates/s)",
            "  outputs:             \(outputDirectory)",
        ]
        if !refusals.isEmpty {
            lines.append("refusals:")
            lines += refusals.map { "  - \($0.description)" }
            if refusalsTotal > refusals.count { lines.append("  ... \(refusalsTotal - refusals.count) more in report.json") }
        }
        return lines
    }
}

/// Finds one meter's line in `bundles.jsonl` without loading the file.
enum BundleFile {
    static func find(_ eui: EUI64, in path: String) throws -> Data? {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError(code: .fileSystem, "cannot read \(path)") }
        defer { try? handle.close() }
        let needle = Data("\"eui64\":\"\(eui)\"".utf8)
        var pending = Data()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            pending.append(chunk)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex..<newline]
                if line.range(of: needle) != nil { return Data(line) }
                pending.removeSubrange(pending.startIndex...newline)
            }
        }
        return pending.range(of: needle) != nil ? pending : nil
    }
}
