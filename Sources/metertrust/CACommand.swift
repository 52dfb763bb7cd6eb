import ArgumentParser
import Crypto
import Foundation
import MeterTrustAdmin
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore

struct CACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Create and list the certificate authorities.",
        subcommands: [CreateRoot.self, CreateManufacturer.self, CreateOperational.self, CreateAdmin.self, List.self]
    )

    struct CreationOptions: ParsableArguments {
        @Option(help: "Short name of the CA (letters, digits, '-', '_', '.'); used in key labels and URLs.")
        var name: String
        @Option(help: "Organisation (O=) in the CA's subject (default: the name).") var organization: String?
        @Option(help: "Key curve: P-256 or P-384.") var curve = "P-256"
        @Flag(help: "Create the key for backup: extractable only wrapped under the trusted backup key (CKA_WRAP_WITH_TRUSTED).")
        var backup = false

        func parsedCurve() throws -> ECCurve {
            guard let curve = ECCurve(rawValue: curve.uppercased()) else {
                throw CLIError(code: .usage, "--curve must be P-256 or P-384, not \(curve)")
            }
            return curve
        }
    }

    static func create(role: CertificateAuthorityRole, options: CreationOptions, data: DataDirectoryOptions, output: OutputOptions) async throws {
        let context = try Context(data)
        let (store, hierarchy) = try await context.platform()
        let authority = try await createAuthority(
            role: role, name: options.name, organization: options.organization, curve: try options.parsedCurve(), backup: options.backup,
            context: context, store: store, hierarchy: hierarchy
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
        role: CertificateAuthorityRole, name: String, organization: String?, curve: ECCurve, backup: Bool, context: Context, store: any MeterTrustStore,
        hierarchy: CAHierarchy
    ) async throws -> CertificateAuthority {
        // Since the bootstrap ceremony only the root is made here; the domain refuses the rest (they are under quorum).
        let authority = try await DirectAuthorityCreation.create(
            role: role, name: name, organization: organization, curve: curve, backup: backup, hierarchy: hierarchy,
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

/// One CA as `ca list` shows it.
struct AuthoritySummary: Encodable {
    var name: String
    var role: String
    var parent: String?
    var curve: String
    var keyLabel: String
    var issuedCertificates: Int?
    var certificate: CertificateDescription

    init(_ record: CertificateAuthorityRecord, certificate: CertificateDescription, issuedCertificates: Int? = nil) {
        name = record.name
        role = record.roleName
        parent = record.parent
        curve = record.curve
        keyLabel = record.keyLabel
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
