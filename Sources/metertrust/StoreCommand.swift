import ArgumentParser
import Foundation
import MeterTrustCore
import MeterTrustStore
import MeterTrustStorePostgres
import MeterTrustStoreSQLite

/// The store itself: its schema, what it holds, moving to PostgreSQL.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Show, migrate or copy the store (SQLite file or PostgreSQL database).",
        subcommands: [Info.self, Migrate.self, Copy.self]
    )

    struct Report: Encodable {
        var backend: String
        var location: String
        var migrations: [String]
        var counts: StoreCopy.Counts?
    }

    static func print(_ report: Report, json: Bool, verb: String) throws {
        if json {
            try Output.json(report)
            return
        }
        Output.line("\(verb)\(report.location) (\(report.backend)), migrations: \(report.migrations.joined(separator: ", "))")
        if let counts = report.counts {
            Output.line(
                "  \(counts.certificateAuthorities) CAs, \(counts.certificates) certificates, \(counts.batches) batches, \(counts.auditEntries) audit entries (\(counts.auditCheckpoints) checkpoints), \(counts.custodians) custodians, \(counts.adminRequests) requests, \(counts.revocations) revocations"
            )
        }
    }

    struct Info: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "info",
            abstract: "Which store the data directory uses, its migrations and what it holds (counted).",
            discussion: "Example: metertrust store info --json"
        )
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            let (backend, location) = StoreOpening.describe(context.configuration, in: context.dataDirectory)
            let report = Report(
                backend: backend, location: location, migrations: try await store.appliedMigrations(), counts: try await StoreCopy.count(store)
            )
            try StoreCommand.print(report, json: output.json, verb: "store ")
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate",
            abstract: "Apply the schema migrations this metertrust knows to the store (idempotent).",
            discussion: """
                PostgreSQL: run it on one node when upgrading, before the other nodes start the new version (they \
                refuse a store that lacks a migration they know). Concurrent runs are safe: a transaction-scoped \
                advisory lock orders them. SQLite: every command migrates its own file; this does it explicitly.

                Example: metertrust store migrate --data-dir /var/lib/metertrust --json
                """
        )
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let store: any MeterTrustStore
            if let postgres = context.configuration.postgres {
                let opened = try await StoreOpening.openPostgres(postgres)
                try await opened.migrate()
                store = opened
            } else {
                store = try await context.openStore()
            }
            let (backend, location) = StoreOpening.describe(context.configuration, in: context.dataDirectory)
            try StoreCommand.print(Report(backend: backend, location: location, migrations: try await store.appliedMigrations()), json: output.json, verb: "migrated ")
        }
    }

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "copy",
            abstract: "Copy an SQLite store into an empty PostgreSQL database, check it, and optionally switch to it.",
            discussion: """
                Everything is copied (CAs, certificates, batches, device keys, the audit log and its checkpoints, \
                custodians, policies, requests and approvals, the backup key, revocations); then both stores are \
                counted table by table and the target's audit log is verified against the pinned root. A target that \
                holds anything is refused. The password comes from $METERTRUST_STORE_PASSWORD or --to-password-file. \
                Stop every process that writes to the source first.

                EXAMPLES:
                  metertrust store copy --data-dir /var/lib/metertrust \\
                      --to 'postgres://metertrust@db.example/metertrust' --to-password-file /etc/metertrust/db-password --switch
                  metertrust store copy --from old.sqlite --to 'postgres://metertrust@/metertrust?host=/run/postgresql'
                """
        )
        @Option(help: "The SQLite file to copy (default: the data directory's store).") var from: String?
        @Option(help: "The target: a postgres:// URL (no password in it) of an empty database.") var to: String
        @Option(name: .customLong("to-password-file"), help: "File (mode 0600) holding the target's password.") var toPasswordFile: String?
        @Option(name: .customLong("to-password-env"), help: "Environment variable holding the target's password.")
        var toPasswordEnvironmentVariable = StorePassword.defaultEnvironmentVariable
        @Flag(help: "Afterwards, make the data directory use the target (metertrust.json rewritten).") var `switch` = false
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        struct Result: Encodable {
            var source: String
            var target: String
            var counts: StoreCopy.Counts
            var auditVerified: Bool
            var switched: Bool
        }

        func run() async throws {
            guard PostgresStoreLocation.isPostgresURL(to) else { throw CLIError(code: .usage, "--to takes a postgres:// URL, not \(to)") }
            let context = Context.ifPresent(data)
            if `switch` && context == nil { throw CLIError(code: .usage, "--switch needs the data directory (--data-dir) whose store is copied") }
            let sourcePath: String
            if let from {
                sourcePath = URL(fileURLWithPath: from).standardizedFileURL.path
            } else if let context, context.configuration.postgres == nil {
                sourcePath = context.configuration.storePath(in: context.dataDirectory)
            } else {
                throw CLIError(code: .usage, "give --from FILE.sqlite, or --data-dir of a deployment whose store is SQLite")
            }
            guard FileManager.default.fileExists(atPath: sourcePath) else { throw CLIError(code: .fileSystem, "there is no SQLite store at \(sourcePath)") }
            let settings = PostgresSettings(
                url: to, passwordFile: toPasswordFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
                passwordEnvironmentVariable: toPasswordEnvironmentVariable
            )
            let source = try SQLiteStore(path: sourcePath)
            try await source.migrate()
            let target = try await StoreOpening.openPostgres(settings)
            try await target.migrate()
            let progress = TerminalProgress()
            let counts = try await StoreCopy(source: source, target: target).run { stage, done in
                progress.update(phase: "copying \(stage)", done: done, total: 0)
            }
            progress.finish(phase: "copied")
            var auditVerified = false
            if let context, context.configuration.audit != nil {
                // The copy's log, verified as `audit verify --offline` would: every checkpoint signature, the tree.
                _ = try await AuditVerification.verify(store: target, context: context)
                auditVerified = true
            }
            if `switch`, let context {
                var configuration = context.configuration
                configuration.postgres = settings
                try configuration.write(to: context.dataDirectory)
            }
            let result = Result(
                source: sourcePath, target: target.location.description, counts: counts, auditVerified: auditVerified, switched: `switch`
            )
            if output.json {
                try Output.json(result)
            } else {
                Output.line("copied \(sourcePath) to \(result.target): \(counts.certificates) certificates, \(counts.auditEntries) audit entries, \(counts.custodians) custodians, \(counts.adminRequests) requests; counts match")
                Output.line(auditVerified ? "the copied audit log verifies against the pinned root" : "no audit log to verify (no --data-dir with an audit key)")
                if `switch` { Output.line("\(context!.dataDirectory.path) now uses \(result.target)") }
            }
        }
    }
}
