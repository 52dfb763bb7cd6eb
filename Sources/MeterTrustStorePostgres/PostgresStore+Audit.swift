import Dispatch
import Foundation
import MeterTrustStore
import PostgresNIO

// The audit log's entries and checkpoints (the AuditStore view).
extension PostgresStore {
    /// Appends the entry `make` builds on the last one. The append first locks the log's head row (`audit_head`), so
    /// appends from every node are one total order decided by the database: the next one waits, then reads the entry
    /// this one wrote. `make` (sealing in the HSM, a blocking PKCS#11 call) runs on a dispatch queue, not on the
    /// cooperative pool or an event loop.
    public func appendAuditEntry(_ make: @escaping @Sendable (AuditRow?) throws -> [UInt8]) async throws -> Int64 {
        try await transaction { [self] connection in
            try await execute(connection, "SELECT id FROM audit_head WHERE id = 1 FOR UPDATE", logger: logger)
            let last = try await rows("SELECT position, entry FROM audit_entries ORDER BY position DESC LIMIT 1", on: connection).first.map {
                AuditRow(position: try $0.int64("position"), entry: try $0.bytes("entry"))
            }
            let position = (last?.position ?? -1) + 1
            let entry: [UInt8]
            do {
                entry = try await withCheckedThrowingContinuation { continuation in
                    DispatchQueue.global().async { continuation.resume(with: Result { try make(last) }) }
                }
            } catch {
                throw CallerRefusal(underlying: error)
            }
            try await execute(connection, 
                "INSERT INTO audit_entries (position, entry, created_at) VALUES (\(position), \(ByteBuffer(bytes: entry)), \(Self.seconds(Date())))",
                logger: logger
            )
            return position
        }
    }

    public func auditEntries(after position: Int64, limit: Int) async throws -> [AuditRow] {
        try await read { [self] connection in
            try await rows(
                "SELECT position, entry FROM audit_entries WHERE position > \(position) ORDER BY position LIMIT \(Int64(limit))", on: connection
            ).map { AuditRow(position: try $0.int64("position"), entry: try $0.bytes("entry")) }
        }
    }

    public func auditEntryCount() async throws -> Int64 {
        try await read { [self] connection in try await rows("SELECT count(*) AS n FROM audit_entries", on: connection).first?.int64("n") ?? 0 }
    }

    /// Stores the checkpoint of `size` unless one is stored already (by any node): the first one stays, and every
    /// caller gets the stored note back, so a size is signed once in the log's history whatever node reaches it.
    @discardableResult
    public func insertAuditCheckpoint(size: Int64, note: String) async throws -> String {
        try await transaction { [self] connection in
            let inserted = try await rows(
                "INSERT INTO audit_checkpoints (size, note, created_at) VALUES (\(size), \(note), \(Self.seconds(Date()))) ON CONFLICT (size) DO NOTHING RETURNING note",
                on: connection
            )
            if !inserted.isEmpty { return note }
            return try await rows("SELECT note FROM audit_checkpoints WHERE size = \(size)", on: connection).first?.string("note") ?? note
        }
    }

    public func auditCheckpoints() async throws -> [AuditCheckpointRow] {
        try await read { [self] connection in
            try await rows("SELECT size, note FROM audit_checkpoints ORDER BY size", on: connection).map {
                AuditCheckpointRow(size: try $0.int64("size"), note: try $0.string("note"))
            }
        }
    }
}
