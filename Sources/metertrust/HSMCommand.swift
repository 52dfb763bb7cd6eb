import ArgumentParser
import Foundation
import MeterTrustHSM

struct HSMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hsm", abstract: "Inspect PKCS#11 tokens; initialise development tokens.", subcommands: [Tokens.self, InitToken.self]
    )

    struct ModuleOptions: ParsableArguments {
        @Option(help: "PKCS#11 module.")
        var module = ProcessInfo.processInfo.environment["METERTRUST_HSM_MODULE"] ?? HSMConfiguration.defaultModulePath
    }

    struct Tokens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "tokens", abstract: "List the slots that hold a token.")
        @OptionGroup var module: ModuleOptions
        @OptionGroup var output: OutputOptions

        struct Token: Encodable {
            var slot: UInt
            var label: String
            var initialized: Bool
        }

        func run() async throws {
            let tokens = try PKCS11Module.load(path: module.module).tokens().map {
                Token(slot: UInt($0.slot), label: $0.label, initialized: $0.initialized)
            }
            if output.json {
                try Output.json(tokens)
            } else {
                for token in tokens {
                    Output.line("slot \(token.slot): \(token.initialized ? token.label : "(free)")")
                }
            }
        }
    }

    struct InitToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init-token",
            abstract: "Initialise a token in the first free slot (SoftHSM2 development and test tokens).",
            discussion: """
                The user PIN is read from --pin-env (default METERTRUST_HSM_PIN) and the security officer PIN from \
                METERTRUST_HSM_SO_PIN; neither is ever taken from the command line. Production HSMs are initialised by \
                their vendor's ceremony, not by this command.
                """
        )
        @OptionGroup var module: ModuleOptions
        @Option(help: "Label of the new token.") var label: String
        @Option(name: .customLong("pin-env"), help: "Environment variable holding the new user PIN.")
        var pinEnvironmentVariable = PINSource.defaultEnvironmentVariable
        @Option(name: .customLong("so-pin-env"), help: "Environment variable holding the new security officer PIN.")
        var securityOfficerPINVariable = "METERTRUST_HSM_SO_PIN"
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            guard let pin = environment[pinEnvironmentVariable], pin.count >= 4 else {
                throw CLIError("set \(pinEnvironmentVariable) to the new token's user PIN (4 characters or more)")
            }
            guard let soPIN = environment[securityOfficerPINVariable], soPIN.count >= 4 else {
                throw CLIError("set \(securityOfficerPINVariable) to the new token's security officer PIN (4 characters or more)")
            }
            let pkcs11 = try PKCS11Module.load(path: module.module)
            if try pkcs11.tokens().contains(where: { $0.initialized && $0.label == label }) {
                throw CLIError("a token labelled \(label) already exists")
            }
            try pkcs11.initializeToken(label: label, securityOfficerPIN: Array(soPIN.utf8), userPIN: Array(pin.utf8))
            let slot = try pkcs11.slot(forTokenLabel: label)
            if output.json {
                try Output.json(["label": label, "slot": "\(slot)"])
            } else {
                Output.line("initialised token \(label) in slot \(slot)")
            }
        }
    }
}
