import ArgumentParser
import Foundation
import MeterTrustAudit
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore

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
            InitCommand.self, CACommand.self, IssueCommand.self, CertCommand.self, FactoryCommand.self, MeterCommand.self,
            BenchCommand.self, AuditCommand.self, AdminCommand.self, BackupCommand.self, HSMCommand.self, DemoCommand.self,
        ]
    )

    /// Runs the command; a domain error becomes one line on stderr and exit status 1, never a stack trace.
    static func main() async {
        Logging.bootstrap()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as PKIError {
            fail(error.message)
        } catch let error as HSMError {
            fail(error.message)
        } catch let error as StoreError {
            fail(error.message)
        } catch let error as FactoryError {
            fail(error.message)
        } catch let error as ConfiguratorError {
            fail(error.message)
        } catch let error as AuditError {
            fail(error.message)
        } catch let error as QuorumError {
            fail(error.message)
        } catch let error as CLIError {
            fail(error.description)
        } catch {
            exit(withError: error)
        }
    }

    static func fail(_ message: String) -> Never {
        Output.error(message)
        Foundation.exit(1)
    }
}
