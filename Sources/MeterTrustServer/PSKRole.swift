import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import MeterTrustCore
import MeterTrustOnboarding
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// The PSK listener of `metertrust serve` (role `est-psk`): meters that authenticate with their TLS pre-shared key
/// instead of a certificate (PSK batches, and meters whose IDevID has keyAgreement only and so cannot sign a TLS
/// handshake).
///
/// The one exception to TLS 1.3 in the product: swift-nio-ssl 2.37.6 offers PSK with TLS 1.2 only. The listener offers
/// exactly one suite, TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 (ECDHE-PSK-CHACHA20-POLY1305, RFC 7905: forward
/// secrecy from the ECDHE share, the PSK authenticating both ends); LwM2M's TLS_PSK_WITH_AES_128_CCM_8 is not
/// available in swift-nio-ssl 2.37.6 (BoringSSL has no CCM suites). The PSK identity is the meter's EUI-64 as 16
/// lowercase hex digits; the key comes from ``PSKResolver`` at each handshake (no list, no cache), and the listener
/// runs on an event-loop group of its own because the PSK callback blocks its event loop while the HSM derives
/// (see ``PSKHandshakeKeys``). Handlers learn the proven meter from the connection (``PSKTLSChannel``).
///
/// The EST routes (``EstRoutes``) are served here too, for the meter the handshake proved: `simpleenroll` issues its
/// operational certificate as over the `est` listener (same checks, same queue: ``OperationalEnrollment`` with
/// ``MeterCredential/presharedKey(_:)``), `simplereenroll` renews it while the meter holds a current one.
public struct PSKRole: ServerRole {
    public static let name = "est-psk"
    /// The cipher suite the listener offers (OpenSSL's name), and nothing else.
    public static let cipherSuite = "ECDHE-PSK-CHACHA20-POLY1305"
    public var name: String { Self.name }
    public let warnings: [String] = []
    let resolver: PSKResolver
    let enrollment: OperationalEnrollment
    let logger: Logger
    /// Threads of the listener's own event-loop group: handshakes resolving a key at once.
    let eventLoopThreads: Int

    public init(environment: ServeEnvironment) async throws {
        let admin = environment.admin
        resolver = PSKResolver(store: admin.store, token: admin.hierarchy.token)
        enrollment = OperationalEnrollment(store: admin.store, hierarchy: admin.hierarchy, audit: admin.audit, queue: environment.estQueue, clock: admin.clock)
        logger = environment.logger
        eventLoopThreads = max(2, environment.admin.hierarchy.token.sessionCount)
    }

    /// TLS 1.2 only, the one suite, PSK and no certificate.
    static func tlsConfiguration() -> TLSConfiguration {
        var tls = TLSConfiguration.makePreSharedKeyConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.maximumTLSVersion = .tlsv12
        tls.cipherSuites = cipherSuite
        tls.certificateVerification = .none
        return tls
    }

    public func service(listener: ServeListener, requestLogger: Logger, onBound: @escaping @Sendable (Int) async -> Void) async throws -> any Service {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: eventLoopThreads)
        let http = HTTP1Channel.Configuration(
            additionalChannelHandlers: [HandshakeTimeoutHandler(timeout: listener.handshakeTimeout), QuiesceGraceHandler()], idleTimeout: listener.idleTimeout
        )
        let router = Router(context: PSKRequestContext.self)
        router.add(middleware: RequestObservationMiddleware(role: Self.name, logger: requestLogger))
        router.add(middleware: ProblemMiddleware<PSKRequestContext>(api: "PSK listener"))
        router.add(middleware: PSKMeterMiddleware())
        PSKRoutes.add(to: router)
        EstRoutes<PSKRequestContext>(enrollment: enrollment).add(to: router)
        let application = Application(
            router: router,
            server: .psk(http1: http, configuration: Self.tlsConfiguration(), keys: PSKHandshakeKeys(resolver: resolver, logger: requestLogger)),
            configuration: ApplicationConfiguration(address: .hostname(listener.host, port: listener.port), serverName: "metertrust-est-psk"),
            onServerRunning: { channel in await onBound(channel.localAddress?.port ?? 0) },
            eventLoopGroupProvider: .shared(group),
            logger: logger
        )
        return OwnEventLoopGroupService(application: application, group: group)
    }

    public func clientURLs(bindHost: String, port: Int) -> [String] {
        ["https://\(bindHost.contains(":") ? "[\(bindHost)]" : bindHost):\(port)"]
    }
}

/// A listener with an event-loop group of its own: runs it, then shuts the group down.
struct OwnEventLoopGroupService<Wrapped: Service>: Service {
    let application: Wrapped
    let group: MultiThreadedEventLoopGroup

    func run() async throws {
        do {
            try await application.run()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }
}

/// The PSK listener's request context: the request's observation, its channel, and the meter the connection's PSK
/// handshake proved (set by ``PSKMeterMiddleware`` before any route runs).
struct PSKRequestContext: EstRequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    let observation = RequestObservation()
    /// The authenticated meter.
    var meter: EUI64?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The authenticated meter, or 401 (never reached on a connection whose handshake did not prove one).
    func requireMeter() throws -> EUI64 {
        guard let meter else { throw HTTPProblem(.unauthenticated, "no meter was authenticated by this connection's PSK handshake") }
        return meter
    }

    /// The meter's PSK, proved by the handshake, for both EST operations.
    func meterCredential(for operation: EnrollmentOperation) async throws -> MeterCredential {
        .presharedKey(try requireMeter())
    }
}

/// Reads the meter the connection proved from its ``PSKPeerHandler`` (on the connection's event loop) and puts it
/// into the request context; a connection without one gets 401 and no route runs.
struct PSKMeterMiddleware: RouterMiddleware {
    typealias Context = PSKRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let channel = context.channel
        let meter = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: PSKPeerHandler.self).peer.authenticated
        }.get()
        guard let meter else { throw HTTPProblem(.unauthenticated, "no meter was authenticated by this connection's PSK handshake") }
        var context = context
        context.meter = meter
        context.observation.identity = "psk:\(meter)"
        return try await next(request, context)
    }
}

/// The PSK listener's own routes (the EST routes are mounted next to them).
enum PSKRoutes {
    /// What the connection proved, for a meter (and a test) to check its PSK: `{"eui64", "endpointName"}`.
    struct Identity: ResponseEncodable {
        var eui64: String
        var endpointName: String
    }

    static func add(to router: Router<PSKRequestContext>) {
        router.get("/v1/psk/identity") { _, context -> Identity in
            let meter = try context.requireMeter()
            return Identity(eui64: meter.description, endpointName: meter.deviceURN)
        }
    }
}
