import Foundation
import GRDB
import MeterTrustStore

// Custodians, policies, requests, approvals, bootstrap and the backup key (the QuorumStore view).
extension SQLiteStore {
    public func bootstrapQuorum(custodians: [CustodianRecord], policies: [QuorumPolicyRecord]) async throws {
        try await write { db in
            try db.execute(sql: "INSERT INTO quorum_bootstrap (id, created_at) VALUES (1, ?)", arguments: [Self.seconds(Date())])
            for custodian in custodians { try Self.insert(custodian, into: db) }
            for policy in policies { try Self.upsert(policy, into: db) }
        }
    }

    public func isQuorumBootstrapped() async throws -> Bool {
        try await run { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM quorum_bootstrap") ?? 0 > 0 }
    }

    public func custodians() async throws -> [CustodianRecord] {
        try await run { db in try Self.custodians(in: db) }
    }

    static func custodians(in db: Database) throws -> [CustodianRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM custodians ORDER BY registered_at, name").map { row in
            CustodianRecord(
                name: row["name"], role: row["role"], certificateDER: Array(row["certificate"] as Data),
                fingerprintSHA256: row["fingerprint_sha256"], registeredAt: Self.date(row["registered_at"]),
                registeredBy: row["registered_by"], removedAt: (row["removed_at"] as Int64?).map(Self.date)
            )
        }
    }

    public func insertCustodian(_ custodian: CustodianRecord) async throws {
        try await write { db in try Self.insert(custodian, into: db) }
    }

    static func insert(_ custodian: CustodianRecord, into db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO custodians (name, role, certificate, fingerprint_sha256, registered_at, registered_by, removed_at)
                VALUES (?, ?, ?, ?, ?, ?, NULL)
                """,
            arguments: [
                custodian.name, custodian.role, Data(custodian.certificateDER), custodian.fingerprintSHA256,
                seconds(custodian.registeredAt), custodian.registeredBy,
            ]
        )
    }

    public func removeCustodian(
        named name: String, at date: Date, ifAllowed check: @escaping @Sendable ([CustodianRecord]) throws -> Void
    ) async throws {
        // GRDB runs writes one at a time on its writer (SQLite takes its write lock at BEGIN IMMEDIATE), so the check
        // sees every removal committed before it: two concurrent removals cannot both pass it.
        try await write { db in
            do {
                try check(try Self.custodians(in: db))
            } catch {
                throw CallerRefusal(underlying: error)
            }
            try db.execute(
                sql: "UPDATE custodians SET removed_at = ? WHERE name = ? AND removed_at IS NULL", arguments: [Self.seconds(date), name]
            )
            guard db.changesCount == 1 else { throw StoreError(.notFound, "there is no registered custodian \(name)") }
        }
    }

    public func quorumPolicies() async throws -> [QuorumPolicyRecord] {
        try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM quorum_policies ORDER BY operation_class").map { row in
                QuorumPolicyRecord(
                    operationClass: row["operation_class"], required: row["required"],
                    approverRoles: (row["approver_roles"] as String).split(separator: ",").map(String.init),
                    requesterMayApprove: row["requester_may_approve"], updatedAt: Self.date(row["updated_at"]),
                    updatedBy: row["updated_by"]
                )
            }
        }
    }

    public func setQuorumPolicy(_ policy: QuorumPolicyRecord) async throws {
        try await write { db in try Self.upsert(policy, into: db) }
    }

    static func upsert(_ policy: QuorumPolicyRecord, into db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO quorum_policies (operation_class, required, approver_roles, requester_may_approve, updated_at, updated_by)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (operation_class) DO UPDATE SET required = excluded.required, approver_roles = excluded.approver_roles,
                requester_may_approve = excluded.requester_may_approve, updated_at = excluded.updated_at, updated_by = excluded.updated_by
                """,
            arguments: [
                policy.operationClass, policy.required, policy.approverRoles.joined(separator: ","), policy.requesterMayApprove,
                seconds(policy.updatedAt), policy.updatedBy,
            ]
        )
    }

    public func insertAdminRequest(_ request: AdminRequestRecord) async throws {
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO admin_requests (id, document, operation, requester, created_at, expires_at, state)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    request.id, Data(request.document), request.operation, request.requester, Self.seconds(request.createdAt),
                    Self.seconds(request.expiresAt), request.state.rawValue,
                ]
            )
        }
    }

    public func adminRequest(id: String) async throws -> AdminRequestRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM admin_requests WHERE id = ?", arguments: [id]).map(Self.adminRequest(from:))
        }
    }

    public func adminRequests(state: AdminRequestRecord.State?, limit: Int) async throws -> [AdminRequestRecord] {
        try await run { db in
            if let state {
                return try Row.fetchAll(
                    db, sql: "SELECT * FROM admin_requests WHERE state = ? ORDER BY created_at DESC, id LIMIT ?", arguments: [state.rawValue, limit]
                ).map(Self.adminRequest(from:))
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM admin_requests ORDER BY created_at DESC, id LIMIT ?", arguments: [limit])
                .map(Self.adminRequest(from:))
        }
    }

    static func adminRequest(from row: Row) -> AdminRequestRecord {
        AdminRequestRecord(
            id: row["id"], document: Array(row["document"] as Data), operation: row["operation"], requester: row["requester"],
            createdAt: date(row["created_at"]), expiresAt: date(row["expires_at"]),
            state: AdminRequestRecord.State(rawValue: row["state"]) ?? .failed,
            executedAt: (row["executed_at"] as Int64?).map(date), executedBy: row["executed_by"], outcome: row["outcome"]
        )
    }

    public func insertApproval(_ approval: ApprovalRecord) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO approvals (request_id, custodian, document, received_at) VALUES (?, ?, ?, ?)",
                arguments: [approval.requestID, approval.custodian, Data(approval.document), Self.seconds(approval.receivedAt)]
            )
        }
    }

    public func approvals(requestID: String) async throws -> [ApprovalRecord] {
        try await run { db in
            try Row.fetchAll(db, sql: "SELECT * FROM approvals WHERE request_id = ? ORDER BY received_at, custodian", arguments: [requestID]).map {
                ApprovalRecord(
                    requestID: $0["request_id"], custodian: $0["custodian"], document: Array($0["document"] as Data),
                    receivedAt: Self.date($0["received_at"])
                )
            }
        }
    }

    public func claimAdminRequest(id: String, by custodian: String, at date: Date) async throws -> Bool {
        try await writeReturning { db in
            try db.execute(
                sql: "UPDATE admin_requests SET state = 'executing', executed_at = ?, executed_by = ? WHERE id = ? AND state = 'pending'",
                arguments: [Self.seconds(date), custodian, id]
            )
            return db.changesCount == 1
        }
    }

    public func finishAdminRequest(id: String, state: AdminRequestRecord.State, outcome: String) async throws {
        try await write { db in
            try db.execute(
                sql: "UPDATE admin_requests SET state = ?, outcome = ? WHERE id = ? AND state = 'executing'",
                arguments: [state.rawValue, outcome, id]
            )
            guard db.changesCount == 1 else { throw StoreError(.notFound, "request \(id) is not being executed") }
        }
    }

    public func setBackupKey(_ record: BackupKeyRecord) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO backup_key (id, label, threshold, shares, key_check_value, created_at, so_pin_shares) VALUES (1, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    record.label, record.threshold, Data(record.shares), record.keyCheckValue, Self.seconds(record.createdAt),
                    record.securityOfficerPINShares.map { Data($0) },
                ]
            )
        }
    }

    public func replaceBackupKey(_ record: BackupKeyRecord, replacing label: String) async throws {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE backup_key SET label = ?, threshold = ?, shares = ?, key_check_value = ?, created_at = ?, so_pin_shares = ?
                    WHERE id = 1 AND label = ?
                    """,
                arguments: [
                    record.label, record.threshold, Data(record.shares), record.keyCheckValue, Self.seconds(record.createdAt),
                    record.securityOfficerPINShares.map { Data($0) }, label,
                ]
            )
            guard db.changesCount == 1 else { throw StoreError(.notFound, "the backup key \(label) is no longer the deployment's backup key") }
        }
    }

    public func deleteBackupKey(label: String) async throws {
        try await write { db in
            try db.execute(sql: "DELETE FROM backup_key WHERE id = 1 AND label = ?", arguments: [label])
        }
    }

    public func backupKey() async throws -> BackupKeyRecord? {
        try await run { db in
            try Row.fetchOne(db, sql: "SELECT * FROM backup_key WHERE id = 1").map {
                BackupKeyRecord(
                    label: $0["label"], threshold: $0["threshold"], shares: Array($0["shares"] as Data),
                    keyCheckValue: $0["key_check_value"], createdAt: Self.date($0["created_at"]),
                    securityOfficerPINShares: ($0["so_pin_shares"] as Data?).map { Array($0) }
                )
            }
        }
    }
}
