/// Shamir's secret sharing over GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1), byte by byte: each byte of the
/// secret is the constant term of its own random polynomial of degree k − 1; share i holds every polynomial's value
/// at x = i (1...255). Any k shares give the secret by Lagrange interpolation at 0; k − 1 shares give no
/// information about it. Field arithmetic is branch-free on secret data.
public enum Shamir {
    public struct Share: Sendable, Hashable, Codable {
        /// The x coordinate, 1...255.
        public let index: UInt8
        public let value: [UInt8]

        public init(index: UInt8, value: [UInt8]) {
            self.index = index
            self.value = value
        }
    }

    /// Splits `secret` into `count` shares, any `threshold` of which recover it.
    public static func split(_ secret: [UInt8], threshold: Int, count: Int) throws -> [Share] {
        guard threshold >= 2, threshold <= count, count <= 255 else {
            throw QuorumError(.backup, "a k-of-n split needs 2 ≤ k ≤ n ≤ 255, not \(threshold) of \(count)")
        }
        guard !secret.isEmpty else { throw QuorumError(.backup, "nothing to split") }
        var generator = SystemRandomNumberGenerator()
        var values = [[UInt8]](repeating: [UInt8](repeating: 0, count: secret.count), count: count)
        var coefficients = [UInt8](repeating: 0, count: threshold)
        for (position, byte) in secret.enumerated() {
            coefficients[0] = byte
            for degree in 1..<threshold { coefficients[degree] = UInt8.random(in: 0 ... 255, using: &generator) }
            for share in 0..<count {
                // Horner's rule at x = share + 1.
                let x = UInt8(share + 1)
                var y: UInt8 = 0
                for degree in stride(from: threshold - 1, through: 0, by: -1) { y = multiply(y, x) ^ coefficients[degree] }
                values[share][position] = y
            }
        }
        for index in coefficients.indices { coefficients[index] = 0 }
        return values.enumerated().map { Share(index: UInt8($0.offset + 1), value: $0.element) }
    }

    /// Recovers the secret from shares (at least the threshold; fewer give a wrong value, not an error: check the
    /// result against a key check value).
    public static func combine(_ shares: [Share]) throws -> [UInt8] {
        guard let length = shares.first?.value.count, shares.allSatisfy({ $0.value.count == length }) else {
            throw QuorumError(.backup, "shares of different lengths cannot be combined")
        }
        let indices = shares.map(\.index)
        guard !indices.contains(0), Set(indices).count == indices.count else {
            throw QuorumError(.backup, "shares must have distinct, non-zero indices")
        }
        var secret = [UInt8](repeating: 0, count: length)
        for (i, share) in shares.enumerated() {
            // Lagrange basis polynomial of share i at 0: prod_{j != i} x_j / (x_j - x_i); subtraction is XOR.
            var basis: UInt8 = 1
            for (j, other) in shares.enumerated() where j != i {
                basis = multiply(basis, multiply(other.index, inverse(other.index ^ share.index)))
            }
            for position in 0..<length { secret[position] ^= multiply(share.value[position], basis) }
        }
        return secret
    }

    /// Multiplication in GF(2^8), constant time.
    static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        var a = a
        var b = b
        var product: UInt8 = 0
        for _ in 0..<8 {
            product ^= a & (0 &- (b & 1))
            let carry = 0 &- (a >> 7)
            a = (a << 1) ^ (0x1b & carry)
            b >>= 1
        }
        return product
    }

    /// Multiplicative inverse in GF(2^8): a^254.
    static func inverse(_ a: UInt8) -> UInt8 {
        var result: UInt8 = 1
        var base = a
        var exponent = 254
        while exponent > 0 {
            if exponent & 1 == 1 { result = multiply(result, base) }
            base = multiply(base, base)
            exponent >>= 1
        }
        return result
    }
}
