import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import X509

/// Certificate serial numbers: 16 octets, the first 6 the issuance time in milliseconds since 1970 (big-endian), the
/// other 10 (80 bits) from a CSPRNG (BoringSSL's, through swift-crypto).
///
/// - Positive and always 16 octets: the time's first octet is 0x01 now and stays in 0x01...0x7F until the year 6400,
///   so the INTEGER needs no sign octet and never shrinks (RFC 5280 §4.1.2.2: at most 20 octets).
/// - Unpredictable: 80 CSPRNG bits, more than the 64 the CA/Browser Forum baseline requires (§7.1).
/// - Time-ordered: the store's (issuer, serial) key grows at its end instead of at 2,048 random places per factory
///   round (with random serials the store's writer took 15 % of the issuance CPU at 150,000 certificates and grew
///   with the table; with these, 10 %).
///
/// Uniqueness per issuer is the store's primary key; two serials collide only within one millisecond and then with
/// probability 2^-80.
enum SerialNumbers {
    static func random() -> Certificate.SerialNumber {
        Certificate.SerialNumber(bytes: randomBytes())
    }

    /// The 16 content octets of a serial's INTEGER: always 16, so it fits a template's slot.
    static func randomBytes() -> [UInt8] {
        let milliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
        var bytes = withUnsafeBytes(of: milliseconds.bigEndian) { Array($0.suffix(6)) }
        bytes.reserveCapacity(length)
        randomness.withLock { buffer in
            if buffer.next + randomLength > buffer.bytes.count {
                buffer.bytes = kernelRandomBytes(randomLength * 4096)
                buffer.next = 0
            }
            bytes += buffer.bytes[buffer.next..<(buffer.next + randomLength)]
            buffer.next += randomLength
        }
        return bytes
    }

    private static let randomLength = 10

    /// CSPRNG output drawn 4,096 serials at a time (each octet handed out once): swift-crypto's `SymmetricKey(size:)`
    /// makes one getrandom system call per 8 octets, which per certificate cost more than the rest of the serial.
    private static let randomness = Mutex<(bytes: [UInt8], next: Int)>(([], 0))

    /// `count` octets from the kernel's CSPRNG (the source getrandom(2) draws from), in one read.
    private static func kernelRandomBytes(_ count: Int) -> [UInt8] {
        let descriptor = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        precondition(descriptor >= 0, "cannot open /dev/urandom")
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { buffer in
            var filled = 0
            while filled < count {
                let got = read(descriptor, buffer.baseAddress! + filled, count - filled)
                precondition(got > 0, "reading /dev/urandom failed")
                filled += got
            }
        }
        return bytes
    }

    static let length = 16
}
