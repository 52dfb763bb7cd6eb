import Foundation
import MeterTrustStore
import PostgresNIO

// Certificates: insert and look-up (the CertificateStore view).
extension PostgresStore {
    static let certificateColumns =
        "issuer, serial, shard, kind, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at, batch, batch_position"

    public func insertCertificate(_ certificate: CertificateRecord) async throws {
        try await insertCertificates([certificate])
    }

    public func insertCertificates(_ certificates: [CertificateRecord]) async throws {
        try await transaction { [self] connection in
            for certificate in certificates { try await insert(certificate, on: connection) }
        }
    }

    /// Inserts one certificate in the caller's transaction: its key claimed for its meter (``claimKey(_:on:)``), a
    /// device identity's meter claimed in `device_identities` (keyed by EUI-64: a second one is refused, naming the
    /// first), then the certificate itself, whose primary key refuses a serial the issuer already used. Throwing rolls
    /// back every claim with the rest.
    func insert(_ c: CertificateRecord, on connection: PostgresConnection) async throws {
        _ = try await claimKey(c, on: connection)
        if c.kind == .deviceIdentity, let eui64 = c.eui64 {
            let claimed = try await rows(
                """
                INSERT INTO device_identities (eui64, issuer, serial, shard)
                VALUES (\(eui64), \(c.issuer), \(c.serial), \(Int64(c.shard)))
                ON CONFLICT (eui64) DO NOTHING RETURNING eui64
                """,
                on: connection
            )
            if claimed.isEmpty { throw try await meterProvisioned(eui64, on: connection) }
        }
        try await execute(connection, 
            """
            INSERT INTO certificates (\(unescaped: Self.certificateColumns))
            VALUES (\(c.issuer), \(c.serial), \(Int64(c.shard)), \(c.kind.rawValue), \(c.profile), \(c.subject), \(c.eui64),
                    \(Self.seconds(c.notBefore)), \(Self.seconds(c.notAfter)), \(c.fingerprintSHA256), \(ByteBuffer(bytes: c.der)),
                    \(Self.seconds(c.createdAt)), \(c.batch), \(c.batchPosition))
            """,
            logger: logger
        )
    }

    /// Claims the record's subject key for its meter by `device_keys`' primary key, never a look-up first: two nodes
    /// claiming one key for two meters cannot both win (the second waits on the first's index entry, then sees it).
    /// The same meter keeps its key; another meter's key is refused with ``StoreError/Code/keyReused``. True if this
    /// call made the claim.
    func claimKey(_ c: CertificateRecord, on connection: PostgresConnection) async throws -> Bool {
        guard let digest = c.subjectKeyDigest, let eui64 = c.eui64 else { return false }
        let key = ByteBuffer(bytes: digest)
        let inserted = try await rows(
            "INSERT INTO device_keys (key, eui64) VALUES (\(key), \(eui64)) ON CONFLICT (key) DO NOTHING RETURNING eui64", on: connection
        )
        if !inserted.isEmpty { return true }
        let owner = try await rows("SELECT eui64 FROM device_keys WHERE key = \(key)", on: connection).first.map { try $0.string("eui64") }
        guard owner == eui64 else { throw Self.keyReused(owner: owner ?? "unknown", eui64: eui64) }
        return false
    }

    static func keyReused(owner: String, eui64: String) -> StoreError {
        StoreError(
            .keyReused,
            "the public key of the request for meter \(eui64) already belongs to meter \(owner) (a cloned meter, or one claiming another's identity): each meter needs its own key"
        )
    }

    /// The refusal of a second device identity for `eui64`, naming the one it has.
    func meterProvisioned(_ eui64: String, on connection: PostgresConnection) async throws -> StoreError {
        let row = try await rows(
            """
            SELECT d.issuer, d.serial, c.batch FROM device_identities d
            JOIN certificates c ON c.issuer = d.issuer AND c.serial = d.serial AND c.shard = d.shard WHERE d.eui64 = \(eui64)
            """,
            on: connection
        ).first
        guard let row else { return StoreError(.meterProvisioned, "EUI-64 \(eui64) is already provisioned") }
        return StoreError(
            .meterProvisioned,
            "EUI-64 \(eui64) is already provisioned (batch \(try row.optionalString("batch") ?? "none"), CA \(try row.string("issuer")), serial \(try row.string("serial")))"
        )
    }

    public func certificates(serial: String) async throws -> [CertificateRecord] {
        try await read { [self] connection in
            // One primary-key probe per CA, as in SQLite: no index on the serial alone, which would cost every
            // issuance another random insert.
            try await rows(
                """
                SELECT * FROM certificates
                WHERE issuer IN (SELECT name FROM certificate_authorities) AND serial = \(serial) ORDER BY issuer
                """,
                on: connection
            ).map(Self.certificate(from:))
        }
    }

    public func certificate(issuer: String, serial: String) async throws -> CertificateRecord? {
        try await read { [self] connection in
            try await rows("SELECT * FROM certificates WHERE issuer = \(issuer) AND serial = \(serial)", on: connection).first.map(Self.certificate(from:))
        }
    }

    public func certificateCount(issuer: String?) async throws -> Int {
        try await read { [self] connection in
            let query: PostgresQuery =
                if let issuer { "SELECT count(*) AS n FROM certificates WHERE issuer = \(issuer)" } else { "SELECT count(*) AS n FROM certificates" }
            return try await rows(query, on: connection).first?.int("n") ?? 0
        }
    }

    static func certificate(from row: PostgresRandomAccessRow) throws -> CertificateRecord {
        let kindName = try row.string("kind")
        guard let kind = CertificateRecord.Kind(rawValue: kindName) else {
            throw StoreError(.corrupt, "certificate \(try row.string("serial")) of \(try row.string("issuer")) has unknown kind \(kindName)")
        }
        var record = CertificateRecord(
            issuer: try row.string("issuer"), serial: try row.string("serial"), profile: try row.string("profile"), kind: kind,
            subject: try row.string("subject"), eui64: try row.optionalString("eui64"), notBefore: date(try row.int64("not_before")),
            notAfter: date(try row.int64("not_after")), fingerprintSHA256: try row.string("fingerprint_sha256"), der: try row.bytes("der"),
            createdAt: date(try row.int64("created_at")), batch: try row.optionalString("batch"), batchPosition: try row.optionalInt64("batch_position")
        )
        record.shard = try row.int("shard")
        return record
    }
}

// Listing: filters and keyset paging on the primary key's order.
extension PostgresStore {
    public func certificates(matching filter: CertificateFilter, after position: CertificateListPosition?, limit: Int) async throws -> CertificatePage {
        guard limit > 0, let query = Self.listing(filter, after: position, limit: limit) else { return CertificatePage(certificates: [], next: nil) }
        return try await read { [self] connection in
            var records = try await rows(query, on: connection).map(Self.certificate(from:))
            guard records.count > limit else { return CertificatePage(certificates: records, next: nil) }
            records.removeLast(records.count - limit)
            return CertificatePage(certificates: records, next: records.last.map(CertificateListPosition.init))
        }
    }

    /// The query of one page (one row more than `limit`, which says whether another page follows), or nil when no
    /// certificate can match. Order and position are the primary key's (issuer, serial), in the "C" collation.
    static func listing(_ filter: CertificateFilter, after position: CertificateListPosition?, limit: Int) -> PostgresQuery? {
        var conditions: [String] = []
        var binds = PostgresBindings()
        func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }
        if let issuer = filter.issuer {
            conditions.append("issuer = \(bind(issuer))")
            if let position {
                if position.issuer > issuer { return nil }
                if position.issuer == issuer { conditions.append("serial > \(bind(position.serial))") }
            }
        } else if let position {
            conditions.append("(issuer, serial) > (\(bind(position.issuer)), \(bind(position.serial)))")
        }
        if let eui64 = filter.eui64 {
            // Device identities by their table (keyed by EUI-64), every other certificate by the partial index.
            let value = bind(eui64)
            conditions.append(
                "((eui64 = \(value) AND kind <> 'device-identity') OR (issuer, serial, shard) IN (SELECT issuer, serial, shard FROM device_identities WHERE eui64 = \(value)))"
            )
        }
        if let profile = filter.profile { conditions.append("profile = \(bind(profile))") }
        if let batch = filter.batch { conditions.append("batch = \(bind(batch))") }
        // created_at holds whole seconds: a certificate of the same second counts as since.
        if let since = filter.issuedSince { conditions.append("created_at >= \(bind(seconds(since)))") }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ") + " "
        let sql = "SELECT * FROM certificates \(whereClause)ORDER BY issuer, serial LIMIT \(bind(Int64(limit + 1)))"
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }
}
