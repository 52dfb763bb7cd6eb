import X509

/// Certificate serial numbers: 16 bytes from the system CSPRNG, first bit cleared so the INTEGER is positive
/// (RFC 5280 §4.1.2.2). Uniqueness per issuer is the store's constraint; a collision is retried by the caller.
enum SerialNumbers {
    static func random() -> Certificate.SerialNumber {
        var generator = SystemRandomNumberGenerator()
        while true {
            var bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            bytes[0] &= 0x7F
            // A leading zero octet would make the DER INTEGER shorter than 16 octets; draw again (1 in 128).
            if bytes[0] != 0 { return Certificate.SerialNumber(bytes: bytes) }
        }
    }
}
