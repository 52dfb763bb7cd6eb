import GRDB

/// Shipped: never edit, add a new migration instead. The identifier is what existing stores recorded.
enum Migration0003AuditLog: SQLiteMigration {
    static let identifier = "0003-audit-log"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE audit_entries (
                position BIGINT NOT NULL PRIMARY KEY,
                entry BLOB NOT NULL,
                created_at BIGINT NOT NULL
            );
            CREATE TABLE audit_checkpoints (
                size BIGINT NOT NULL PRIMARY KEY,
                note TEXT NOT NULL,
                created_at BIGINT NOT NULL
            );
            """)
    }
}
