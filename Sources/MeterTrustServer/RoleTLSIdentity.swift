import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import NIOSSL
import X509

/// A role's TLS server identity as `server-cert --role ROLE` recorded it: the certificate (tls-server, from the
/// Service CA) with its issuer's chain without the root, and the key in the HSM.
struct RoleTLSIdentity: Sendable {
    let certificateChain: [Certificate]
    let key: HSMKey
    let issuer: CertificateAuthority

    /// Loads `identity` (nil: the role has none yet, and `role` says which `server-cert` makes it).
    static func load(_ identity: AdminServer.Settings?, role: String, hierarchy: CAHierarchy) async throws -> RoleTLSIdentity {
        guard let identity else {
            throw ServeError("the \(role) role has no TLS identity yet: run metertrust server-cert --role \(role) first")
        }
        guard let stored = try await hierarchy.store.certificate(issuer: identity.issuer, serial: identity.certificateSerial) else {
            throw ServeError("the \(role) role's certificate \(identity.certificateSerial) is missing from the store", code: .storeNotFound)
        }
        let issuer = try await hierarchy.authority(named: identity.issuer)
        let keyLabel = identity.keyLabel
        let key = try await hierarchy.token.perform { try $0.findKey(label: keyLabel) }
        return RoleTLSIdentity(certificateChain: [try Certificate(derEncoded: stored.der)] + issuer.chain.dropLast(), key: key, issuer: issuer)
    }

    /// One warning if the certificate is not from a Service CA (deployments made before it).
    func warnings(role: String) -> [String] {
        issuer.role == .service ? [] : ["the \(role) role's certificate is issued by \(issuer.name), not a Service CA: run metertrust server-cert --role \(role)"]
    }

    /// A TLS 1.3 server configuration presenting this identity, its signatures made in the HSM (``HSMTLSKey``), P-256
    /// client signatures only.
    func serverConfiguration(token: HSMToken) throws -> TLSConfiguration {
        let chain = try certificateChain.map { NIOSSLCertificateSource.certificate(try NIOSSLCertificate(bytes: try $0.derBytes, format: .der)) }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(NIOSSLPrivateKey(customPrivateKey: HSMTLSKey(token: token, key: key)))
        )
        tls.minimumTLSVersion = .tlsv13
        tls.verifySignatureAlgorithms = [.ecdsaSecp256R1Sha256]
        return tls
    }

    func clientURLs(bindHost: String, port: Int) -> [String] {
        guard let certificate = certificateChain.first else { return ["https://\(bindHost):\(port)"] }
        return ServerURLs.urls(certificate: certificate, bindHost: bindHost, port: port)
    }
}
