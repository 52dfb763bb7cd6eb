/// How many shards a CA spreads its certificates over, and which shard a certificate falls in: fixed when the CA is
/// created (default 256, 1...4096), and a certificate's shard fixed at issuance from its serial. The shard is the
/// partition of the store's certificate tables and the CRL partition whose distribution point the certificate names,
/// so it can never be chosen later (when a CRL is made) nor change.
///
/// **The rule:** the serial's last 8 content octets (its DER INTEGER's, as the store keeps them) as a big-endian
/// UInt64, modulo the shard count; a serial of fewer than 8 octets is read whole.
///
/// **Why the low octets:** they are the serial's random part. MeterTrust's serials are 6 octets of issuance time
/// followed by 10 CSPRNG octets, so the last 8 are uniform and every shard fills evenly; the leading octets are the
/// time (all certificates of one period would share a shard) and, in any serial, the first octet may be forced (a
/// 0x00 for a positive INTEGER, a fixed high octet), so they say nothing. The modulo bias is at most count / 2^64,
/// and none for a power of two. A few integer operations, on the octets the issuer already holds: no DER is parsed.
public struct ShardCount: Sendable, Hashable, CustomStringConvertible {
    /// The shard counts a CA may have.
    public static let allowed: ClosedRange<Int> = 1...4096
    /// A CA's shard count unless its creator chose another.
    public static let `default` = ShardCount(uncheckedValue: 256)

    public let value: Int

    /// Nil unless `value` is in ``allowed``.
    public init?(_ value: Int) {
        guard Self.allowed.contains(value) else { return nil }
        self.value = value
    }

    private init(uncheckedValue value: Int) { self.value = value }

    /// The one-line refusal of `given`, not a shard count in ``allowed``, naming the option or parameter it came from.
    public static func refusal(of given: String, option: String) -> String {
        "\(option) must be a whole number of shards from \(allowed.lowerBound) to \(allowed.upperBound) (default \(ShardCount.default.value)), not \(DisplayText.escaped(given, limit: 40)); it is fixed when the CA is created"
    }

    public var description: String { String(value) }

    /// The shard (0 ..< ``value``) of the serial whose INTEGER content octets are `serial`.
    @inlinable
    public func shard(ofSerial serial: some Collection<UInt8>) -> Int {
        var low: UInt64 = 0
        for octet in serial.suffix(8) { low = low << 8 | UInt64(octet) }
        return Int(low % UInt64(value))
    }

    /// The shard of the serial written as hex of its content octets (the store's `serial`), or nil if it is not hex.
    public func shard(ofSerialHex serial: String) -> Int? {
        hexBytes(serial).map { shard(ofSerial: $0) }
    }
}
