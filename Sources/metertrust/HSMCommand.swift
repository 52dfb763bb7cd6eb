import ArgumentParser
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustHSM

struct HSMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hsm", abstract: "Inspect PKCS#11 tokens; initialise development tokens.",
        discussion: """
            EXAMPLES:
              metertrust hsm tokens --module /opt/vendor/lib/pkcs11.so
              export SOFTHSM2_CONF=$PWD/.softhsm/softhsm2.conf
              METERTRUST_HSM_PIN=... METERTRUST_HSM_SO_PIN=... metertrust hsm init-token --label metertrust
            """,
        subcommands: [Tokens.self, InitToken.self, Harden.self]
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
            let slot = try HSMCommand.initializeToken(module: module.module, label: label, pin: pin, securityOfficerPIN: soPIN)
            if output.json {
                try Output.json(["label": label, "slot": "\(slot)"])
            } else {
                Output.line("initialised token \(label) in slot \(slot)")
            }
        }
    }

    /// Initialises the token `label` in the first free slot of `module` (what `hsm init-token` and `setup --dev-token` do).
    static func initializeToken(module: String, label: String, pin: String, securityOfficerPIN: String) throws -> UInt {
        let pkcs11 = try PKCS11Module.load(path: module)
        if try pkcs11.tokens().contains(where: { $0.initialized && $0.label == label }) {
            throw CLIError("a token labelled \(label) already exists")
        }
        try pkcs11.initializeToken(label: label, securityOfficerPIN: Array(securityOfficerPIN.utf8), userPIN: Array(pin.utf8))
        return UInt(try pkcs11.slot(forTokenLabel: label))
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

/// A SoftHSM2 development token in a directory of its own, as `scripts/softhsm-token.sh` makes it: DIR/softhsm2.conf
/// (tokens in DIR/tokens), random user and security officer PINs in DIR/pin and DIR/so-pin (mode 0600 from creation),
/// and the token initialised through ``HSMCommand/initializeToken(module:label:pin:securityOfficerPIN:)``.
/// For development and tests only: a production HSM is initialised by its vendor's ceremony.
struct DevelopmentToken: Encodable {
    var directory: String
    var softHSMConfiguration: String
    var pinFile: String
    var securityOfficerPINFile: String
    var label: String
    /// False when the directory already held this token and its PIN files (a repeated `setup`): it was kept.
    var created: Bool

    /// Makes (or finds) the token and sets SOFTHSM2_CONF in this process, before SoftHSM2 is first loaded.
    static func make(in path: String, label: String, module: String) throws -> DevelopmentToken {
        let directory = URL(fileURLWithPath: path).standardizedFileURL
        let tokens = directory.appendingPathComponent("tokens")
        let configuration = directory.appendingPathComponent("softhsm2.conf").path
        let pinFile = directory.appendingPathComponent("pin").path
        let soPINFile = directory.appendingPathComponent("so-pin").path
        do {
            try FileManager.default.createDirectory(at: tokens, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
            let text = """
                directories.tokendir = \(tokens.path)
                objectstore.backend = file
                log.level = ERROR
                slots.removable = false

                """
            if (try? String(contentsOfFile: configuration, encoding: .utf8)) != text {
                try SecretFile.write(Array(text.utf8), to: configuration)
            }
        } catch let error as any CodedError {
            throw error
        } catch {
            throw CLIError(code: .fileSystem, "cannot make the development token directory \(directory.path): \(error.localizedDescription)")
        }
        setenv("SOFTHSM2_CONF", configuration, 1)
        var made = DevelopmentToken(
            directory: directory.path, softHSMConfiguration: configuration, pinFile: pinFile, securityOfficerPINFile: soPINFile, label: label,
            created: true
        )
        let existing = try PKCS11Module.load(path: module).tokens().contains { $0.initialized && $0.label == label }
        if existing {
            guard FileManager.default.fileExists(atPath: pinFile), FileManager.default.fileExists(atPath: soPINFile) else {
                throw CLIError("\(directory.path) holds a token labelled \(label) but not its PIN files: choose another --dev-token directory or --token-label")
            }
            made.created = false
            return made
        }
        let pin = randomPIN()
        let soPIN = randomPIN()
        try SecretFile.write(Array(pin.utf8), to: pinFile)
        try SecretFile.write(Array(soPIN.utf8), to: soPINFile)
        _ = try HSMCommand.initializeToken(module: module, label: label, pin: pin, securityOfficerPIN: soPIN)
        return made
    }

    /// 24 random letters and digits (about 143 bits).
    private static func randomPIN() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<24).map { _ in alphabet.randomElement(using: &generator)! })
    }
}
