import ArgumentParser
import Crypto
import Foundation
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import X509

struct CACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Create, list and show the certificate authorities.",
        discussion: """
            Before the quorum bootstrap the create commands make CAs directly; afterwards only the root is made here and \
            every other CA is an `admin request` under quorum.

            EXAMPLES:
              metertrust ca create-root --name national --organization "National Meter Operator"
              metertrust ca list --json
              metertrust ca show acme --chain > acme-chain.pem
            """,
        subcommands: [CreateRoot.self, CreateManufacturer.self, CreateOperational.self, CreateAdmin.self, CreateService.self, CreateOperator.self, List.self, Show.self]
    )

    struct CreationOptions: ParsableArguments {
        @Option(help: "Short name of the CA (letters, digits, '-', '_', '.'); used in key labels and URLs.")
        var name: String
        @Option(help: "Organisation (O=) in the CA's subject (default: the name).") var organization: String?
        @Option(help: "Key curve: P-256 or P-384.") var curve = "P-256"
        @Flag(help: "Create the key for backup: extractable only wrapped under the trusted backup key (CKA_WRAP_WITH_TRUSTED).")
        var backup = false
        @Option(help: "Shards the certificates this CA issues are spread over (1 to 4096), fixed now: one CRL and one store partition each.")
        var shards = ShardCount.default.value

        func parsedCurve() throws -> ECCurve {
            guard let curve = ECCurve(rawValue: curve.uppercased()) else {
                throw CLIError(code: .usage, "--curve must be P-256 or P-384, not \(curve)")
            }
            return curve
        }

        func parsedShards() throws -> ShardCount {
            try CACommand.shardCount(shards)
        }
    }

    /// `--shards N` checked (`ca create-*`, `setup`): out of range is a usage error.
    static func shardCount(_ value: Int) throws -> ShardCount {
        guard let shards = ShardCount(value) else { throw CLIError(code: .usage, ShardCount.refusal(of: String(value), option: "--shards")) }
        return shards
    }

    static func create(role: CertificateAuthorityRole, options: CreationOptions, data: DataDirectoryOptions, output: OutputOptions) async throws {
        // The command line is checked before the HSM or the store is opened.
        let (curve, shards) = (try options.parsedCurve(), try options.parsedShards())
        let context = try Context(data)
        let (store, hierarchy) = try await context.platform()
        let authority = try await createAuthority(
            role: role, name: options.name, organization: options.organization, curve: curve, backup: options.backup,
            shards: shards, context: context, store: store, hierarchy: hierarchy
        )
        let description = try CertificateDescription(authority.certificate, profile: CertificateProfile.forAuthority(role).name)
        if output.json {
            try Output.json(AuthoritySummary(authority.record, certificate: description))
        } else {
            Output.line("created \(role.rawValue) CA \(authority.name) (key \(authority.record.keyLabel) in HSM token \(hierarchy.token.label))")
            description.textLines().forEach { Output.line($0) }
        }
    }

    /// Creates a CA the way `ca create-*` does (and `setup`): through the domain's direct creation, audited, and for
    /// the root, its SHA-256 pinned in the configuration.
    static func createAuthority(
        role: CertificateAuthorityRole, name: String, organization: String?, curve: ECCurve, backup: Bool, shards: ShardCount = .default,
        context: Context, store: any MeterTrustStore, hierarchy: CAHierarchy
    ) async throws -> CertificateAuthority {
        // Since the bootstrap ceremony only the root is made here; the domain refuses the rest (they are under quorum).
        let authority = try await DirectAuthorityCreation.create(
            role: role, name: name, organization: organization, curve: curve, backup: backup, shards: shards, hierarchy: hierarchy,
            quorum: store, audit: try context.auditLog(store: store, token: hierarchy.token), actor: context.actor
        )
        if role == .root {
            var configuration = context.configuration
            configuration.rootFingerprint = hexString(SHA256.hash(data: try authority.certificate.derBytes))
            try configuration.write(to: context.dataDirectory)
        }
        return authority
    }

    struct CreateRoot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create-root", abstract: "Create the self-signed root CA.")
        @OptionGroup var options: CreationOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions
        func run() async throws { try await CACommand.create(role: .root, options: options, data: data, output: output) }
    }

    struct CreateManufacturer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-manufacturer", abstract: "Register a manufacturer: create its Manufacturer Device CA under the root."
        )
        @OptionGroup var options: CreationOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions
        func run() async throws { try await CACommand.create(role: .manufacturer, options: options, data: data, output: output) }
    }

    struct CreateOperational: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-operational", abstract: "Create the Operational CA of a utility account under the root."
        )
        @OptionGroup var options: CreationOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions
        func run() async throws { try await CACommand.create(role: .operational, options: options, data: data, output: output) }
    }

    struct CreateAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create-admin", abstract: "Create the Admin CA under the root.")
        @OptionGroup var options: CreationOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions
        func run() async throws { try await CACommand.create(role: .admin, options: options, data: data, output: output) }
    }

    struct CreateService: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-service", abstract: "Create the Service CA under the root: it certifies the platform's own servers (server-cert)."
        )
        @OptionGroup var options: CreationOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions
        func run() async throws { try await CACommand.create(role: .service, options: options, data: data, output: output) }
    }

    struct CreateOperator: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-operator", abstract: "Create the Operator CA under the root (it certifies the utilities' operators)."
        )
        @OptionGroup var options: CreationOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions
        func run() async throws { try await CACommand.create(role: .operator, options: options, data: data, output: output) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the CAs as a tree.")
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            let summaries = try await AuthoritySummary.all(in: store)
            if output.json {
                try Output.json(summaries)
            } else if summaries.isEmpty {
                Output.line("no CAs yet: run metertrust ca create-root --name NAME")
            } else {
                AuthoritySummary.tree(summaries).forEach { Output.line($0) }
            }
        }
    }
}

extension CACommand {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show a CA: role, parent, certificate, key label, status, certificates issued; or its certificate or chain as PEM.",
            discussion: """
                Examples:
                  metertrust ca show acme
                  metertrust ca show root --pem > root.pem
                  metertrust ca show acme --chain > acme-chain.pem      (acme first, the root last)
                The status is judged from the store and, once the audit log exists, from the verified audit log (the \
                HSM holds its head), as issuance judges it.
                """
        )
        @Argument(help: "The CA's name (see metertrust ca list).") var name: String
        @Flag(help: "Print only the CA's certificate, PEM.") var pem = false
        @Flag(help: "Print the CA's chain up to the root, PEM, this CA first.") var chain = false
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard !(pem && chain) else { throw CLIError(code: .usage, "--pem and --chain exclude each other: choose one") }
            let context = try Context(data)
            let store = try await context.openStore()
            let chain = try await AuthorityChain.load(name, in: store)
            if pem || self.chain {
                let pems = try (self.chain ? chain.certificates : [chain.certificates[0]]).map { try $0.pem }
                if output.json {
                    try Output.json(self.chain ? PEMs(name: name, certificate: nil, chain: pems) : PEMs(name: name, certificate: pems[0], chain: nil))
                } else {
                    print(pems.joined(), terminator: "")
                }
                return
            }
            // Once the audit log exists the status is also judged from it, verified against the head the HSM keeps.
            let audit = try context.configuration.audit.map { _ in try context.auditLog(store: store) }
            let details = try await AuthorityDetails.make(chain, store: store, audit: audit)
            if output.json {
                try Output.json(details)
            } else {
                details.textLines().forEach { Output.line($0) }
            }
        }

        /// `--pem --json` and `--chain --json`: the PEM text in a JSON document.
        struct PEMs: Encodable {
            var name: String
            var certificate: String?
            var chain: [String]?
        }
    }
}

/// A CA's record and its chain of certificates up to the root, this CA's first, as the store holds them.
struct AuthorityChain {
    var records: [CertificateAuthorityRecord]
    var certificates: [Certificate]

    static func load(_ name: String, in store: any MeterTrustStore) async throws -> AuthorityChain {
        var chain = AuthorityChain(records: [], certificates: [])
        var next: String? = name
        while let current = next {
            guard let record = try await store.certificateAuthority(named: current) else {
                throw CLIError(
                    code: .unknownAuthority,
                    current == name ? "there is no CA named \"\(name)\": see metertrust ca list" : "CA \(chain.records.last?.name ?? name) names a parent \(current) the store does not hold"
                )
            }
            guard !chain.records.contains(where: { $0.name == record.name }) else {
                throw CLIError(code: .untrustedState, "the CAs above \(name) form a loop in the store: it was changed outside MeterTrust")
            }
            guard let stored = try await store.certificate(issuer: record.parent ?? record.name, serial: record.certificateSerial) else {
                throw CLIError(code: .untrustedState, "the certificate of CA \(record.name) is missing from the store")
            }
            chain.records.append(record)
            chain.certificates.append(try Certificate(derEncoded: stored.der))
            next = record.parent
        }
        return chain
    }
}

/// What `ca show` says of a CA.
struct AuthorityDetails: Encodable {
    var name: String
    var role: String
    var parent: String?
    /// The CAs this one certified.
    var children: [String]
    var curve: String
    var keyLabel: String
    var keyID: String
    var createdAt: Date
    /// `active`, `revoked` or `destroyed`.
    var status: String
    /// Why, when not active.
    var statusReasons: [String]
    /// What judged the status: `store`, and `audit-log` once the audit log exists.
    var statusJudgedBy: [String]
    /// Certificates it issued (the root's own certificate not counted).
    var issuedCertificates: Int
    /// How many shards the certificates it issues are spread over, fixed when it was created.
    var shardCount: Int
    var certificate: CertificateDescription

    static func make(_ chain: AuthorityChain, store: any MeterTrustStore, audit: AuditLog?) async throws -> AuthorityDetails {
        let record = chain.records[0]
        let certificate = chain.certificates[0]
        var reasons: [String] = []
        var status = "active"
        if let destroyed = record.destroyedAt {
            status = "destroyed"
            reasons.append("its key was destroyed on \(Output.timestamp.string(from: destroyed)) (store)")
        }
        if let parent = record.parent, let revoked = try await store.revocation(issuer: parent, serial: record.certificateSerial) {
            if status == "active" { status = "revoked" }
            reasons.append("its certificate was revoked on \(Output.timestamp.string(from: revoked.date)), reason \(revoked.reason) (store)")
        }
        var judgedBy = ["store"]
        if let audit {
            // The state the signed, HSM-anchored log records: a deleted revocation row or a cleared destroyed_at does
            // not make a CA active again (the judgement issuance uses, AuditedAuthorityStatus).
            let state = try await audit.verifiedState()
            judgedBy.append("audit-log")
            if state.destroyedAuthorities.contains(record.name) {
                status = "destroyed"
                reasons.append("its key was destroyed (audit log)")
            }
            if record.parent != nil, state.isRevoked(serial: certificate.serialHex) {
                if status == "active" { status = "revoked" }
                reasons.append("its certificate was revoked (audit log)")
            }
        }
        var issued = try await store.certificateCount(issuer: record.name)
        if record.parent == nil { issued -= 1 }
        let role = try record.knownRole()
        return AuthorityDetails(
            name: record.name, role: record.roleName, parent: record.parent,
            children: try await store.certificateAuthorities().filter { $0.parent == record.name && $0.name != record.name }.map(\.name).sorted(),
            curve: record.curve, keyLabel: record.keyLabel, keyID: record.keyID, createdAt: record.createdAt, status: status,
            statusReasons: reasons, statusJudgedBy: judgedBy, issuedCertificates: issued, shardCount: record.shardCount,
            certificate: try CertificateDescription(certificate, profile: CertificateProfile.forAuthority(role).name)
        )
    }

    func textLines() -> [String] {
        var lines = [
            "CA \(name)  [\(role)]\(parent.map { "  issued by \($0)" } ?? "  (self-signed root)")",
            "  status:         \(status) (judged by the store\(statusJudgedBy.contains("audit-log") ? " and the verified audit log" : ""))",
        ]
        lines += statusReasons.map { "                  \($0)" }
        lines += [
            "  key:            \(keyLabel) in the HSM (CKA_ID \(keyID), \(curve))",
            "  created:        \(Output.timestamp.string(from: createdAt))",
            "  issued:         \(issuedCertificates) certificates",
            "  shards:         \(shardCount) (fixed at creation; each certificate's shard comes from its serial)",
            "  children:       \(children.isEmpty ? "none" : children.joined(separator: ", "))",
            "  certificate:",
        ]
        lines += certificate.textLines(indent: "    ")
        return lines
    }
}

/// One CA as `ca list` shows it.
struct AuthoritySummary: Encodable {
    var name: String
    var role: String
    var parent: String?
    var curve: String
    var keyLabel: String
    var issuedCertificates: Int?
    /// How many shards the certificates it issues are spread over.
    var shardCount: Int
    var certificate: CertificateDescription

    init(_ record: CertificateAuthorityRecord, certificate: CertificateDescription, issuedCertificates: Int? = nil) {
        name = record.name
        role = record.roleName
        parent = record.parent
        curve = record.curve
        keyLabel = record.keyLabel
        shardCount = record.shardCount
        self.issuedCertificates = issuedCertificates
        self.certificate = certificate
    }

    static func all(in store: any HierarchyStore) async throws -> [AuthoritySummary] {
        var summaries: [AuthoritySummary] = []
        for record in try await store.certificateAuthorities() {
            guard let stored = try await store.certificate(issuer: record.parent ?? record.name, serial: record.certificateSerial) else {
                throw CLIError(code: .untrustedState, "the certificate of CA \(record.name) is missing from the store")
            }
            let certificate = try CertificateDescription(
                try .init(derEncoded: stored.der), profile: CertificateProfile.forAuthority(try record.knownRole()).name
            )
            var issued = try await store.certificateCount(issuer: record.name)
            if record.role == .root { issued -= 1 }  // the root's own certificate
            summaries.append(AuthoritySummary(record, certificate: certificate, issuedCertificates: issued))
        }
        return summaries
    }

    /// The hierarchy as an indented tree, root first.
    static func tree(_ summaries: [AuthoritySummary]) -> [String] {
        func lines(for summary: AuthoritySummary, depth: Int) -> [String] {
            let indent = String(repeating: "    ", count: depth) + (depth > 0 ? "└── " : "")
            let formatter = ISO8601DateFormatter()
            var result = [
                "\(indent)\(summary.name)  [\(summary.role)]  \(summary.certificate.subject)",
                "\(String(repeating: " ", count: indent.count))  \(summary.curve), serial \(summary.certificate.serial), valid to \(formatter.string(from: summary.certificate.notAfter)), \(summary.issuedCertificates ?? 0) issued",
            ]
            for child in summaries where child.parent == summary.name && child.name != summary.name {
                result += lines(for: child, depth: depth + 1)
            }
            return result
        }
        return summaries.filter { $0.parent == nil }.flatMap { lines(for: $0, depth: 0) }
    }
}
