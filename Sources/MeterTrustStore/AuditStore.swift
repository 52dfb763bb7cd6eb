import Foundation

/// The audit log's entries (append-only, by position) and its signed checkpoints.
public protocol AuditStore: Sendable {
    /// Appends one entry in one transaction: `make` receives the current last entry (nil for the first) and returns
    /// the new entry's bytes. Returns the new entry's position. Positions are unique by primary key, so two writers
    /// can never both append the same position. An error `make` throws is rethrown as it was, and nothing is appended.
    func appendAuditEntry(_ make: @escaping @Sendable (AuditRow?) throws -> [UInt8]) async throws -> Int64
    func auditEntries(after position: Int64, limit: Int) async throws -> [AuditRow]
    func auditEntryCount() async throws -> Int64
    /// Stores a signed checkpoint note for a tree size unless one is stored for it already (the size's primary key),
    /// and returns the note stored for that size: this one, or the one another writer stored first. A size is signed
    /// once; a caller that lost the race uses the returned note and drops its own.
    @discardableResult
    func insertAuditCheckpoint(size: Int64, note: String) async throws -> String
    func auditCheckpoints() async throws -> [AuditCheckpointRow]
}
