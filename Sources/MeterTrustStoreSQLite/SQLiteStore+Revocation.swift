import Foundation
import GRDB
import MeterTrustStore

// Revocation of certificates and destruction of CAs (the RevocationStore view).
extension SQLiteStore {
    public func markCertificateAuthorityDestroyed(named name: String, at date: Date) async throws {
        try await write { db in
            try db.execute(
                sql: "UPDATE certificate_authorities SET destroyed_at = ? WHERE name = ? AND destroyed_at IS NULL",
                arguments: [Self.seconds(date), name]
            )
            guard db.changesCount == 1 else { throw StoreError(.notFound, "there is no live CA \(name)") }
        }
    }

    public func revokeCertificate(issuer: String, serial: String, reason: Int, at date: Date) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO revocations (issuer, serial, reason, revoked_at) VALUES (?, ?, ?, ?)",
                arguments: [issuer, serial, reason, Self.seconds(date)]
            )
        }
    }

    public func recordRevocations(_ records: [RevocationRecord]) async throws -> Int {
        guard !records.isEmpty else { return 0 }
        return try await writeReturning { db in
            let statement = try db.cachedStatement(
                sql: """
                    INSERT OR IGNORE INTO revocations (issuer, serial, reason, revoked_at)
                    SELECT issuer, serial, ?, ? FROM certificates WHERE issuer = ? AND serial = ?
                    """
            )
            var recorded = 0
            for record in records {
                try statement.execute(arguments: [record.reason, Self.seconds(record.revokedAt), record.issuer, record.serial])
                recorded += db.changesCount
            }
            return recorded
        }
    }

    public func revocation(issuer: String, serial: String) async throws -> (reason: Int, date: Date)? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT reason, revoked_at FROM revocations WHERE issuer = ? AND serial = ?", arguments: [issuer, serial])
                .map { (reason: $0["reason"] as Int, date: Self.date($0["revoked_at"])) }
        }
    }

    public func revocations(after position: CertificateListPosition?, limit: Int) async throws -> [RevocationRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM revocations WHERE (issuer, serial) > (?, ?) ORDER BY issuer, serial LIMIT ?",
                arguments: [position?.issuer ?? "", position?.serial ?? "", limit]
            ).map {
                RevocationRecord(issuer: $0["issuer"], serial: $0["serial"], reason: $0["reason"], revokedAt: Self.date($0["revoked_at"]))
            }
        }
    }
}
