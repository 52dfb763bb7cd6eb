import Foundation
import MeterTrustStore
import PostgresNIO

// Factory batches and device identities (the ProvisioningStore view).
extension PostgresStore {
    public func beginBatch(_ batch: BatchRecord) async throws -> BatchRecord {
        try await transaction { [self] connection in
            let inserted = try await rows(
                """
                INSERT INTO batches (id, manufacturer, manifest_sha256, meter_count, created_at, psk_master_key_label)
                VALUES (\(batch.id), \(batch.manufacturer), \(batch.manifestSHA256), \(batch.meterCount), \(Self.seconds(batch.createdAt)),
                        \(batch.pskMasterKeyLabel))
                ON CONFLICT (id) DO NOTHING RETURNING id
                """,
                on: connection
            )
            if !inserted.isEmpty { return batch }
            // Begun before (here or on another node): resumed only with the same manifest.
            guard let row = try await rows("SELECT * FROM batches WHERE id = \(batch.id)", on: connection).first else {
                throw StoreError(.unavailable, "batch \(batch.id) vanished while it was being begun: run the batch again")
            }
            let existing = try Self.batch(from: row)
            guard existing.manifestSHA256 == batch.manifestSHA256, existing.manufacturer == batch.manufacturer else {
                throw StoreError(.duplicate, "batch \(batch.id) already exists with a different manifest: give a changed batch a new id")
            }
            return existing
        }
    }

    public func completeBatch(id: String, at date: Date) async throws {
        try await transaction { [self] connection in
            try await execute(connection, "UPDATE batches SET completed_at = \(Self.seconds(date)) WHERE id = \(id)", logger: logger)
        }
    }

    public func batch(id: String) async throws -> BatchRecord? {
        try await read { [self] connection in try await rows("SELECT * FROM batches WHERE id = \(id)", on: connection).first.map(Self.batch(from:)) }
    }

    public func batches(after id: String?, limit: Int) async throws -> [BatchRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows("SELECT * FROM batches WHERE id > \(id ?? "") ORDER BY id LIMIT \(Int64(limit))", on: connection).map(Self.batch(from:))
        }
    }

    static func batch(from row: PostgresRandomAccessRow) throws -> BatchRecord {
        BatchRecord(
            id: try row.string("id"), manufacturer: try row.string("manufacturer"), manifestSHA256: try row.string("manifest_sha256"),
            meterCount: try row.int64("meter_count"), createdAt: date(try row.int64("created_at")),
            completedAt: try row.optionalInt64("completed_at").map(date), pskMasterKeyLabel: try row.optionalString("psk_master_key_label")
        )
    }

    public func deviceIdentities(eui64s: [String]) async throws -> [String: DeviceIdentityEntry] {
        guard !eui64s.isEmpty else { return [:] }
        return try await read { [self] connection in
            var found: [String: DeviceIdentityEntry] = [:]
            for row in try await rows(
                """
                SELECT d.eui64, d.issuer, d.serial, c.batch, c.batch_position FROM device_identities d
                JOIN certificates c ON c.issuer = d.issuer AND c.serial = d.serial AND c.shard = d.shard
                WHERE d.eui64 = ANY(\(eui64s))
                """,
                on: connection
            ) {
                let eui64 = try row.string("eui64")
                found[eui64] = DeviceIdentityEntry(
                    eui64: eui64, issuer: try row.string("issuer"), serial: try row.string("serial"), batch: try row.optionalString("batch"),
                    batchPosition: try row.optionalInt64("batch_position")
                )
            }
            return found
        }
    }

    /// A round of device identities in one transaction and four statements, whatever its size (one round trip each,
    /// arrays bound as parameters and read with `unnest`): claim the keys, claim the meters, release the keys of
    /// meters found provisioned, store the certificates. Each record's outcome is what inserting the records one by
    /// one in order would give; a serial collision refuses the whole round (``StoreError/Code/serialInUse``), as in
    /// SQLite, and the caller draws again.
    public func insertDeviceIdentities(_ certificates: [CertificateRecord]) async throws -> [DeviceIdentityOutcome] {
        guard !certificates.isEmpty else { return [] }
        return try await transaction { [self] connection in
            var outcomes = [DeviceIdentityOutcome?](repeating: nil, count: certificates.count)

            // 1. Keys, by device_keys' primary key. The first record of a key in this round wins it, as in order.
            let keyed = certificates.indices.filter { certificates[$0].subjectKeyDigest != nil && certificates[$0].eui64 != nil }
            var claimedNow: [[UInt8]: String] = [:]
            var owners: [[UInt8]: String] = [:]
            if !keyed.isEmpty {
                let keys = keyed.map { ByteBuffer(bytes: certificates[$0].subjectKeyDigest!) }
                let meters = keyed.map { certificates[$0].eui64! }
                for row in try await rows(
                    """
                    INSERT INTO device_keys (key, eui64) SELECT * FROM unnest(\(keys)::bytea[], \(meters)::text[])
                    ON CONFLICT (key) DO NOTHING RETURNING key, eui64
                    """,
                    on: connection
                ) {
                    claimedNow[try row.bytes("key")] = try row.string("eui64")
                }
                owners = claimedNow
                let others = Array(Set(keyed.map { certificates[$0].subjectKeyDigest! }).subtracting(claimedNow.keys)).map { ByteBuffer(bytes: $0) }
                if !others.isEmpty {
                    for row in try await rows("SELECT key, eui64 FROM device_keys WHERE key = ANY(\(others)::bytea[])", on: connection) {
                        owners[try row.bytes("key")] = try row.string("eui64")
                    }
                }
                for index in keyed {
                    let c = certificates[index]
                    if let owner = owners[c.subjectKeyDigest!], owner != c.eui64! { outcomes[index] = .keyReused(owner: owner) }
                }
            }

            // 2. Meters, by device_identities' primary key; a meter twice in the round is stored once, first wins.
            let candidates = certificates.indices.filter { outcomes[$0] == nil }
            var stored: Set<Int> = []
            if !candidates.isEmpty {
                let column = { (value: (CertificateRecord) -> String) in candidates.map { value(certificates[$0]) } }
                var won: [String: String] = [:]  // EUI-64 → serial stored for it now
                for row in try await rows(
                    """
                    INSERT INTO device_identities (eui64, issuer, serial, shard)
                    SELECT * FROM unnest(\(column { $0.eui64 ?? "" })::text[], \(column { $0.issuer })::text[], \(column { $0.serial })::text[],
                                         \(candidates.map { Int64(certificates[$0].shard) })::bigint[])
                    ON CONFLICT (eui64) DO NOTHING RETURNING eui64, serial
                    """,
                    on: connection
                ) {
                    won[try row.string("eui64")] = try row.string("serial")
                }
                var released: [ByteBuffer] = []
                var storedMeters: Set<String> = []
                var storedKeys: Set<[UInt8]> = []
                for index in candidates {
                    let c = certificates[index]
                    if let eui64 = c.eui64, won[eui64] == c.serial, !storedMeters.contains(eui64) {
                        stored.insert(index)
                        storedMeters.insert(eui64)
                        if let digest = c.subjectKeyDigest { storedKeys.insert(digest) }
                        outcomes[index] = .stored
                    } else {
                        outcomes[index] = .meterProvisioned
                        // The key claimed for this meter just now goes with the skipped record.
                        if let digest = c.subjectKeyDigest, claimedNow[digest] == c.eui64, !storedKeys.contains(digest) {
                            released.append(ByteBuffer(bytes: digest))
                            claimedNow[digest] = nil
                        }
                    }
                }
                // 3. Release those keys.
                if !released.isEmpty {
                    try await execute(connection, "DELETE FROM device_keys WHERE key = ANY(\(released)::bytea[])", logger: logger)
                }
            }

            // 4. The certificates themselves; the primary key refuses a serial the issuer already used.
            let rows = stored.sorted()
            if !rows.isEmpty {
                let text = { (value: (CertificateRecord) -> String) in rows.map { value(certificates[$0]) } }
                let integer = { (value: (CertificateRecord) -> Int64) in rows.map { value(certificates[$0]) } }
                try await execute(connection, 
                    """
                    INSERT INTO certificates (\(unescaped: Self.certificateColumns))
                    SELECT issuer, serial, shard, kind, profile, subject, nullif(eui64, ''), not_before, not_after, fingerprint_sha256, der,
                           created_at, nullif(batch, ''), nullif(batch_position, -1)
                    FROM unnest(\(text { $0.issuer })::text[], \(text { $0.serial })::text[], \(integer { Int64($0.shard) })::bigint[],
                                \(text { $0.kind.rawValue })::text[], \(text { $0.profile })::text[], \(text { $0.subject })::text[],
                                \(text { $0.eui64 ?? "" })::text[], \(integer { Self.seconds($0.notBefore) })::bigint[],
                                \(integer { Self.seconds($0.notAfter) })::bigint[], \(text { $0.fingerprintSHA256 })::text[],
                                \(rows.map { ByteBuffer(bytes: certificates[$0].der) })::bytea[], \(integer { Self.seconds($0.createdAt) })::bigint[],
                                \(text { $0.batch ?? "" })::text[], \(integer { $0.batchPosition ?? -1 })::bigint[])
                         AS input (issuer, serial, shard, kind, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der,
                                   created_at, batch, batch_position)
                    """,
                    logger: logger
                )
            }
            return outcomes.map { $0 ?? .meterProvisioned }
        }
    }

    public func batchCertificates(batch: String, afterPosition position: Int64, limit: Int) async throws -> [CertificateRecord] {
        try await read { [self] connection in
            try await rows(
                "SELECT * FROM certificates WHERE batch = \(batch) AND batch_position > \(position) ORDER BY batch_position LIMIT \(Int64(limit))",
                on: connection
            ).map(Self.certificate(from:))
        }
    }

    public func batchCertificateCount(batch: String) async throws -> Int {
        try await read { [self] connection in
            try await rows("SELECT count(*) AS n FROM certificates WHERE batch = \(batch)", on: connection).first?.int("n") ?? 0
        }
    }
}
