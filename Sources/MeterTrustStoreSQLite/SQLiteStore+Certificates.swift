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

    static func insert(_ c: CertificateRecord, into db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO certificates
                (issuer, serial, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at,
                 batch, batch_position, kind)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: arguments(c)
        )
    }

    static func arguments(_ c: CertificateRecord) -> StatementArguments {
        [
            c.issuer, c.serial, c.profile, c.subject, c.eui64, Int64(c.notBefore.timeIntervalSince1970),
            Int64(c.notAfter.timeIntervalSince1970), c.fingerprintSHA256, Data(c.der),
            Int64(c.createdAt.timeIntervalSince1970), c.batch, c.batchPosition, c.kind.rawValue,
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
            batch: row["batch"], batchPosition: row["batch_position"]
        )
    }
}
