import Crypto
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import MeterTrustAudit
import MeterTrustCore
import MeterTrustHSM
import MeterTrustOnboarding
import MeterTrustPKI
import MeterTrustStore
import NIOCore
import NIOSSL
import ServiceLifecycle
import X509

/// The account API role of `metertrust serve`: utility operators over mutual TLS (TLS 1.3, certificates from the
/// Operator CA only, checked in the handshake and on every request), thin over ``Onboarding``.
public struct AccountRole: ServerRole {
    public static let name = "account"
    public var name: String { Self.name }
    public let warnings: [String]
    let onboarding: Onboarding
    let hierarchy: CAHierarchy
    let operatorCA: CertificateAuthority
    /// The server's certificate (tls-server, from the Service CA) and key.
    let identity: RoleTLSIdentity
    let logger: Logger

    public init(environment: ServeEnvironment) async throws {
        let hierarchy = environment.admin.hierarchy
        identity = try await RoleTLSIdentity.load(environment.accountIdentity, role: Self.name, hierarchy: hierarchy)
        operatorCA = try await OperatorCertification.authority(hierarchy)
        self.hierarchy = hierarchy
        onboarding = Onboarding(
            store: environment.admin.store, audit: environment.admin.audit, clock: environment.admin.clock, limits: environment.enrollmentLimits
        )
        logger = environment.logger
        warnings = identity.warnings(role: Self.name)
    }

    public func service(listener: ServeListener, requestLogger: Logger, onBound: @escaping @Sendable (Int) async -> Void) async throws -> any Service {
        var tls = try identity.serverConfiguration(token: hierarchy.token)
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: try operatorCA.certificate.derBytes, format: .der)])
        tls.sendCANameList = true
        let admission = OperatorAdmission(operatorCA: operatorCA, onboarding: onboarding)
        let logger = self.logger
        let http = HTTP1Channel.Configuration(
            additionalChannelHandlers: [HandshakeTimeoutHandler(timeout: listener.handshakeTimeout)], idleTimeout: listener.idleTimeout
        )
        let routes = AccountRoutes(onboarding: onboarding, hierarchy: hierarchy, operatorCA: operatorCA, logger: logger)
        return Application(
            router: routes.router(observation: RequestObservationMiddleware(role: Self.name, logger: requestLogger)),
            server: try .tls(.http1(configuration: http), configuration: TLSChannelConfiguration(tlsConfiguration: tls) { certificates in
                do {
                    guard let leaf = certificates.first else { throw HTTPProblem(.unauthenticated, "no client certificate") }
                    _ = try await admission.admit(certificateDER: try leaf.toDERBytes())
                    return .certificateVerified
                } catch {
                    logger.warning("TLS client refused", metadata: ["role": "account", "reason": "\(error)"])
                    return .failed
                }
            }),
            configuration: ApplicationConfiguration(address: .hostname(listener.host, port: listener.port), serverName: "metertrust-account"),
            onServerRunning: { channel in await onBound(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    public func clientURLs(bindHost: String, port: Int) -> [String] {
        identity.clientURLs(bindHost: bindHost, port: port)
    }
}
