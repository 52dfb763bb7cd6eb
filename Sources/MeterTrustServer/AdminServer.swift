import Crypto
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// The HTTPS admin API: TLS 1.3 only, a client certificate required, issued by the Admin CA and belonging to a
/// registered, active custodian (checked in the handshake and again per request). Thin over ``AdminService``.
public struct AdminServer: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// The server's certificate (tls-server profile) and its issuer chain.
        public var certificateChain: [Certificate]
        /// The server's key, in the HSM.
        public var key: HSMKey
        /// A TLS handshake not finished within this is dropped (a client holding connections half-open).
        public var handshakeTimeout: TimeAmount
        /// A connection with no request for this long is closed.
        public var idleTimeout: TimeAmount
        /// The audit signer's certificate (DER), served to the custodians' witnesses.
        public var auditSigner: [UInt8]?

        public init(
            host: String, port: Int, certificateChain: [Certificate], key: HSMKey, handshakeTimeout: TimeAmount = .seconds(10),
            idleTimeout: TimeAmount = .seconds(60), auditSigner: [UInt8]? = nil
        ) {
            self.auditSigner = auditSigner
            self.host = host
            self.port = port
            self.certificateChain = certificateChain
            self.key = key
            self.handshakeTimeout = handshakeTimeout
            self.idleTimeout = idleTimeout
        }
    }

    public let service: AdminService
    public let configuration: Configuration
    private let logger: Logger

    public init(service: AdminService, configuration: Configuration, logger: Logger = Logger(label: "metertrust.admin.server")) {
        self.service = service
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until SIGTERM/SIGINT; `onStarted` receives the bound port (useful with port 0).
    public func run(onStarted: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await application(requestLogger: logger, onStarted: onStarted).runService()
    }

    /// The admin API as a Hummingbird application (a swift-service-lifecycle `Service`): TLS 1.3 with mutual TLS
    /// through ``ClientVerifier``, the handshake and idle timeouts, and ``RequestObservationMiddleware`` outermost.
    func application(
        requestLogger: Logger, onStarted: @escaping @Sendable (Int) async -> Void
    ) async throws -> Application<RouterResponder<AdminRequestContext>> {
        let adminCA = try await service.adminAuthority()
        let tls = try tlsConfiguration(acceptableIssuer: adminCA.certificate)
        let verifier = ClientVerifier(service: service, adminCA: adminCA, logger: logger)
        let handshakeTimeout = configuration.handshakeTimeout
        let http = HTTP1Channel.Configuration(
            additionalChannelHandlers: [HandshakeTimeoutHandler(timeout: handshakeTimeout), QuiesceGraceHandler()], idleTimeout: configuration.idleTimeout
        )
        let routes = AdminRoutes(service: service, adminCA: adminCA, auditSigner: configuration.auditSigner, logger: logger)
        return Application(
            router: routes.router(observation: RequestObservationMiddleware(role: AdminRole.name, logger: requestLogger)),
            server: try .tls(.http1(configuration: http), configuration: TLSChannelConfiguration(tlsConfiguration: tls) { certificates in
                await verifier.verify(certificates)
            }),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "metertrust-admin"),
            onServerRunning: { channel in await onStarted(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// TLS 1.3, a client certificate required; `acceptableIssuer` (the Admin CA) is what the CertificateRequest names.
    /// Path validation is ClientVerifier's (chain through the Admin CA to the root), not BoringSSL's.
    func tlsConfiguration(acceptableIssuer: Certificate) throws -> TLSConfiguration {
        let chain = try configuration.certificateChain.map { NIOSSLCertificateSource.certificate(try NIOSSLCertificate(bytes: try $0.derBytes, format: .der)) }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(NIOSSLPrivateKey(customPrivateKey: HSMTLSKey(token: service.hierarchy.token, key: configuration.key)))
        )
        tls.minimumTLSVersion = .tlsv13
        // Request and require a client certificate; ClientVerifier replaces BoringSSL's path validation.
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: try acceptableIssuer.derBytes, format: .der)])
        // The CertificateRequest names the acceptable CA and offers only what custodian keys sign with (P-256,
        // SHA-256): no RSA, no SHA-1.
        tls.sendCANameList = true
        tls.verifySignatureAlgorithms = [.ecdsaSecp256R1Sha256]
        // swift-nio-ssl has no switch for session tickets, and a resumed session skips the verify callback: every
        // request therefore checks the session's client certificate again (AdminRoutes.custodian).
        return tls
    }
}

/// Verifies a TLS client during the handshake: the chain must validate to the root through the Admin CA, and the
/// leaf must be the admin certificate of an active custodian. Anything else fails the handshake.
struct ClientVerifier: Sendable {
    let service: AdminService
    let adminCA: CertificateAuthority
    let logger: Logger

    func verify(_ presented: [NIOSSLCertificate]) async -> NIOSSLVerificationResult {
        do {
            guard let leaf = presented.first else { throw HTTPProblem(.unauthenticated, "no client certificate") }
            let der = try leaf.toDERBytes()
            // The same checks as registration (chain through the Admin CA, custodian profile), then the registry.
            _ = try await Custodian.admit(certificate: der, adminCA: adminCA, registeredBy: nil)
            let custodian = try await service.authenticate(certificateDER: der)
            logger.debug("TLS client accepted", metadata: ["custodian": "\(custodian.name)"])
            return .certificateVerified
        } catch {
            logger.warning("TLS client refused", metadata: ["reason": "\(error)"])
            // A refused certificate is a security event: record who tried (never for a connection without one, so
            // anonymous scanners cannot fill the log).
            if let leaf = presented.first, let der = try? leaf.toDERBytes() {
                let fingerprint = hexString(SHA256.hash(data: der))
                let subject = (try? Certificate(derEncoded: der)).map { "\($0.subject)" } ?? "unparseable"
                _ = try? await service.audit.record(
                    AuditEvent(
                        actor: "tls:\(fingerprint.prefix(16))", action: "admin.handshake", subject: subject, outcome: .refused,
                        details: ["certificate": fingerprint, "reason": "\(error)"]
                    )
                )
            }
            return .failed
        }
    }
}

/// Graceful shutdown without losing a request already sent: the server quiesces a connection that has no request in
/// progress by closing it, and a client that has just finished its TLS handshake (or sends its next request on a
/// kept-alive connection) may have its request on the wire at that moment. This handler holds the quiesce event until
/// the connection reads something (a request arriving: passed on first, so the request is in progress and the
/// connection closes after its response) or `grace` passes with nothing read (then the connection is closed as idle).
final class QuiesceGraceHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    static let grace: TimeAmount = .seconds(1)
    private var held: (any Sendable)?
    private var timer: Scheduled<Void>?

    /// A connection that becomes active after the graceful shutdown began is closed here, unseen by the handlers after
    /// this one (see ``ServerDraining``); the client sees the connection closed before its TLS handshake.
    func channelActive(context: ChannelHandlerContext) {
        if ServerDraining.isDraining {
            context.close(promise: nil)
            return
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
        release(context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent, held == nil else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        held = ChannelShouldQuiesceEvent()
        let loop = context.eventLoop.assumeIsolated()
        timer = loop.scheduleTask(in: Self.grace) { [self] in release(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    private func release(_ context: ChannelHandlerContext) {
        guard let event = held else { return }
        held = nil
        timer?.cancel()
        timer = nil
        context.fireUserInboundEventTriggered(event)
    }
}

/// Closes a connection whose TLS handshake has not completed within `timeout` (placed after the TLS handler, it sees
/// the handshake-completed event).
final class HandshakeTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            deadline?.cancel()
            deadline = nil
        }
        context.fireUserInboundEventTriggered(event)
    }
}
