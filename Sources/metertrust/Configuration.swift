import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI

/// `metertrust.json` in the data directory: where the HSM and the store are, and the PKI settings.
struct Configuration: Codable, Sendable {
    static let fileName = "metertrust.json"
    static let currentVersion = 1

    var version: Int = Configuration.currentVersion
    var hsm: HSMConfiguration
    var pki: PKISettings
    /// SQLite file, relative to the data directory unless absolute; the store unless `postgres` is set.
    var sqlitePath: String = "metertrust.sqlite"
    /// A PostgreSQL store (`init --store postgres://…`): several nodes, each with its own data directory, share it.
    var postgres: PostgresSettings?
    /// SHA-256 (hex) of the root CA certificate, pinned when `ca create-root` made it: the trust anchor the audit
    /// log's signer certificate must chain to. It lives here, outside the store, so replacing certificate rows in the
    /// database cannot swap it.
    var rootFingerprint: String?
    /// The audit log's checkpoint key, once `metertrust audit init` made it.
    var audit: AuditSettings?
    /// The admin API server's TLS identity, once `metertrust server-cert --role admin` made it.
    var adminServer: AdminServerSettings?
    /// The TLS identities of the other roles (`account`, …), by role, once `server-cert --role ROLE` made them.
    var servers: [String: AdminServerSettings]?
    /// How `metertrust serve` listens (README "Serving"); command-line flags override it.
    var serve: ServeSettings?

    /// The `serve` section: which roles, where each listens, the operations listener and the timeouts.
    struct ServeSettings: Codable, Sendable, Equatable {
        struct Listener: Codable, Sendable, Equatable {
            var host: String
            var port: Int
        }
        /// Roles served when `--roles` is not given (default: admin).
        var roles: [String]?
        /// Listener per role name (admin: default the address server-cert recorded).
        var listeners: [String: Listener]?
        /// The plain-HTTP operations listener (/metrics, /healthz, /readyz); default 127.0.0.1:9090, loopback only
        /// unless `--operations-listen` names another address.
        var operations: Listener?
        /// Seconds a client has to finish the TLS handshake (default 10) and a connection may stay idle (default 60).
        var handshakeTimeoutSeconds: Int?
        var idleTimeoutSeconds: Int?
        /// The most EST enrollments in flight or waiting for the HSM at once (default 64; `--est-queue-limit`).
        var estQueueLimit: Int?
    }

    /// The TLS identity `server-cert --role ROLE` recorded for a role.
    func serverIdentity(role: String) -> AdminServerSettings? {
        role == "admin" ? adminServer : servers?[role]
    }

    struct AdminServerSettings: Codable, Sendable {
        /// CKA_LABEL of the server's TLS key on the token.
        var keyLabel: String
        /// The server certificate's issuer (the Service CA; an operational CA in deployments made before it) and serial.
        var issuer: String
        var certificateSerial: String
        /// Where `serve` listens for the admin role unless the serve section or --listen says otherwise.
        var host: String
        var port: Int
    }

    struct AuditSettings: Codable, Sendable {
        /// CKA_LABEL of the audit key on the token.
        var keyLabel: String
        /// Signed-note key name and checkpoint origin, e.g. `metertrust.example/audit`.
        var keyName: String
        /// Serial of the audit-signer certificate (issued by the root).
        var certificateSerial: String
        /// Sign a checkpoint every this many entries.
        var checkpointInterval: Int
    }

    static func load(dataDirectory: URL) throws -> Configuration {
        let url = dataDirectory.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CLIError(code: .configuration, "no configuration at \(url.path): run metertrust init --data-dir \(dataDirectory.path) first")
        }
        let configuration: Configuration
        do {
            configuration = try JSONDecoder().decode(Configuration.self, from: data)
        } catch {
            throw CLIError(code: .configuration, JSONInput.problem(error, in: url.path) + ": fix it or run metertrust init --force")
        }
        guard configuration.version == currentVersion else {
            throw CLIError(code: .configuration, "\(url.path) has configuration version \(configuration.version); this metertrust reads version \(currentVersion)")
        }
        return configuration
    }

    /// Writes `metertrust.json`: a new file created 0600 (never chmod after the fact) and renamed over the old one, so
    /// a crash leaves the old configuration or the whole new one.
    func write(to dataDirectory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try SecretFile.write(Array(try encoder.encode(self)), to: dataDirectory.appendingPathComponent(Self.fileName).path)
    }

    func storePath(in dataDirectory: URL) -> String {
        sqlitePath.hasPrefix("/") ? sqlitePath : dataDirectory.appendingPathComponent(sqlitePath).path
    }
}

/// A CLI-level error: one line saying what is wrong and what to do, and its code (refused input unless said).
struct CLIError: CodedError {
    let errorCode: ErrorCode
    let message: String

    init(code: ErrorCode = .invalidArgument, _ message: String) {
        self.errorCode = code
        self.message = message
    }
}
