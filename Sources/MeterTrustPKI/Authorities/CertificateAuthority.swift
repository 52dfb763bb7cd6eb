import Foundation
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
    public var role: CertificateAuthorityRole { record.role }
    public var root: Certificate { chain.last! }

    /// The 8-octet key identifier, used as the AuthorityKeyIdentifier of what this CA signs.
    public var keyIdentifier: [UInt8] {
        get throws { try KeyIdentifier.method2(certificate.publicKey) }
    }

    var signer: CertificateContents.Signer {
        get throws {
            CertificateContents.Signer(
                authorityName: record.name, name: certificate.subject, key: signingKey, keyIdentifier: try keyIdentifier,
                notAfter: certificate.notValidAfter
            )
        }
    }
}
