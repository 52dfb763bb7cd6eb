import GRDB

/// Shipped: never edit, add a new migration instead. The identifier is what existing stores recorded.
enum Migration0001Initial: SQLiteMigration {
    static let identifier = "0001-certificates-and-authorities"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE certificates (
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
                PRIMARY KEY (issuer, serial)
            );
            CREATE TABLE certificate_authorities (
                name TEXT NOT NULL PRIMARY KEY,
                role TEXT NOT NULL,
                parent TEXT REFERENCES certificate_authorities (name),
                key_label TEXT NOT NULL UNIQUE,
                key_id TEXT NOT NULL,
                curve TEXT NOT NULL,
                certificate_serial TEXT NOT NULL,
                created_at BIGINT NOT NULL
            );
            CREATE UNIQUE INDEX one_root ON certificate_authorities (role) WHERE role = 'root';
            """)
    }
}
