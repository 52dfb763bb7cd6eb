import Foundation
import Logging
import MeterTrustAdmin
import MeterTrustCore
import MeterTrustOnboarding
import NIOCore
import ServiceLifecycle

/// Where one listener of `metertrust serve` binds, and its connection timeouts.
public struct ServeListener: Sendable, Hashable {
    public var host: String
    public var port: Int
    /// A TLS handshake not finished within this is dropped (a client holding connections half-open).
    public var handshakeTimeout: TimeAmount
    /// A connection with no request for this long is closed.
    public var idleTimeout: TimeAmount

    public init(host: String, port: Int, handshakeTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .seconds(60)) {
        self.host = host
        self.port = port
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
    }
}

extension ServeListener {
    /// Whether `host` is a loopback address or `localhost` (the operations listener binds elsewhere only when told).
    public static func isLoopback(_ host: String) -> Bool {
        let host = host.lowercased()
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// What the roles of one `serve` process are built from: the domain services they are thin over, and the logger
/// of the per-request lines. A new role that needs another domain service adds a field here.
public struct ServeEnvironment: Sendable {
    /// The admin service (and through it the CA hierarchy, its HSM token, the store and the audit log).
    public var admin: AdminService
    /// The admin API's TLS identity as `server-cert --role admin` recorded it (nil: none yet).
    public var adminIdentity: AdminServer.Settings?
    /// The account API's TLS identity as `server-cert --role account` recorded it (nil: none yet).
    public var accountIdentity: AdminServer.Settings?
    /// The EST server's TLS identity as `server-cert --role est` recorded it (nil: none yet).
    public var estIdentity: AdminServer.Settings?
    /// The most EST enrollments in flight or waiting for the HSM at once (``EnrollmentQueue``).
    public var estQueueLimit: Int { estQueue.limit }
    /// The one enrollment queue of this process, shared by the `est` and `est-psk` listeners (one HSM behind both).
    public let estQueue: EnrollmentQueue
    /// Bounds of one enrollment upload on the account API.
    public var enrollmentLimits: EnrollmentLimits
    /// One line per request goes here (``RequestObservationMiddleware``).
    public var requestLogger: Logger
    public var logger: Logger

    public init(
        admin: AdminService, adminIdentity: AdminServer.Settings?, accountIdentity: AdminServer.Settings? = nil,
        estIdentity: AdminServer.Settings? = nil, estQueueLimit: Int = EnrollmentQueue.defaultLimit,
        enrollmentLimits: EnrollmentLimits = EnrollmentLimits(), requestLogger: Logger, logger: Logger
    ) {
        self.admin = admin
        self.adminIdentity = adminIdentity
        self.accountIdentity = accountIdentity
        self.estIdentity = estIdentity
        self.estQueue = EnrollmentQueue(limit: estQueueLimit)
        self.enrollmentLimits = enrollmentLimits
        self.requestLogger = requestLogger
        self.logger = logger
    }
}

/// One role of `metertrust serve`: an HTTPS listener with its own Hummingbird router, its own TLS configuration
/// (TLS 1.3, mutual TLS with the role's own client verifier) and its own address.
///
/// Adding a role is one new type and one line:
/// 1. a type conforming to `ServerRole`: an `init(environment:)` that finds what the role serves (refusing to start
///    without it), and ``service(listener:requestLogger:onBound:)`` that returns its Hummingbird `Application` with
///    ``RequestObservationMiddleware`` outermost on a router over an ``ObservedRequestContext`` (set
///    `observation.identity` and, where known, `observation.account` as the handlers authenticate);
/// 2. one line in ``ServerRoles/table``: `("name", { try await NewRole(environment: $0) })`.
/// `serve --roles` and the `serve` section of metertrust.json (`listeners.<name>`) then know it.
public protocol ServerRole: Sendable {
    /// The role's name in `--roles`, in the metrics' `role` label and in the request log.
    var name: String { get }
    /// One-line warnings for the operator at start (a set-up that still works but should be migrated).
    var warnings: [String] { get }
    /// The role's listener as a swift-service-lifecycle service; `onBound` receives the bound port.
    func service(listener: ServeListener, requestLogger: Logger, onBound: @escaping @Sendable (Int) async -> Void) async throws -> any Service
    /// URLs a client of this role can use as they are, once bound to `port` on `bindHost`.
    func clientURLs(bindHost: String, port: Int) -> [String]
}

/// The roles `serve --roles` knows, in the order they are listed.
public enum ServerRoles {
    public typealias Maker = @Sendable (ServeEnvironment) async throws -> any ServerRole

    /// The role table: one line per role.
    public static let table: [(name: String, make: Maker)] = [
        (AdminRole.name, { try await AdminRole(environment: $0) }),
        (AccountRole.name, { try await AccountRole(environment: $0) }),
        (EstRole.name, { try await EstRole(environment: $0) }),
        (PSKRole.name, { try await PSKRole(environment: $0) }),
        (CRLRole.name, { try await CRLRole(environment: $0) }),
        (OCSPRole.name, { try await OCSPRole(environment: $0) }),
    ]

    public static var known: [String] { table.map(\.name) }

    /// The role names in a `--roles` value (comma-separated, each once), or the unknown one.
    public static func parse(_ list: String) -> Result<[String], UnknownRole> {
        var names: [String] = []
        for part in list.split(separator: ",", omittingEmptySubsequences: false) {
            let name = part.trimmingCharacters(in: .whitespaces).lowercased()
            guard known.contains(name) else { return .failure(UnknownRole(name: name)) }
            if !names.contains(name) { names.append(name) }
        }
        return .success(names)
    }

    public struct UnknownRole: Error, Sendable {
        public let name: String
    }

    /// Builds the named roles (each refuses to start if what it serves is missing).
    public static func make(_ names: [String], environment: ServeEnvironment) async throws -> [any ServerRole] {
        var roles: [any ServerRole] = []
        for name in names {
            guard let entry = table.first(where: { $0.name == name }) else { continue }
            roles.append(try await entry.make(environment))
        }
        return roles
    }
}

/// The admin API role: custodians over mutual TLS (``AdminServer``).
public struct AdminRole: ServerRole {
    public static let name = "admin"
    public var name: String { Self.name }
    public let warnings: [String]
    /// The admin server as assembled from the recorded identity; its host and port are the listener's.
    let server: AdminServer

    public init(environment: ServeEnvironment) async throws {
        guard let identity = environment.adminIdentity else {
            throw ServeError("the admin API has no TLS identity yet: run metertrust server-cert --role admin first")
        }
        server = try await AdminServer.assemble(service: environment.admin, settings: identity, logger: environment.logger)
        // Deployments from before the Service CA: their admin certificate came from a utility's operational CA.
        let issuerRole = try await environment.admin.store.certificateAuthority(named: identity.issuer)?.role
        if let issuerRole, issuerRole != .service {
            warnings = [
                "the admin API's certificate \(identity.certificateSerial) is issued by the \(issuerRole.rawValue) CA \(identity.issuer), not a Service CA: "
                    + "create one (metertrust admin request ca.create kind=service name=NAME organization=ORG, approved by the quorum), "
                    + "then run metertrust server-cert --role admin and restart serve",
            ]
        } else {
            warnings = []
        }
    }

    public func service(listener: ServeListener, requestLogger: Logger, onBound: @escaping @Sendable (Int) async -> Void) async throws -> any Service {
        var configuration = server.configuration
        configuration.host = listener.host
        configuration.port = listener.port
        configuration.handshakeTimeout = listener.handshakeTimeout
        configuration.idleTimeout = listener.idleTimeout
        return try await AdminServer(service: server.service, configuration: configuration).application(requestLogger: requestLogger, onStarted: onBound)
    }

    public func clientURLs(bindHost: String, port: Int) -> [String] {
        guard let certificate = server.configuration.certificateChain.first else { return ["https://\(bindHost):\(port)"] }
        return ServerURLs.urls(certificate: certificate, bindHost: bindHost, port: port)
    }
}

/// A server that cannot start as configured: one line saying what to do.
public struct ServeError: CodedError {
    public let errorCode: ErrorCode
    public let message: String

    public init(_ message: String, code: ErrorCode = .configuration) {
        self.errorCode = code
        self.message = message
    }
}
