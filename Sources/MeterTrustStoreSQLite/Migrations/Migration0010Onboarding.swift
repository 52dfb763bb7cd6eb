import GRDB

/// Utility accounts, operators, enrollment uploads and their staging area, claims, conflicts, pending revocations
/// and every meter's onboarding history (issue 14).
///
/// - One open claim per meter is `one_open_claim_per_meter`, a partial unique index over claims whose period is not
///   closed: the database decides who was first, on every node. Closed periods stay, so history survives a re-claim.
/// - Staged entries are keyed by (upload, EUI-64) without rowid: a meter listed twice in one upload is put aside in
///   `enrollment_staging_repeats` by the key itself, and the checks and the commit read the staged meters in EUI-64
///   order, the order of the indexes they probe.
/// - `meter_history` holds every event in one sequence (its rowid), so the history's order is the order things
///   happened, even within one second.
/// - `pending_revocations` names certificates without a foreign key (the PostgreSQL certificate key includes the
///   shard); the revocation service checks each against the store when it revokes.
enum Migration0010Onboarding: SQLiteMigration {
    static let identifier = "0010-onboarding"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE accounts (
                id TEXT NOT NULL PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 63 AND id NOT GLOB '*[^a-z0-9-]*'),
                display_name TEXT NOT NULL,
                operational_ca TEXT NOT NULL REFERENCES certificate_authorities (name),
                created_at BIGINT NOT NULL,
                created_by TEXT NOT NULL,
                request_id TEXT
            );
            CREATE TABLE account_manufacturers (
                account TEXT NOT NULL REFERENCES accounts (id),
                manufacturer TEXT NOT NULL REFERENCES certificate_authorities (name),
                PRIMARY KEY (account, manufacturer)
            ) WITHOUT ROWID;
            CREATE TABLE account_operators (
                fingerprint_sha256 TEXT NOT NULL PRIMARY KEY,
                account TEXT NOT NULL REFERENCES accounts (id),
                name TEXT NOT NULL,
                certificate_issuer TEXT NOT NULL,
                certificate_serial TEXT NOT NULL,
                added_at BIGINT NOT NULL,
                added_by TEXT NOT NULL,
                removed_at BIGINT,
                removed_by TEXT
            );
            CREATE INDEX account_operators_by_account ON account_operators (account);
            CREATE TABLE enrollment_uploads (
                id TEXT NOT NULL PRIMARY KEY,
                account TEXT NOT NULL REFERENCES accounts (id),
                manufacturer TEXT NOT NULL REFERENCES certificate_authorities (name),
                format TEXT NOT NULL CHECK (format IN ('manifest', 'list')),
                batch TEXT,
                state TEXT NOT NULL CHECK (state IN ('staging', 'committed', 'refused')),
                entry_count BIGINT NOT NULL DEFAULT 0,
                claimed BIGINT NOT NULL DEFAULT 0,
                already_held BIGINT NOT NULL DEFAULT 0,
                conflicts BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                finished_at BIGINT,
                actor TEXT NOT NULL
            );
            CREATE INDEX enrollment_uploads_by_account ON enrollment_uploads (account);
            CREATE TABLE enrollment_staging (
                upload TEXT NOT NULL,
                eui64 TEXT NOT NULL,
                position BIGINT NOT NULL,
                certificate_sha256 TEXT,
                PRIMARY KEY (upload, eui64)
            ) WITHOUT ROWID;
            CREATE TABLE enrollment_staging_repeats (
                upload TEXT NOT NULL,
                position BIGINT NOT NULL,
                eui64 TEXT NOT NULL,
                PRIMARY KEY (upload, position)
            ) WITHOUT ROWID;
            CREATE TABLE claims (
                id INTEGER PRIMARY KEY,
                eui64 TEXT NOT NULL,
                account TEXT NOT NULL REFERENCES accounts (id),
                upload TEXT,
                claimed_at BIGINT NOT NULL,
                claimed_by TEXT NOT NULL,
                released_at BIGINT,
                released_by TEXT
            );
            CREATE UNIQUE INDEX one_open_claim_per_meter ON claims (eui64) WHERE released_at IS NULL;
            CREATE INDEX open_claims_by_account ON claims (account, eui64) WHERE released_at IS NULL;
            CREATE TABLE claim_conflicts (
                id INTEGER PRIMARY KEY,
                eui64 TEXT NOT NULL,
                holder TEXT NOT NULL REFERENCES accounts (id),
                claimant TEXT NOT NULL REFERENCES accounts (id),
                upload TEXT,
                reported_at BIGINT NOT NULL,
                resolved_at BIGINT,
                resolution TEXT CHECK (resolution IN ('claimant', 'holder', 'released')),
                resolved_by TEXT,
                CHECK (holder <> claimant),
                CHECK ((resolved_at IS NULL) = (resolution IS NULL))
            );
            CREATE UNIQUE INDEX one_open_conflict ON claim_conflicts (eui64, claimant) WHERE resolved_at IS NULL;
            CREATE INDEX conflicts_by_holder ON claim_conflicts (holder, id);
            CREATE INDEX conflicts_by_claimant ON claim_conflicts (claimant, id);
            CREATE TABLE pending_revocations (
                issuer TEXT NOT NULL,
                serial TEXT NOT NULL,
                eui64 TEXT NOT NULL,
                account TEXT NOT NULL,
                reason INTEGER NOT NULL CHECK (reason BETWEEN 0 AND 10),
                recorded_at BIGINT NOT NULL,
                PRIMARY KEY (issuer, serial)
            ) WITHOUT ROWID;
            CREATE TABLE meter_history (
                id INTEGER PRIMARY KEY,
                eui64 TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('claimed', 'conflict', 'resolved-for-claimant', 'resolved-for-holder', 'conflict-closed', 'released')),
                account TEXT NOT NULL,
                counterparty TEXT,
                upload TEXT,
                actor TEXT NOT NULL,
                at BIGINT NOT NULL
            );
            CREATE INDEX meter_history_by_meter ON meter_history (eui64, id);
            """)
    }
}
