import ArgumentParser
import AsyncHTTPClient
import Crypto
import Foundation
import MeterTrustAccountAPI
import MeterTrustAdminAPI
import MeterTrustCore
import MeterTrustOnboarding
import MeterTrustRevocation
import MeterTrustStore
import NIOCore
import NIOHTTP1
import NIOSSL
import SwiftASN1
import X509

/// How a utility operator reaches the account API: URL, their operator certificate and key, the trust anchor (the
/// root certificate) for the server's certificate, and the account (default: their certificate's O).
struct AccountClientOptions: ParsableArguments {
    @Option(help: "Account API URL (default $METERTRUST_ACCOUNT_URL).") var server: String?
    @Option(help: "Your operator certificate, PEM (default $METERTRUST_OPERATOR_CERT).") var cert: String?
    @Option(help: "Your operator private key, PEM, mode 0600 (default $METERTRUST_OPERATOR_KEY).") var key: String?
    @Option(help: "Trust anchor for the server certificate, PEM (default $METERTRUST_ACCOUNT_TRUST).") var trust: String?
    @Option(help: "The account to act on (default: the O of your certificate, the only one it may act on).") var account: String?

    func resolved(_ value: String?, _ variable: String, _ what: String) throws -> String {
        if let value { return value }
        if let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { return value }
        throw CLIError(code: .usage, "\(what) is not set: pass it or export \(variable)")
    }

    func client() throws -> (client: APIClient, account: String) {
        let certificatePath = try resolved(cert, "METERTRUST_OPERATOR_CERT", "--cert")
        let client = try APIClient(
            api: "account API", url: try resolved(server, "METERTRUST_ACCOUNT_URL", "--server"), certificatePath: certificatePath,
            keyPath: try resolved(key, "METERTRUST_OPERATOR_KEY", "--key"), trustPath: try resolved(trust, "METERTRUST_ACCOUNT_TRUST", "--trust")
        )
        if let account { return (client, account) }
        // The first certificate of the file is the operator's (the chain may follow).
        guard let pem = try? String(contentsOfFile: certificatePath, encoding: .utf8), let first = try? PEMDocument.parseMultiple(pemString: pem).first,
            let certificate = try? Certificate(derEncoded: first.derBytes),
            let organization = certificate.subject.flatMap({ Array($0) }).first(where: { $0.type == .RDNAttributeType.organizationName }).flatMap({ String($0.value) })
        else {
            throw CLIError("the operator certificate \(certificatePath) names no account (O): pass --account")
        }
        return (client, organization)
    }
}

struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account",
        abstract: "Utility accounts and their operators.",
        discussion: """
            An account is created under quorum (account create, by a custodian) with its first operator; its operators \
            then work over the account API (metertrust serve --roles account) with certificates from the Operator CA \
            whose O is the account.

            EXAMPLES:
              metertrust account keygen --name olive
              metertrust account create north --operational-ca north --manufacturer acme \\
                  --operator olive --operator-csr olive.csr
              metertrust account show
              metertrust account operators add --name oscar --csr oscar.csr --out oscar.pem
            """,
        subcommands: [Keygen.self, Create.self, List.self, Show.self, Operators.self]
    )

    struct Keygen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make an operator's P-256 key (0600 PEM) and CSR, on the operator's own machine.")
        @Option(help: "The operator's name (CN of the certificate).") var name: String
        @Option(help: "Directory for NAME.key and NAME.csr.") var out = "."
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try ClientKeyPair.makeAndReport(name: name, directory: out, json: output.json, next: "hand the CSR to whoever adds you as an operator")
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask for a new account under quorum (admin request account.create), with its first operator.",
            discussion: "Custodians approve and execute it like any request (metertrust admin approve/execute); the outcome holds the operator's certificate."
        )
        @Argument(help: "Account id: 1 to 63 lowercase letters, digits and - (the O of its operators' certificates).") var id: String
        @Option(help: "Display name (default: the id).") var name: String?
        @Option(help: "The Operational CA that will certify the account's meters.") var operationalCA: String
        @Option(help: "A manufacturer whose meters the account accepts (repeatable).") var manufacturer: [String]
        @Option(help: "The first operator's name.") var `operator`: String
        @Option(help: "The first operator's CSR (PEM, from account keygen).") var operatorCSR: String
        @Option(help: "Seconds until the request expires.") var lifetime = 3600
        @OptionGroup var client: AdminClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard let csr = try? String(contentsOfFile: operatorCSR, encoding: .utf8) else { throw CLIError(code: .fileSystem, "cannot read \(operatorCSR)") }
            guard !manufacturer.isEmpty else { throw CLIError(code: .usage, "name at least one --manufacturer") }
            var parameters = [
                "id": id, "operational-ca": operationalCA, "manufacturers": manufacturer.joined(separator: ","), "operator": `operator`, "operator-csr": csr,
            ]
            if let name { parameters["name"] = name }
            try await AdminCommand.submit(operation: "account.create", parameters: parameters, lifetime: lifetime, client: client, json: output.json)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the accounts (on the platform host, from the store).")
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let store = try await Context(data).openStore()
            let accounts = try await store.accounts(after: nil, limit: Onboarding.maximumPage)
            if output.json { return try Output.json(accounts) }
            if accounts.isEmpty { Output.line("no accounts yet: metertrust account create") }
            for account in accounts {
                Output.line("\(account.id)  \(account.displayName)  operational CA \(account.operationalCA)  manufacturers \(account.manufacturers.joined(separator: ","))")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show your account (over the account API).")
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let (api, account) = try client.client()
            let record = try await api.get("/v1/accounts/\(account)", as: AccountRecord.self)
            if output.json { return try Output.json(record) }
            Output.line("\(record.id)  \(record.displayName)")
            Output.line("  operational CA: \(record.operationalCA)")
            Output.line("  manufacturers:  \(record.manufacturers.joined(separator: ", "))")
            Output.line("  created:        \(Output.timestamp.string(from: record.createdAt)) by \(record.createdBy)")
        }
    }

    struct Operators: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Your account's operators: list, add, remove (over the account API).", subcommands: [ListOperators.self, Add.self, Remove.self],
            defaultSubcommand: ListOperators.self
        )
    }

    struct ListOperators: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List your account's operators.")
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let (api, account) = try client.client()
            let operators = try await api.get("/v1/accounts/\(account)/operators", as: [OperatorRecord].self)
            if output.json { return try Output.json(operators) }
            for record in operators {
                let state = record.removedAt.map { "removed \(Output.timestamp.string(from: $0))" } ?? "active"
                Output.line("\(record.name)  \(state)  certificate \(record.certificateSerial)  fingerprint \(record.fingerprintSHA256)")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an operator to your account: the Operator CA certifies their CSR.")
        @Option(help: "The new operator's name (CN).") var name: String
        @Option(help: "Their CSR (PEM, from account keygen).") var csr: String
        @Option(help: "Write their certificate (PEM, then the chain) here.") var out: String
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard let text = try? String(contentsOfFile: csr, encoding: .utf8) else { throw CLIError(code: .fileSystem, "cannot read \(csr)") }
            let (api, account) = try client.client()
            let body = try JSONEncoder().encode(AccountAPIMessage.NewOperator(name: name, csr: text))
            let issued = try APIClient.decode(
                try await api.send(.POST, "/v1/accounts/\(account)/operators", body: Array(body)), as: AccountAPIMessage.IssuedOperator.self, api: "account API"
            )
            let pem = ([issued.certificate] + issued.chain).map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }.joined()
            try pem.write(toFile: out, atomically: true, encoding: .utf8)
            if output.json { return try Output.json(issued) }
            Output.line("added operator \(issued.name) to \(issued.account): certificate \(issued.serial) → \(out)")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an operator of your account (their certificate is revoked).")
        @Argument(help: "The operator's certificate fingerprint (SHA-256 hex, from account operators list).") var fingerprint: String
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let (api, account) = try client.client()
            _ = try await api.send(.DELETE, "/v1/accounts/\(account)/operators/\(fingerprint.lowercased())")
            if output.json { return try Output.json(["account": account, "removed": fingerprint.lowercased()]) }
            Output.line("removed operator \(fingerprint.lowercased()) from \(account); their certificate no longer reaches the account API")
        }
    }
}

struct EnrollCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll",
        abstract: "Enrollment lists and claims of your account (over the account API).",
        discussion: """
            A meter is assigned to an account only if it is on that account's list: the first account to list it \
            claims it; a second one is a conflict reported to both, never resolved silently (a custodian request \
            enrollment.resolve decides it). Releasing a meter (change of supplier) lets another account claim it.

            EXAMPLES:
              metertrust enroll upload batch-out/enrollment-manifest.json --manufacturer acme
              metertrust enroll upload meters.txt --format list --manufacturer acme
              metertrust enroll list --limit 100
              metertrust enroll conflicts
              metertrust enroll release 0024befffe804ff1
              metertrust enroll revoke 0024befffe804ff1 --reason keyCompromise
              metertrust enroll history 0024befffe804ff1
            """,
        subcommands: [Upload.self, List.self, Release.self, Revoke.self, Conflicts.self, History.self]
    )

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload an enrollment manifest (signed by the manufacturer) or a plain list of EUI-64s to your account.",
            discussion: "Streamed in one call; nothing is claimed unless the whole upload verifies."
        )
        @Argument(help: "The manifest (JSON) or list (one EUI-64 per line).") var file: String
        @Option(help: "manifest (default) or list.") var format = "manifest"
        @Option(help: "The manufacturer of the meters (a registered Manufacturer Device CA your account accepts).") var manufacturer: String
        @Option(help: "The manifest's detached signature (default: FILE.sig).") var signature: String?
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard let format = EnrollmentUploadRecord.Format(rawValue: format) else { throw CLIError(code: .usage, "--format is manifest or list") }
            var headers: [(String, String)] = [("Content-Type", format == .manifest ? "application/json" : "text/plain")]
            if format == .manifest {
                let path = signature ?? file + ".sig"
                guard let bytes = FileManager.default.contents(atPath: path) else {
                    throw CLIError(code: .fileSystem, "cannot read the manifest's signature \(path): pass --signature")
                }
                headers.append((AccountAPIMessage.signatureHeader, bytes.base64EncodedString()))
            }
            let (api, account) = try client.client()
            var query = URLComponents()
            query.queryItems = [URLQueryItem(name: "format", value: format.rawValue), URLQueryItem(name: "manufacturer", value: manufacturer)]
            let progress = TerminalProgress()
            let bytes = try await api.upload(
                "/v1/accounts/\(account)/enrollments?\(query.percentEncodedQuery ?? "")", file: file, headers: headers
            ) { sent, total in progress.update(phase: "uploading", done: sent, total: total) }
            progress.finish(phase: "uploaded")
            let result = try APIClient.decode(bytes, as: EnrollmentUploadResult.self, api: "account API")
            if output.json { return try Output.json(result) }
            Output.line("upload \(result.upload): \(result.meters) meters of \(result.manufacturer): \(result.claimed) claimed, \(result.alreadyHeld) already held, \(result.conflicts) conflicts")
            if !result.conflictingMeters.isEmpty {
                Output.line("  held by another account: \(result.conflictingMeters.joined(separator: ", "))\(result.conflicts > Int64(result.conflictingMeters.count) ? ", …" : ""); see metertrust enroll conflicts")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List your account's claimed meters (EUI-64 order, paged).")
        @Option(help: "Start after this EUI-64 (the `next` of the previous page).") var after: String?
        @Option(help: "At most this many (1 to 1000).") var limit = 100
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let (api, account) = try client.client()
            let path = "/v1/accounts/\(account)/claims?limit=\(limit)" + (after.map { "&after=\($0)" } ?? "")
            let page = try await api.get(path, as: AccountAPIMessage.Page<ClaimRecord>.self)
            if output.json { return try Output.json(page) }
            if page.items.isEmpty { Output.line("no claimed meters") }
            for claim in page.items {
                Output.line("\(claim.eui64)  claimed \(Output.timestamp.string(from: claim.claimedAt)) by \(claim.claimedBy)")
            }
            if let next = page.next { Output.line("more: metertrust enroll list --after \(next)") }
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release a meter your account holds (change of supplier): another account may then claim it.",
            discussion: "Your account's operational certificates for the meter are recorded for revocation."
        )
        @Argument(help: "The meter's EUI-64.") var eui64: String
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let meter = try EUI64(eui64).description
            let (api, account) = try client.client()
            let bytes = try await api.send(.POST, "/v1/accounts/\(account)/claims/\(meter)/release")
            let release = try APIClient.decode(bytes, as: Onboarding.Release.self, api: "account API")
            if output.json { return try Output.json(release) }
            Output.line("released \(meter) from \(account)\(release.revocations.isEmpty ? "" : "; recorded for revocation: \(release.revocations.map(\.serial).joined(separator: ", "))")")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke the operational certificates your account's Operational CA issued to a meter (stolen, faulty, retired).",
            discussion: "Final. Factory identity certificates are revoked by a PKI officer (metertrust revoke --identity), not here."
        )
        @Argument(help: "The meter's EUI-64.") var eui64: String
        @Option(help: "RFC 5280 reason (default unspecified).") var reason: String?
        @Option(help: "When the key was (suspected to be) compromised, RFC 3339.") var invalidityDate: String?
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let meter = try EUI64(eui64).description
            let (api, account) = try client.client()
            let body = try JSONEncoder().encode(AccountAPIMessage.Revoke(reason: reason, invalidityDate: invalidityDate))
            let bytes = try await api.send(.POST, "/v1/accounts/\(account)/meters/\(meter)/revoke", body: Array(body))
            let results = try APIClient.decode(bytes, as: [RevocationResult].self, api: "account API")
            if output.json { return try Output.json(RevokeCommand.Summary(revoked: results.filter { !$0.alreadyRevoked }.count, alreadyRevoked: results.filter(\.alreadyRevoked).count, results: results)) }
            for result in results { Output.line(RevokeCommand.describe(result)) }
        }
    }

    struct Conflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Conflicts your account is a side of: meters two accounts listed.")
        @Flag(help: "Closed conflicts too.") var all = false
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let (api, account) = try client.client()
            let conflicts = try await api.get("/v1/accounts/\(account)/conflicts" + (all ? "?all=true" : ""), as: [ConflictRecord].self)
            if output.json { return try Output.json(conflicts) }
            if conflicts.isEmpty { Output.line("no \(all ? "" : "open ")conflicts") }
            for conflict in conflicts {
                let state = conflict.resolution.map { "closed (\($0.rawValue))" } ?? "open"
                Output.line("\(conflict.eui64)  held by \(conflict.holder)  listed by \(conflict.claimant)  \(state)  reported \(Output.timestamp.string(from: conflict.reportedAt))")
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A meter's claims, conflicts and releases your account took part in, oldest first.")
        @Argument(help: "The meter's EUI-64.") var eui64: String
        @OptionGroup var client: AccountClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let meter = try EUI64(eui64).description
            let (api, account) = try client.client()
            let events = try await api.get("/v1/accounts/\(account)/meters/\(meter)/history", as: [MeterHistoryEvent].self)
            if output.json { return try Output.json(events) }
            for event in events {
                Output.line("\(Output.timestamp.string(from: event.at))  \(event.kind.rawValue)  \(event.account)  by \(event.actor)")
            }
        }
    }
}
