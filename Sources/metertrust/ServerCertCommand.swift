import ArgumentParser
import Foundation
import MeterTrustCore
import MeterTrustPKI
import MeterTrustServer

/// `metertrust server-cert --role ROLE`: a platform server's TLS identity, a key in the HSM and a tls-server
/// certificate from the Service CA (never a utility's operational CA), recorded in metertrust.json for `serve`.
struct ServerCertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server-cert",
        abstract: "Make a server role's TLS identity: a key in the HSM and a tls-server certificate from the Service CA.",
        discussion: """
            The certificate names the hosts and addresses clients connect to; serve uses it for the role from then on \
            (restart serve to change certificates).

            EXAMPLES:
              metertrust server-cert --role admin --host admin.example.net --ip 192.0.2.7
            """
    )

    struct Options: ParsableArguments {
        @Option(help: "Host name clients connect to (SAN dNSName; repeatable; localhost if neither --host nor --ip is given).") var host: [String] = []
        @Option(help: "IP address clients connect to (SAN iPAddress, IPv4 or IPv6; repeatable).") var ip: [String] = []
        @Option(help: "Issuing Service CA (default: the only one).") var ca: String?
        @Option(help: "Default listening port for the role.") var port = 8443
    }

    @Option(help: "The server role whose identity this is (known: \(ServerRoles.known.joined(separator: ", "))).") var role: String
    @OptionGroup var options: Options
    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws { try await Self.make(role: role, options: options, data: data, output: output) }

    struct Result: Encodable {
        var role: String
        var key: String
        var serial: String
        var issuer: String
        /// The first name (the certificate's CN).
        var host: String
        var names: [String]
        var listen: String
    }

    static func make(role: String, options: Options, data: DataDirectoryOptions, output: OutputOptions) async throws {
        // The role and the names first: a wrong one is refused before anything is made.
        guard ServerRoles.known.contains(role) else {
            throw CLIError(code: .usage, "unknown role \"\(role)\" for --role: the known roles are \(ServerRoles.known.joined(separator: ", "))")
        }
        let names = try (options.host.isEmpty && options.ip.isEmpty ? ["localhost"] : options.host).map(ServerName.host) + options.ip.map(ServerName.address)
        let context = try Context(data)
        let (store, hierarchy) = try await context.platform()
        let services = try await hierarchy.authorities(role: .service).filter { $0.destroyedAt == nil }
        let issuer: String
        if let ca = options.ca {
            guard let record = try await store.certificateAuthority(named: ca) else {
                throw PKIError(.unknownAuthority, "there is no CA named \"\(ca)\": see metertrust ca list")
            }
            guard record.role == .service else {
                throw CLIError(
                    "\(ca) is a\(record.roleName.first.map { "aeiou".contains($0) } == true ? "n" : "") \(record.roleName) CA: platform server certificates come from the Service CA only; \(createServiceCA)"
                )
            }
            issuer = ca
        } else {
            guard let only = services.first else { throw CLIError(code: .configuration, "there is no Service CA yet: \(createServiceCA)") }
            guard services.count == 1 else { throw CLIError(code: .usage, "there are \(services.count) Service CAs: name one with --ca") }
            issuer = only.name
        }
        let subject = names.map(\.description).joined(separator: ",")
        let (key, certificate) = try await context.audited("tls.server-identity", subject: subject, store: store, token: hierarchy.token) {
            let identity = try await hierarchy.createTLSServerIdentity(names: names, authority: issuer)
            return (identity, ["key": identity.key.label, "serial": identity.certificate.serialHex, "role": role, "issuer": issuer])
        }
        // serve listens on the first address certified, else on loopback (where localhost leads).
        let listenHost = names.lazy.compactMap { if case .ip(let address) = $0 { address.description } else { nil } }.first ?? "127.0.0.1"
        var configuration = context.configuration
        let identity = Configuration.AdminServerSettings(
            keyLabel: key.label, issuer: issuer, certificateSerial: certificate.serialHex, host: listenHost, port: options.port
        )
        if role == AdminRole.name {
            configuration.adminServer = identity
        } else {
            configuration.servers = (configuration.servers ?? [:]).merging([role: identity]) { $1 }
        }
        try configuration.write(to: context.dataDirectory)
        if output.json {
            try Output.json(Result(
                role: role, key: key.label, serial: certificate.serialHex, issuer: issuer, host: names[0].description, names: names.map(\.description),
                listen: "\(IPAddress(listenHost)?.urlHost ?? listenHost):\(options.port)"
            ))
        } else {
            Output.line("\(role) server identity: key \(key.label) in the HSM, certificate \(certificate.serialHex) for \(subject) from the Service CA \(issuer)")
        }
    }

    static let createServiceCA =
        "create one (metertrust ca create-service --name NAME before the bootstrap, else metertrust admin request ca.create kind=service name=NAME organization=ORG) and use it"
}
