import Foundation
import Logging
import MeterTrustCore
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// `metertrust serve`: the chosen roles, each on its own listener, and the operations listener, in one
/// swift-service-lifecycle `ServiceGroup`. SIGTERM or SIGINT shuts it down gracefully, in reverse order of start:
/// the role listeners stop accepting and finish their in-flight requests, then the operations listener stops, then
/// `close` closes the HSM sessions and the store; ``run(roles:listeners:operations:environment:close:onBound:)``
/// then returns.
public enum PlatformServer {
    /// What is listening where, once every listener is bound (`serve --json` prints it).
    public struct Bound: Sendable, Encodable {
        public struct Role: Sendable, Encodable {
            public var urls: [String]
            public var port: Int
        }
        public var roles: [String: Role]
        /// `http://HOST:PORT` of the operations listener.
        public var operations: String
        /// Every listener's port by role, and `operations`.
        public var ports: [String: Int]
    }

    public static func run(
        roles: [any ServerRole], listeners: [String: ServeListener], operations: ServeListener, environment: ServeEnvironment,
        close: @escaping @Sendable () async -> Void, onBound: @escaping @Sendable (Bound) async -> Void
    ) async throws {
        let collector = BoundCollector(expected: roles.count + 1, operationsHost: operations.host, onBound: onBound)
        var services: [any Service] = [ResourceCloser(close: close, logger: environment.requestLogger)]
        let token = environment.admin.hierarchy.token
        let store = environment.admin.store
        let operationsServer = OperationsServer(
            listener: operations,
            readiness: {
                var state = Readiness(ready: true, hsm: "ok", store: "ok", reason: nil)
                do {
                    try await within(seconds: 5) { try await token.perform { try $0.probeSession() } }
                } catch {
                    state.ready = false
                    state.hsm = Self.describe(error, what: "no HSM session opens")
                    state.reason = state.reason ?? "hsm: \(state.hsm)"
                }
                do {
                    try await within(seconds: 5) { _ = try await store.certificateAuthorities() }
                } catch {
                    state.ready = false
                    state.store = Self.describe(error, what: "the store cannot be read")
                    state.reason = state.reason ?? "store: \(state.store)"
                }
                return state
            },
            logger: environment.logger
        )
        services.append(operationsServer.application { port in await collector.bound(operationsPort: port) })
        for role in roles {
            guard let listener = listeners[role.name] else { throw ServeError("no listener is configured for role \(role.name)") }
            services.append(
                try await role.service(listener: listener, requestLogger: environment.requestLogger) { port in
                    await collector.bound(role: role.name, urls: role.clientURLs(bindHost: listener.host, port: port), port: port)
                }
            )
        }
        // Last in the group, so the first to hear of the shutdown: new connections are refused from then on.
        services.append(DrainingSignal())
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: environment.logger)
        )
        try await group.run()
    }

    /// A failure as one line for `/readyz`: a coded error's message, else what failed (no library internals).
    static func describe(_ error: any Error, what: String) -> String {
        if let coded = error as? any CodedError { return coded.message }
        return error is ReadinessTimeout ? "\(what) within 5 seconds" : what
    }
}

struct ReadinessTimeout: Error {}

/// `body`, or ``ReadinessTimeout`` after `seconds`.
func within(seconds: Int, _ body: @escaping @Sendable () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw ReadinessTimeout()
        }
        defer { group.cancelAll() }
        try await group.next()
    }
}

/// Whether this process's server has begun its graceful shutdown (one `serve` per process).
///
/// Why: swift-nio's async server channel has a window in which a connection accepted while the listener stops is
/// never handed to the accept loop; its channel then becomes active with no one to finish its writer, and NIO traps
/// ("Deinited NIOAsyncWriter without calling finish()", apple/swift-nio#3481). A connection that becomes active once
/// the shutdown began is closed before anything above sees it (``QuiesceGraceHandler``), which finishes the writer.
enum ServerDraining {
    private static let draining = NIOLockedValueBox(false)
    static var isDraining: Bool { draining.withLockedValue { $0 } }
    static func begin() { draining.withLockedValue { $0 = true } }
}

/// Sets ``ServerDraining`` when the graceful shutdown reaches it (it is last in the group, so first), before any
/// listener stops accepting.
struct DrainingSignal: Service {
    func run() async throws {
        try? await gracefulShutdown()
        ServerDraining.begin()
    }
}

/// First in the group, so last to stop: once every listener has finished, closes what they used.
struct ResourceCloser: Service {
    let close: @Sendable () async -> Void
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        await close()
        logger.info("stopped: every listener closed, then the HSM sessions and the store")
    }
}

/// Collects the bound ports; reports once every listener is bound.
actor BoundCollector {
    private let expected: Int
    private let operationsHost: String
    private let onBound: @Sendable (PlatformServer.Bound) async -> Void
    private var roles: [String: PlatformServer.Bound.Role] = [:]
    private var operationsPort: Int?

    init(expected: Int, operationsHost: String, onBound: @escaping @Sendable (PlatformServer.Bound) async -> Void) {
        self.expected = expected
        self.operationsHost = operationsHost
        self.onBound = onBound
    }

    func bound(role: String, urls: [String], port: Int) async {
        roles[role] = .init(urls: urls, port: port)
        await reportIfComplete()
    }

    func bound(operationsPort port: Int) async {
        operationsPort = port
        await reportIfComplete()
    }

    private func reportIfComplete() async {
        guard let operationsPort, roles.count + 1 == expected else { return }
        let host = operationsHost.contains(":") ? "[\(operationsHost)]" : operationsHost
        var ports = roles.mapValues(\.port)
        ports["operations"] = operationsPort
        await onBound(PlatformServer.Bound(roles: roles, operations: "http://\(host):\(operationsPort)", ports: ports))
    }
}
