import Foundation

/// An OEM-generated PSK as the store keeps it: sealed in the HSM (AES-256-GCM under a key that never leaves it, the
/// meter's EUI-64 as associated data), so the row is useless without the HSM and cannot be moved to another meter.
public struct SealedPSKRecord: Sendable, Hashable {
    /// The meter, 16 lowercase hex digits.
    public var eui64: String
    /// The OEM batch the import named.
    public var batch: String
    /// CKA_LABEL of the HSM key that sealed it.
    public var sealingKeyLabel: String
    /// Nonce (12 octets) ‖ ciphertext ‖ tag (16 octets), as the HSM returned it.
    public var sealed: [UInt8]
    public var importedAt: Date

    public init(eui64: String, batch: String, sealingKeyLabel: String, sealed: [UInt8], importedAt: Date) {
        self.eui64 = eui64
        self.batch = batch
        self.sealingKeyLabel = sealingKeyLabel
        self.sealed = sealed
        self.importedAt = importedAt
    }
}

/// Imported PSKs, sealed (the PSK view). Derived PSKs are never stored: the HSM derives them again at each handshake.
public protocol PresharedKeyStore: Sendable {
    /// Stores sealed PSKs in one transaction; a meter that already has one refuses the whole set
    /// (``StoreError/Code/duplicate``), so an import is all or nothing and never replaces a meter's key.
    func insertSealedPSKs(_ records: [SealedPSKRecord]) async throws
    /// The sealed PSK of a meter, if one was imported.
    func sealedPSK(eui64: String) async throws -> SealedPSKRecord?
    /// Sealed PSKs in EUI-64 order after `eui64` (from the first if nil), at most `limit` (store copy).
    func sealedPSKs(after eui64: String?, limit: Int) async throws -> [SealedPSKRecord]
}
