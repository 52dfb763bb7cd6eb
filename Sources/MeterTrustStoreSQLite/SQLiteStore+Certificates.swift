import Foundation
import GRDB
import MeterTrustStore

// Certificates: insert and look-up (the CertificateStore view).
extension SQLiteStore {
    public func insertCertificate(_ certificate: CertificateRecord) async throws {
        try await insertCertificates([certificate])
    }

    public func insertCertificates(_ certificates: [CertificateRecord]) async throws {
        try await write { db in
            for certificate in certificates { try Self.insert(certificate, into: db) }
        }
    }

    /// Inserts one certificate in the caller's transaction. Its key is claimed for its meter first (see
    /// ``claimKey(_:in:)``); a meter that already has a device identity is refused by the partial unique index, asked
    /// to do nothing on that conflict so only a serial collision raises. Throwing rolls the key claim back with the rest.
    static func insert(_ c: CertificateRecord, into db: Database) throws {
        _ = try claimKey(c, in: db)
        try db.execute(
            sql: """
                INSERT INTO certificates
                (issuer, serial, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at,
                 batch, batch_position, kind, shard)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (eui64) WHERE kind = 'device-identity' DO NOTHING
                """,
            arguments: arguments(c)
        )
        if db.changesCount == 0, let eui64 = c.eui64 { throw try meterProvisioned(eui64, in: db) }
    }

    /// Claims the record's subject key for its meter: by the `device_keys` primary key, never a look-up first, so two
    /// nodes (or two transactions) claiming one key for two meters cannot both win. The same meter keeps its key (an
    /// operational certificate for the factory key, a renewal without rekey); another meter's key is refused with
    /// ``StoreError/Code/keyReused``. True if this call made the claim (the caller undoes it if it skips the record).
    static func claimKey(_ c: CertificateRecord, in db: Database) throws -> Bool {
        guard let digest = c.subjectKeyDigest, let eui64 = c.eui64 else { return false }
        let key = Data(digest)
        try db.execute(sql: "INSERT INTO device_keys (key, eui64) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", arguments: [key, eui64])
        if db.changesCount == 1 { return true }
        let owner = try keyOwner(key, in: db)
        guard owner == eui64 else { throw keyReused(owner: owner ?? "unknown", eui64: eui64) }
        return false
    }

    static func keyOwner(_ key: Data, in db: Database) throws -> String? {
        try String.fetchOne(db, sql: "SELECT eui64 FROM device_keys WHERE key = ?", arguments: [key])
    }

    static func keyReused(owner: String, eui64: String) -> StoreError {
        StoreError(
            .keyReused,
            "the public key of the request for meter \(eui64) already belongs to meter \(owner) (a cloned meter, or one claiming another's identity): each meter needs its own key"
        )
    }

    /// The refusal of a second device identity for `eui64`, naming the one it has.
    static func meterProvisioned(_ eui64: String, in db: Database) throws -> StoreError {
        let row = try Row.fetchOne(
            db, sql: "SELECT issuer, serial, batch FROM certificates WHERE kind = 'device-identity' AND eui64 = ?", arguments: [eui64]
        )
        guard let row else { return StoreError(.meterProvisioned, "EUI-64 \(eui64) is already provisioned") }
        let (issuer, serial, batch): (String, String, String?) = (row["issuer"], row["serial"], row["batch"])
        return StoreError(
            .meterProvisioned, "EUI-64 \(eui64) is already provisioned (batch \(batch ?? "none"), CA \(issuer), serial \(serial))"
        )
    }

    static func arguments(_ c: CertificateRecord) -> StatementArguments {
        [
            c.issuer, c.serial, c.profile, c.subject, c.eui64, Int64(c.notBefore.timeIntervalSince1970),
            Int64(c.notAfter.timeIntervalSince1970), c.fingerprintSHA256, Data(c.der),
            Int64(c.createdAt.timeIntervalSince1970), c.batch, c.batchPosition, c.kind.rawValue, c.shard,
        ]
    }

    public func certificates(serial: String) async throws -> [CertificateRecord] {
        try await run { db in
            // One primary-key probe per CA: the (issuer, serial) key serves this without an index of its own, which
            // would cost every issuance a random B-tree insert.
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM certificates WHERE issuer IN (SELECT name FROM certificate_authorities) AND serial = ? ORDER BY issuer",
                arguments: [serial]
            )
                .map(Self.certificate(from:))
        }
    }

    public func certificate(issuer: String, serial: String) async throws -> CertificateRecord? {
        try await run { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM certificates WHERE issuer = ? AND serial = ?", arguments: [issuer, serial]
            ).map(Self.certificate(from:))
        }
    }

    public func certificateCount(issuer: String?) async throws -> Int {
        try await run { db in
            if let issuer {
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM certificates WHERE issuer = ?", arguments: [issuer]) ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM certificates") ?? 0
        }
    }

    static func certificate(from row: Row) throws -> CertificateRecord {
        let kindName: String = row["kind"]
        guard let kind = CertificateRecord.Kind(rawValue: kindName) else {
            throw StoreError(.corrupt, "certificate \(row["serial"] as String) of \(row["issuer"] as String) has unknown kind \(kindName)")
        }
        return CertificateRecord(
            issuer: row["issuer"], serial: row["serial"], profile: row["profile"], kind: kind, subject: row["subject"],
            eui64: row["eui64"], notBefore: Date(timeIntervalSince1970: TimeInterval(row["not_before"] as Int64)),
            notAfter: Date(timeIntervalSince1970: TimeInterval(row["not_after"] as Int64)),
            fingerprintSHA256: row["fingerprint_sha256"], der: Array(row["der"] as Data),
            createdAt: Date(timeIntervalSince1970: TimeInterval(row["created_at"] as Int64)),
            batch: row["batch"], batchPosition: row["batch_position"], shard: row["shard"] as Int
        )
    }
}

// Listing: filters and keyset paging on the primary key's order.
extension SQLiteStore {
    public func certificates(matching filter: CertificateFilter, after position: CertificateListPosition?, limit: Int) async throws -> CertificatePage {
        guard limit > 0 else { return CertificatePage(certificates: [], next: nil) }
        return try await run { db in
            guard let (sql, arguments) = Self.listing(filter, after: position, limit: limit) else {
                return CertificatePage(certificates: [], next: nil)
            }
            var records = try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.certificate(from:))
            guard records.count > limit else { return CertificatePage(certificates: records, next: nil) }
            records.removeLast(records.count - limit)
            return CertificatePage(certificates: records, next: records.last.map(CertificateListPosition.init))
        }
    }

    /// The query of one page (one row more than `limit`, which says whether another page follows), or nil when no
    /// certificate can match. Every filter is a condition an index serves: the primary key (issuer, serial) for the
    /// order, the issuer and the position; the per-meter indexes; the batch index; the creation-time index.
    static func listing(_ filter: CertificateFilter, after position: CertificateListPosition?, limit: Int) -> (String, StatementArguments)? {
        var conditions: [String] = []
        var values: [(any DatabaseValueConvertible)?] = []
        if let issuer = filter.issuer {
            // One CA: a range of the primary key; the position only moves the start within it.
            conditions.append("issuer = ?")
            values.append(issuer)
            if let position {
                if position.issuer > issuer { return nil }
                if position.issuer == issuer {
                    conditions.append("serial > ?")
                    values.append(position.serial)
                }
            }
        } else if let position {
            conditions.append("(issuer, serial) > (?, ?)")
            values += [position.issuer, position.serial]
        }
        if let eui64 = filter.eui64 {
            // Each branch names the WHERE of its partial index (device identities; every other certificate of a meter).
            conditions.append("((kind = 'device-identity' AND eui64 = ?) OR (kind <> 'device-identity' AND eui64 = ?))")
            values += [eui64, eui64]
        }
        if let profile = filter.profile {
            conditions.append("profile = ?")
            values.append(profile)
        }
        if let batch = filter.batch {
            conditions.append("batch = ?")
            values.append(batch)
        }
        if let since = filter.issuedSince {
            // created_at holds whole seconds: a certificate of the same second counts as since.
            conditions.append("created_at >= ?")
            values.append(seconds(since))
        }
        values.append(limit + 1)
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ") + " "
        // With only a time filter SQLite would rather read the primary key in order and keep the matches (no sort, but
        // the whole table before the recent rows); the time index reads only the certificates since, then sorts them.
        let onlySince = filter.issuedSince != nil && filter.issuer == nil && filter.eui64 == nil && filter.batch == nil
        let table = onlySince ? "certificates INDEXED BY certificates_by_creation" : "certificates"
        return ("SELECT * FROM \(table) \(whereClause)ORDER BY issuer, serial LIMIT ?", StatementArguments(values))
    }

    /// How SQLite runs a listing (`EXPLAIN QUERY PLAN` details), for the backend's own tests.
    func listingPlan(_ filter: CertificateFilter, after position: CertificateListPosition? = nil) async throws -> [String] {
        try await run { db in
            guard let (sql, arguments) = Self.listing(filter, after: position, limit: 10) else { return [] }
            return try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }
        }
    }
}
