import GRDB

/// Shipped: never edit, add a new migration instead. The identifier is what existing stores recorded.
enum Migration0004Quorum: SQLiteMigration {
    static let identifier = "0004-quorum"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE quorum_bootstrap (
                id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
                created_at BIGINT NOT NULL
            );
            CREATE TABLE custodians (
                name TEXT NOT NULL PRIMARY KEY,
                role TEXT NOT NULL,
                certificate BLOB NOT NULL,
                fingerprint_sha256 TEXT NOT NULL UNIQUE,
                registered_at BIGINT NOT NULL,
                registered_by TEXT,
                removed_at BIGINT
            );
            CREATE TABLE quorum_policies (
                operation_class TEXT NOT NULL PRIMARY KEY,
                required INTEGER NOT NULL CHECK (required >= 1),
                approver_roles TEXT NOT NULL,
                requester_may_approve INTEGER NOT NULL,
                updated_at BIGINT NOT NULL,
                updated_by TEXT
            );
            CREATE TABLE admin_requests (
                id TEXT NOT NULL PRIMARY KEY,
                document BLOB NOT NULL,
                operation TEXT NOT NULL,
                requester TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'executing', 'executed', 'failed')),
                executed_at BIGINT,
                executed_by TEXT,
                outcome TEXT
            );
            CREATE INDEX admin_requests_by_state ON admin_requests (state, created_at);
            CREATE TABLE approvals (
                request_id TEXT NOT NULL REFERENCES admin_requests (id),
                custodian TEXT NOT NULL REFERENCES custodians (name),
                document BLOB NOT NULL,
                received_at BIGINT NOT NULL,
                PRIMARY KEY (request_id, custodian)
            );
            CREATE TABLE backup_key (
                id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
                label TEXT NOT NULL,
                threshold INTEGER NOT NULL,
                shares BLOB NOT NULL,
                key_check_value TEXT NOT NULL,
                created_at BIGINT NOT NULL
            );
            CREATE TABLE revocations (
                issuer TEXT NOT NULL,
                serial TEXT NOT NULL,
                reason INTEGER NOT NULL,
                revoked_at BIGINT NOT NULL,
                PRIMARY KEY (issuer, serial),
                FOREIGN KEY (issuer, serial) REFERENCES certificates (issuer, serial)
            );
            ALTER TABLE certificate_authorities ADD COLUMN destroyed_at BIGINT;
            """)
    }
}
