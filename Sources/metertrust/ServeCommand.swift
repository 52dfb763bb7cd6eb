import ArgumentParser
import Foundation
import Logging
import MeterTrustCore
import MeterTrustHSM
import MeterTrustOnboarding
import MeterTrustPKI
import MeterTrustServer
import MeterTrustStore
import MeterTrustStorePostgres
import MeterTrustStoreSQLite
import NIOCore

/// The options `serve` and its alias `admin serve` share.
struct ServeOptions: ParsableArguments {
    @Option(
        name: .customLong("listen"),
        help: "A role's listen address, [ROLE=]HOST:PORT (repeatable; without ROLE= the first role; default: the serve section, else server-cert's, else 127.0.0.1:8443)."
    )
    var listen: [String] = []
    @Option(
        name: .customLong("operations-listen"),
        help: "The plain-HTTP operations listener (/metrics, /healthz, /readyz), HOST:PORT (default 127.0.0.1:9090; a non-loopback address only when named here)."
    )
    var operationsListen: String?
    @Option(help: "Write the admin role's bound port to this file once listening (for port 0).") var portFile: String?
    @Option(help: "Write {\"admin\": PORT, ..., \"operations\": PORT} to this file once every listener is bound.") var portsFile: String?
    @Option(help: "Seconds a client has to finish the TLS handshake (default 10).") var handshakeTimeout: Int?
    @Option(help: "Seconds a connection may stay idle between requests (default 60).") var idleTimeout: Int?
    @Option(help: "Most meters one enrollment upload to the account API may list (default 1100000).") var enrollmentMaximumMeters: Int?
    @Option(help: "Most EST enrollments in flight or waiting for the HSM at once; beyond it 503 with Retry-After (default 64).") var estQueueLimit: Int?
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the chosen roles, each on its own HTTPS listener, with metrics and health on an operations listener.",
        discussion: """
            Roles: \(ServerRoles.known.joined(separator: ", ")). Each listens on its own address with TLS 1.3 and its own \
            client certificates (admin: registered custodians). The operations listener (plain HTTP, 127.0.0.1:9090 by \
            default) serves /metrics (Prometheus), /healthz and /readyz. One log line per request goes to stderr \
            (level info; $METERTRUST_LOG_LEVEL changes it). SIGTERM or SIGINT: stop accepting, finish the requests in \
            flight, close the HSM sessions and the store, exit 0. The serve section of metertrust.json sets the same \
            (README "Serving"); flags override it.

            EXAMPLES:
              metertrust serve --roles admin --json
              metertrust serve --listen admin=0.0.0.0:8443 --operations-listen 127.0.0.1:9100
            """
    )
    @Option(help: "Roles to serve, comma-separated (known: \(ServerRoles.known.joined(separator: ", ")); default: the serve section's, else admin).")
    var roles: String?
    @OptionGroup var options: ServeOptions
    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await Self.serve(roles: roles, options: options, data: data, json: output.json)
    }

    static let defaultOperations = Configuration.ServeSettings.Listener(host: "127.0.0.1", port: 9090)
    /// Default ports of the roles that do not listen on 8443 (HTTPS): est-psk 8444, and the plain-HTTP crl 8080 and
    /// ocsp 8081 (relying parties fetch CRLs and ask OCSP over HTTP).
    static let defaultPorts = [PSKRole.name: 8444, CRLRole.name: 8080, OCSPRole.name: 8081]

    static func serve(roles rolesOption: String?, options: ServeOptions, data: DataDirectoryOptions, json: Bool) async throws {
        // The command line first: a wrong role or address is refused before anything is opened.
        let names = try parseRoles(rolesOption ?? "admin", option: rolesOption != nil)
        var explicit: [String: Configuration.ServeSettings.Listener] = [:]
        for value in options.listen {
            var role = names[0]
            var address = value
            if let equals = value.firstIndex(of: "=") {
                role = String(value[..<equals]).lowercased()
                address = String(value[value.index(after: equals)...])
                guard names.contains(role) else {
                    throw CLIError(code: .usage, "--listen \(value) names role \(role), which is not served (--roles \(names.joined(separator: ",")))")
                }
            }
            explicit[role] = try parseAddress(address, option: "--listen")
        }
        let explicitOperations = try options.operationsListen.map { try parseAddress($0, option: "--operations-listen") }
        if let timeout = options.handshakeTimeout, !(1...3600).contains(timeout) { throw CLIError(code: .usage, "--handshake-timeout is 1 to 3600 seconds") }
        if let timeout = options.idleTimeout, !(1...86400).contains(timeout) { throw CLIError(code: .usage, "--idle-timeout is 1 to 86400 seconds") }
        if let limit = options.estQueueLimit, !(1...100_000).contains(limit) { throw CLIError(code: .usage, "--est-queue-limit is 1 to 100000 enrollments") }

        let context = try Context(data)
        let section = context.configuration.serve
        let names2 = rolesOption == nil ? try section?.roles.map { try parseRoles($0.joined(separator: ","), option: false) } ?? names : names
        let handshake = options.handshakeTimeout ?? section?.handshakeTimeoutSeconds ?? 10
        let idle = options.idleTimeout ?? section?.idleTimeoutSeconds ?? 60
        guard (1...3600).contains(handshake), (1...86400).contains(idle) else {
            throw CLIError(code: .configuration, "the serve section's handshakeTimeoutSeconds is 1 to 3600 and idleTimeoutSeconds 1 to 86400")
        }
        let estQueueLimit = options.estQueueLimit ?? section?.estQueueLimit ?? EnrollmentQueue.defaultLimit
        guard (1...100_000).contains(estQueueLimit) else { throw CLIError(code: .configuration, "the serve section's estQueueLimit is 1 to 100000") }
        func listener(_ address: Configuration.ServeSettings.Listener) -> ServeListener {
            ServeListener(host: address.host, port: address.port, handshakeTimeout: .seconds(Int64(handshake)), idleTimeout: .seconds(Int64(idle)))
        }
        var listeners: [String: ServeListener] = [:]
        for name in names2 {
            let recorded = context.configuration.serverIdentity(role: name).map { Configuration.ServeSettings.Listener(host: $0.host, port: $0.port) }
            listeners[name] = listener(explicit[name] ?? section?.listeners?[name] ?? recorded ?? .init(host: "127.0.0.1", port: Self.defaultPorts[name] ?? 8443))
        }
        let operationsAddress = explicitOperations ?? section?.operations ?? defaultOperations
        // Plain HTTP with the platform's metrics: on another interface only when the operator says so on the command line.
        if explicitOperations == nil, !ServeListener.isLoopback(operationsAddress.host) {
            throw CLIError(
                code: .configuration,
                "the operations listener is plain HTTP: the serve section may bind it to loopback only; name \(operationsAddress.host) with --operations-listen to bind it there"
            )
        }

        _ = ServerMetrics.registry  // bootstrap the metrics system before anything records
        let service = try await AdminCommand.service(context)
        var requestLogger = Logger(label: "metertrust.requests")
        requestLogger.logLevel = ProcessInfo.processInfo.environment["METERTRUST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let identity = context.configuration.adminServer.map {
            AdminServer.Settings(
                keyLabel: $0.keyLabel, issuer: $0.issuer, certificateSerial: $0.certificateSerial, host: $0.host, port: $0.port,
                auditSignerSerial: context.configuration.audit?.certificateSerial
            )
        }
        let accountIdentity = context.configuration.servers?[AccountRole.name].map {
            AdminServer.Settings(keyLabel: $0.keyLabel, issuer: $0.issuer, certificateSerial: $0.certificateSerial, host: $0.host, port: $0.port)
        }
        let estIdentity = context.configuration.servers?[EstRole.name].map {
            AdminServer.Settings(keyLabel: $0.keyLabel, issuer: $0.issuer, certificateSerial: $0.certificateSerial, host: $0.host, port: $0.port)
        }
        var limits = EnrollmentLimits()
        if let maximum = options.enrollmentMaximumMeters { limits.maximumMeters = maximum }
        let environment = ServeEnvironment(
            admin: service, adminIdentity: identity, accountIdentity: accountIdentity, estIdentity: estIdentity, estQueueLimit: estQueueLimit,
            enrollmentLimits: limits, requestLogger: requestLogger,
            logger: context.logger
        )
        let roles = try await ServerRoles.make(names2, environment: environment)
        let warnings = roles.flatMap(\.warnings)
        // For people on stderr, once; with --json in the document's warnings.
        warnings.forEach(Output.warning)
        let store = service.store
        let token = service.hierarchy.token
        let portFile = options.portFile
        let portsFile = options.portsFile
        let logger = context.logger
        try await PlatformServer.run(
            roles: roles, listeners: listeners, operations: listener(operationsAddress), environment: environment,
            close: {
                token.close()
                do {
                    if let sqlite = store as? SQLiteStore { try sqlite.close() }
                } catch {
                    logger.warning("\(Output.message(for: error))")
                }
                if let postgres = store as? PostgresStore { await postgres.close() }
            },
            onBound: { bound in
                if let portFile, let admin = bound.roles["admin"] { try? "\(admin.port)\n".write(toFile: portFile, atomically: true, encoding: .utf8) }
                if let portsFile, let document = try? JSONEncoder.sorted.encode(bound.ports) {
                    try? document.write(to: URL(fileURLWithPath: portsFile), options: .atomic)
                }
                if json {
                    struct Listening: Encodable {
                        var roles: [String: PlatformServer.Bound.Role]
                        var operations: String
                        var ports: [String: Int]
                        var warnings: [String]
                        /// The admin role's first URL and port, as `admin serve --json` printed them before roles.
                        var listening: String?
                        var urls: [String]?
                        var port: Int?
                    }
                    let admin = bound.roles["admin"]
                    try? Output.json(Listening(
                        roles: bound.roles, operations: bound.operations, ports: bound.ports, warnings: warnings, listening: admin?.urls.first,
                        urls: admin?.urls, port: admin?.port
                    ))
                    fflush(nil)
                } else {
                    for name in names2 {
                        let what = name == AdminRole.name ? "admin API listening on" : "\(name) role listening on"
                        let how: String
                        switch name {
                        case AdminRole.name: how = "TLS 1.3, custodian certificates only"
                        case PSKRole.name: how = "TLS 1.2 PSK only, \(PSKRole.cipherSuite), identity = the meter's EUI-64"
                        case EstRole.name: how = "TLS 1.3, meter certificates, required for enrollment"
                        case AccountRole.name: how = "TLS 1.3, operator certificates only"
                        case CRLRole.name, OCSPRole.name: how = "plain HTTP: signed answers, no client certificate"
                        default: how = "TLS 1.3, client certificates only"
                        }
                        for url in bound.roles[name]?.urls ?? [] { Output.line("\(what) \(url) (\(how))") }
                    }
                    Output.line("operations (plain HTTP, /metrics /healthz /readyz) at \(bound.operations)")
                }
            }
        )
    }

    static func parseRoles(_ list: String, option: Bool) throws -> [String] {
        switch ServerRoles.parse(list) {
        case .success(let names) where !names.isEmpty: return names
        case .success: throw CLIError(code: .usage, "--roles names no role: use one or more of \(ServerRoles.known.joined(separator: ", "))")
        case .failure(let unknown):
            throw CLIError(
                code: option ? .usage : .configuration,
                "unknown role \"\(unknown.name)\" in \(option ? "--roles" : "the serve section's roles"): the known roles are \(ServerRoles.known.joined(separator: ", "))"
            )
        }
    }

    /// HOST:PORT, with [v6]:PORT brackets removed.
    static func parseAddress(_ value: String, option: String) throws -> Configuration.ServeSettings.Listener {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]), (0...65535).contains(port) else {
            throw CLIError(code: .usage, "\(option) must be HOST:PORT (port 0 to 65535), not \(value)")
        }
        var host = String(value[..<colon])
        // [::1]:8443: the brackets are the URL's, not the address's.
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw CLIError(code: .usage, "\(option) must name a host: HOST:PORT") }
        return .init(host: host, port: port)
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
