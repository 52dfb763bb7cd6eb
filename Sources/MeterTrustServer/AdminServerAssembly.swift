import Foundation
import Logging
import MeterTrustAdmin
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import NIOCore
import X509

extension AdminServer {
    /// What a deployment records about its admin API (`metertrust admin server-cert`) and how it is to listen:
    /// names only; ``assemble(service:settings:logger:)`` finds the key, certificates and chain they name.
    public struct Settings: Sendable, Hashable {
        /// CKA_LABEL of the server's TLS key on the token.
        public var keyLabel: String
        /// The server certificate's issuer (an operational CA) and serial.
        public var issuer: String
        public var certificateSerial: String
        public var host: String
        public var port: Int
        public var handshakeTimeout: TimeAmount
        public var idleTimeout: TimeAmount
        /// Serial of the audit signer's certificate, served to the custodians' witnesses (nil: no audit key yet).
        public var auditSignerSerial: String?

        public init(
            keyLabel: String, issuer: String, certificateSerial: String, host: String, port: Int, handshakeTimeout: TimeAmount = .seconds(10),
            idleTimeout: TimeAmount = .seconds(60), auditSignerSerial: String? = nil
        ) {
            self.keyLabel = keyLabel
            self.issuer = issuer
            self.certificateSerial = certificateSerial
            self.host = host
            self.port = port
            self.handshakeTimeout = handshakeTimeout
            self.idleTimeout = idleTimeout
            self.auditSignerSerial = auditSignerSerial
        }
    }

    /// A server ready to run: refused before the bootstrap ceremony (no custodian could connect); the TLS key looked
    /// up in the service's HSM token, the server certificate and the audit signer's from its store, the chain from
    /// the issuing CA (without the root, which clients hold).
    public static func assemble(service: AdminService, settings: Settings, logger: Logger = Logger(label: "metertrust.admin.server")) async throws -> AdminServer {
        guard try await service.store.isQuorumBootstrapped() else {
            throw QuorumError(.notBootstrapped, "no custodians are registered: run the bootstrap ceremony (metertrust admin bootstrap) first")
        }
        let hierarchy = service.hierarchy
        guard let stored = try await service.store.certificate(issuer: settings.issuer, serial: settings.certificateSerial) else {
            throw StoreError(.notFound, "the admin API certificate \(settings.certificateSerial) is missing from the store")
        }
        let certificate = try Certificate(derEncoded: stored.der)
        let issuer = try await hierarchy.authority(named: settings.issuer)
        let keyLabel = settings.keyLabel
        let key = try await hierarchy.token.perform { try $0.findKey(label: keyLabel) }
        var auditSigner: [UInt8]?
        if let serial = settings.auditSignerSerial {
            auditSigner = try await service.store.certificates(serial: serial).first { $0.profile == CertificateProfile.auditSigner.name }?.der
        }
        return AdminServer(
            service: service,
            configuration: Configuration(
                host: settings.host, port: settings.port, certificateChain: [certificate] + issuer.chain.dropLast(), key: key,
                handshakeTimeout: settings.handshakeTimeout, idleTimeout: settings.idleTimeout, auditSigner: auditSigner
            ),
            logger: logger
        )
    }
}
