import Foundation
import GRDB
import MeterTrustStore

// Certificate authorities (the CertificateAuthorityStore view).
extension SQLiteStore {
    public func insertCertificateAuthority(_ authority: CertificateAuthorityRecord, certificate: CertificateRecord) async throws {
        try await write { db in
            try Self.insert(certificate, into: db)
            try db.execute(
                sql: """
                    INSERT INTO certificate_authorities
                    (name, role, parent, key_label, key_id, curve, certificate_serial, created_at, shard_count)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    authority.name, authority.roleName, authority.parent, authority.keyLabel, authority.keyID,
                    authority.curve, authority.certificateSerial, Int64(authority.createdAt.timeIntervalSince1970),
                    authority.shardCount,
                ]
            )
        }
    }

    public func certificateAuthority(named name: String) async throws -> CertificateAuthorityRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM certificate_authorities WHERE name = ?", arguments: [name])
                .map(Self.authority(from:))
        }
    }

    public func certificateAuthorities() async throws -> [CertificateAuthorityRecord] {
        try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM certificate_authorities ORDER BY created_at, name")
                .map(Self.authority(from:))
        }
    }

    static func authority(from row: Row) -> CertificateAuthorityRecord {
        CertificateAuthorityRecord(
            name: row["name"], roleName: row["role"], parent: row["parent"], keyLabel: row["key_label"], keyID: row["key_id"],
            curve: row["curve"], certificateSerial: row["certificate_serial"],
            createdAt: Date(timeIntervalSince1970: TimeInterval(row["created_at"] as Int64)),
            destroyedAt: (row["destroyed_at"] as Int64?).map(date), shardCount: row["shard_count"]
        )
    }
}
