import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustStore
import X509

/// A certificate authority ready to sign: its record, its certificate, its key on the HSM and its chain.
public struct CertificateAuthority: Sendable {
    public let record: CertificateAuthorityRecord
    public let certificate: Certificate
    public let signingKey: HSMSigningKey
    /// This CA's certificate first, the root's last.
    public let chain: [Certificate]

    public var name: String { record.name }
    /// The record's role, validated when this value was made.
    public let role: CertificateAuthorityRole
    /// The record's shard count, validated when this value was made: the shards of the certificates this CA issues.
    public let shardCount: ShardCount
    public var root: Certificate { chain.last! }

    /// The 8-octet key identifier, used as the AuthorityKeyIdentifier of what this CA signs.
    public var keyIdentifier: [UInt8] {
        get throws { try KeyIdentifier.method2(certificate.publicKey) }
    }

    public init(record: CertificateAuthorityRecord, certificate: Certificate, signingKey: HSMSigningKey, chain: [Certificate]) throws {
        self.role = try record.knownRole()
        guard let shardCount = ShardCount(record.shardCount) else {
            throw PKIError(
                .unknownAuthority,
                "the store's record of CA \(record.name) has shard count \(record.shardCount), outside \(ShardCount.allowed): it was changed outside MeterTrust"
            )
        }
        self.shardCount = shardCount
        self.record = record
        self.certificate = certificate
        self.signingKey = signingKey
        self.chain = chain
    }

    /// This CA signing with a session copy of its key, made inside the HSM (see `HSMToken.sessionCopy(of:)`), for
    /// long batches. Call ``releaseSessionKey()`` on the result when done.
    public func withSessionKey() throws -> CertificateAuthority {
        let copy = try signingKey.token.sessionCopy(of: signingKey.key)
        return try CertificateAuthority(record: record, certificate: certificate, signingKey: HSMSigningKey(token: signingKey.token, key: copy), chain: chain)
    }

    /// Destroys the session copy made by ``withSessionKey()``.
    public func releaseSessionKey() throws {
        try signingKey.token.destroySessionCopy(signingKey.key)
    }

    var signer: CertificateContents.Signer {
        get throws {
            CertificateContents.Signer(
                authorityName: record.name, name: certificate.subject, key: signingKey, keyIdentifier: try keyIdentifier,
                notAfter: certificate.notValidAfter, shards: shardCount
            )
        }
    }
}
