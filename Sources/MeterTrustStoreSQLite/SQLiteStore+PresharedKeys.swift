import Foundation
import GRDB
import MeterTrustStore

// Imported PSKs, sealed by the HSM (the PresharedKeyStore view).
extension SQLiteStore {
    public func insertSealedPSKs(_ records: [SealedPSKRecord]) async throws {
        guard !records.isEmpty else { return }
        try await write { db in
            let statement = try db.makeStatement(
                sql: "INSERT INTO sealed_psks (eui64, batch, sealing_key_label, sealed, imported_at) VALUES (?, ?, ?, ?, ?)"
            )
            for record in records {
                try statement.execute(arguments: [
                    record.eui64, record.batch, record.sealingKeyLabel, Data(record.sealed), Int64(record.importedAt.timeIntervalSince1970),
                ])
            }
        }
    }

    public func sealedPSK(eui64: String) async throws -> SealedPSKRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sealed_psks WHERE eui64 = ?", arguments: [eui64]).map(Self.sealedPSK(from:))
        }
    }

    public func sealedPSKs(after eui64: String?, limit: Int) async throws -> [SealedPSKRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM sealed_psks WHERE eui64 > ? ORDER BY eui64 LIMIT ?", arguments: [eui64 ?? "", limit])
                .map(Self.sealedPSK(from:))
        }
    }

    static func sealedPSK(from row: Row) -> SealedPSKRecord {
        SealedPSKRecord(
            eui64: row["eui64"], batch: row["batch"], sealingKeyLabel: row["sealing_key_label"], sealed: Array(row["sealed"] as Data),
            importedAt: Date(timeIntervalSince1970: TimeInterval(row["imported_at"] as Int64))
        )
    }
}
