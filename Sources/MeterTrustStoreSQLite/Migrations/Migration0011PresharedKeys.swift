import GRDB

/// PSK meters (issue 15): a `keyMode: psk` batch records the label of its PSK master key (in the HSM; derived PSKs
/// are never stored), and OEM-generated PSKs are kept sealed by the HSM, one per meter (`sealed_psks`, keyed by
/// EUI-64: a meter never has two, and an import never replaces one).
enum Migration0011PresharedKeys: SQLiteMigration {
    static let identifier = "0011-preshared-keys"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE batches ADD COLUMN psk_master_key_label TEXT;
            CREATE TABLE sealed_psks (
                eui64 TEXT NOT NULL PRIMARY KEY CHECK (length(eui64) = 16 AND eui64 NOT GLOB '*[^0-9a-f]*'),
                batch TEXT NOT NULL,
                sealing_key_label TEXT NOT NULL,
                sealed BLOB NOT NULL CHECK (length(sealed) >= 28),
                imported_at BIGINT NOT NULL
            ) WITHOUT ROWID;
            """)
    }
}
