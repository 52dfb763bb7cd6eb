import Foundation
import GRDB
import MeterTrustStore

// Accounts, operators, enrollment uploads, claims, conflicts and change of supplier (the OnboardingStore view).
extension SQLiteStore {
    // MARK: Accounts and operators

    public func createAccount(_ account: AccountRecord) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO accounts (id, display_name, operational_ca, created_at, created_by, request_id) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [account.id, account.displayName, account.operationalCA, Self.seconds(account.createdAt), account.createdBy, account.requestID]
            )
            for manufacturer in Set(account.manufacturers) {
                try db.execute(sql: "INSERT INTO account_manufacturers (account, manufacturer) VALUES (?, ?)", arguments: [account.id, manufacturer])
            }
        }
    }

    public func account(id: String) async throws -> AccountRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM accounts WHERE id = ?", arguments: [id]).map { try Self.account(from: $0, in: db) }
        }
    }

    public func accounts(after id: String?, limit: Int) async throws -> [AccountRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM accounts WHERE id > ? ORDER BY id LIMIT ?", arguments: [id ?? "", limit])
                .map { try Self.account(from: $0, in: db) }
        }
    }

    static func account(from row: Row, in db: Database) throws -> AccountRecord {
        let id: String = row["id"]
        let manufacturers = try String.fetchAll(
            db, sql: "SELECT manufacturer FROM account_manufacturers WHERE account = ? ORDER BY manufacturer", arguments: [id]
        )
        return AccountRecord(
            id: id, displayName: row["display_name"], operationalCA: row["operational_ca"], manufacturers: manufacturers,
            createdAt: date(row["created_at"]), createdBy: row["created_by"], requestID: row["request_id"]
        )
    }

    public func addOperator(_ record: OperatorRecord) async throws {
        try await write { db in try Self.insert(record, into: db) }
    }

    static func insert(_ record: OperatorRecord, into db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO account_operators
                (fingerprint_sha256, account, name, certificate_issuer, certificate_serial, added_at, added_by, removed_at, removed_by)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                record.fingerprintSHA256, record.account, record.name, record.certificateIssuer, record.certificateSerial,
                seconds(record.addedAt), record.addedBy, record.removedAt.map(seconds), record.removedBy,
            ]
        )
    }

    public func operators(account: String, limit: Int) async throws -> [OperatorRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM account_operators WHERE account = ? ORDER BY added_at, rowid LIMIT ?", arguments: [account, limit]
            ).map(Self.operatorRecord(from:))
        }
    }

    public func operatorRecord(fingerprintSHA256: String) async throws -> OperatorRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM account_operators WHERE fingerprint_sha256 = ?", arguments: [fingerprintSHA256])
                .map(Self.operatorRecord(from:))
        }
    }

    public func allOperators(afterFingerprint fingerprint: String?, limit: Int) async throws -> [OperatorRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM account_operators WHERE fingerprint_sha256 > ? ORDER BY fingerprint_sha256 LIMIT ?",
                arguments: [fingerprint ?? "", limit]
            ).map(Self.operatorRecord(from:))
        }
    }

    public func removeOperator(account: String, fingerprintSHA256: String, at date: Date, by actor: String) async throws {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE account_operators SET removed_at = ?, removed_by = ?
                    WHERE fingerprint_sha256 = ? AND account = ? AND removed_at IS NULL
                    """,
                arguments: [Self.seconds(date), actor, fingerprintSHA256, account]
            )
            guard db.changesCount == 1 else {
                throw StoreError(.notFound, "account \(account) has no live operator with certificate fingerprint \(fingerprintSHA256)")
            }
        }
    }

    static func operatorRecord(from row: Row) -> OperatorRecord {
        OperatorRecord(
            account: row["account"], name: row["name"], certificateIssuer: row["certificate_issuer"], certificateSerial: row["certificate_serial"],
            fingerprintSHA256: row["fingerprint_sha256"], addedAt: date(row["added_at"]), addedBy: row["added_by"],
            removedAt: (row["removed_at"] as Int64?).map(date), removedBy: row["removed_by"]
        )
    }

    // MARK: Uploads

    public func beginUpload(_ upload: EnrollmentUploadRecord) async throws {
        try await write { db in try Self.insert(upload, into: db) }
    }

    static func insert(_ u: EnrollmentUploadRecord, into db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO enrollment_uploads
                (id, account, manufacturer, format, batch, state, entry_count, claimed, already_held, conflicts, created_at, finished_at, actor)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                u.id, u.account, u.manufacturer, u.format.rawValue, u.batch, u.state.rawValue, u.entryCount, u.claimed, u.alreadyHeld,
                u.conflicts, seconds(u.createdAt), u.finishedAt.map(seconds), u.actor,
            ]
        )
    }

    public func upload(id: String) async throws -> EnrollmentUploadRecord? {
        try await run { db in try Row.fetchOne(db, sql: "SELECT * FROM enrollment_uploads WHERE id = ?", arguments: [id]).map(Self.upload(from:)) }
    }

    public func uploads(after id: String?, limit: Int) async throws -> [EnrollmentUploadRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM enrollment_uploads WHERE id > ? ORDER BY id LIMIT ?", arguments: [id ?? "", limit])
                .map(Self.upload(from:))
        }
    }

    static func upload(from row: Row) throws -> EnrollmentUploadRecord {
        let id: String = row["id"]
        guard let format = EnrollmentUploadRecord.Format(rawValue: row["format"]), let state = EnrollmentUploadRecord.State(rawValue: row["state"]) else {
            throw StoreError(.corrupt, "enrollment upload \(id) has an unknown format or state")
        }
        return EnrollmentUploadRecord(
            id: id, account: row["account"], manufacturer: row["manufacturer"], format: format, batch: row["batch"], state: state,
            entryCount: row["entry_count"], claimed: row["claimed"], alreadyHeld: row["already_held"], conflicts: row["conflicts"],
            createdAt: date(row["created_at"]), finishedAt: (row["finished_at"] as Int64?).map(date), actor: row["actor"]
        )
    }

    /// The upload's row if it is staging; ``StoreError/Code/notFound`` otherwise.
    static func stagingUpload(_ id: String, in db: Database) throws -> EnrollmentUploadRecord {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM enrollment_uploads WHERE id = ?", arguments: [id]) else {
            throw StoreError(.notFound, "there is no enrollment upload \(id)")
        }
        let upload = try upload(from: row)
        guard upload.state == .staging else { throw StoreError(.notFound, "enrollment upload \(id) is \(upload.state.rawValue), not staging") }
        return upload
    }

    public func stage(upload: String, entries: [EnrollmentEntry]) async throws {
        guard !entries.isEmpty else { return }
        try await write { db in
            _ = try Self.stagingUpload(upload, in: db)
            let insert = try BulkStatement(db, sql: """
                INSERT INTO enrollment_staging (upload, eui64, position, certificate_sha256) VALUES (?, ?, ?, ?)
                ON CONFLICT (upload, eui64) DO NOTHING
                """)
            let repeated = try BulkStatement(db, sql: "INSERT INTO enrollment_staging_repeats (upload, position, eui64) VALUES (?, ?, ?)")
            for entry in entries {
                insert.bind(1, upload)
                insert.bind(2, entry.eui64)
                insert.bind(3, entry.position)
                insert.bind(4, entry.certificateSHA256)
                if try insert.run() == 0 {
                    repeated.bind(1, upload)
                    repeated.bind(2, entry.position)
                    repeated.bind(3, entry.eui64)
                    _ = try repeated.run()
                }
            }
            try db.execute(sql: "UPDATE enrollment_uploads SET entry_count = entry_count + ? WHERE id = ?", arguments: [entries.count, upload])
        }
    }

    public func check(upload: String, limit: Int) async throws -> [EnrollmentProblem] {
        guard limit > 0 else { return [] }
        return try await run { db in
            guard let manufacturer = try String.fetchOne(db, sql: "SELECT manufacturer FROM enrollment_uploads WHERE id = ?", arguments: [upload]) else {
                throw StoreError(.notFound, "there is no enrollment upload \(upload)")
            }
            // Each staged meter probes the one-device-identity-per-meter index once.
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT s.eui64, s.position, s.certificate_sha256, c.issuer, c.fingerprint_sha256
                    FROM enrollment_staging s
                    LEFT JOIN certificates c ON c.kind = 'device-identity' AND c.eui64 = s.eui64
                    WHERE s.upload = ?
                      AND (c.issuer IS NULL OR c.issuer <> ? OR (s.certificate_sha256 IS NOT NULL AND s.certificate_sha256 <> c.fingerprint_sha256))
                    ORDER BY s.position LIMIT ?
                    """,
                arguments: [upload, manufacturer, limit]
            )
            var problems = rows.map { row -> EnrollmentProblem in
                let eui64: String = row["eui64"]
                let position: Int64 = row["position"]
                guard let issuer = row["issuer"] as String? else { return EnrollmentProblem(kind: .unknownMeter, eui64: eui64, position: position) }
                if issuer != manufacturer { return EnrollmentProblem(kind: .otherManufacturer, eui64: eui64, position: position, detail: issuer) }
                return EnrollmentProblem(kind: .fingerprintMismatch, eui64: eui64, position: position, detail: row["fingerprint_sha256"])
            }
            problems += try Row.fetchAll(
                db, sql: "SELECT eui64, position FROM enrollment_staging_repeats WHERE upload = ? ORDER BY position LIMIT ?", arguments: [upload, limit]
            ).map { EnrollmentProblem(kind: .listedTwice, eui64: $0["eui64"], position: $0["position"]) }
            return Array(problems.sorted { $0.position < $1.position }.prefix(limit))
        }
    }

    public func commit(upload id: String, at date: Date) async throws -> EnrollmentCommitCounts {
        try await writeReturning { db in
            let upload = try Self.stagingUpload(id, in: db)
            let at = Self.seconds(date)
            let staged = try Int64.fetchOne(db, sql: "SELECT count(*) FROM enrollment_staging WHERE upload = ?", arguments: [id]) ?? 0
            // First to claim wins, by the unique index over open claims. SQLite has one writer: the rows this
            // transaction adds are those after the largest id before it.
            let claimsBefore = try Int64.fetchOne(db, sql: "SELECT coalesce(max(id), 0) FROM claims") ?? 0
            try db.execute(
                sql: """
                    INSERT INTO claims (eui64, account, upload, claimed_at, claimed_by)
                    SELECT eui64, ?, ?, ?, ? FROM enrollment_staging WHERE upload = ? ORDER BY eui64
                    ON CONFLICT (eui64) WHERE released_at IS NULL DO NOTHING
                    """,
                arguments: [upload.account, id, at, upload.actor, id]
            )
            let claimed = Int64(db.changesCount)
            try db.execute(
                sql: """
                    INSERT INTO meter_history (eui64, kind, account, upload, actor, at)
                    SELECT eui64, 'claimed', account, upload, claimed_by, claimed_at FROM claims WHERE id > ? ORDER BY id
                    """,
                arguments: [claimsBefore]
            )
            // Meters another account holds: a conflict each (one open per meter and claimant).
            let conflictsBefore = try Int64.fetchOne(db, sql: "SELECT coalesce(max(id), 0) FROM claim_conflicts") ?? 0
            // Every staged meter was claimed now, held already, or held by another; only the last two need a look.
            let heldByOthers = claimed == staged ? 0 : try Int64.fetchOne(
                db,
                sql: """
                    SELECT count(*) FROM enrollment_staging s JOIN claims c ON c.eui64 = s.eui64 AND c.released_at IS NULL
                    WHERE s.upload = ? AND c.account <> ?
                    """,
                arguments: [id, upload.account]
            ) ?? 0
            if heldByOthers > 0 {
                try db.execute(
                    sql: """
                        INSERT INTO claim_conflicts (eui64, holder, claimant, upload, reported_at)
                        SELECT s.eui64, c.account, ?, ?, ? FROM enrollment_staging s
                        JOIN claims c ON c.eui64 = s.eui64 AND c.released_at IS NULL
                        WHERE s.upload = ? AND c.account <> ? ORDER BY s.eui64
                        ON CONFLICT (eui64, claimant) WHERE resolved_at IS NULL DO NOTHING
                        """,
                    arguments: [upload.account, id, at, id, upload.account]
                )
                try db.execute(
                    sql: """
                        INSERT INTO meter_history (eui64, kind, account, counterparty, upload, actor, at)
                        SELECT eui64, 'conflict', claimant, holder, upload, ?, reported_at FROM claim_conflicts WHERE id > ? ORDER BY id
                        """,
                    arguments: [upload.actor, conflictsBefore]
                )
            }
            let counts = EnrollmentCommitCounts(claimed: claimed, alreadyHeld: staged - claimed - heldByOthers, conflicts: heldByOthers)
            try Self.clearStaging(id, in: db)
            try db.execute(
                sql: """
                    UPDATE enrollment_uploads SET state = 'committed', claimed = ?, already_held = ?, conflicts = ?, finished_at = ? WHERE id = ?
                    """,
                arguments: [counts.claimed, counts.alreadyHeld, counts.conflicts, at, id]
            )
            return counts
        }
    }

    public func discard(upload id: String, at date: Date) async throws {
        try await write { db in
            _ = try Self.stagingUpload(id, in: db)
            try Self.clearStaging(id, in: db)
            try db.execute(sql: "UPDATE enrollment_uploads SET state = 'refused', finished_at = ? WHERE id = ?", arguments: [Self.seconds(date), id])
        }
    }

    static func clearStaging(_ id: String, in db: Database) throws {
        try db.execute(sql: "DELETE FROM enrollment_staging WHERE upload = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM enrollment_staging_repeats WHERE upload = ?", arguments: [id])
    }

    // MARK: Claims and conflicts

    public func claim(eui64: String) async throws -> ClaimRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM claims WHERE eui64 = ? AND released_at IS NULL", arguments: [eui64]).map(Self.claim(from:))
        }
    }

    public func claims(account: String, after eui64: String?, limit: Int) async throws -> [ClaimRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM claims WHERE account = ? AND released_at IS NULL AND eui64 > ? ORDER BY eui64 LIMIT ?",
                arguments: [account, eui64 ?? "", limit]
            ).map(Self.claim(from:))
        }
    }

    public func claimCount(account: String) async throws -> Int {
        try await run { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM claims WHERE account = ? AND released_at IS NULL", arguments: [account]) ?? 0
        }
    }

    public func allClaims(after id: Int64, limit: Int) async throws -> [ClaimRecord] {
        try await rows(of: "claims", after: id, limit: limit, Self.claim(from:))
    }

    /// Rows of an onboarding table in id order after `id`, at most `limit`: for ``StoreCopy``.
    func rows<T: Sendable>(of table: String, after id: Int64, limit: Int, _ record: @escaping @Sendable (Row) throws -> T) async throws -> [T] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM \(table) WHERE id > ? ORDER BY id LIMIT ?", arguments: [id, limit]).map(record)
        }
    }

    static func claim(from row: Row) -> ClaimRecord {
        ClaimRecord(
            id: row["id"], eui64: row["eui64"], account: row["account"], upload: row["upload"], claimedAt: date(row["claimed_at"]),
            claimedBy: row["claimed_by"], releasedAt: (row["released_at"] as Int64?).map(date), releasedBy: row["released_by"]
        )
    }

    public func conflicts(account: String, openOnly: Bool, after id: Int64?, limit: Int) async throws -> [ConflictRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            let open = openOnly ? "AND resolved_at IS NULL" : ""
            // Each side by its own index, then merged.
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM (
                        SELECT * FROM claim_conflicts WHERE holder = ? AND id > ? \(open)
                        UNION
                        SELECT * FROM claim_conflicts WHERE claimant = ? AND id > ? \(open)
                    ) ORDER BY id LIMIT ?
                    """,
                arguments: [account, id ?? 0, account, id ?? 0, limit]
            ).map(Self.conflict(from:))
        }
    }

    public func openConflicts(eui64: String) async throws -> [ConflictRecord] {
        try await run { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM claim_conflicts WHERE eui64 = ? AND resolved_at IS NULL ORDER BY id LIMIT 1000", arguments: [eui64]
            ).map(Self.conflict(from:))
        }
    }

    public func allConflicts(after id: Int64, limit: Int) async throws -> [ConflictRecord] {
        try await rows(of: "claim_conflicts", after: id, limit: limit, Self.conflict(from:))
    }

    static func conflict(from row: Row) -> ConflictRecord {
        ConflictRecord(
            id: row["id"], eui64: row["eui64"], holder: row["holder"], claimant: row["claimant"], upload: row["upload"],
            reportedAt: date(row["reported_at"]), resolvedAt: (row["resolved_at"] as Int64?).map(date),
            resolution: (row["resolution"] as String?).flatMap(ConflictResolution.init(rawValue:)), resolvedBy: row["resolved_by"]
        )
    }

    public func resolveConflict(
        eui64: String, claimant: String, inFavourOf resolution: ConflictResolution, at date: Date, actor: String,
        revocationCandidates: [RevocationCandidate]
    ) async throws -> ConflictRecord {
        try await writeReturning { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM claim_conflicts WHERE eui64 = ? AND claimant = ? AND resolved_at IS NULL", arguments: [eui64, claimant]
                )
            else { throw StoreError(.notFound, "there is no open conflict of account \(claimant) over meter \(eui64)") }
            var conflict = Self.conflict(from: row)
            let at = Self.seconds(date)
            switch resolution {
            case .claimant:
                try db.execute(
                    sql: "UPDATE claims SET released_at = ?, released_by = ? WHERE eui64 = ? AND account = ? AND released_at IS NULL",
                    arguments: [at, actor, eui64, conflict.holder]
                )
                guard db.changesCount == 1 else { throw StoreError(.notFound, "account \(conflict.holder) no longer holds meter \(eui64)") }
                try db.execute(
                    sql: "INSERT INTO claims (eui64, account, upload, claimed_at, claimed_by) VALUES (?, ?, ?, ?, ?)",
                    arguments: [eui64, claimant, conflict.upload, at, actor]
                )
                try db.execute(
                    sql: "UPDATE claim_conflicts SET holder = ? WHERE eui64 = ? AND resolved_at IS NULL AND id <> ? AND claimant <> ?",
                    arguments: [claimant, eui64, conflict.id, claimant]
                )
                try Self.recordRevocations(revocationCandidates, eui64: eui64, account: conflict.holder, at: at, in: db)
                try Self.history(eui64, .resolvedForClaimant, account: claimant, counterparty: conflict.holder, upload: conflict.upload, actor: actor, at: at, in: db)
                try Self.history(eui64, .released, account: conflict.holder, counterparty: claimant, upload: nil, actor: actor, at: at, in: db)
                try Self.history(eui64, .claimed, account: claimant, counterparty: nil, upload: conflict.upload, actor: actor, at: at, in: db)
            case .holder:
                try Self.history(eui64, .resolvedForHolder, account: conflict.holder, counterparty: claimant, upload: conflict.upload, actor: actor, at: at, in: db)
            case .released:
                throw StoreError(.checkViolation, "a conflict is closed as released only by the holder's release of the meter")
            }
            try db.execute(
                sql: "UPDATE claim_conflicts SET resolved_at = ?, resolution = ?, resolved_by = ? WHERE id = ?",
                arguments: [at, resolution.rawValue, actor, conflict.id]
            )
            conflict.resolvedAt = Self.date(at)
            conflict.resolution = resolution
            conflict.resolvedBy = actor
            return conflict
        }
    }

    public func release(eui64: String, account: String, at date: Date, actor: String, revocationCandidates: [RevocationCandidate]) async throws {
        try await write { db in
            let at = Self.seconds(date)
            try db.execute(
                sql: "UPDATE claims SET released_at = ?, released_by = ? WHERE eui64 = ? AND account = ? AND released_at IS NULL",
                arguments: [at, actor, eui64, account]
            )
            guard db.changesCount == 1 else { throw StoreError(.notFound, "account \(account) does not hold meter \(eui64)") }
            try Self.history(eui64, .released, account: account, counterparty: nil, upload: nil, actor: actor, at: at, in: db)
            let closing = try Row.fetchAll(
                db, sql: "SELECT * FROM claim_conflicts WHERE eui64 = ? AND holder = ? AND resolved_at IS NULL ORDER BY id", arguments: [eui64, account]
            ).map(Self.conflict(from:))
            for conflict in closing {
                try db.execute(
                    sql: "UPDATE claim_conflicts SET resolved_at = ?, resolution = 'released', resolved_by = ? WHERE id = ?",
                    arguments: [at, actor, conflict.id]
                )
                try Self.history(eui64, .conflictClosed, account: account, counterparty: conflict.claimant, upload: conflict.upload, actor: actor, at: at, in: db)
            }
            try Self.recordRevocations(revocationCandidates, eui64: eui64, account: account, at: at, in: db)
        }
    }

    static func recordRevocations(_ candidates: [RevocationCandidate], eui64: String, account: String, at: Int64, in db: Database) throws {
        for candidate in candidates {
            try db.execute(
                sql: """
                    INSERT INTO pending_revocations (issuer, serial, eui64, account, reason, recorded_at) VALUES (?, ?, ?, ?, 4, ?)
                    ON CONFLICT (issuer, serial) DO NOTHING
                    """,
                arguments: [candidate.issuer, candidate.serial, eui64, account, at]
            )
        }
    }

    static func history(
        _ eui64: String, _ kind: MeterHistoryEvent.Kind, account: String, counterparty: String?, upload: String?, actor: String, at: Int64,
        in db: Database
    ) throws {
        try db.execute(
            sql: "INSERT INTO meter_history (eui64, kind, account, counterparty, upload, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [eui64, kind.rawValue, account, counterparty, upload, actor, at]
        )
    }

    public func pendingRevocations(after position: CertificateListPosition?, limit: Int) async throws -> [PendingRevocationRecord] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM pending_revocations WHERE (issuer, serial) > (?, ?) ORDER BY issuer, serial LIMIT ?",
                arguments: [position?.issuer ?? "", position?.serial ?? "", limit]
            ).map {
                PendingRevocationRecord(
                    issuer: $0["issuer"], serial: $0["serial"], eui64: $0["eui64"], account: $0["account"], reason: $0["reason"],
                    recordedAt: Self.date($0["recorded_at"])
                )
            }
        }
    }

    public func history(eui64: String, after id: Int64?, limit: Int) async throws -> [MeterHistoryEvent] {
        guard limit > 0 else { return [] }
        return try await run { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM meter_history WHERE eui64 = ? AND id > ? ORDER BY id LIMIT ?", arguments: [eui64, id ?? 0, limit]
            ).map(Self.historyEvent(from:))
        }
    }

    public func allHistory(after id: Int64, limit: Int) async throws -> [MeterHistoryEvent] {
        try await rows(of: "meter_history", after: id, limit: limit, Self.historyEvent(from:))
    }

    static func historyEvent(from row: Row) throws -> MeterHistoryEvent {
        guard let kind = MeterHistoryEvent.Kind(rawValue: row["kind"]) else { throw StoreError(.corrupt, "meter history event \(row["id"] as Int64) has an unknown kind") }
        return MeterHistoryEvent(
            id: row["id"], eui64: row["eui64"], kind: kind, account: row["account"], counterparty: row["counterparty"], upload: row["upload"],
            actor: row["actor"], at: date(row["at"])
        )
    }

    // MARK: Copy

    public func onboardingCounts() async throws -> OnboardingCounts {
        try await run { db in
            func count(_ table: String) throws -> Int { try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }
            var counts = OnboardingCounts()
            counts.accounts = try count("accounts")
            counts.operators = try count("account_operators")
            counts.uploads = try count("enrollment_uploads")
            counts.claims = try count("claims")
            counts.conflicts = try count("claim_conflicts")
            counts.pendingRevocations = try count("pending_revocations")
            counts.historyEvents = try count("meter_history")
            return counts
        }
    }

    public func insertOnboardingRows(_ rows: OnboardingRows) async throws {
        try await write { db in
            for account in rows.accounts {
                try db.execute(
                    sql: "INSERT INTO accounts (id, display_name, operational_ca, created_at, created_by, request_id) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [account.id, account.displayName, account.operationalCA, Self.seconds(account.createdAt), account.createdBy, account.requestID]
                )
                for manufacturer in account.manufacturers {
                    try db.execute(sql: "INSERT INTO account_manufacturers (account, manufacturer) VALUES (?, ?)", arguments: [account.id, manufacturer])
                }
            }
            for record in rows.operators { try Self.insert(record, into: db) }
            for upload in rows.uploads { try Self.insert(upload, into: db) }
            let claim = try BulkStatement(db, sql: """
                INSERT INTO claims (eui64, account, upload, claimed_at, claimed_by, released_at, released_by) VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            for c in rows.claims {
                claim.bind(1, c.eui64)
                claim.bind(2, c.account)
                claim.bind(3, c.upload)
                claim.bind(4, Self.seconds(c.claimedAt))
                claim.bind(5, c.claimedBy)
                claim.bind(6, c.releasedAt.map(Self.seconds))
                claim.bind(7, c.releasedBy)
                _ = try claim.run()
            }
            for c in rows.conflicts {
                try db.execute(
                    sql: """
                        INSERT INTO claim_conflicts (eui64, holder, claimant, upload, reported_at, resolved_at, resolution, resolved_by)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        c.eui64, c.holder, c.claimant, c.upload, Self.seconds(c.reportedAt), c.resolvedAt.map(Self.seconds), c.resolution?.rawValue,
                        c.resolvedBy,
                    ]
                )
            }
            for p in rows.pendingRevocations {
                try db.execute(
                    sql: "INSERT INTO pending_revocations (issuer, serial, eui64, account, reason, recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [p.issuer, p.serial, p.eui64, p.account, p.reason, Self.seconds(p.recordedAt)]
                )
            }
            let event = try BulkStatement(db, sql: """
                INSERT INTO meter_history (eui64, kind, account, counterparty, upload, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            for e in rows.history {
                event.bind(1, e.eui64)
                event.bind(2, e.kind.rawValue)
                event.bind(3, e.account)
                event.bind(4, e.counterparty)
                event.bind(5, e.upload)
                event.bind(6, e.actor)
                event.bind(7, Self.seconds(e.at))
                _ = try event.run()
            }
        }
    }
}
