import Foundation
import MeterTrustStore
import PostgresNIO

// Certificate authorities (the CertificateAuthorityStore view).
extension PostgresStore {
    public func insertCertificateAuthority(_ authority: CertificateAuthorityRecord, certificate: CertificateRecord) async throws {
        try await transaction { [self] connection in
            try await insert(certificate, on: connection)
            try await execute(connection, 
                """
                INSERT INTO certificate_authorities
                (name, role, parent, key_label, key_id, curve, certificate_serial, shard_count, created_at)
                VALUES (\(authority.name), \(authority.roleName), \(authority.parent), \(authority.keyLabel), \(authority.keyID),
                        \(authority.curve), \(authority.certificateSerial), \(Int64(authority.shardCount)), \(Self.seconds(authority.createdAt)))
                """,
                logger: logger
            )
        }
    }

    public func certificateAuthority(named name: String) async throws -> CertificateAuthorityRecord? {
        try await read { [self] connection in
            try await rows("SELECT * FROM certificate_authorities WHERE name = \(name)", on: connection).first.map(Self.authority(from:))
        }
    }

    public func certificateAuthorities() async throws -> [CertificateAuthorityRecord] {
        try await read { [self] connection in
            try await rows("SELECT * FROM certificate_authorities ORDER BY created_at, name", on: connection).map(Self.authority(from:))
        }
    }

    static func authority(from row: PostgresRandomAccessRow) throws -> CertificateAuthorityRecord {
        var record = CertificateAuthorityRecord(
            name: try row.string("name"), roleName: try row.string("role"), parent: try row.optionalString("parent"),
            keyLabel: try row.string("key_label"), keyID: try row.string("key_id"), curve: try row.string("curve"),
            certificateSerial: try row.string("certificate_serial"), createdAt: date(try row.int64("created_at")),
            destroyedAt: try row.optionalInt64("destroyed_at").map(date)
        )
        record.shardCount = try row.int("shard_count")
        return record
    }
}
