import Crypto
import X509

/// Certificate serial numbers: 16 bytes from a CSPRNG (BoringSSL's, through swift-crypto), first bit cleared so the
/// INTEGER is positive (RFC 5280 §4.1.2.2). Uniqueness per issuer is the store's constraint; a collision is retried
/// by the caller.
enum SerialNumbers {
    static func random() -> Certificate.SerialNumber {
        while true {
            var bytes = SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
            bytes[0] &= 0x7F
            // A leading zero octet would make the DER INTEGER shorter than 16 octets; draw again (1 in 128).
            if bytes[0] != 0 { return Certificate.SerialNumber(bytes: bytes) }
        }
    }
}
