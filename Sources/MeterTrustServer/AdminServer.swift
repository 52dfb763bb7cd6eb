import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import MeterTrustAdmin
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import NIOCore
import NIOSSL
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

        public init(host: String, port: Int, certificateChain: [Certificate], key: HSMKey) {
            self.host = host
            self.port = port
            self.certificateChain = certificateChain
            self.key = key
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
        let adminCA = try await service.adminAuthority()
        let tls = try tlsConfiguration(root: adminCA.root)
        let verifier = ClientVerifier(service: service, adminCA: adminCA, logger: logger)
        let app = Application(
            router: AdminRoutes(service: service, logger: logger).router(),
            server: try .tls(.http1(), configuration: TLSChannelConfiguration(tlsConfiguration: tls) { certificates in
                await verifier.verify(certificates)
            }),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "metertrust-admin"),
            onServerRunning: { channel in await onStarted(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        try await app.runService()
    }

    func tlsConfiguration(root: Certificate) throws -> TLSConfiguration {
        let chain = try configuration.certificateChain.map { NIOSSLCertificateSource.certificate(try NIOSSLCertificate(bytes: try $0.derBytes, format: .der)) }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(NIOSSLPrivateKey(customPrivateKey: HSMTLSKey(token: service.hierarchy.token, key: configuration.key)))
        )
        tls.minimumTLSVersion = .tlsv13
        // Request and require a client certificate; ClientVerifier replaces BoringSSL's path validation.
        tls.certificateVerification = .noHostnameVerification
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: try root.derBytes, format: .der)])
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
            guard let leaf = presented.first else { throw QuorumError(.unknownCustodian, "no client certificate") }
            let der = try leaf.toDERBytes()
            // The same checks as registration (chain through the Admin CA, custodian profile), then the registry.
            _ = try await Custodian.admit(certificate: der, adminCA: adminCA, registeredBy: nil)
            let custodian = try await service.authenticate(certificateDER: der)
            logger.debug("TLS client accepted", metadata: ["custodian": "\(custodian.name)"])
            return .certificateVerified
        } catch {
            logger.warning("TLS client refused", metadata: ["reason": "\(error)"])
            return .failed
        }
    }
}
