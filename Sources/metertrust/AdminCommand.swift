import ArgumentParser
import Crypto
import Foundation
import MeterTrustAdmin
import MeterTrustAdminAPI
import MeterTrustCore
import MeterTrustAudit
import MeterTrustHSM
import MeterTrustOnboarding
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustServer
import MeterTrustStore
import X509

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Operations under M-of-N quorum: custodians, requests, approvals, the admin API.",
        discussion: """
            Ceremony (local, with the HSM): keygen → certify → bootstrap → server-cert → serve (metertrust server-cert, metertrust serve).
            Custodians (remote, over mutual TLS): request → approve → execute; list, show, custodians, policies.
            On the HSM host without --server: custodians, policies and requests read the local data directory, read-only.

            EXAMPLES:
              metertrust admin keygen --name alice --out .
              metertrust admin certify --csr alice.csr --name alice \\
                  --role security-officer --out alice.pem
              metertrust admin bootstrap --custodian alice.pem \\
                  --custodian bob.pem --custodian carol.pem
              metertrust admin request manufacturer.register name=acme \\
                  organization="Acme Meters Ltd"
              metertrust admin list --state pending --json
              metertrust admin approve ID
              metertrust admin execute ID
            """,
        subcommands: [
            Keygen.self, Certify.self, Bootstrap.self, ServerCert.self, Serve.self, Request.self, List.self, Show.self,
            Approve.self, Execute.self, Custodians.self, Policies.self, Requests.self,
        ]
    )

    static func service(_ context: Context) async throws -> AdminService {
        let (store, hierarchy) = try await context.platform()
        return AdminService(hierarchy: hierarchy, store: store, audit: try context.auditLog(store: store, token: hierarchy.token), operations: .platform)
    }

    // MARK: Ceremony

    struct Keygen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a custodian's P-256 key (0600 PEM) and CSR. Run it on the custodian's own machine."
        )
        @Option(help: "The custodian's name (CN of the certificate).") var name: String
        @Option(help: "Directory for NAME.key and NAME.csr.") var out = "."
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try ClientKeyPair.makeAndReport(name: name, directory: out, json: output.json, next: "have the Admin CA certify the CSR")
        }
    }

    struct Certify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a custodian's admin certificate (profile custodian: CN=name, OU=role, clientAuth) from the Admin CA.",
            discussion: "A certificate grants nothing by itself: the custodian counts once registered (bootstrap or custodian.add)."
        )
        @Option(help: "The custodian's CSR (PEM or DER).") var csr: String
        @Option(help: "The custodian's name (CN).") var name: String
        @Option(help: "Role (OU): security-officer, pki-officer or auditor.") var role: String
        @Option(help: "Write the certificate (PEM) here.") var out: String
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let role = try CustodianRole.parse(role)
            let context = try Context(data)
            let service = try await AdminCommand.service(context)
            guard let bytes = FileManager.default.contents(atPath: csr) else { throw CLIError(code: .fileSystem, "cannot read \(csr)") }
            let issued = try await CustodianCertification.issue(csr: Array(bytes), name: name, role: role, service: service, actor: context.actor)
            let record = issued.record
            try issued.certificate.pem.write(toFile: out, atomically: true, encoding: .utf8)
            if output.json {
                try Output.json(["certificate": out, "serial": record.serial, "fingerprint": record.fingerprintSHA256])
            } else {
                Output.line("issued custodian certificate \(record.serial) for \(name) (\(role.rawValue)) → \(out)")
            }
        }
    }

    struct Bootstrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bootstrap ceremony: register the first custodians and the default policies (once per deployment)."
        )
        @Option(name: .customLong("custodian"), help: "A custodian's admin certificate (PEM); repeat for each.") var custodians: [String] = []
        @Option(help: "Approvals every operation class needs.") var required = 2
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let service = try await AdminCommand.service(context)
            let certificates = try custodians.map { path -> [UInt8] in
                guard let text = try? String(contentsOfFile: path, encoding: .utf8), let certificate = try? Certificate(pemEncoded: text) else {
                    throw CLIError("\(path) is not a PEM certificate")
                }
                return try certificate.derBytes
            }
            let records = try await service.bootstrap(custodianCertificates: certificates, required: required, actor: context.actor)
            let policies = try await service.policies()
            if output.json {
                try Output.json(["custodians": records.map(\.name), "policies": policies.map { "\($0.operationClass.rawValue): \($0.summary)" }])
            } else {
                Output.line("registered \(records.count) custodians: \(records.map { "\($0.name) (\($0.role))" }.joined(separator: ", "))")
                for policy in policies { Output.line("  \(policy.operationClass.rawValue): \(policy.summary)") }
            }
        }
    }

    /// `admin server-cert`: the alias of `server-cert --role admin`.
    struct ServerCert: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "server-cert", abstract: "Make the admin API's TLS identity from the Service CA (alias of server-cert --role admin)."
        )
        @OptionGroup var options: ServerCertCommand.Options
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws { try await ServerCertCommand.make(role: AdminRole.name, options: options, data: data, output: output) }
    }

    /// `admin serve`: the alias of `serve --roles admin`, with its options.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the admin API over HTTPS (TLS 1.3, custodian certificates only): alias of serve --roles admin."
        )
        @OptionGroup var options: ServeOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws { try await ServeCommand.serve(roles: AdminRole.name, options: options, data: data, json: output.json) }
    }

    // MARK: Custodians' commands (over mutual TLS)

    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask for an operation under quorum.",
            discussion: """
                Parameters are key=value; key=@FILE reads the value from a file (e.g. certificate=@bob.pem); [key=] is \
                optional. Each operation is approved under its policy class (metertrust admin policies).

                OPERATIONS:
                \(AdminCommand.operationsHelp().joined(separator: "\n"))

                EXAMPLES:
                  metertrust admin request manufacturer.register name=acme \\
                      organization="Acme Meters Ltd"
                  metertrust admin request ca.create kind=operational name=north \\
                      organization="North Utility plc" backup=true
                  metertrust admin request custodian.add certificate=@dave.pem \\
                      --out dave-request.json
                """
        )
        @Argument(help: "The operation, e.g. ca.create.") var operation: String
        @Argument(help: "Parameters, key=value.") var parameters: [String] = []
        @Option(help: "Seconds until the request expires (default 3600, at most 7 days).") var lifetime = 3600
        @Option(help: "Also save the canonical request document here (for offline approvals).") var out: String?
        @OptionGroup var client: AdminClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            var values: [String: String] = [:]
            for parameter in parameters {
                guard let equals = parameter.firstIndex(of: "=") else { throw CLIError(code: .usage, "parameter \(parameter) is not key=value") }
                let key = String(parameter[..<equals])
                var value = String(parameter[parameter.index(after: equals)...])
                if value.hasPrefix("@") {
                    guard let text = try? String(contentsOfFile: String(value.dropFirst()), encoding: .utf8) else {
                        throw CLIError(code: .fileSystem, "cannot read \(value.dropFirst()) for parameter \(key)")
                    }
                    value = text
                }
                values[key] = value
            }
            try await AdminCommand.submit(operation: operation, parameters: values, lifetime: lifetime, client: client, json: output.json, out: out)
        }
    }

    /// Asks the admin API for an operation under quorum and prints the request (`admin request` and the commands
    /// that are a named form of it, such as `account create`).
    static func submit(
        operation: String, parameters: [String: String], lifetime: Int, client: AdminClientOptions, json: Bool, out: String? = nil
    ) async throws {
        let body = try JSONEncoder().encode(AdminAPIMessage.NewRequest(operation: operation, parameters: parameters, lifetimeSeconds: lifetime))
        let api = try await AdminClient.witnessed(client)
        let bytes = try await api.send(.POST, "/v1/requests", body: Array(body))
        let status = try AdminClient.decode(bytes, as: RequestStatus.self)
        if let out { try Data(status.request.canonicalBytes).write(to: URL(fileURLWithPath: out)) }
        if json { try Output.json(try RequestView(status)) } else { AdminCommand.print(status) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List requests (newest first).")
        @Option(help: "Only requests in this state: pending, executing, executed, failed.") var state: String?
        @OptionGroup var client: AdminClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let api = try await AdminClient.witnessed(client)
            let bytes = try await api.send(.GET, "/v1/requests" + (state.map { "?state=\($0)" } ?? ""))
            let requests = try AdminClient.decode(bytes, as: [AdminAPIMessage.RequestSummary].self)
            if output.json {
                // Everything admin show knows, for each request: parameters, approvals with custodian and time,
                // required count, policy, state, executor, outcome (an object).
                var views: [RequestView] = []
                for summary in requests {
                    views.append(try RequestView(try await api.get("/v1/requests/\(summary.id)", as: RequestStatus.self)))
                }
                return try Output.json(views)
            }
            if requests.isEmpty { Output.line("no requests") }
            for request in requests {
                Output.line("\(request.id)  \(request.state.padding(toLength: 9, withPad: " ", startingAt: 0))  \(request.operation)  by \(request.requester)  expires \(Output.timestamp.string(from: request.expires))")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a request: what it asks, its approvals against its policy, its outcome.")
        @Argument(help: "Request id (SHA-256 of its document).") var id: String
        @Option(help: "Save the canonical request document here (for offline approval).") var documentOut: String?
        @OptionGroup var client: AdminClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let api = try await AdminClient.witnessed(client)
            let bytes = try await api.send(.GET, "/v1/requests/\(id)")
            let document = try await api.send(.GET, "/v1/requests/\(id)/document")
            let request = try AdminRequest.parse(document)
            guard request.id == id else { throw CLIError(code: .untrustedState, "the server sent a document whose SHA-256 is not \(id): do not approve it") }
            if let documentOut { try Data(document).write(to: URL(fileURLWithPath: documentOut)) }
            if output.json { return try Output.json(try RequestView(try AdminClient.decode(bytes, as: RequestStatus.self), document: request)) }
            // What the request asks is shown from the document whose SHA-256 is the id (what approvers sign), never from
            // the server's JSON; the server's JSON only says where it stands.
            AdminCommand.render(request).forEach { Output.line($0) }
            AdminCommand.printStanding(try AdminClient.decode(bytes, as: RequestStatus.self))
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a request: sign its canonical document with your admin key.",
            discussion: """
                Online: metertrust admin approve ID (fetches the document, checks its SHA-256 is ID, signs, uploads).
                Offline: metertrust admin approve --offline --request REQUEST.json --out APPROVAL.json (no network);
                later anyone registered uploads it: metertrust admin approve --upload APPROVAL.json.
                """
        )
        @Argument(help: "Request id.") var id: String?
        @Flag(help: "Sign a request file without contacting the server.") var offline = false
        @Option(help: "With --offline: the request document.") var request: String?
        @Option(help: "With --offline: where to write the approval.") var out: String?
        @Option(help: "Upload an approval file made offline.") var upload: String?
        @Option(help: "With --offline: your name as registered (default: the CN of --cert).") var custodian: String?
        @Flag(help: "Do not ask for confirmation on a terminal.") var yes = false
        @OptionGroup var client: AdminClientOptions
        @OptionGroup var output: OutputOptions

        /// Shows what is about to be signed (from the canonical document) and, on a terminal, asks.
        func confirm(_ request: AdminRequest) throws {
            let interactive = !yes && isatty(STDIN_FILENO) == 1
            // With --json and nobody asked, stderr carries only the JSON error object, if any.
            if interactive || !output.json {
                FileHandle.standardError.write(Data((AdminCommand.render(request).joined(separator: "\n") + "\n").utf8))
            }
            guard interactive else { return }
            FileHandle.standardError.write(Data("approve this request? type yes: ".utf8))
            guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
                throw CLIError(code: .usage, "not approved: you did not confirm")
            }
        }

        func run() async throws {
            if offline {
                guard let request, let out else { throw CLIError(code: .usage, "--offline needs --request FILE and --out FILE") }
                guard let bytes = FileManager.default.contents(atPath: request) else { throw CLIError(code: .fileSystem, "cannot read \(request)") }
                let document = try AdminRequest.parse(Array(bytes))
                try confirm(document)
                let approval = try sign(document)
                try Data(approval.bytes).write(to: URL(fileURLWithPath: out))
                if output.json {
                    FileHandle.standardOutput.write(Data(approval.bytes + [10]))
                } else {
                    Output.line("approved \(document.operation) request \(document.id) offline → \(out)")
                }
                return
            }
            let api = try await AdminClient.witnessed(client)
            let body: [UInt8]
            let requestID: String
            if let upload {
                guard let bytes = FileManager.default.contents(atPath: upload) else { throw CLIError(code: .fileSystem, "cannot read \(upload)") }
                let approval = try Approval.parse(Array(bytes))
                body = Array(bytes)
                requestID = approval.request
            } else {
                guard let id else { throw CLIError(code: .usage, "name the request: metertrust admin approve ID") }
                let document = try await api.send(.GET, "/v1/requests/\(id)/document")
                let parsed = try AdminRequest.parse(document)
                guard parsed.id == id else { throw CLIError(code: .untrustedState, "the server sent a document whose SHA-256 is not \(id): not approving") }
                try confirm(parsed)
                body = try sign(parsed).bytes
                requestID = id
            }
            let bytes = try await api.send(.POST, "/v1/requests/\(requestID)/approvals", body: body)
            if output.json { return try Output.json(try RequestView(try AdminClient.decode(bytes, as: RequestStatus.self))) }
            AdminCommand.print(try AdminClient.decode(bytes, as: RequestStatus.self))
        }

        private func sign(_ document: AdminRequest) throws -> Approval {
            let (key, fingerprint) = try client.signingIdentity()
            let name: String
            if let custodian {
                name = custodian
            } else {
                let text = try String(contentsOfFile: try client.certificatePath, encoding: .utf8)
                let certificate = try Certificate(pemEncoded: text)
                guard let commonName = certificate.subject.flatMap({ Array($0) }).first(where: { $0.type == .RDNAttributeType.commonName }).flatMap({ String($0.value) }) else {
                    throw CLIError("the certificate has no CN: pass --custodian")
                }
                name = commonName
            }
            return try Approval(approving: document, custodian: name, certificateFingerprint: fingerprint, key: key)
        }
    }

    struct Execute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run an approved request (once; only at quorum, before it expires).")
        @Argument(help: "Request id.") var id: String
        @Option(help: "For backup.export: write the backup file here.") var backupOut: String?
        @OptionGroup var client: AdminClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let api = try await AdminClient.witnessed(client)
            // A backup document is given once, to the executor: refuse before running an export it would lose.
            if backupOut == nil {
                let pending = try AdminClient.decode(try await api.send(.GET, "/v1/requests/\(id)"), as: RequestStatus.self)
                if pending.request.operation == AdminOperation.backupExport.rawValue {
                    throw CLIError("request \(id) is a backup.export: pass --backup-out FILE (the backup document is shown only to its executor, once); nothing was run")
                }
            }
            let bytes = try await api.send(.POST, "/v1/requests/\(id)/execute")
            let status = try AdminClient.decode(bytes, as: RequestStatus.self)
            // The backup document exists only in this answer: write it (0600 from creation) or say it is lost.
            if let backup = status.backup {
                guard let backupOut else {
                    throw CLIError("request \(id) ran and produced a backup document, which was not written: it is shown only to its executor, once; pass --backup-out FILE with a new request")
                }
                try SecretFile.write(Array(backup.utf8), to: backupOut)
            } else if backupOut != nil {
                throw CLIError("the request produced no backup file")
            }
            var shown = status
            shown.backup = nil
            if output.json { return try Output.json(try RequestView(shown)) }
            AdminCommand.print(shown)
        }
    }

    struct Custodians: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the registered custodians (remote, or on the HSM host without --server).")
        @OptionGroup var client: AdminClientOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            if client.isLocal { return try await AdminCommand.localCustodians(data: data, output: output) }
            let api = try await AdminClient.witnessed(client)
            let bytes = try await api.send(.GET, "/v1/custodians")
            if output.json { FileHandle.standardOutput.write(Data(bytes + [10])); return }
            for entry in try AdminClient.decode(bytes, as: [AdminAPIMessage.CustodianSummary].self) {
                Output.line("\(entry.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(entry.role.padding(toLength: 17, withPad: " ", startingAt: 0)) \(entry.certificate.prefix(16))…\(entry.removedAt.map { "  removed \(Output.timestamp.string(from: $0))" } ?? "")")
            }
        }
    }

    struct Policies: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the quorum policies (remote, or on the HSM host without --server).")
        @OptionGroup var client: AdminClientOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            if client.isLocal { return try await AdminCommand.localPolicies(data: data, output: output) }
            let api = try await AdminClient.witnessed(client)
            let bytes = try await api.send(.GET, "/v1/policies")
            if output.json { FileHandle.standardOutput.write(Data(bytes + [10])); return }
            for policy in try AdminClient.decode(bytes, as: [QuorumPolicy].self) {
                Output.line("\(policy.operationClass.rawValue.padding(toLength: 22, withPad: " ", startingAt: 0)) \(policy.summary)")
            }
        }
    }

    /// What a request asks, from its canonical document: every parameter in full, anything that could deceive a
    /// terminal escaped (``DisplayText``), certificates by subject, role, issuer and SHA-256.
    static func render(_ request: AdminRequest) -> [String] {
        var lines = [
            "request \(request.id)  (the SHA-256 of this document; approving signs it)",
            "  operation:  \(DisplayText.escaped(request.operation))",
            "  requester:  \(DisplayText.escaped(request.requester))",
            "  created:    \(DisplayText.escaped(request.created)), expires \(DisplayText.escaped(request.expires))",
        ]
        for (name, value) in request.parameters.sorted(by: { $0.key < $1.key }) {
            if name == "certificate" {
                lines.append("  \(DisplayText.escaped(name)):")
                lines += certificateLines(value).map { "    \($0)" }
            } else {
                lines.append("  \(DisplayText.escaped(name)) = \(DisplayText.escaped(value))")
            }
        }
        return lines
    }

    static func certificateLines(_ value: String) -> [String] {
        let der: [UInt8]?
        if value.contains("-----BEGIN"), let certificate = try? Certificate(pemEncoded: value) {
            der = try? certificate.derBytes
        } else {
            der = Data(base64Encoded: value).map(Array.init)
        }
        guard let der, let certificate = try? Certificate(derEncoded: der) else {
            return ["not a certificate: \(DisplayText.escaped(value, limit: 120))"]
        }
        let units = certificate.subject.flatMap { Array($0) }.filter { $0.type == .RDNAttributeType.organizationalUnitName }.compactMap { String($0.value) }
        return [
            "subject:  \(DisplayText.escaped("\(certificate.subject)"))",
            "role:     \(DisplayText.escaped(units.joined(separator: ", ")))",
            "issuer:   \(DisplayText.escaped("\(certificate.issuer)"))",
            "SHA-256:  \(hexString(SHA256.hash(data: der)))",
        ]
    }

    /// Where a request stands, as the server reports it (policy, tally, state, outcome).
    static func printStanding(_ status: RequestStatus) {
        Output.line("  policy:     \(status.policy.operationClass.rawValue): \(status.policy.summary)")
        Output.line("  approvals:  \(status.tally.counted.count)/\(status.tally.required)\(status.tally.counted.isEmpty ? "" : " (\(status.tally.counted.map { DisplayText.escaped($0) }.joined(separator: ", ")))")")
        for (name, reason) in status.tally.notCounted.sorted(by: { $0.key < $1.key }) {
            Output.line("  not counted: \(DisplayText.escaped(name)): \(DisplayText.escaped(reason))")
        }
        Output.line("  state:      \(status.state.rawValue)\(status.executedBy.map { " by \(DisplayText.escaped($0))" } ?? "")")
        if let outcome = status.outcome {
            if case .object(let values) = JSONValue(parsing: outcome) {
                for (key, value) in values.sorted(by: { $0.key < $1.key }) {
                    let text: String
                    if case .string(let string) = value { text = string } else { text = (try? String(decoding: JSONEncoder().encode(value), as: UTF8.self)) ?? "" }
                    Output.line("  \(DisplayText.escaped(key)): \(DisplayText.escaped(text))")
                }
            } else {
                Output.line("  outcome: \(DisplayText.escaped(outcome))")
            }
        }
    }

    /// `admin request --help`'s list: every operation the standard registry runs, with its parameters ([optional])
    /// and policy class, from the registry and the operations' own declarations (never a hand-written copy).
    static func operationsHelp(_ registry: QuorumOperationRegistry = .platform) -> [String] {
        let operations = registry.operations.sorted { $0.rawValue < $1.rawValue }
        let width = operations.map(\.rawValue.count).max() ?? 0
        return operations.map { operation in
            let parameters = operation.requiredParameters.sorted().map { "\($0)=" } + operation.optionalParameters.sorted().map { "[\($0)=]" }
            let name = operation.rawValue.padding(toLength: width, withPad: " ", startingAt: 0)
            // Wrapped here, under the parameter column, before the help's 80 columns would wrap it to the margin.
            var lines = ["  \(name) "]
            for parameter in parameters.isEmpty ? ["(no parameters)"] : parameters {
                if lines[lines.count - 1].count + 1 + parameter.count > 79 { lines.append("  \(String(repeating: " ", count: width)) ") }
                lines[lines.count - 1] += " " + parameter
            }
            return lines.joined(separator: "\n") + "\n"
                + "  \(String(repeating: " ", count: width))    approved under policy \(operation.operationClass.rawValue)"
        }
    }

    /// A status answer after a request, approval or execution: the request (from the verified document the status
    /// carries, whose id is checked) and where it stands.
    static func print(_ status: RequestStatus) {
        render(status.request).forEach { Output.line($0) }
        if status.request.id != status.id { Output.line("  warning: the server's id \(DisplayText.escaped(status.id)) is not this document's SHA-256") }
        printStanding(status)
    }
}

/// A request as `--json` shows it (request, approve, execute, show, list alike): what it asks, where it stands, and
/// its outcome as a JSON object (the admin API carries the outcome as text; it is never passed on as a string of
/// JSON). What it asks comes from the request document, whose SHA-256 must be the id.
struct RequestView: Encodable {
    struct Approval: Encodable {
        var custodian: String
        var approvedAt: Date?
        /// Whether the approval counts towards the quorum now (or, for a request that ran, when it ran).
        var counted: Bool
        var notCountedBecause: String?
    }

    var id: String
    var operation: String
    var parameters: [String: String]
    var requester: String
    var created: String
    var expires: String
    var state: String
    var policy: QuorumPolicy
    var required: Int
    var quorumMet: Bool
    var approvals: [Approval]
    var executedBy: String?
    var outcome: JSONValue?

    init(_ status: RequestStatus, document: AdminRequest? = nil) throws {
        let request = document ?? status.request
        guard request.id == status.id else {
            throw CLIError(code: .untrustedState, "the admin API sent request \(status.id) with a document whose SHA-256 is not its id: do not approve it")
        }
        id = status.id
        operation = request.operation
        parameters = request.parameters
        requester = request.requester
        created = request.created
        expires = request.expires
        state = status.state.rawValue
        policy = status.policy
        required = status.tally.required
        quorumMet = status.tally.isMet
        var custodians = status.approvals
        for name in status.tally.counted + status.tally.notCounted.keys.sorted() where !custodians.contains(name) { custodians.append(name) }
        approvals = custodians.map { name in
            Approval(
                custodian: name, approvedAt: status.approvedAt?[name], counted: status.tally.counted.contains(name),
                notCountedBecause: status.tally.notCounted[name]
            )
        }
        executedBy = status.executedBy
        outcome = status.outcome.map(JSONValue.init(parsing:))
    }
}

// MARK: Read-only on the HSM host (no custodian certificate)

extension AdminClientOptions {
    /// No admin API named (neither --server nor $METERTRUST_ADMIN_URL): the read-only commands read the local data
    /// directory instead, with the token's PIN, as the server itself would.
    var isLocal: Bool {
        server == nil && (ProcessInfo.processInfo.environment["METERTRUST_ADMIN_URL"] ?? "").isEmpty
    }
}

extension AdminCommand {
    /// The custodians as the verified audit log backs them (``AdminService/registry()``, what the server
    /// authenticates with); store rows the log does not back are named on stderr and left out. The JSON is the admin
    /// API's `GET /v1/custodians`.
    static func localCustodians(data: DataDirectoryOptions, output: OutputOptions) async throws {
        let registry = try await service(try Context(data)).registry()
        let custodians = registry.custodians.map {
            AdminAPIMessage.CustodianSummary(
                name: $0.name, role: $0.record.role, certificate: $0.record.fingerprintSHA256, registeredAt: $0.record.registeredAt, removedAt: $0.record.removedAt
            )
        }
        for (name, reason) in registry.disregarded.sorted(by: { $0.key < $1.key }) {
            FileHandle.standardError.write(Data("warning: the store's custodian \(DisplayText.escaped(name)) is not listed: \(DisplayText.escaped(reason))\n".utf8))
        }
        if output.json { return try Output.json(custodians) }
        if custodians.isEmpty { Output.line("no custodians: the quorum is not bootstrapped (metertrust admin bootstrap)") }
        for entry in custodians {
            Output.line("\(DisplayText.escaped(entry.name).padding(toLength: 16, withPad: " ", startingAt: 0)) \(entry.role.padding(toLength: 17, withPad: " ", startingAt: 0)) \(entry.certificate.prefix(16))…\(entry.removedAt.map { "  removed \(Output.timestamp.string(from: $0))" } ?? "")")
        }
    }

    /// The policies as the verified audit log set them (``AdminService/policies()``). The JSON is `GET /v1/policies`.
    static func localPolicies(data: DataDirectoryOptions, output: OutputOptions) async throws {
        let policies = try await service(try Context(data)).policies()
        if output.json { return try Output.json(policies) }
        if policies.isEmpty { Output.line("no policies: the quorum is not bootstrapped (metertrust admin bootstrap)") }
        for policy in policies {
            Output.line("\(policy.operationClass.rawValue.padding(toLength: 22, withPad: " ", startingAt: 0)) \(policy.summary)")
        }
    }

    struct Requests: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List requests with their approvals against their policy (newest first); on the HSM host without --server, read-only.",
            discussion: """
                Without --server (and $METERTRUST_ADMIN_URL) it reads the local data directory with the token's PIN, no \
                custodian certificate needed: each request as the admin service judges it now (the quorum gate over the \
                verified audit log). With --server it is metertrust admin list.
                Examples:
                  metertrust admin requests --state pending
                  metertrust admin requests --json
                """
        )
        @Option(help: "Only requests in this state: pending, executing, executed, failed.") var state: String?
        @Option(help: "At most this many requests.") var limit = 100
        @OptionGroup var client: AdminClientOptions
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard client.isLocal else {
                var list = try List.parse([])
                list.state = state
                list.client = client
                list.output = output
                return try await list.run()
            }
            let state = try state.map { text -> AdminRequestRecord.State in
                guard let state = AdminRequestRecord.State(rawValue: text) else {
                    throw CLIError(code: .usage, "--state must be pending, executing, executed or failed, not \(text)")
                }
                return state
            }
            guard limit >= 1 else { throw CLIError(code: .usage, "--limit must be at least 1") }
            let service = try await AdminCommand.service(try Context(data))
            // The same view admin list --json gives remotely (RequestView), from the service the server runs.
            var requests: [RequestView] = []
            for record in try await service.requests(state: state, limit: limit) {
                requests.append(try RequestView(try await service.status(id: record.id)))
            }
            if output.json { return try Output.json(requests) }
            if requests.isEmpty { Output.line("no requests") }
            for request in requests { AdminCommand.requestLines(request).forEach { Output.line($0) } }
        }
    }

    /// One request in `admin requests`' text: what it asks and where it stands.
    static func requestLines(_ view: RequestView) -> [String] {
        let counted = view.approvals.filter(\.counted).map { DisplayText.escaped($0.custodian) }
        var lines = [
            "\(view.id)  \(view.state.padding(toLength: 9, withPad: " ", startingAt: 0))  \(DisplayText.escaped(view.operation))  by \(DisplayText.escaped(view.requester))  expires \(DisplayText.escaped(view.expires))",
            "  approvals: \(counted.count)/\(view.required) (\(view.policy.summary))\(counted.isEmpty ? "" : ": \(counted.joined(separator: ", "))")",
        ]
        for approval in view.approvals where !approval.counted {
            lines.append("  not counted: \(DisplayText.escaped(approval.custodian)): \(DisplayText.escaped(approval.notCountedBecause ?? "?"))")
        }
        for (name, value) in view.parameters.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(DisplayText.escaped(name)) = \(DisplayText.escaped(value, limit: 80))")
        }
        if let executedBy = view.executedBy { lines.append("  executed by \(DisplayText.escaped(executedBy))") }
        return lines
    }
}
