import Foundation
import MeterTrustStore
import PostgresNIO

/// One versioned step of the PostgreSQL schema: shipped steps are never edited, a change is a new step. Statements run
/// one by one (postgres-nio's extended protocol takes one statement per query) in the migration's transaction.
struct PostgresMigration: Sendable {
    let identifier: String
    let statements: [String]
}

/// The PostgreSQL schema, append-only. It starts where the SQLite schema stood at its migration 0008, with the
/// certificate shard (issue 13) built in:
///
/// - `certificates` is partitioned by its `shard` (hash partitions), so its primary key holds the shard as well:
///   (issuer, serial, shard), which is unique exactly when (issuer, serial) is, because the shard is a function of the
///   serial. Uniqueness that is not per shard lives in tables keyed by it: `device_identities` (one per EUI-64) and
///   `device_keys` (one meter per key), written in the certificate's own transaction. `device_identities` names its
///   certificate's key but has no foreign key to it: the foreign key's check is a trigger run for every certificate
///   of the factory's hot path (BENCHMARKS.md has the run with it and without), and both rows are written together.
/// - Names the domain tells apart on a unique violation are the constraints' own (`certificates_pkey` and its
///   partitions' `certificates_pN_pkey`, `device_identities_pkey`, `device_keys_pkey`): see PostgresStore+Errors.
/// - Text keys that are paged or ordered (`issuer`, `serial`, batch ids, CA names) use the "C" collation, so the order
///   is the octets' (as in SQLite) whatever the database's locale.
/// - Times are whole seconds since 1970 (`bigint`), as in SQLite, so a copied store compares equal.
enum PostgresMigrations {
    /// Hash partitions of the certificate tables.
    static let certificatePartitions = 16

    static let all: [PostgresMigration] = [
        PostgresMigration(identifier: "0001-initial", statements: [
            """
            CREATE TABLE certificate_authorities (
                name text COLLATE "C" NOT NULL PRIMARY KEY,
                role text NOT NULL,
                parent text COLLATE "C" REFERENCES certificate_authorities (name),
                key_label text NOT NULL UNIQUE,
                key_id text NOT NULL,
                curve text NOT NULL,
                certificate_serial text COLLATE "C" NOT NULL,
                shard_count bigint NOT NULL DEFAULT 256 CHECK (shard_count BETWEEN 1 AND 4096),
                created_at bigint NOT NULL,
                destroyed_at bigint
            )
            """,
            "CREATE UNIQUE INDEX one_root ON certificate_authorities (role) WHERE role = 'root'",
            """
            CREATE TABLE certificates (
                issuer text COLLATE "C" NOT NULL,
                serial text COLLATE "C" NOT NULL,
                shard bigint NOT NULL CHECK (shard >= 0),
                kind text NOT NULL CHECK (kind IN ('device-identity', 'device-operational', 'ca', 'service')),
                profile text NOT NULL,
                subject text NOT NULL,
                eui64 text COLLATE "C",
                not_before bigint NOT NULL,
                not_after bigint NOT NULL,
                fingerprint_sha256 text NOT NULL,
                der bytea NOT NULL,
                created_at bigint NOT NULL,
                batch text COLLATE "C",
                batch_position bigint,
                CONSTRAINT certificates_pkey PRIMARY KEY (issuer, serial, shard)
            ) PARTITION BY HASH (shard)
            """,
        ] + (0..<certificatePartitions).map { remainder in
            "CREATE TABLE certificates_p\(remainder) PARTITION OF certificates FOR VALUES WITH (MODULUS \(certificatePartitions), REMAINDER \(remainder))"
        } + [
            "CREATE INDEX certificates_batch ON certificates (batch, batch_position) WHERE batch IS NOT NULL",
            // By meter for every certificate but device identities, which device_identities already finds by EUI-64:
            // the factory's hot path maintains no index by meter.
            "CREATE INDEX certificates_other_per_meter ON certificates (eui64) WHERE eui64 IS NOT NULL AND kind <> 'device-identity'",
            "CREATE INDEX certificates_by_creation ON certificates (created_at)",
            """
            CREATE TABLE device_identities (
                eui64 text COLLATE "C" NOT NULL,
                issuer text COLLATE "C" NOT NULL,
                serial text COLLATE "C" NOT NULL,
                shard bigint NOT NULL,
                CONSTRAINT device_identities_pkey PRIMARY KEY (eui64)
            )
            """,
            """
            CREATE TABLE device_keys (
                key bytea NOT NULL CHECK (octet_length(key) = 16),
                eui64 text COLLATE "C" NOT NULL,
                CONSTRAINT device_keys_pkey PRIMARY KEY (key)
            )
            """,
            """
            CREATE TABLE batches (
                id text COLLATE "C" NOT NULL PRIMARY KEY,
                manufacturer text COLLATE "C" NOT NULL REFERENCES certificate_authorities (name),
                manifest_sha256 text NOT NULL,
                meter_count bigint NOT NULL,
                created_at bigint NOT NULL,
                completed_at bigint
            )
            """,
            // The audit log's head: one row every append locks first, so appends from every node form one total order.
            "CREATE TABLE audit_head (id bigint NOT NULL PRIMARY KEY CHECK (id = 1))",
            "INSERT INTO audit_head (id) VALUES (1)",
            """
            CREATE TABLE audit_entries (
                position bigint NOT NULL PRIMARY KEY CHECK (position >= 0),
                entry bytea NOT NULL,
                created_at bigint NOT NULL
            )
            """,
            """
            CREATE TABLE audit_checkpoints (
                size bigint NOT NULL PRIMARY KEY,
                note text NOT NULL,
                created_at bigint NOT NULL
            )
            """,
            "CREATE TABLE quorum_bootstrap (id bigint NOT NULL PRIMARY KEY CHECK (id = 1), created_at bigint NOT NULL)",
            """
            CREATE TABLE custodians (
                name text COLLATE "C" NOT NULL PRIMARY KEY,
                role text NOT NULL,
                certificate bytea NOT NULL,
                fingerprint_sha256 text NOT NULL UNIQUE,
                registered_at bigint NOT NULL,
                registered_by text,
                removed_at bigint
            )
            """,
            """
            CREATE TABLE quorum_policies (
                operation_class text COLLATE "C" NOT NULL PRIMARY KEY,
                required bigint NOT NULL CHECK (required >= 1),
                approver_roles text NOT NULL,
                requester_may_approve boolean NOT NULL,
                updated_at bigint NOT NULL,
                updated_by text
            )
            """,
            """
            CREATE TABLE admin_requests (
                id text COLLATE "C" NOT NULL PRIMARY KEY,
                document bytea NOT NULL,
                operation text NOT NULL,
                requester text NOT NULL,
                created_at bigint NOT NULL,
                expires_at bigint NOT NULL,
                state text NOT NULL CHECK (state IN ('pending', 'executing', 'executed', 'failed')),
                executed_at bigint,
                executed_by text,
                outcome text
            )
            """,
            "CREATE INDEX admin_requests_by_state ON admin_requests (state, created_at)",
            """
            CREATE TABLE approvals (
                request_id text COLLATE "C" NOT NULL REFERENCES admin_requests (id),
                custodian text COLLATE "C" NOT NULL REFERENCES custodians (name),
                document bytea NOT NULL,
                received_at bigint NOT NULL,
                PRIMARY KEY (request_id, custodian)
            )
            """,
            """
            CREATE TABLE backup_key (
                id bigint NOT NULL PRIMARY KEY CHECK (id = 1),
                label text NOT NULL,
                threshold bigint NOT NULL,
                shares bytea NOT NULL,
                key_check_value text NOT NULL,
                created_at bigint NOT NULL,
                so_pin_shares bytea
            )
            """,
            """
            CREATE TABLE revocations (
                issuer text COLLATE "C" NOT NULL,
                serial text COLLATE "C" NOT NULL,
                shard bigint NOT NULL,
                reason bigint NOT NULL,
                revoked_at bigint NOT NULL,
                PRIMARY KEY (issuer, serial),
                FOREIGN KEY (issuer, serial, shard) REFERENCES certificates (issuer, serial, shard)
            )
            """,
        ]),
        // Issue 14: accounts, operators, enrollment uploads and staging, claims, conflicts, pending revocations and
        // meter history; the same schema as SQLite's 0010 (see Migration0010Onboarding): one open claim per meter by
        // the partial unique index `one_open_claim_per_meter`, one open conflict per meter and claimant likewise.
        PostgresMigration(identifier: "0002-onboarding", statements: [
            """
            CREATE TABLE accounts (
                id text COLLATE "C" NOT NULL PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,63}$'),
                display_name text NOT NULL,
                operational_ca text COLLATE "C" NOT NULL REFERENCES certificate_authorities (name),
                created_at bigint NOT NULL,
                created_by text NOT NULL,
                request_id text
            )
            """,
            """
            CREATE TABLE account_manufacturers (
                account text COLLATE "C" NOT NULL REFERENCES accounts (id),
                manufacturer text COLLATE "C" NOT NULL REFERENCES certificate_authorities (name),
                PRIMARY KEY (account, manufacturer)
            )
            """,
            """
            CREATE TABLE account_operators (
                fingerprint_sha256 text COLLATE "C" NOT NULL PRIMARY KEY,
                account text COLLATE "C" NOT NULL REFERENCES accounts (id),
                name text NOT NULL,
                certificate_issuer text COLLATE "C" NOT NULL,
                certificate_serial text COLLATE "C" NOT NULL,
                added_at bigint NOT NULL,
                added_by text NOT NULL,
                removed_at bigint,
                removed_by text,
                sequence bigserial NOT NULL
            )
            """,
            "CREATE INDEX account_operators_by_account ON account_operators (account, sequence)",
            """
            CREATE TABLE enrollment_uploads (
                id text COLLATE "C" NOT NULL PRIMARY KEY,
                account text COLLATE "C" NOT NULL REFERENCES accounts (id),
                manufacturer text COLLATE "C" NOT NULL REFERENCES certificate_authorities (name),
                format text NOT NULL CHECK (format IN ('manifest', 'list')),
                batch text COLLATE "C",
                state text NOT NULL CHECK (state IN ('staging', 'committed', 'refused')),
                entry_count bigint NOT NULL DEFAULT 0,
                claimed bigint NOT NULL DEFAULT 0,
                already_held bigint NOT NULL DEFAULT 0,
                conflicts bigint NOT NULL DEFAULT 0,
                created_at bigint NOT NULL,
                finished_at bigint,
                actor text NOT NULL
            )
            """,
            "CREATE INDEX enrollment_uploads_by_account ON enrollment_uploads (account)",
            """
            CREATE TABLE enrollment_staging (
                upload text COLLATE "C" NOT NULL,
                eui64 text COLLATE "C" NOT NULL,
                position bigint NOT NULL,
                certificate_sha256 text,
                PRIMARY KEY (upload, eui64)
            )
            """,
            """
            CREATE TABLE enrollment_staging_repeats (
                upload text COLLATE "C" NOT NULL,
                position bigint NOT NULL,
                eui64 text COLLATE "C" NOT NULL,
                PRIMARY KEY (upload, position)
            )
            """,
            """
            CREATE TABLE claims (
                id bigserial NOT NULL PRIMARY KEY,
                eui64 text COLLATE "C" NOT NULL,
                account text COLLATE "C" NOT NULL REFERENCES accounts (id),
                upload text COLLATE "C",
                claimed_at bigint NOT NULL,
                claimed_by text NOT NULL,
                released_at bigint,
                released_by text
            )
            """,
            "CREATE UNIQUE INDEX one_open_claim_per_meter ON claims (eui64) WHERE released_at IS NULL",
            "CREATE INDEX open_claims_by_account ON claims (account, eui64) WHERE released_at IS NULL",
            """
            CREATE TABLE claim_conflicts (
                id bigserial NOT NULL PRIMARY KEY,
                eui64 text COLLATE "C" NOT NULL,
                holder text COLLATE "C" NOT NULL REFERENCES accounts (id),
                claimant text COLLATE "C" NOT NULL REFERENCES accounts (id),
                upload text COLLATE "C",
                reported_at bigint NOT NULL,
                resolved_at bigint,
                resolution text CHECK (resolution IN ('claimant', 'holder', 'released')),
                resolved_by text,
                CHECK (holder <> claimant),
                CHECK ((resolved_at IS NULL) = (resolution IS NULL))
            )
            """,
            "CREATE UNIQUE INDEX one_open_conflict ON claim_conflicts (eui64, claimant) WHERE resolved_at IS NULL",
            "CREATE INDEX conflicts_by_holder ON claim_conflicts (holder, id)",
            "CREATE INDEX conflicts_by_claimant ON claim_conflicts (claimant, id)",
            """
            CREATE TABLE pending_revocations (
                issuer text COLLATE "C" NOT NULL,
                serial text COLLATE "C" NOT NULL,
                eui64 text COLLATE "C" NOT NULL,
                account text COLLATE "C" NOT NULL,
                reason bigint NOT NULL CHECK (reason BETWEEN 0 AND 10),
                recorded_at bigint NOT NULL,
                PRIMARY KEY (issuer, serial)
            )
            """,
            """
            CREATE TABLE meter_history (
                id bigserial NOT NULL PRIMARY KEY,
                eui64 text COLLATE "C" NOT NULL,
                kind text NOT NULL CHECK (kind IN ('claimed', 'conflict', 'resolved-for-claimant', 'resolved-for-holder', 'conflict-closed', 'released')),
                account text COLLATE "C" NOT NULL,
                counterparty text COLLATE "C",
                upload text COLLATE "C",
                actor text NOT NULL,
                at bigint NOT NULL
            )
            """,
            "CREATE INDEX meter_history_by_meter ON meter_history (eui64, id)",
        ]),
        // Issue 15: PSK meters; the same schema as SQLite's 0011 (see Migration0011PresharedKeys).
        PostgresMigration(identifier: "0003-preshared-keys", statements: [
            "ALTER TABLE batches ADD COLUMN psk_master_key_label text",
            """
            CREATE TABLE sealed_psks (
                eui64 text COLLATE "C" NOT NULL PRIMARY KEY CHECK (eui64 ~ '^[0-9a-f]{16}$'),
                batch text COLLATE "C" NOT NULL,
                sealing_key_label text NOT NULL,
                sealed bytea NOT NULL CHECK (octet_length(sealed) >= 28),
                imported_at bigint NOT NULL
            )
            """,
        ]),
    ]
}

extension PostgresStore {
    /// Any constant: the transaction-scoped advisory lock that keeps two nodes from migrating at once. It orders DDL
    /// only; no write of the domain relies on it.
    static let migrationLock: Int64 = 0x4D54_5354_4F52_4531

    public func migrate() async throws {
        do {
            try await transaction { [self] connection in
                try await execute(connection, "SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
                try await execute(connection, 
                    "CREATE TABLE IF NOT EXISTS metertrust_migrations (identifier text NOT NULL PRIMARY KEY, applied_at bigint NOT NULL)",
                    logger: logger
                )
                let applied = Set(try await rows("SELECT identifier FROM metertrust_migrations", on: connection).map { try $0.string("identifier") })
                for migration in PostgresMigrations.all where !applied.contains(migration.identifier) {
                    for statement in migration.statements {
                        try await execute(connection, PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await execute(connection, 
                        "INSERT INTO metertrust_migrations (identifier, applied_at) VALUES (\(migration.identifier), \(Self.seconds(Date())))",
                        logger: logger
                    )
                }
                if let unknown = applied.subtracting(PostgresMigrations.all.map(\.identifier)).sorted().first {
                    throw StoreError(
                        .migration,
                        "the database was migrated by a newer MeterTrust (migration \(unknown) is unknown here): upgrade this node"
                    )
                }
            }
        } catch let error as StoreError {
            throw error.code == .migration ? error : StoreError(.migration, "cannot migrate the store \(location): \(error.message)")
        }
    }

    /// The identifiers of every migration this version knows, in order.
    public static var migrationIdentifiers: [String] { PostgresMigrations.all.map(\.identifier) }

    public func appliedMigrations() async throws -> [String] {
        try await read { [self] connection in
            let exists = try await rows("SELECT to_regclass('metertrust_migrations') IS NOT NULL AS present", on: connection)
            guard try exists.first?.bool("present") == true else { return [] }
            return try await rows("SELECT identifier FROM metertrust_migrations ORDER BY identifier", on: connection).map { try $0.string("identifier") }
        }
    }
}
