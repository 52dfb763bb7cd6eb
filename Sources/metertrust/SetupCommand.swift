import ArgumentParser
import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI

/// `metertrust setup`: from nothing to a working platform, in the spirit of `step ca init`.
///
/// Every step is the code its own command runs: ``DevelopmentToken`` (`hsm init-token`), ``InitCommand/initialize``
/// (`init`), ``CACommand/createAuthority`` (`ca create-*`), ``AuditCommand/Init/initialize`` (`audit init`).
struct SetupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Set up a platform: development token if asked, init, root CA, audit log, Admin CA, Service CA, first manufacturer and operational CA.",
        discussion: """
            On a terminal it asks for every value, with defaults; otherwise (stdin not a terminal, or --non-interactive) \
            it takes them from the options and their defaults. The order is init, root CA, audit init (so every later CA \
            is in the log), Admin CA, Service CA, then --manufacturer and --operational if given. It ends with the commands of the \
            custodian ceremony that comes next. PINs are never asked for or taken from the command line: --dev-token DIR \
            makes a SoftHSM2 development token with random PINs in DIR/pin and DIR/so-pin (mode 0600); otherwise the PIN \
            comes from --pin-env (default METERTRUST_HSM_PIN) or --pin-file.

            Examples:
              metertrust setup --dev-token .softhsm --data-dir ./data --organization "Example Utility" --non-interactive
              metertrust setup --data-dir /var/lib/metertrust --token-label metertrust --module /opt/vendor/lib/pkcs11.so \\
                  --pin-file /etc/metertrust/pin --root national --manufacturer acme --operational north --json
            """
    )

    @OptionGroup var dataDirectory: DataDirectoryOptions
    @Option(name: .customLong("dev-token"), help: "Make a SoftHSM2 development token in this directory (softhsm2.conf, tokens/, pin, so-pin).")
    var devToken: String?
    @Option(help: "PKCS#11 module (default: $METERTRUST_HSM_MODULE or SoftHSM2's).") var module: String?
    @Option(name: .customLong("token-label"), help: "Label of the HSM token (default: metertrust).") var tokenLabel: String?
    @Option(name: .customLong("pin-env"), help: "Environment variable that holds the token's user PIN (without --dev-token).")
    var pinEnvironmentVariable: String?
    @Option(name: .customLong("pin-file"), help: "File (mode 0600) that holds the user PIN (without --dev-token).") var pinFile: String?
    @Option(help: "Policy environment: test or production (default: test).") var environment: String?
    @Option(help: "Name of the root CA (default: root).") var root: String?
    @Option(help: "Organisation (O=) of the root and Admin CA (default: the root's name).") var organization: String?
    @Option(help: "Name of the Admin CA (default: admin).") var admin: String?
    @Option(help: "Register this manufacturer: its Manufacturer Device CA (default: none).") var manufacturer: String?
    @Option(name: .customLong("manufacturer-organization"), help: "Organisation of the manufacturer (default: its name).")
    var manufacturerOrganization: String?
    @Option(help: "Create this utility account's Operational CA (default: none).") var operational: String?
    @Option(name: .customLong("operational-organization"), help: "Organisation of the utility (default: its name).")
    var operationalOrganization: String?
    @Option(help: "Name of the Service CA, which certifies the platform's servers (default: service; not asked on a terminal).") var service: String?
    @Option(help: "Key curve of the CAs: P-256 or P-384 (default: P-256).") var curve: String?
    @Option(help: "Shards each CA spreads the certificates it issues over, 1 to 4096, fixed now (default: 256; not asked on a terminal).")
    var shards: Int?
    @Option(name: .customLong("audit-key-name"), help: "Checkpoint origin and signed-note key name (default: metertrust.example/audit).")
    var auditKeyName: String?
    @Flag(name: .customLong("non-interactive"), help: "Ask nothing: take every value from the options (implied when stdin is not a terminal).")
    var nonInteractive = false
    @OptionGroup var output: OutputOptions

    /// Every value setup needs, from the options, the prompts or the defaults.
    struct Plan {
        var dataDirectory: URL
        var devToken: String?
        var module: String
        var tokenLabel: String
        var pinEnvironmentVariable: String
        var pinFile: String?
        var environment: PKISettings.Environment
        var root: String
        var organization: String
        var admin: String
        var service = "service"
        var manufacturer: String?
        var manufacturerOrganization: String?
        var operational: String?
        var operationalOrganization: String?
        var curve: ECCurve
        var shards: ShardCount = .default
        var auditKeyName: String
    }

    struct Result: Encodable {
        var dataDirectory: String
        var configurationFile: String
        var store: String
        var token: Token
        var authorities: [AuthoritySummary]
        var audit: AuditCommand.Init.Initialised
        /// Environment variables later commands need (SOFTHSM2_CONF for a development token).
        var environment: [String: String]
        var nextSteps: [Step]

        struct Token: Encodable {
            var label: String
            var module: String
            var pin: String
            var development: DevelopmentToken?
        }
    }

    struct Step: Encodable {
        var what: String
        var command: String
    }

    func run() async throws {
        let interactive = !nonInteractive && isatty(STDIN_FILENO) != 0
        let plan = try interactive ? askForPlan() : makePlan(ask: nil)
        if interactive {
            progress("setting up \(plan.dataDirectory.path)")
        }
        // With --json, stderr carries only an error document (the CLI's JSON convention): no progress lines.
        let result = try await Self.setUp(plan, progress: output.json ? { _ in } : progress)
        if output.json {
            try Output.json(result)
            return
        }
        Output.line("set up \(result.dataDirectory) on HSM token \(result.token.label) (\(result.token.pin))")
        if let development = result.token.development {
            Output.line("  development token: \(development.directory) (PIN files pin and so-pin, mode 0600)")
        }
        Output.line("  configuration:     \(result.configurationFile)")
        Output.line("  store:             \(result.store)")
        Output.line("  audit log:         \(result.audit.keyName), signer \(result.audit.certificate)")
        Output.line()
        AuthoritySummary.tree(result.authorities).forEach { Output.line("  " + $0) }
        Output.line()
        Output.line("Next: the custodian ceremony (README, \"Bootstrap ceremony\")")
        for (key, value) in result.environment.sorted(by: { $0.key < $1.key }) {
            Output.line("  export \(key)=\(shellQuoted(value))")
        }
        for (index, step) in result.nextSteps.enumerated() {
            Output.line("  \(index + 1). \(step.what)")
            Output.line("       \(step.command)")
        }
    }

    /// Runs every step of `plan`, each through the code of its own command.
    static func setUp(_ plan: Plan, progress: (String) -> Void) async throws -> Result {
        let existing = plan.dataDirectory.appendingPathComponent(Configuration.fileName)
        guard !FileManager.default.fileExists(atPath: existing.path) else {
            throw CLIError("\(existing.path) already exists: setup makes a new platform; give another --data-dir (or carry on with the individual commands)")
        }
        var hsm = HSMConfiguration(modulePath: plan.module, tokenLabel: plan.tokenLabel, pinEnvironmentVariable: plan.pinEnvironmentVariable, pinFile: plan.pinFile)
        var development: DevelopmentToken?
        if let directory = plan.devToken {
            let token = try DevelopmentToken.make(in: directory, label: plan.tokenLabel, module: plan.module)
            progress(token.created ? "made development token \(token.label) in \(token.directory)" : "using the development token \(token.label) in \(token.directory)")
            hsm.pinFile = token.pinFile
            development = token
        }
        let initialised = try await InitCommand.initialize(
            at: plan.dataDirectory, configuration: Configuration(hsm: hsm, pki: PKISettings(environment: plan.environment)), force: false
        )
        progress("initialised \(initialised.dataDirectory)")
        let data = DataDirectoryOptions(dataDirectory: plan.dataDirectory.path)

        try await create(.root, plan.root, organization: plan.organization, plan: plan, data: data, progress: progress)
        let audit = try await AuditCommand.Init.initialize(data: data, name: plan.root, keyName: plan.auditKeyName, interval: 1)
        progress("audit log \(audit.keyName) started")
        try await create(.admin, plan.admin, organization: plan.organization, plan: plan, data: data, progress: progress)
        try await create(.service, plan.service, organization: plan.organization, plan: plan, data: data, progress: progress)
        if let name = plan.manufacturer {
            try await create(.manufacturer, name, organization: plan.manufacturerOrganization, plan: plan, data: data, progress: progress)
        }
        if let name = plan.operational {
            try await create(.operational, name, organization: plan.operationalOrganization, plan: plan, data: data, progress: progress)
        }

        let context = try Context(data)
        let authorities = try await AuthoritySummary.all(in: try await context.openStore())
        var environment: [String: String] = [:]
        if let development { environment["SOFTHSM2_CONF"] = development.softHSMConfiguration }
        return Result(
            dataDirectory: initialised.dataDirectory, configurationFile: initialised.configurationFile, store: initialised.store,
            token: .init(label: initialised.tokenLabel, module: initialised.module, pin: hsm.pinSource.description, development: development),
            authorities: authorities, audit: audit, environment: environment, nextSteps: nextSteps(plan, development: development)
        )
    }

    private static func create(
        _ role: CertificateAuthorityRole, _ name: String, organization: String?, plan: Plan, data: DataDirectoryOptions, progress: (String) -> Void
    ) async throws {
        let context = try Context(data)
        let (store, hierarchy) = try await context.platform()
        let authority = try await CACommand.createAuthority(
            role: role, name: name, organization: organization, curve: plan.curve, backup: false, shards: plan.shards, context: context,
            store: store, hierarchy: hierarchy
        )
        progress("created \(role.rawValue) CA \(authority.name), serial \(authority.certificate.serialHex)")
    }

    /// The custodian ceremony, as commands for this data directory.
    static func nextSteps(_ plan: Plan, development: DevelopmentToken?) -> [Step] {
        let data = "--data-dir \(shellQuoted(plan.dataDirectory.path))"
        var steps: [Step] = []
        steps += [
            Step(
                what: "each custodian, on their own machine: a P-256 key (0600) and a CSR; at least 3 custodians, 2 of them security officers",
                command: "metertrust admin keygen --name alice --out ."
            ),
            Step(
                what: "certify each custodian's CSR from the Admin CA (role security-officer, pki-officer or auditor)",
                command: "metertrust admin certify --csr alice.csr --name alice --role security-officer --out alice.pem \(data)"
            ),
            Step(
                what: "bootstrap the quorum (once): from then on CAs, policies and custodians change only by M-of-N approval",
                command: "metertrust admin bootstrap --custodian alice.pem --custodian bob.pem --custodian carol.pem --required 2 \(data)"
            ),
            Step(
                what: "the admin API's TLS certificate (key in the HSM) from the Service CA, for the names clients use (--host NAME, --ip ADDR)",
                command: "metertrust server-cert --role admin --host localhost --ip 127.0.0.1 --ca \(shellQuoted(plan.service)) \(data)"
            ),
            Step(
                what: "the backup key; it replaces the security officer PIN by shares held by the officers",
                command: development.map { "metertrust backup init-key --so-pin-file \(shellQuoted($0.securityOfficerPINFile)) \(data)" }
                    ?? "METERTRUST_HSM_SO_PIN=... metertrust backup init-key \(data)"
            ),
            Step(what: "serve the admin API to the custodians (metrics and health on 127.0.0.1:9090)", command: "metertrust serve --roles admin \(data)"),
        ]
        return steps
    }

    // MARK: The plan: options, prompts, defaults

    private func askForPlan() throws -> Plan {
        FileHandle.standardError.write(Data("metertrust setup: press Enter to take the value in brackets; Ctrl-C to stop.\n".utf8))
        let plan = try makePlan(ask: { question, fallback in
            FileHandle.standardError.write(Data("\(question) [\(fallback)]: ".utf8))
            guard let line = readLine(strippingNewline: true) else { throw CLIError(code: .usage, "setup stopped: no answer to \"\(question)\"") }
            let answer = line.trimmingCharacters(in: .whitespaces)
            return answer.isEmpty ? fallback : (answer == "-" ? "" : answer)
        })
        FileHandle.standardError.write(Data("set up \(plan.dataDirectory.path) now? [Y/n]: ".utf8))
        let confirmation = (readLine() ?? "n").trimmingCharacters(in: .whitespaces).lowercased()
        guard confirmation.isEmpty || confirmation == "y" || confirmation == "yes" else { throw CLIError("setup stopped: nothing was made") }
        return plan
    }

    /// The plan from the options; each value not given is asked for with `ask(question, default)` if it is set
    /// (a "-" answer means none), else its default.
    func makePlan(ask: ((String, String) throws -> String)?) throws -> Plan {
        func value(_ given: String?, _ question: String, _ fallback: String) throws -> String {
            if let given { return given }
            return try ask?(question, fallback) ?? fallback
        }
        func optional(_ given: String?, _ question: String) throws -> String? {
            if let given { return given.isEmpty ? nil : given }
            let answer = try ask?(question + " (Enter: none)", "") ?? ""
            return answer.isEmpty ? nil : answer
        }
        let directory = try value(dataDirectory.dataDirectory, "data directory", dataDirectory.url.path)
        let devToken = try optional(self.devToken, "make a SoftHSM2 development token in this directory")
        let module = try value(
            self.module, "PKCS#11 module", ProcessInfo.processInfo.environment["METERTRUST_HSM_MODULE"] ?? HSMConfiguration.defaultModulePath
        )
        let label = try value(tokenLabel, "token label", "metertrust")
        let pinVariable = pinEnvironmentVariable ?? PINSource.defaultEnvironmentVariable
        var pinFile = self.pinFile
        if devToken != nil {
            guard pinFile == nil, pinEnvironmentVariable == nil else {
                throw CLIError(code: .usage, "--dev-token makes its own PIN file: leave out --pin-file and --pin-env")
            }
        } else if pinFile == nil, pinEnvironmentVariable == nil {
            pinFile = try optional(nil, "file (mode 0600) holding the token's user PIN, instead of $\(pinVariable)")
        }
        let environmentName = try value(self.environment, "policy environment (test or production)", "test")
        guard let policyEnvironment = PKISettings.Environment(rawValue: environmentName) else {
            throw CLIError(code: .usage, "--environment must be test or production, not \(environmentName)")
        }
        let root = try value(self.root, "name of the root CA", "root")
        let organization = try value(self.organization, "organisation (O=) of the root and Admin CA", root)
        let admin = try value(self.admin, "name of the Admin CA", "admin")
        let manufacturer = try optional(self.manufacturer, "first manufacturer to register")
        let manufacturerOrganization = try manufacturer.map { try value(self.manufacturerOrganization, "organisation of \($0)", $0) }
        let operational = try optional(self.operational, "first utility account's Operational CA")
        let operationalOrganization = try operational.map { try value(self.operationalOrganization, "organisation of \($0)", $0) }
        let curveName = try value(self.curve, "key curve of the CAs (P-256 or P-384)", "P-256")
        guard let curve = ECCurve(rawValue: curveName.uppercased()) else {
            throw CLIError(code: .usage, "--curve must be P-256 or P-384, not \(curveName)")
        }
        let shards = try shards.map(CACommand.shardCount) ?? .default
        let auditKeyName = try value(self.auditKeyName, "audit log name (checkpoint origin)", "metertrust.example/audit")
        let service = self.service ?? "service"
        let names = [root, admin, service] + [manufacturer, operational].compactMap { $0 }
        guard Set(names).count == names.count else {
            throw CLIError(code: .usage, "the CAs need different names: \(names.joined(separator: ", "))")
        }
        return Plan(
            dataDirectory: URL(fileURLWithPath: directory).standardizedFileURL, devToken: devToken, module: module, tokenLabel: label,
            pinEnvironmentVariable: pinVariable, pinFile: pinFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path }, environment: policyEnvironment, root: root, organization: organization,
            admin: admin, service: service, manufacturer: manufacturer, manufacturerOrganization: manufacturerOrganization, operational: operational,
            operationalOrganization: operationalOrganization, curve: curve, shards: shards, auditKeyName: auditKeyName
        )
    }

    private func progress(_ message: String) {
        FileHandle.standardError.write(Data("setup: \(message)\n".utf8))
    }
}

/// `value` as one shell word: as it is when it holds only safe characters, else in single quotes.
func shellQuoted(_ value: String) -> String {
    let safe = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_./=:@%+,"))
    if !value.isEmpty, value.unicodeScalars.allSatisfy({ safe.contains($0) && $0.isASCII }) { return value }
    return "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
