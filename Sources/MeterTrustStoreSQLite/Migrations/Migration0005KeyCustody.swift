import GRDB

/// Shipped: never edit, add a new migration instead. The identifier is what existing stores recorded.
enum Migration0005KeyCustody: SQLiteMigration {
    static let identifier = "0005-key-custody"

    static func migrate(_ db: Database) throws {
        // The security officer's PIN, split like the backup key; and no backup document kept in a request's
        // outcome any more (they were served to every custodian): only the executor gets one, once.
        try db.execute(sql: """
            ALTER TABLE backup_key ADD COLUMN so_pin_shares BLOB;
            UPDATE admin_requests SET outcome = json_remove(outcome, '$.backup')
                WHERE operation = 'backup.export' AND outcome IS NOT NULL AND json_valid(outcome);
            """)
    }
}
