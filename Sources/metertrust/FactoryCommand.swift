import ArgumentParser
import Foundation
import MeterTrustAdmin
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

                Exit status 0: every meter of the batch is provisioned. 6 (partial): some were issued, others refused \
                by name in the report (their bundles and the enrollment manifest cover the issued ones). 1 \
                (factory.every-meter-refused): no meter was issued, so nothing was signed: no bundles, no enrollment \
                manifest, only report.json. The rate shown is certificates issued / issuance wall time, in the \
                progress bar and the summary alike.

                EXAMPLES:
                  metertrust factory run --manifest batch.json --out batch-out
                  metertrust factory run --manifest batch.json --out batch-out \\
                      --json --quiet > report.json; echo $?
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
            // After the bootstrap ceremony a manufacturer is registered under quorum: the advice says so.
            let underQuorum = try await DirectAuthorityCreation.isUnderQuorum(store: store, audit: try context.auditLog(store: store, token: hierarchy.token))
            let runner = BatchRunner(hierarchy: hierarchy, store: store, workers: workers, registration: underQuorum ? .underQuorum : .direct)
            let report = try await context.audited("batch.run", subject: manifest, store: store, token: hierarchy.token) {
                let report = try await runner.run(
                    manifestPath: manifest, outputDirectory: URL(fileURLWithPath: out).standardizedFileURL,
                    progress: TerminalProgress(quiet: quiet)
                )
                let details = [
                    "batch": report.batch, "manufacturer": report.manufacturer, "issued": "\(report.counts.issued)",
                    "alreadyIssued": "\(report.counts.alreadyIssued)", "refused": "\(report.refusalsTotal)", "output": report.outputDirectory,
                    "keyMode": report.keyMode,
                ].merging(report.pskMasterKeyLabel.map { ["pskMasterKey": $0] } ?? [:]) { $1 }
                return (report, details)
            }
            if output.json {
                try Output.json(report)
            } else {
                report.textLines().forEach { Output.line($0) }
            }
            // Some meters issued, some refused: a status of its own, so that a script cannot take it for a full batch.
            if report.refusalsTotal > 0 { throw CommandOutcome(status: .partial) }
        }
    }

    struct Bundle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bundle", abstract: "Extract one meter's provisioning bundle from a batch's bundles.jsonl.",
            discussion: """
                Without --out the bundle (one JSON document) goes to stdout, with or without --json. With --out it is \
                written there (mode 0600: it may hold the meter's private key or its PSK) and a line says so (with \
                --json: {"eui64","out","privateKey","presharedKey"}, the last two booleans).

                EXAMPLES:
                  metertrust factory bundle --batch-dir batch-out \\
                      --eui64 0024befffe800001 --out bundle.json
                """
        )
        @Option(name: .customLong("batch-dir"), help: "The batch's output directory.") var batchDirectory: String
        @Option(help: "The meter's EUI-64.") var eui64: String
        @Option(help: "Write the bundle here (default: stdout).") var out: String?
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        struct Written: Encodable {
            var eui64: String
            var out: String
            var privateKey: Bool
            var presharedKey: Bool
        }

        func run() async throws {
            let eui = try EUI64(eui64)
            let path = URL(fileURLWithPath: batchDirectory).appendingPathComponent("bundles.jsonl").path
            guard let bundle = try BundleFile.find(eui, in: path) else {
                throw CLIError(code: .notFound, "no bundle for meter \(eui) in \(path): the meter was refused or is not in this batch (see report.json)")
            }
            let decoded = try? JSONDecoder().decode(ProvisioningBundle.self, from: bundle)
            let carriesKey = decoded?.privateKey != nil
            let carriesPSK = decoded?.presharedKey != nil
            // Handing out a bundle (which may hold the meter's private key) is recorded where a deployment is at hand.
            if let context = Context.ifPresent(data) {
                try await context.audit(
                    AuditEvent(
                        actor: context.actor, action: "factory.bundle", subject: eui.description,
                        details: [
                            "batchDirectory": batchDirectory, "privateKey": carriesKey ? "included" : "none",
                            "presharedKey": carriesPSK ? "included" : "none", "out": out ?? "stdout",
                        ]
                    ),
                    store: try await context.openStore()
                )
            }
            if let out {
                // A bundle may carry the meter's private key (factory-keys mode): 0600 from creation.
                try SecretFile.write(Array(bundle), to: out)
                if output.json {
                    try Output.json(Written(eui64: eui.description, out: out, privateKey: carriesKey, presharedKey: carriesPSK))
                } else {
                    let secrets = [carriesKey ? "the meter's private key" : nil, carriesPSK ? "its PSK" : nil].compactMap { $0 }
                    Output.line("wrote the bundle of meter \(eui) to \(out) (mode 0600\(secrets.isEmpty ? "" : ", it holds " + secrets.joined(separator: " and ")))")
                }
            } else {
                FileHandle.standardOutput.write(bundle + Data("\n".utf8))
            }
        }
    }
}

extension BatchReport {
    func textLines() -> [String] {
        var lines = [
            "batch \(batch) for manufacturer \(manufacturer) (keys generated \(keyGeneration == "factory" ? "by the factory tool" : "on the meters"); key mode \(keyMode))",
            "  meters in manifest:  \(meters)",
            "  issued now:          \(counts.issued)",
            "  issued earlier:      \(counts.alreadyIssued)",
            "  refused:             \(refusalsTotal)",
            "  provisioned (total): \(provisioned)",
            "  time:                \(String(format: "%.2f", durationSeconds)) s, of which issuing \(String(format: "%.2f", issuanceSeconds)) s",
            "  rate:                \(String(format: "%.0f", certificatesPerSecond)) certificates/s (issued / issuance wall time)",
            "  outputs:             \(outputDirectory)",
        ]
        if let pskMasterKeyLabel {
            lines.append("  PSK master key:      \(pskMasterKeyLabel) (in the HSM; each meter's PSK is in its bundle only, bundles.jsonl is 0600)")
        }
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
