import Foundation
import GRDB
import MeterTrustStore

// The audit log's entries and checkpoints (the AuditStore view).
extension SQLiteStore {
    public func appendAuditEntry(_ make: @escaping @Sendable (AuditRow?) throws -> [UInt8]) async throws -> Int64 {
        try await writeReturning { db in
            let last = try Row.fetchOne(db, sql: "SELECT position, entry FROM audit_entries ORDER BY position DESC LIMIT 1")
                .map { AuditRow(position: $0["position"], entry: Array($0["entry"] as Data)) }
            let position = (last?.position ?? -1) + 1
            // The builder's own failure (sealing in the HSM) reaches the caller as it was, not as a store failure.
            let entry: [UInt8]
            do {
                entry = try make(last)
            } catch {
                throw CallerRefusal(underlying: error)
            }
            try db.execute(
                sql: "INSERT INTO audit_entries (position, entry, created_at) VALUES (?, ?, ?)",
                arguments: [position, Data(entry), Int64(Date().timeIntervalSince1970)]
            )
            return position
        }
    }

    public func auditEntries(after position: Int64, limit: Int) async throws -> [AuditRow] {
        try await run { db in
            try Row.fetchAll(
                db, sql: "SELECT position, entry FROM audit_entries WHERE position > ? ORDER BY position LIMIT ?", arguments: [position, limit]
            ).map { AuditRow(position: $0["position"], entry: Array($0["entry"] as Data)) }
        }
    }

    public func auditEntryCount() async throws -> Int64 {
        try await run { db in try Int64.fetchOne(db, sql: "SELECT count(*) FROM audit_entries") ?? 0 }
    }

    @discardableResult
    public func insertAuditCheckpoint(size: Int64, note: String) async throws -> String {
        try await writeReturning { db in
            try db.execute(
                sql: "INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?) ON CONFLICT (size) DO NOTHING",
                arguments: [size, note, Int64(Date().timeIntervalSince1970)]
            )
            if db.changesCount == 1 { return note }
            return try String.fetchOne(db, sql: "SELECT note FROM audit_checkpoints WHERE size = ?", arguments: [size]) ?? note
        }
    }

    public func auditCheckpoints() async throws -> [AuditCheckpointRow] {
        try await run { db in
            try Row.fetchAll(db, sql: "SELECT size, note FROM audit_checkpoints ORDER BY size").map {
                AuditCheckpointRow(size: $0["size"], note: $0["note"])
            }
        }
    }
}
