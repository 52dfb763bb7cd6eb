import ArgumentParser
import Foundation
import MeterTrustCore

@main
struct MeterTrustCommand: AsyncParsableCommand {
    /// The one version string: `metertrust --version [--json]`, and the `version` field of `init`, `demo` and
    /// `bench` JSON documents.
    static let version = "0.12.0"

    static let configuration = CommandConfiguration(
        commandName: "metertrust",
        abstract: "Trust infrastructure for smart-meter roll-outs: HSM-backed PKI and device lifecycle.",
        discussion: """
            The HSM PIN is read from the environment variable named in the configuration (default \
            METERTRUST_HSM_PIN) or from a 0600 PIN file; never from the command line.

            Every command takes --json: its result is one JSON document on stdout, and an error one JSON object \
            {"error":{"code":"domain.reason","message":"..."}} on stderr. Exit statuses: 0 done, 1 refused, 2 usage, \
            3 unavailable, 4 denied, 5 integrity, 6 partial (a batch issued some meters and refused others), 70 \
            internal; metertrust errors lists every code.

            EXAMPLES:
              metertrust init --data-dir /var/lib/metertrust --token-label metertrust
              metertrust ca create-root --name national \\
                  --organization "National Meter Operator"
              metertrust factory run --manifest batch.json --out batch-out
              metertrust audit verify --json
              metertrust --generate-completion-script bash \\
                  > /etc/bash_completion.d/metertrust
            """,
        version: version,
        subcommands: [
            SetupCommand.self, InitCommand.self, CACommand.self, IssueCommand.self, CertCommand.self, FactoryCommand.self, BatchCommand.self, MeterCommand.self,
            StoreCommand.self, RevokeCommand.self, BenchCommand.self, AuditCommand.self, AdminCommand.self, ServeCommand.self, ServerCertCommand.self, AccountCommand.self, EnrollCommand.self, PSKCommand.self, BackupCommand.self, HSMCommand.self, DemoCommand.self, ErrorsCommand.self,
        ]
    )

    /// Runs the command. A usage error is one `error:` line and exit status 2; a domain error one `error:` line and
    /// the exit status its code maps to (``ExitStatus``); never a stack trace. With `--json` each is one JSON object
    /// on stderr instead (``Output/failure(code:message:)``).
    static func main() async {
        Logging.bootstrap()
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--version", arguments.dropFirst().allSatisfy({ $0 == "--json" }) {
            if Output.jsonRequested { try? Output.json(["version": version]) } else { Output.line("metertrust \(version)") }
            Foundation.exit(ExitStatus.success.rawValue)
        }
        var command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exitForArgumentParser(error)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as ExitCode {
            exit(withError: error)
        } catch let error as CommandOutcome {
            Foundation.exit(error.status.rawValue)
        } catch {
            if !(error is any CodedError) && exitCode(for: error) != .failure { exitForArgumentParser(error) }
            Foundation.exit(Output.failure(error).rawValue)
        }
    }

    /// ArgumentParser's own outcomes: help and version exit 0; a usage error is one line (or, with `--json`, one
    /// JSON object with code `edge.usage`) and exit status 2.
    static func exitForArgumentParser(_ error: any Error) -> Never {
        guard exitCode(for: error) != .success else { exit(withError: error) }
        // ArgumentParser's message can carry a "Help:" or "Usage:" tail on further lines: the first line says it all.
        let first = message(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "the command line is not valid"
        Output.failure(code: .usage, message: first + " (see metertrust help)")
        Foundation.exit(ExitStatus.usage.rawValue)
    }
}

/// A command that has printed its result and ends with a status other than 0 without being an error (a batch that
/// issued some meters and refused others: ``ExitStatus/partial``).
struct CommandOutcome: Error {
    let status: ExitStatus
}
