import GRDB

/// Shipped: never edit, add a new migration instead. The identifier is what existing stores recorded.
enum Migration0002FactoryBatches: SQLiteMigration {
    static let identifier = "0002-factory-batches"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE certificates ADD COLUMN batch TEXT;
            ALTER TABLE certificates ADD COLUMN batch_position BIGINT;
            CREATE UNIQUE INDEX device_identity_per_meter ON certificates (eui64) WHERE profile = 'device-identity';
            CREATE INDEX certificates_batch ON certificates (batch, batch_position);
            CREATE TABLE batches (
                id TEXT NOT NULL PRIMARY KEY,
                manufacturer TEXT NOT NULL REFERENCES certificate_authorities (name),
                manifest_sha256 TEXT NOT NULL,
                meter_count BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                completed_at BIGINT
            );
            """)
    }
}
