import Foundation
import MeterTrustStore
import PostgresNIO

// Imported PSKs, sealed by the HSM (the PresharedKeyStore view).
extension PostgresStore {
    public func insertSealedPSKs(_ records: [SealedPSKRecord]) async throws {
        guard !records.isEmpty else { return }
        try await transaction { [self] connection in
            for record in records {
                try await execute(connection,
                    """
                    INSERT INTO sealed_psks (eui64, batch, sealing_key_label, sealed, imported_at)
                    VALUES (\(record.eui64), \(record.batch), \(record.sealingKeyLabel), \(ByteBuffer(bytes: record.sealed)), \(Self.seconds(record.importedAt)))
                    """,
                    logger: logger
                )
            }
        }
    }

    public func sealedPSK(eui64: String) async throws -> SealedPSKRecord? {
        try await read { [self] connection in
            try await rows("SELECT * FROM sealed_psks WHERE eui64 = \(eui64)", on: connection).first.map(Self.sealedPSK(from:))
        }
    }

    public func sealedPSKs(after eui64: String?, limit: Int) async throws -> [SealedPSKRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows("SELECT * FROM sealed_psks WHERE eui64 > \(eui64 ?? "") ORDER BY eui64 LIMIT \(Int64(limit))", on: connection)
                .map(Self.sealedPSK(from:))
        }
    }

    static func sealedPSK(from row: PostgresRandomAccessRow) throws -> SealedPSKRecord {
        SealedPSKRecord(
            eui64: try row.string("eui64"), batch: try row.string("batch"), sealingKeyLabel: try row.string("sealing_key_label"),
            sealed: try row.bytes("sealed"), importedAt: date(try row.int64("imported_at"))
        )
    }
}
