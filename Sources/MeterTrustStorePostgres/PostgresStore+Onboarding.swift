import Foundation
import MeterTrustStore
import PostgresNIO

// Accounts, operators, enrollment uploads, claims, conflicts and change of supplier (the OnboardingStore view).
// The same rules as SQLiteStore+Onboarding; where SQLite relies on its single writer, this relies on the unique
// indexes (a second transaction inserting a claimed meter waits for the first, then does nothing) and on row locks.
extension PostgresStore {
    // MARK: Accounts and operators

    public func createAccount(_ account: AccountRecord) async throws {
        try await transaction { [self] connection in
            try await insertAccount(account, on: connection)
        }
    }

    func insertAccount(_ account: AccountRecord, on connection: PostgresConnection) async throws {
        try await execute(connection,
            """
            INSERT INTO accounts (id, display_name, operational_ca, created_at, created_by, request_id)
            VALUES (\(account.id), \(account.displayName), \(account.operationalCA), \(Self.seconds(account.createdAt)), \(account.createdBy), \(account.requestID))
            """,
            logger: logger
        )
        let manufacturers = Array(Set(account.manufacturers)).sorted()
        if !manufacturers.isEmpty {
            try await execute(connection,
                "INSERT INTO account_manufacturers (account, manufacturer) SELECT \(account.id), m FROM unnest(\(manufacturers)::text[]) AS m",
                logger: logger
            )
        }
    }

    public func account(id: String) async throws -> AccountRecord? {
        try await read { [self] connection in
            guard let row = try await rows("SELECT * FROM accounts WHERE id = \(id)", on: connection).first else { return nil }
            return try await account(from: row, on: connection)
        }
    }

    public func accounts(after id: String?, limit: Int) async throws -> [AccountRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            var accounts: [AccountRecord] = []
            for row in try await rows("SELECT * FROM accounts WHERE id > \(id ?? "") ORDER BY id LIMIT \(Int64(limit))", on: connection) {
                accounts.append(try await account(from: row, on: connection))
            }
            return accounts
        }
    }

    func account(from row: PostgresRandomAccessRow, on connection: PostgresConnection) async throws -> AccountRecord {
        let id = try row.string("id")
        let manufacturers = try await rows(
            "SELECT manufacturer FROM account_manufacturers WHERE account = \(id) ORDER BY manufacturer", on: connection
        ).map { try $0.string("manufacturer") }
        return AccountRecord(
            id: id, displayName: try row.string("display_name"), operationalCA: try row.string("operational_ca"), manufacturers: manufacturers,
            createdAt: Self.date(try row.int64("created_at")), createdBy: try row.string("created_by"), requestID: try row.optionalString("request_id")
        )
    }

    public func addOperator(_ record: OperatorRecord) async throws {
        try await transaction { [self] connection in try await insertOperator(record, on: connection) }
    }

    func insertOperator(_ r: OperatorRecord, on connection: PostgresConnection) async throws {
        try await execute(connection,
            """
            INSERT INTO account_operators
            (fingerprint_sha256, account, name, certificate_issuer, certificate_serial, added_at, added_by, removed_at, removed_by)
            VALUES (\(r.fingerprintSHA256), \(r.account), \(r.name), \(r.certificateIssuer), \(r.certificateSerial), \(Self.seconds(r.addedAt)),
                    \(r.addedBy), \(r.removedAt.map(Self.seconds)), \(r.removedBy))
            """,
            logger: logger
        )
    }

    public func operators(account: String, limit: Int) async throws -> [OperatorRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows(
                "SELECT * FROM account_operators WHERE account = \(account) ORDER BY sequence LIMIT \(Int64(limit))", on: connection
            ).map(Self.operatorRecord(from:))
        }
    }

    public func operatorRecord(fingerprintSHA256: String) async throws -> OperatorRecord? {
        try await read { [self] connection in
            try await rows("SELECT * FROM account_operators WHERE fingerprint_sha256 = \(fingerprintSHA256)", on: connection).first.map(Self.operatorRecord(from:))
        }
    }

    public func allOperators(afterFingerprint fingerprint: String?, limit: Int) async throws -> [OperatorRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows(
                "SELECT * FROM account_operators WHERE fingerprint_sha256 > \(fingerprint ?? "") ORDER BY fingerprint_sha256 LIMIT \(Int64(limit))",
                on: connection
            ).map(Self.operatorRecord(from:))
        }
    }

    public func removeOperator(account: String, fingerprintSHA256: String, at date: Date, by actor: String) async throws {
        try await transaction { [self] connection in
            let updated = try await rows(
                """
                UPDATE account_operators SET removed_at = \(Self.seconds(date)), removed_by = \(actor)
                WHERE fingerprint_sha256 = \(fingerprintSHA256) AND account = \(account) AND removed_at IS NULL RETURNING account
                """,
                on: connection
            )
            guard updated.count == 1 else {
                throw StoreError(.notFound, "account \(account) has no live operator with certificate fingerprint \(fingerprintSHA256)")
            }
        }
    }

    static func operatorRecord(from row: PostgresRandomAccessRow) throws -> OperatorRecord {
        OperatorRecord(
            account: try row.string("account"), name: try row.string("name"), certificateIssuer: try row.string("certificate_issuer"),
            certificateSerial: try row.string("certificate_serial"), fingerprintSHA256: try row.string("fingerprint_sha256"),
            addedAt: date(try row.int64("added_at")), addedBy: try row.string("added_by"), removedAt: try row.optionalInt64("removed_at").map(date),
            removedBy: try row.optionalString("removed_by")
        )
    }

    // MARK: Uploads

    public func beginUpload(_ upload: EnrollmentUploadRecord) async throws {
        try await transaction { [self] connection in try await insertUpload(upload, on: connection) }
    }

    func insertUpload(_ u: EnrollmentUploadRecord, on connection: PostgresConnection) async throws {
        try await execute(connection,
            """
            INSERT INTO enrollment_uploads
            (id, account, manufacturer, format, batch, state, entry_count, claimed, already_held, conflicts, created_at, finished_at, actor)
            VALUES (\(u.id), \(u.account), \(u.manufacturer), \(u.format.rawValue), \(u.batch), \(u.state.rawValue), \(u.entryCount), \(u.claimed),
                    \(u.alreadyHeld), \(u.conflicts), \(Self.seconds(u.createdAt)), \(u.finishedAt.map(Self.seconds)), \(u.actor))
            """,
            logger: logger
        )
    }

    public func upload(id: String) async throws -> EnrollmentUploadRecord? {
        try await read { [self] connection in
            try await rows("SELECT * FROM enrollment_uploads WHERE id = \(id)", on: connection).first.map(Self.upload(from:))
        }
    }

    public func uploads(after id: String?, limit: Int) async throws -> [EnrollmentUploadRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows("SELECT * FROM enrollment_uploads WHERE id > \(id ?? "") ORDER BY id LIMIT \(Int64(limit))", on: connection).map(Self.upload(from:))
        }
    }

    static func upload(from row: PostgresRandomAccessRow) throws -> EnrollmentUploadRecord {
        let id = try row.string("id")
        guard let format = EnrollmentUploadRecord.Format(rawValue: try row.string("format")),
            let state = EnrollmentUploadRecord.State(rawValue: try row.string("state"))
        else { throw StoreError(.corrupt, "enrollment upload \(id) has an unknown format or state") }
        return EnrollmentUploadRecord(
            id: id, account: try row.string("account"), manufacturer: try row.string("manufacturer"), format: format,
            batch: try row.optionalString("batch"), state: state, entryCount: try row.int64("entry_count"), claimed: try row.int64("claimed"),
            alreadyHeld: try row.int64("already_held"), conflicts: try row.int64("conflicts"), createdAt: date(try row.int64("created_at")),
            finishedAt: try row.optionalInt64("finished_at").map(date), actor: try row.string("actor")
        )
    }

    /// The upload's row, locked, if it is staging; ``StoreError/Code/notFound`` otherwise.
    func stagingUpload(_ id: String, on connection: PostgresConnection, lock: String = "FOR UPDATE") async throws -> EnrollmentUploadRecord {
        guard let row = try await rows("SELECT * FROM enrollment_uploads WHERE id = \(id) \(unescaped: lock)", on: connection).first else {
            throw StoreError(.notFound, "there is no enrollment upload \(id)")
        }
        let upload = try Self.upload(from: row)
        guard upload.state == .staging else { throw StoreError(.notFound, "enrollment upload \(id) is \(upload.state.rawValue), not staging") }
        return upload
    }

    public func stage(upload: String, entries: [EnrollmentEntry]) async throws {
        guard !entries.isEmpty else { return }
        let meters = entries.map(\.eui64)
        let positions = entries.map(\.position)
        let fingerprints = entries.map { $0.certificateSHA256 ?? "" }
        try await transaction { [self] connection in
            // A share lock: chunks of one upload may be staged at once, never after its commit or discard.
            _ = try await stagingUpload(upload, on: connection, lock: "FOR SHARE")
            try await execute(connection,
                """
                WITH input AS (
                    SELECT * FROM unnest(\(meters)::text[], \(positions)::bigint[], \(fingerprints)::text[]) AS i (eui64, position, sha)
                ), staged AS (
                    INSERT INTO enrollment_staging (upload, eui64, position, certificate_sha256)
                    SELECT \(upload), eui64, position, nullif(sha, '') FROM input
                    ON CONFLICT (upload, eui64) DO NOTHING RETURNING position
                )
                INSERT INTO enrollment_staging_repeats (upload, position, eui64)
                SELECT \(upload), i.position, i.eui64 FROM input i WHERE NOT EXISTS (SELECT 1 FROM staged s WHERE s.position = i.position)
                """,
                logger: logger
            )
            try await execute(connection,
                "UPDATE enrollment_uploads SET entry_count = entry_count + \(Int64(entries.count)) WHERE id = \(upload)", logger: logger
            )
        }
    }

    public func check(upload: String, limit: Int) async throws -> [EnrollmentProblem] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            guard let manufacturer = try await rows("SELECT manufacturer FROM enrollment_uploads WHERE id = \(upload)", on: connection).first else {
                throw StoreError(.notFound, "there is no enrollment upload \(upload)")
            }
            let ca = try manufacturer.string("manufacturer")
            // device_identities finds each meter's identity by its key; the certificate is read only for a fingerprint.
            var problems = try await rows(
                """
                SELECT s.eui64, s.position, d.issuer, c.fingerprint_sha256
                FROM enrollment_staging s
                LEFT JOIN device_identities d ON d.eui64 = s.eui64
                LEFT JOIN certificates c ON s.certificate_sha256 IS NOT NULL AND c.issuer = d.issuer AND c.serial = d.serial AND c.shard = d.shard
                WHERE s.upload = \(upload)
                  AND (d.issuer IS NULL OR d.issuer <> \(ca)
                       OR (s.certificate_sha256 IS NOT NULL AND c.fingerprint_sha256 IS DISTINCT FROM s.certificate_sha256))
                ORDER BY s.position LIMIT \(Int64(limit))
                """,
                on: connection
            ).map { row -> EnrollmentProblem in
                let eui64 = try row.string("eui64")
                let position = try row.int64("position")
                guard let issuer = try row.optionalString("issuer") else { return EnrollmentProblem(kind: .unknownMeter, eui64: eui64, position: position) }
                if issuer != ca { return EnrollmentProblem(kind: .otherManufacturer, eui64: eui64, position: position, detail: issuer) }
                return EnrollmentProblem(kind: .fingerprintMismatch, eui64: eui64, position: position, detail: try row.optionalString("fingerprint_sha256"))
            }
            problems += try await rows(
                "SELECT eui64, position FROM enrollment_staging_repeats WHERE upload = \(upload) ORDER BY position LIMIT \(Int64(limit))", on: connection
            ).map { EnrollmentProblem(kind: .listedTwice, eui64: try $0.string("eui64"), position: try $0.int64("position")) }
            return Array(problems.sorted { $0.position < $1.position }.prefix(limit))
        }
    }

    public func commit(upload id: String, at date: Date) async throws -> EnrollmentCommitCounts {
        try await transaction { [self] connection in
            let upload = try await stagingUpload(id, on: connection)
            let at = Self.seconds(date)
            let staged = try await rows("SELECT count(*) AS n FROM enrollment_staging WHERE upload = \(id)", on: connection).first?.int64("n") ?? 0
            // First to claim wins by one_open_claim_per_meter: a meter another transaction is claiming makes this
            // insert wait for it, then skip the meter. In EUI-64 order, so two overlapping uploads rarely deadlock
            // (and a deadlock runs the transaction again).
            let claimed = try await rows(
                """
                WITH claimed AS (
                    INSERT INTO claims (eui64, account, upload, claimed_at, claimed_by)
                    SELECT eui64, \(upload.account), \(id), \(at), \(upload.actor) FROM enrollment_staging WHERE upload = \(id) ORDER BY eui64
                    ON CONFLICT (eui64) WHERE released_at IS NULL DO NOTHING
                    RETURNING id, eui64
                ), events AS (
                    INSERT INTO meter_history (eui64, kind, account, upload, actor, at)
                    SELECT eui64, 'claimed', \(upload.account), \(id), \(upload.actor), \(at) FROM claimed ORDER BY id
                    RETURNING 1
                )
                SELECT count(*) AS n FROM events
                """,
                on: connection
            ).first?.int64("n") ?? 0
            // This statement sees every claim committed before it, those the insert above waited for included.
            let heldByOthers = try await rows(
                """
                SELECT count(*) AS n FROM enrollment_staging s JOIN claims c ON c.eui64 = s.eui64 AND c.released_at IS NULL
                WHERE s.upload = \(id) AND c.account <> \(upload.account)
                """,
                on: connection
            ).first?.int64("n") ?? 0
            if heldByOthers > 0 {
                try await execute(connection,
                    """
                    WITH reported AS (
                        INSERT INTO claim_conflicts (eui64, holder, claimant, upload, reported_at)
                        SELECT s.eui64, c.account, \(upload.account), \(id), \(at) FROM enrollment_staging s
                        JOIN claims c ON c.eui64 = s.eui64 AND c.released_at IS NULL
                        WHERE s.upload = \(id) AND c.account <> \(upload.account) ORDER BY s.eui64
                        ON CONFLICT (eui64, claimant) WHERE resolved_at IS NULL DO NOTHING
                        RETURNING id, eui64, holder
                    )
                    INSERT INTO meter_history (eui64, kind, account, counterparty, upload, actor, at)
                    SELECT eui64, 'conflict', \(upload.account), holder, \(id), \(upload.actor), \(at) FROM reported ORDER BY id
                    """,
                    logger: logger
                )
            }
            let counts = EnrollmentCommitCounts(claimed: claimed, alreadyHeld: staged - claimed - heldByOthers, conflicts: heldByOthers)
            try await clearStaging(id, on: connection)
            try await execute(connection,
                """
                UPDATE enrollment_uploads SET state = 'committed', claimed = \(counts.claimed), already_held = \(counts.alreadyHeld),
                    conflicts = \(counts.conflicts), finished_at = \(at) WHERE id = \(id)
                """,
                logger: logger
            )
            return counts
        }
    }

    public func discard(upload id: String, at date: Date) async throws {
        try await transaction { [self] connection in
            _ = try await stagingUpload(id, on: connection)
            try await clearStaging(id, on: connection)
            try await execute(connection,
                "UPDATE enrollment_uploads SET state = 'refused', finished_at = \(Self.seconds(date)) WHERE id = \(id)", logger: logger
            )
        }
    }

    func clearStaging(_ id: String, on connection: PostgresConnection) async throws {
        try await execute(connection, "DELETE FROM enrollment_staging WHERE upload = \(id)", logger: logger)
        try await execute(connection, "DELETE FROM enrollment_staging_repeats WHERE upload = \(id)", logger: logger)
    }

    // MARK: Claims and conflicts

    public func claim(eui64: String) async throws -> ClaimRecord? {
        try await read { [self] connection in
            try await rows("SELECT * FROM claims WHERE eui64 = \(eui64) AND released_at IS NULL", on: connection).first.map(Self.claim(from:))
        }
    }

    public func claims(account: String, after eui64: String?, limit: Int) async throws -> [ClaimRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows(
                """
                SELECT * FROM claims WHERE account = \(account) AND released_at IS NULL AND eui64 > \(eui64 ?? "")
                ORDER BY eui64 LIMIT \(Int64(limit))
                """,
                on: connection
            ).map(Self.claim(from:))
        }
    }

    public func claimCount(account: String) async throws -> Int {
        try await read { [self] connection in
            try await rows("SELECT count(*) AS n FROM claims WHERE account = \(account) AND released_at IS NULL", on: connection).first?.int("n") ?? 0
        }
    }

    public func allClaims(after id: Int64, limit: Int) async throws -> [ClaimRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows("SELECT * FROM claims WHERE id > \(id) ORDER BY id LIMIT \(Int64(limit))", on: connection).map(Self.claim(from:))
        }
    }

    static func claim(from row: PostgresRandomAccessRow) throws -> ClaimRecord {
        ClaimRecord(
            id: try row.int64("id"), eui64: try row.string("eui64"), account: try row.string("account"), upload: try row.optionalString("upload"),
            claimedAt: date(try row.int64("claimed_at")), claimedBy: try row.string("claimed_by"),
            releasedAt: try row.optionalInt64("released_at").map(date), releasedBy: try row.optionalString("released_by")
        )
    }

    public func conflicts(account: String, openOnly: Bool, after id: Int64?, limit: Int) async throws -> [ConflictRecord] {
        guard limit > 0 else { return [] }
        let open = openOnly ? "AND resolved_at IS NULL" : ""
        return try await read { [self] connection in
            try await rows(
                """
                SELECT * FROM (
                    SELECT * FROM claim_conflicts WHERE holder = \(account) AND id > \(id ?? 0) \(unescaped: open)
                    UNION
                    SELECT * FROM claim_conflicts WHERE claimant = \(account) AND id > \(id ?? 0) \(unescaped: open)
                ) AS both_sides ORDER BY id LIMIT \(Int64(limit))
                """,
                on: connection
            ).map(Self.conflict(from:))
        }
    }

    public func openConflicts(eui64: String) async throws -> [ConflictRecord] {
        try await read { [self] connection in
            try await rows(
                "SELECT * FROM claim_conflicts WHERE eui64 = \(eui64) AND resolved_at IS NULL ORDER BY id LIMIT 1000", on: connection
            ).map(Self.conflict(from:))
        }
    }

    public func allConflicts(after id: Int64, limit: Int) async throws -> [ConflictRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows("SELECT * FROM claim_conflicts WHERE id > \(id) ORDER BY id LIMIT \(Int64(limit))", on: connection).map(Self.conflict(from:))
        }
    }

    static func conflict(from row: PostgresRandomAccessRow) throws -> ConflictRecord {
        ConflictRecord(
            id: try row.int64("id"), eui64: try row.string("eui64"), holder: try row.string("holder"), claimant: try row.string("claimant"),
            upload: try row.optionalString("upload"), reportedAt: date(try row.int64("reported_at")),
            resolvedAt: try row.optionalInt64("resolved_at").map(date),
            resolution: try row.optionalString("resolution").flatMap(ConflictResolution.init(rawValue:)), resolvedBy: try row.optionalString("resolved_by")
        )
    }

    public func resolveConflict(
        eui64: String, claimant: String, inFavourOf resolution: ConflictResolution, at date: Date, actor: String,
        revocationCandidates: [RevocationCandidate]
    ) async throws -> ConflictRecord {
        try await transaction { [self] connection in
            guard
                let row = try await rows(
                    "SELECT * FROM claim_conflicts WHERE eui64 = \(eui64) AND claimant = \(claimant) AND resolved_at IS NULL FOR UPDATE", on: connection
                ).first
            else { throw StoreError(.notFound, "there is no open conflict of account \(claimant) over meter \(eui64)") }
            var conflict = try Self.conflict(from: row)
            let at = Self.seconds(date)
            switch resolution {
            case .claimant:
                let released = try await rows(
                    """
                    UPDATE claims SET released_at = \(at), released_by = \(actor)
                    WHERE eui64 = \(eui64) AND account = \(conflict.holder) AND released_at IS NULL RETURNING id
                    """,
                    on: connection
                )
                guard released.count == 1 else { throw StoreError(.notFound, "account \(conflict.holder) no longer holds meter \(eui64)") }
                try await execute(connection,
                    """
                    INSERT INTO claims (eui64, account, upload, claimed_at, claimed_by) VALUES (\(eui64), \(claimant), \(conflict.upload), \(at), \(actor))
                    """,
                    logger: logger
                )
                try await execute(connection,
                    """
                    UPDATE claim_conflicts SET holder = \(claimant)
                    WHERE eui64 = \(eui64) AND resolved_at IS NULL AND id <> \(conflict.id) AND claimant <> \(claimant)
                    """,
                    logger: logger
                )
                try await recordRevocations(revocationCandidates, eui64: eui64, account: conflict.holder, at: at, on: connection)
                try await history(eui64, .resolvedForClaimant, account: claimant, counterparty: conflict.holder, upload: conflict.upload, actor: actor, at: at, on: connection)
                try await history(eui64, .released, account: conflict.holder, counterparty: claimant, upload: nil, actor: actor, at: at, on: connection)
                try await history(eui64, .claimed, account: claimant, counterparty: nil, upload: conflict.upload, actor: actor, at: at, on: connection)
            case .holder:
                try await history(eui64, .resolvedForHolder, account: conflict.holder, counterparty: claimant, upload: conflict.upload, actor: actor, at: at, on: connection)
            case .released:
                throw StoreError(.checkViolation, "a conflict is closed as released only by the holder's release of the meter")
            }
            try await execute(connection,
                "UPDATE claim_conflicts SET resolved_at = \(at), resolution = \(resolution.rawValue), resolved_by = \(actor) WHERE id = \(conflict.id)",
                logger: logger
            )
            conflict.resolvedAt = Self.date(at)
            conflict.resolution = resolution
            conflict.resolvedBy = actor
            return conflict
        }
    }

    public func release(eui64: String, account: String, at date: Date, actor: String, revocationCandidates: [RevocationCandidate]) async throws {
        try await transaction { [self] connection in
            let at = Self.seconds(date)
            let released = try await rows(
                """
                UPDATE claims SET released_at = \(at), released_by = \(actor)
                WHERE eui64 = \(eui64) AND account = \(account) AND released_at IS NULL RETURNING id
                """,
                on: connection
            )
            guard released.count == 1 else { throw StoreError(.notFound, "account \(account) does not hold meter \(eui64)") }
            try await history(eui64, .released, account: account, counterparty: nil, upload: nil, actor: actor, at: at, on: connection)
            let closed = try await rows(
                """
                UPDATE claim_conflicts SET resolved_at = \(at), resolution = 'released', resolved_by = \(actor)
                WHERE eui64 = \(eui64) AND holder = \(account) AND resolved_at IS NULL RETURNING id, claimant, upload
                """,
                on: connection
            )
            for row in try closed.sorted(by: { try $0.int64("id") < $1.int64("id") }) {
                try await history(
                    eui64, .conflictClosed, account: account, counterparty: try row.string("claimant"), upload: try row.optionalString("upload"),
                    actor: actor, at: at, on: connection
                )
            }
            try await recordRevocations(revocationCandidates, eui64: eui64, account: account, at: at, on: connection)
        }
    }

    func recordRevocations(_ candidates: [RevocationCandidate], eui64: String, account: String, at: Int64, on connection: PostgresConnection) async throws {
        guard !candidates.isEmpty else { return }
        try await execute(connection,
            """
            INSERT INTO pending_revocations (issuer, serial, eui64, account, reason, recorded_at)
            SELECT issuer, serial, \(eui64), \(account), 4, \(at) FROM unnest(\(candidates.map(\.issuer))::text[], \(candidates.map(\.serial))::text[]) AS c (issuer, serial)
            ON CONFLICT (issuer, serial) DO NOTHING
            """,
            logger: logger
        )
    }

    func history(
        _ eui64: String, _ kind: MeterHistoryEvent.Kind, account: String, counterparty: String?, upload: String?, actor: String, at: Int64,
        on connection: PostgresConnection
    ) async throws {
        try await execute(connection,
            """
            INSERT INTO meter_history (eui64, kind, account, counterparty, upload, actor, at)
            VALUES (\(eui64), \(kind.rawValue), \(account), \(counterparty), \(upload), \(actor), \(at))
            """,
            logger: logger
        )
    }

    public func pendingRevocations(after position: CertificateListPosition?, limit: Int) async throws -> [PendingRevocationRecord] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows(
                """
                SELECT * FROM pending_revocations WHERE (issuer, serial) > (\(position?.issuer ?? ""), \(position?.serial ?? ""))
                ORDER BY issuer, serial LIMIT \(Int64(limit))
                """,
                on: connection
            ).map {
                PendingRevocationRecord(
                    issuer: try $0.string("issuer"), serial: try $0.string("serial"), eui64: try $0.string("eui64"), account: try $0.string("account"),
                    reason: try $0.int("reason"), recordedAt: Self.date(try $0.int64("recorded_at"))
                )
            }
        }
    }

    public func history(eui64: String, after id: Int64?, limit: Int) async throws -> [MeterHistoryEvent] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows(
                "SELECT * FROM meter_history WHERE eui64 = \(eui64) AND id > \(id ?? 0) ORDER BY id LIMIT \(Int64(limit))", on: connection
            ).map(Self.historyEvent(from:))
        }
    }

    public func allHistory(after id: Int64, limit: Int) async throws -> [MeterHistoryEvent] {
        guard limit > 0 else { return [] }
        return try await read { [self] connection in
            try await rows("SELECT * FROM meter_history WHERE id > \(id) ORDER BY id LIMIT \(Int64(limit))", on: connection).map(Self.historyEvent(from:))
        }
    }

    static func historyEvent(from row: PostgresRandomAccessRow) throws -> MeterHistoryEvent {
        let id = try row.int64("id")
        guard let kind = MeterHistoryEvent.Kind(rawValue: try row.string("kind")) else {
            throw StoreError(.corrupt, "meter history event \(id) has an unknown kind")
        }
        return MeterHistoryEvent(
            id: id, eui64: try row.string("eui64"), kind: kind, account: try row.string("account"), counterparty: try row.optionalString("counterparty"),
            upload: try row.optionalString("upload"), actor: try row.string("actor"), at: date(try row.int64("at"))
        )
    }

    // MARK: Copy

    public func onboardingCounts() async throws -> OnboardingCounts {
        try await read { [self] connection in
            let row = try await rows(
                """
                SELECT (SELECT count(*) FROM accounts) AS accounts, (SELECT count(*) FROM account_operators) AS operators,
                       (SELECT count(*) FROM enrollment_uploads) AS uploads, (SELECT count(*) FROM claims) AS claims,
                       (SELECT count(*) FROM claim_conflicts) AS conflicts, (SELECT count(*) FROM pending_revocations) AS pending,
                       (SELECT count(*) FROM meter_history) AS history
                """,
                on: connection
            ).first
            var counts = OnboardingCounts()
            guard let row else { return counts }
            counts.accounts = try row.int("accounts")
            counts.operators = try row.int("operators")
            counts.uploads = try row.int("uploads")
            counts.claims = try row.int("claims")
            counts.conflicts = try row.int("conflicts")
            counts.pendingRevocations = try row.int("pending")
            counts.historyEvents = try row.int("history")
            return counts
        }
    }

    public func insertOnboardingRows(_ rows: OnboardingRows) async throws {
        try await transaction { [self] connection in
            for account in rows.accounts { try await insertAccount(account, on: connection) }
            for record in rows.operators { try await insertOperator(record, on: connection) }
            for upload in rows.uploads { try await insertUpload(upload, on: connection) }
            if !rows.claims.isEmpty {
                let c = rows.claims
                try await execute(connection,
                    """
                    INSERT INTO claims (eui64, account, upload, claimed_at, claimed_by, released_at, released_by)
                    SELECT eui64, account, nullif(upload, ''), claimed_at, claimed_by, nullif(released_at, -1), nullif(released_by, '')
                    FROM unnest(\(c.map(\.eui64))::text[], \(c.map(\.account))::text[], \(c.map { $0.upload ?? "" })::text[],
                                \(c.map { Self.seconds($0.claimedAt) })::bigint[], \(c.map(\.claimedBy))::text[],
                                \(c.map { $0.releasedAt.map(Self.seconds) ?? -1 })::bigint[], \(c.map { $0.releasedBy ?? "" })::text[])
                         WITH ORDINALITY AS input (eui64, account, upload, claimed_at, claimed_by, released_at, released_by, n)
                    ORDER BY n
                    """,
                    logger: logger
                )
            }
            for c in rows.conflicts {
                try await execute(connection,
                    """
                    INSERT INTO claim_conflicts (eui64, holder, claimant, upload, reported_at, resolved_at, resolution, resolved_by)
                    VALUES (\(c.eui64), \(c.holder), \(c.claimant), \(c.upload), \(Self.seconds(c.reportedAt)), \(c.resolvedAt.map(Self.seconds)),
                            \(c.resolution?.rawValue), \(c.resolvedBy))
                    """,
                    logger: logger
                )
            }
            for p in rows.pendingRevocations {
                try await execute(connection,
                    """
                    INSERT INTO pending_revocations (issuer, serial, eui64, account, reason, recorded_at)
                    VALUES (\(p.issuer), \(p.serial), \(p.eui64), \(p.account), \(Int64(p.reason)), \(Self.seconds(p.recordedAt)))
                    """,
                    logger: logger
                )
            }
            if !rows.history.isEmpty {
                let h = rows.history
                try await execute(connection,
                    """
                    INSERT INTO meter_history (eui64, kind, account, counterparty, upload, actor, at)
                    SELECT eui64, kind, account, nullif(counterparty, ''), nullif(upload, ''), actor, at
                    FROM unnest(\(h.map(\.eui64))::text[], \(h.map(\.kind.rawValue))::text[], \(h.map(\.account))::text[],
                                \(h.map { $0.counterparty ?? "" })::text[], \(h.map { $0.upload ?? "" })::text[], \(h.map(\.actor))::text[],
                                \(h.map { Self.seconds($0.at) })::bigint[])
                         WITH ORDINALITY AS input (eui64, kind, account, counterparty, upload, actor, at, n)
                    ORDER BY n
                    """,
                    logger: logger
                )
            }
        }
    }
}
