import Foundation
import MeterTrustStore
import PostgresNIO

// Revocation of certificates and destruction of CAs (the RevocationStore view).
extension PostgresStore {
    public func markCertificateAuthorityDestroyed(named name: String, at date: Date) async throws {
        try await transaction { [self] connection in
            let updated = try await rows(
                "UPDATE certificate_authorities SET destroyed_at = \(Self.seconds(date)) WHERE name = \(name) AND destroyed_at IS NULL RETURNING name",
                on: connection
            )
            guard updated.count == 1 else { throw StoreError(.notFound, "there is no live CA \(name)") }
        }
    }

    public func revokeCertificate(issuer: String, serial: String, reason: Int, at date: Date) async throws {
        try await transaction { [self] connection in
            // The revocation names its certificate by the certificate's whole key (the shard included, as the
            // partitioned table requires): read from the certificate itself, so a serial the store does not hold is
            // refused by the foreign key as in SQLite.
            let certificate = try await rows(
                "SELECT shard FROM certificates WHERE issuer = \(issuer) AND serial = \(serial)", on: connection
            ).first
            let shard = try certificate?.int64("shard") ?? -1
            try await execute(connection, 
                """
                INSERT INTO revocations (issuer, serial, shard, reason, revoked_at)
                VALUES (\(issuer), \(serial), \(shard), \(Int64(reason)), \(Self.seconds(date)))
                """,
                logger: logger
            )
        }
    }

    public func recordRevocations(_ records: [RevocationRecord]) async throws -> Int {
        guard !records.isEmpty else { return 0 }
        return try await transaction { [self] connection in
            // The shard comes from the certificate row (the partitioned key), as for one revocation.
            try await rows(
                """
                INSERT INTO revocations (issuer, serial, shard, reason, revoked_at)
                SELECT c.issuer, c.serial, c.shard, v.reason, v.revoked_at
                FROM unnest(\(records.map(\.issuer))::text[], \(records.map(\.serial))::text[], \(records.map { Int64($0.reason) })::bigint[],
                            \(records.map { Self.seconds($0.revokedAt) })::bigint[]) AS v(issuer, serial, reason, revoked_at)
                JOIN certificates c ON c.issuer = v.issuer AND c.serial = v.serial
                ON CONFLICT (issuer, serial) DO NOTHING RETURNING serial
                """,
                on: connection
            ).count
        }
    }

    public func revocation(issuer: String, serial: String) async throws -> (reason: Int, date: Date)? {
        try await read { [self] connection in
            try await rows("SELECT reason, revoked_at FROM revocations WHERE issuer = \(issuer) AND serial = \(serial)", on: connection).first.map {
                (reason: try $0.int("reason"), date: Self.date(try $0.int64("revoked_at")))
            }
        }
    }

    public func revocations(after position: CertificateListPosition?, limit: Int) async throws -> [RevocationRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows(
                """
                SELECT * FROM revocations WHERE (issuer, serial) > (\(position?.issuer ?? ""), \(position?.serial ?? ""))
                ORDER BY issuer, serial LIMIT \(Int64(limit))
                """,
                on: connection
            ).map {
                RevocationRecord(
                    issuer: try $0.string("issuer"), serial: try $0.string("serial"), reason: try $0.int("reason"),
                    revokedAt: Self.date(try $0.int64("revoked_at"))
                )
            }
        }
    }
}
