import ArgumentParser
import Foundation
import MeterTrustCore

@main
struct MeterTrustCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metertrust",
        abstract: "Trust infrastructure for smart-meter roll-outs: HSM-backed PKI and device lifecycle.",
        discussion: """
            The HSM PIN is read from the environment variable named in the configuration (default \
            METERTRUST_HSM_PIN) or from a 0600 PIN file; never from the command line.
            """,
        subcommands: [
            SetupCommand.self, InitCommand.self, CACommand.self, IssueCommand.self, CertCommand.self, FactoryCommand.self, MeterCommand.self,
            BenchCommand.self, AuditCommand.self, AdminCommand.self, BackupCommand.self, HSMCommand.self, DemoCommand.self, ErrorsCommand.self,
        ]
    )

    /// Runs the command. A usage error is one `error:` line and exit status 2; a domain error one `error:` line and
    /// the exit status its code maps to (``ExitStatus``); never a stack trace.
    static func main() async {
        Logging.bootstrap()
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
        } catch {
            if !(error is any CodedError) && exitCode(for: error) != .failure { exitForArgumentParser(error) }
            Output.error("\(error)")
            Foundation.exit(ExitStatus.for(ExitStatus.code(of: error)).rawValue)
        }
    }

    /// ArgumentParser's own outcomes: help and version exit 0; a usage error is one line and exit status 2.
    static func exitForArgumentParser(_ error: any Error) -> Never {
        guard exitCode(for: error) != .success else { exit(withError: error) }
        Output.error(message(for: error) + " (see metertrust help)")
        Foundation.exit(ExitStatus.usage.rawValue)
    }
}
