import Crypto
import MeterTrustCore
import X509

/// How the meter authenticates itself to the EST server.
public enum ESTCredential: Sendable {
    /// Mutual TLS 1.3 with a certificate and its key: the factory identity (IDevID) to enroll, the operational
    /// certificate (LDevID) to re-enroll (RFC 7030 §3.3.2). `chain` is what the meter sends after its certificate
    /// (the issuing CA), not the root.
    case certificate(Certificate, chain: [Certificate], key: P256.Signing.PrivateKey)
    /// TLS 1.2 with a pre-shared key (RFC 4279 / RFC 5489, ECDHE-PSK-CHACHA20-POLY1305, RFC 7905), the meter's
    /// EUI-64 as its identity. There is no certificate: the key authenticates both ends.
    case preSharedKey(identity: String, key: PresharedKey)

    /// The only TLS 1.2 suite a PSK meter offers: forward secret, AEAD, no certificate (RFC 7905 §2).
    public static let pskCipherSuite = "ECDHE-PSK-CHACHA20-POLY1305"
}
