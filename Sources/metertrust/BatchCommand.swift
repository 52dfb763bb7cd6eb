import ArgumentParser
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustStore

/// The factory batches the platform holds (the factory line's view is `factory run`).
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "List and show factory batches: manufacturer, meters, provisioned, started and completed.",
        subcommands: [List.self, Show.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the factory batches in id order.",
            discussion: """
                Examples:
                  metertrust batch list
                  metertrust batch list --limit 20 --after acme-2026-11-line2 --json
                """
        )
        @Option(help: "Batches per page.") var limit = 100
        @Option(help: "Start after this batch id (printed with the previous page).") var after: String?
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard limit >= 1 else { throw CLIError(code: .usage, "--limit must be at least 1") }
            let store = try await Context(data).openStore()
            var records = try await store.batches(after: after, limit: limit + 1)
            let more = records.count > limit
            if more { records.removeLast(records.count - limit) }
            var summaries: [BatchSummary] = []
            for record in records { summaries.append(try await BatchSummary(record, store: store)) }
            let next = more ? records.last?.id : nil
            if output.json {
                try Output.json(ListingPage(name: "batches", items: summaries, next: next))
                return
            }
            if summaries.isEmpty { Output.line(after == nil ? "no batches yet: see metertrust factory run" : "no more batches") }
            for summary in summaries { Output.line(summary.textLine) }
            if let next { Output.line("more: add --after \(next)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one batch: its counts, and from the audit log its runs, refusals and output directory.",
            discussion: """
                Example: metertrust batch show acme-2026-11-line3 --json
                The refusals and the output directory are those the audit log recorded for the batch's last run that \
                recorded them (factory run); each refused meter is named in OUTPUT/report.json.
                """
        )
        @Argument(help: "The batch id (see metertrust batch list).") var id: String
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let store = try await Context(data).openStore()
            guard let record = try await store.batch(id: id) else {
                throw CLIError(code: .notFound, "there is no batch \(id): see metertrust batch list")
            }
            let details = BatchDetails(summary: try await BatchSummary(record, store: store), runs: try await BatchDetails.runs(of: id, in: store))
            if output.json {
                try Output.json(details)
            } else {
                details.textLines().forEach { Output.line($0) }
            }
        }
    }
}

/// A batch as the store holds it.
struct BatchSummary: Encodable {
    var id: String
    var manufacturer: String
    var meterCount: Int64
    /// Device identity certificates the store holds for the batch.
    var provisioned: Int
    var startedAt: Date
    var completedAt: Date?
    var manifestSHA256: String

    init(_ record: BatchRecord, store: any MeterTrustStore) async throws {
        id = record.id
        manufacturer = record.manufacturer
        meterCount = record.meterCount
        provisioned = try await store.batchCertificateCount(batch: record.id)
        startedAt = record.createdAt
        completedAt = record.completedAt
        manifestSHA256 = record.manifestSHA256
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(manufacturer, forKey: .manufacturer)
        try container.encode(meterCount, forKey: .meterCount)
        try container.encode(provisioned, forKey: .provisioned)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(completedAt, forKey: .completedAt)  // null while not completed
        try container.encode(manifestSHA256, forKey: .manifestSHA256)
    }

    enum CodingKeys: String, CodingKey { case id, manufacturer, meterCount, provisioned, startedAt, completedAt, manifestSHA256 }

    var textLine: String {
        "\(id)  manufacturer \(manufacturer)  \(provisioned)/\(meterCount) provisioned  started \(Output.timestamp.string(from: startedAt))  \(completedAt.map { "completed \(Output.timestamp.string(from: $0))" } ?? "not completed")"
    }
}

/// `batch show`: the batch and what the audit log recorded of its runs.
struct BatchDetails: Encodable {
    /// One `factory run` of the batch that ended, as its audit entry records it.
    struct Run: Encodable {
        var auditIndex: Int64
        var time: String
        var actor: String
        var outcome: String
        var issued: Int?
        var alreadyIssued: Int?
        var refused: Int?
        var outputDirectory: String?
    }

    var summary: BatchSummary
    var runs: [Run]

    /// The runs of batch `id` the audit log records (entries of `batch.run` with the batch's id), oldest first.
    static func runs(of id: String, in store: any AuditStore) async throws -> [Run] {
        var runs: [Run] = []
        var position: Int64 = -1
        while true {
            let rows = try await store.auditEntries(after: position, limit: 1000)
            guard let last = rows.last else { return runs }
            for row in rows {
                guard let entry = AuditEntry.decode(row.entry), entry.action == "batch.run", entry.details["batch"] == id,
                    entry.outcome != .started
                else { continue }
                runs.append(
                    Run(
                        auditIndex: entry.index, time: entry.time, actor: entry.actor, outcome: entry.outcome.rawValue,
                        issued: entry.details["issued"].flatMap { Int($0) }, alreadyIssued: entry.details["alreadyIssued"].flatMap { Int($0) },
                        refused: entry.details["refused"].flatMap { Int($0) }, outputDirectory: entry.details["output"]
                    )
                )
            }
            position = last.position
        }
    }

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        let last = lastRecorded
        try container.encode(last?.refused, forKey: .refused)
        try container.encode(last?.outputDirectory, forKey: .outputDirectory)
        try container.encode(runs, forKey: .runs)
    }

    enum CodingKeys: String, CodingKey { case refused, outputDirectory, runs }

    /// The last run whose entry recorded its counts (a run that failed midway records none).
    var lastRecorded: Run? { runs.last { $0.refused != nil } }

    func textLines() -> [String] {
        let s = summary
        var lines = [
            "batch \(s.id) for manufacturer \(s.manufacturer)",
            "  meters in manifest:  \(s.meterCount)",
            "  provisioned:         \(s.provisioned)",
            "  started:             \(Output.timestamp.string(from: s.startedAt))",
            "  completed:           \(s.completedAt.map { Output.timestamp.string(from: $0) } ?? "not yet")",
            "  manifest SHA-256:    \(s.manifestSHA256)",
        ]
        if let last = lastRecorded {
            lines.append("  refused (last run):  \(last.refused.map(String.init) ?? "not recorded")")
            lines.append("  outputs:             \(last.outputDirectory.map { DisplayText.escaped($0) } ?? "not recorded")")
        } else {
            lines.append("  refused, outputs:    not recorded (no run in the audit log recorded them)")
        }
        if !runs.isEmpty {
            lines.append("runs (audit log):")
            for run in runs {
                lines.append("  #\(run.auditIndex)  \(run.time)  \(run.outcome)  issued \(run.issued.map(String.init) ?? "?"), earlier \(run.alreadyIssued.map(String.init) ?? "?"), refused \(run.refused.map(String.init) ?? "?")  by \(DisplayText.escaped(run.actor))")
            }
        }
        return lines
    }
}
