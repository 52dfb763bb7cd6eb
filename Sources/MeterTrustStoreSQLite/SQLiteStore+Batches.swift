import Foundation
import GRDB
import MeterTrustStore

// Factory batches and device identities (the ProvisioningStore view).
extension SQLiteStore {
    public func beginBatch(_ batch: BatchRecord) async throws -> BatchRecord {
        try await writeReturning { db in
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ?", arguments: [batch.id]) {
                let existing = Self.batch(from: row)
                guard existing.manifestSHA256 == batch.manifestSHA256, existing.manufacturer == batch.manufacturer else {
                    throw StoreError(
                        .duplicate,
                        "batch \(batch.id) already exists with a different manifest: give a changed batch a new id"
                    )
                }
                return existing
            }
            try db.execute(
                sql: "INSERT INTO batches (id, manufacturer, manifest_sha256, meter_count, created_at, psk_master_key_label) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [
                    batch.id, batch.manufacturer, batch.manifestSHA256, batch.meterCount, Int64(batch.createdAt.timeIntervalSince1970),
                    batch.pskMasterKeyLabel,
                ]
            )
            return batch
        }
    }

    public func completeBatch(id: String, at date: Date) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE batches SET completed_at = ? WHERE id = ?", arguments: [Int64(date.timeIntervalSince1970), id])
        }
    }

    public func batch(id: String) async throws -> BatchRecord? {
        try await run { db in try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ?", arguments: [id]).map(Self.batch(from:)) }
    }

    public func batches(after id: String?, limit: Int) async throws -> [BatchRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM batches WHERE id > ? ORDER BY id LIMIT ?", arguments: [id ?? "", limit]
            ).map(Self.batch(from:))
        }
    }

    static func batch(from row: Row) -> BatchRecord {
        BatchRecord(
            id: row["id"], manufacturer: row["manufacturer"], manifestSHA256: row["manifest_sha256"], meterCount: row["meter_count"],
            createdAt: Date(timeIntervalSince1970: TimeInterval(row["created_at"] as Int64)),
            completedAt: (row["completed_at"] as Int64?).map { Date(timeIntervalSince1970: TimeInterval($0)) },
            pskMasterKeyLabel: row["psk_master_key_label"]
        )
    }

    public func deviceIdentities(eui64s: [String]) async throws -> [String: DeviceIdentityEntry] {
        guard !eui64s.isEmpty else { return [:] }
        return try await run { db in
            var found: [String: DeviceIdentityEntry] = [:]
            // Bounded IN lists: SQLite's default limit on host parameters is 32766.
            for start in stride(from: 0, to: eui64s.count, by: 1000) {
                let slice = Array(eui64s[start..<min(start + 1000, eui64s.count)])
                let placeholders = Array(repeating: "?", count: slice.count).joined(separator: ",")
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT eui64, issuer, serial, batch, batch_position FROM certificates
                        WHERE kind = 'device-identity' AND eui64 IN (\(placeholders))
                        """,
                    arguments: StatementArguments(slice)
                )
                for row in rows {
                    let eui: String = row["eui64"]
                    found[eui] = DeviceIdentityEntry(
                        eui64: eui, issuer: row["issuer"], serial: row["serial"], batch: row["batch"], batchPosition: row["batch_position"]
                    )
                }
            }
            return found
        }
    }

    public func insertDeviceIdentities(_ certificates: [CertificateRecord]) async throws -> [DeviceIdentityOutcome] {
        try await writeReturning { db in
            let insert = try BulkStatement(db, sql: """
                INSERT INTO certificates
                (issuer, serial, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at,
                 batch, batch_position, kind, shard)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (eui64) WHERE kind = 'device-identity' DO NOTHING
                """)
            let claim = try BulkStatement(db, sql: "INSERT INTO device_keys (key, eui64) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            return try certificates.map { c in
                // The key first (by its primary key: one meter per key). On the rare conflict, read the owner: the
                // same meter keeps its key, another meter's key refuses this record and only it.
                var claimed = false
                if let digest = c.subjectKeyDigest, let eui64 = c.eui64 {
                    claim.bind(1, blob: digest)
                    claim.bind(2, eui64)
                    claimed = try claim.run() == 1
                    if !claimed, let owner = try Self.keyOwner(Data(digest), in: db), owner != eui64 {
                        return .keyReused(owner: owner)
                    }
                }
                // The columns of `arguments(_:)`, in its order.
                insert.bind(1, c.issuer)
                insert.bind(2, c.serial)
                insert.bind(3, c.profile)
                insert.bind(4, c.subject)
                insert.bind(5, c.eui64)
                insert.bind(6, Int64(c.notBefore.timeIntervalSince1970))
                insert.bind(7, Int64(c.notAfter.timeIntervalSince1970))
                insert.bind(8, c.fingerprintSHA256)
                insert.bind(9, blob: c.der)
                insert.bind(10, Int64(c.createdAt.timeIntervalSince1970))
                insert.bind(11, c.batch)
                insert.bind(12, c.batchPosition)
                insert.bind(13, c.kind.rawValue)
                insert.bind(14, Int64(c.shard))
                if try insert.run() == 1 { return .stored }
                // The meter already has its identity: the key claimed for it just now goes with the skipped record.
                if claimed, let digest = c.subjectKeyDigest {
                    try db.execute(sql: "DELETE FROM device_keys WHERE key = ?", arguments: [Data(digest)])
                }
                return .meterProvisioned
            }
        }
    }

    public func batchCertificates(batch: String, afterPosition position: Int64, limit: Int) async throws -> [CertificateRecord] {
        try await run { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM certificates WHERE batch = ? AND batch_position > ? ORDER BY batch_position LIMIT ?",
                arguments: [batch, position, limit]
            ).map(Self.certificate(from:))
        }
    }

    public func batchCertificateCount(batch: String) async throws -> Int {
        try await run { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM certificates WHERE batch = ?", arguments: [batch]) ?? 0 }
    }
}
