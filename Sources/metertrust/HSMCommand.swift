import ArgumentParser
import Foundation
import MeterTrustAudit
import MeterTrustHSM

struct HSMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hsm", abstract: "Inspect PKCS#11 tokens; initialise development tokens.", subcommands: [Tokens.self, InitToken.self, Harden.self]
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

    struct Harden: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what every MeterTrust object on the token may do; make public halves from earlier versions private.",
            discussion: """
                Lists the private, public and secret key objects MeterTrust made, with the attributes that decide who \
                can use, change, copy or destroy them, and what to do about any that an earlier version made looser. \
                Public halves that are public objects (made before key custody) are re-created as private objects, so a \
                session without a PIN can no longer see, copy or destroy them, and private keys lose the decrypt, \
                unwrap and derive abilities a token grants by default; --dry-run only reports. A backup key that can \
                unwrap cannot be fixed in place: the backup.reshare ceremony replaces it.
                """
        )
        @Flag(help: "Report only; change nothing.") var dryRun = false
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        struct Report: Encodable {
            var madePrivate: [String]
            var abilitiesRemoved: [String]
            var objects: [HSMObjectAttributes]
        }

        func run() async throws {
            let context = try Context(data)
            let token = try context.openToken()
            let changed = dryRun ? HSMToken.Hardening() : try await token.perform { try $0.harden() }
            let objects = try await token.perform { try $0.objectInventory() }
            if changed != HSMToken.Hardening() {
                let store = try await context.openStore()
                try await context.audit(
                    AuditEvent(
                        actor: context.actor, action: "hsm.harden", subject: token.label, outcome: .success,
                        details: ["madePrivate": changed.madePrivate.joined(separator: ","), "abilitiesRemoved": changed.abilitiesRemoved.joined(separator: ",")]
                    ),
                    store: store, token: token
                )
            }
            if output.json {
                try Output.json(Report(madePrivate: changed.madePrivate, abilitiesRemoved: changed.abilitiesRemoved, objects: objects))
                return
            }
            for label in changed.madePrivate { Output.line("made private: public half of \(label)") }
            for label in changed.abilitiesRemoved { Output.line("can no longer decrypt, unwrap or derive: \(label)") }
            for object in objects {
                let flags = [
                    object.isPrivate ? "private" : "PUBLIC", object.isModifiable ? "modifiable" : nil, object.isCopyable ? "copyable" : nil,
                    object.canUnwrapDecryptOrDerive ? "UNWRAP/DECRYPT/DERIVE" : nil,
                ].compactMap { $0 }.joined(separator: ", ")
                Output.line("\(object.kind.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(object.label)  [\(flags)]\(object.finding.map { "\n    -> \($0)" } ?? "")")
            }
            let findings = objects.filter { $0.finding != nil }.count
            Output.line(findings == 0 ? "every object is as tight as this version makes it" : "\(findings) object(s) need attention (see above)")
        }
    }
}
