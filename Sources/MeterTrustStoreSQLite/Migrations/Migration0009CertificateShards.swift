import GRDB
import MeterTrustCore

/// Certificate shards (issue 13): every CA gets its shard count (`shard_count`, 1...4096, 256 for the CAs a store
/// already holds), every certificate its shard (`shard`), fixed at issuance from the serial by Core's ``ShardCount``
/// rule under its issuing CA's count; the partition key of the certificate tables on PostgreSQL and the CRL shard.
///
/// `shard` is NOT NULL without a default, so an insert that forgets it fails instead of filing the certificate in
/// shard 0; SQLite adds such a column only by rebuilding the table (its documented twelve steps: new table, copy,
/// drop, rename, indexes again; GRDB runs migrations with foreign keys off and checks them at the end). The rule is
/// arithmetic on the serial's octets, which SQL cannot do on hex text: the copy calls it as a SQL function from Swift.
/// A certificate whose issuer is no CA of the store, or whose serial is not hex, gets shard 0.
enum Migration0009CertificateShards: SQLiteMigration {
    static let identifier = "0009-certificate-shards"

    /// `metertrust_shard(serial, shard_count)`: ``ShardCount``'s shard of a hex serial.
    static let shardFunction = DatabaseFunction("metertrust_shard", argumentCount: 2, pure: true) { values in
        guard let serial = String.fromDatabaseValue(values[0]), let value = Int.fromDatabaseValue(values[1]),
            let count = ShardCount(value)
        else { return 0 }
        return count.shard(ofSerialHex: serial) ?? 0
    }

    static func migrate(_ db: Database) throws {
        db.add(function: shardFunction)
        defer { db.remove(function: shardFunction) }
        try db.execute(sql: """
            ALTER TABLE certificate_authorities ADD COLUMN shard_count INTEGER NOT NULL DEFAULT 256
                CHECK (shard_count BETWEEN 1 AND 4096);
            CREATE TABLE certificates_with_shards (
                issuer TEXT NOT NULL,
                serial TEXT NOT NULL,
                profile TEXT NOT NULL,
                subject TEXT NOT NULL,
                eui64 TEXT,
                not_before BIGINT NOT NULL,
                not_after BIGINT NOT NULL,
                fingerprint_sha256 TEXT NOT NULL,
                der BLOB NOT NULL,
                created_at BIGINT NOT NULL,
                batch TEXT,
                batch_position BIGINT,
                kind TEXT NOT NULL DEFAULT 'service'
                    CHECK (kind IN ('device-identity', 'device-operational', 'ca', 'service')),
                shard INTEGER NOT NULL CHECK (shard >= 0),
                PRIMARY KEY (issuer, serial)
            );
            INSERT INTO certificates_with_shards
                (issuer, serial, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at, batch,
                 batch_position, kind, shard)
                SELECT c.issuer, c.serial, c.profile, c.subject, c.eui64, c.not_before, c.not_after, c.fingerprint_sha256, c.der,
                    c.created_at, c.batch, c.batch_position, c.kind,
                    metertrust_shard(c.serial, coalesce((SELECT a.shard_count FROM certificate_authorities a WHERE a.name = c.issuer), 256))
                FROM certificates c ORDER BY c.rowid;
            DROP TABLE certificates;
            ALTER TABLE certificates_with_shards RENAME TO certificates;
            CREATE UNIQUE INDEX device_identity_per_meter_by_kind ON certificates (eui64) WHERE kind = 'device-identity';
            CREATE INDEX certificates_batch ON certificates (batch, batch_position);
            CREATE INDEX certificates_other_per_meter ON certificates (eui64) WHERE kind <> 'device-identity' AND eui64 IS NOT NULL;
            CREATE INDEX certificates_by_creation ON certificates (created_at);
            """)
    }
}
