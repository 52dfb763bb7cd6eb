import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import MeterTrustAudit
import MeterTrustCore
import MeterTrustOnboarding
import MeterTrustPKI
import NIOCore
import NIOSSL
import ServiceLifecycle
import X509

/// The EST role of `metertrust serve` (RFC 7030): meters get their operational certificates over HTTPS, thin over
/// ``OperationalEnrollment``. TLS 1.3 with the client certificate requested, not required: `cacerts` and `csrattrs`
/// may be anonymous (RFC 7030 §4.1.1, §4.5.1); `simpleenroll` and `simplereenroll` need one, and judge it on every
/// request (a resumed TLS session skips the handshake's callback).
///
/// **The handshake admits any client certificate that parses** (TLS 1.3 still proves the client holds its key:
/// CertificateVerify): a meter refused for a reason (revoked, expired, unclaimed, another manufacturer) learns the
/// reason from a problem document with a status, not from a bare TLS alert. The CA names sent are the registered
/// Manufacturer Device CAs and the Operational CAs (what a meter may present).
///
/// **Channel binding** (RFC 7030 §3.5, tls-unique or, for TLS 1.3, tls-exporter of RFC 9266) is **not supported**:
/// swift-nio-ssl 2.37.6 exports no keying material, so the server cannot compute the binding a CSR's
/// challengePassword would carry. Proof of identity rests on the TLS client certificate alone, which TLS 1.3 binds to
/// the handshake.
public struct EstRole: ServerRole {
    public static let name = "est"
    public var name: String { Self.name }
    public let warnings: [String]
    let enrollment: OperationalEnrollment
    let identity: RoleTLSIdentity
    let logger: Logger

    public init(environment: ServeEnvironment) async throws {
        let admin = environment.admin
        identity = try await RoleTLSIdentity.load(environment.estIdentity, role: Self.name, hierarchy: admin.hierarchy)
        enrollment = OperationalEnrollment(
            store: admin.store, hierarchy: admin.hierarchy, audit: admin.audit, queue: environment.estQueue, clock: admin.clock
        )
        logger = environment.logger
        warnings = identity.warnings(role: Self.name)
    }

    public func service(listener: ServeListener, requestLogger: Logger, onBound: @escaping @Sendable (Int) async -> Void) async throws -> any Service {
        var tls = try identity.serverConfiguration(token: enrollment.hierarchy.token)
        tls.certificateVerification = .optionalVerification
        var names: [NIOSSLCertificate] = []
        for role in [CertificateAuthorityRole.manufacturer, .operational] {
            for record in try await enrollment.hierarchy.authorities(role: role) where record.destroyedAt == nil {
                let authority = try await enrollment.hierarchy.authority(named: record.name, toIssue: false)
                names.append(try NIOSSLCertificate(bytes: try authority.certificate.derBytes, format: .der))
            }
        }
        tls.trustRoots = .certificates(names)
        tls.sendCANameList = true
        let logger = self.logger
        let http = HTTP1Channel.Configuration(
            additionalChannelHandlers: [HandshakeTimeoutHandler(timeout: listener.handshakeTimeout)], idleTimeout: listener.idleTimeout
        )
        let routes = EstRoutes<PeerCertificateRequestContext>(enrollment: enrollment)
        return Application(
            router: routes.router(observation: RequestObservationMiddleware(role: Self.name, logger: requestLogger)),
            server: try .tls(.http1(configuration: http), configuration: TLSChannelConfiguration(tlsConfiguration: tls) { certificates in
                // Judged per request (see the type's comment); here only that it is an X.509 certificate.
                guard let leaf = certificates.first, let der = try? leaf.toDERBytes(), (try? Certificate(derEncoded: der)) != nil else {
                    logger.warning("TLS client refused", metadata: ["role": "est", "reason": "the client certificate is not an X.509 certificate"])
                    return .failed
                }
                return .certificateVerified
            }),
            configuration: ApplicationConfiguration(address: .hostname(listener.host, port: listener.port), serverName: "metertrust-est"),
            onServerRunning: { channel in await onBound(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    public func clientURLs(bindHost: String, port: Int) -> [String] {
        identity.clientURLs(bindHost: bindHost, port: port).map { $0 + EstPaths.prefix + "/" }
    }
}
