import Foundation

/// What the factory's batch engine needs: batches, and device identity certificates unique per meter.
public protocol ProvisioningStore: CertificateStore {
    /// Records a new batch, or returns the existing one with the same id and manifest (a resumed run). A different
    /// manifest under an existing id is refused with ``StoreError/Code/duplicate``; a manufacturer CA the store
    /// does not hold with ``StoreError/Code/foreignKey``.
    func beginBatch(_ batch: BatchRecord) async throws -> BatchRecord
    func completeBatch(id: String, at date: Date) async throws
    func batch(id: String) async throws -> BatchRecord?
    /// Batches in id order (octet by octet) after `id` (from the first if nil), at most `limit` of them.
    func batches(after id: String?, limit: Int) async throws -> [BatchRecord]
    /// The device identity certificates already held for these meters (EUI-64 as 16 lowercase hex digits).
    func deviceIdentities(eui64s: [String]) async throws -> [String: DeviceIdentityEntry]
    /// Stores device identity certificates in one transaction. A meter that already has one (the database's
    /// uniqueness of the device-identity EUI-64), and a record whose subject key already belongs to another meter
    /// (the database's one meter per key), are skipped: the result says, per record, what became of it. Any other
    /// violation (a serial used twice) fails the whole transaction.
    func insertDeviceIdentities(_ certificates: [CertificateRecord]) async throws -> [DeviceIdentityOutcome]
    /// A batch's certificates in input order, after `position`, at most `limit` of them.
    func batchCertificates(batch: String, afterPosition position: Int64, limit: Int) async throws -> [CertificateRecord]
    func batchCertificateCount(batch: String) async throws -> Int
}

/// What became of one record of ``ProvisioningStore/insertDeviceIdentities(_:)``.
public enum DeviceIdentityOutcome: Sendable, Hashable {
    case stored
    /// Not stored: the meter already has a device identity certificate.
    case meterProvisioned
    /// Not stored: the subject key belongs to the meter `owner` (EUI-64, 16 lowercase hex digits).
    case keyReused(owner: String)
}
