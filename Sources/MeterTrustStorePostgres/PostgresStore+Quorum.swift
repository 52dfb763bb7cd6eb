import Foundation
import MeterTrustStore
import PostgresNIO

// Custodians, policies, requests, approvals, bootstrap and the backup key (the QuorumStore view).
extension PostgresStore {
    public func bootstrapQuorum(custodians: [CustodianRecord], policies: [QuorumPolicyRecord]) async throws {
        try await transaction { [self] connection in
            try await execute(connection, "INSERT INTO quorum_bootstrap (id, created_at) VALUES (1, \(Self.seconds(Date())))", logger: logger)
            for custodian in custodians { try await insert(custodian, on: connection) }
            for policy in policies { try await upsert(policy, on: connection) }
        }
    }

    public func isQuorumBootstrapped() async throws -> Bool {
        try await read { [self] connection in try await rows("SELECT count(*) AS n FROM quorum_bootstrap", on: connection).first?.int("n") ?? 0 > 0 }
    }

    public func custodians() async throws -> [CustodianRecord] {
        try await read { [self] connection in try await custodians(on: connection) }
    }

    func custodians(on connection: PostgresConnection) async throws -> [CustodianRecord] {
        try await rows("SELECT * FROM custodians ORDER BY registered_at, name", on: connection).map { row in
            CustodianRecord(
                name: try row.string("name"), role: try row.string("role"), certificateDER: try row.bytes("certificate"),
                fingerprintSHA256: try row.string("fingerprint_sha256"), registeredAt: Self.date(try row.int64("registered_at")),
                registeredBy: try row.optionalString("registered_by"), removedAt: try row.optionalInt64("removed_at").map(Self.date)
            )
        }
    }

    public func insertCustodian(_ custodian: CustodianRecord) async throws {
        try await transaction { [self] connection in try await insert(custodian, on: connection) }
    }

    func insert(_ custodian: CustodianRecord, on connection: PostgresConnection) async throws {
        try await execute(connection, 
            """
            INSERT INTO custodians (name, role, certificate, fingerprint_sha256, registered_at, registered_by, removed_at)
            VALUES (\(custodian.name), \(custodian.role), \(ByteBuffer(bytes: custodian.certificateDER)), \(custodian.fingerprintSHA256),
                    \(Self.seconds(custodian.registeredAt)), \(custodian.registeredBy), NULL)
            """,
            logger: logger
        )
    }

    /// Removes a custodian if `check` accepts the custodians as they are. SERIALIZABLE: two removals on two nodes that
    /// each leave the quorum intact but together break it are a write skew, which PostgreSQL refuses to one of them
    /// (40001); that one runs again, sees the other's removal, and its check refuses it.
    public func removeCustodian(
        named name: String, at date: Date, ifAllowed check: @escaping @Sendable ([CustodianRecord]) throws -> Void
    ) async throws {
        try await transaction(.serializable) { [self] connection in
            let current = try await custodians(on: connection)
            do {
                try check(current)
            } catch {
                throw CallerRefusal(underlying: error)
            }
            let updated = try await rows(
                "UPDATE custodians SET removed_at = \(Self.seconds(date)) WHERE name = \(name) AND removed_at IS NULL RETURNING name", on: connection
            )
            guard updated.count == 1 else { throw StoreError(.notFound, "there is no registered custodian \(name)") }
        }
    }

    public func quorumPolicies() async throws -> [QuorumPolicyRecord] {
        try await read { [self] connection in
            try await rows("SELECT * FROM quorum_policies ORDER BY operation_class", on: connection).map { row in
                QuorumPolicyRecord(
                    operationClass: try row.string("operation_class"), required: try row.int("required"),
                    approverRoles: try row.string("approver_roles").split(separator: ",").map(String.init),
                    requesterMayApprove: try row.bool("requester_may_approve"), updatedAt: Self.date(try row.int64("updated_at")),
                    updatedBy: try row.optionalString("updated_by")
                )
            }
        }
    }

    public func setQuorumPolicy(_ policy: QuorumPolicyRecord) async throws {
        try await transaction { [self] connection in try await upsert(policy, on: connection) }
    }

    func upsert(_ policy: QuorumPolicyRecord, on connection: PostgresConnection) async throws {
        try await execute(connection, 
            """
            INSERT INTO quorum_policies (operation_class, required, approver_roles, requester_may_approve, updated_at, updated_by)
            VALUES (\(policy.operationClass), \(Int64(policy.required)), \(policy.approverRoles.joined(separator: ",")), \(policy.requesterMayApprove),
                    \(Self.seconds(policy.updatedAt)), \(policy.updatedBy))
            ON CONFLICT (operation_class) DO UPDATE SET required = excluded.required, approver_roles = excluded.approver_roles,
                requester_may_approve = excluded.requester_may_approve, updated_at = excluded.updated_at, updated_by = excluded.updated_by
            """,
            logger: logger
        )
    }

    public func insertAdminRequest(_ request: AdminRequestRecord) async throws {
        try await transaction { [self] connection in
            try await execute(connection, 
                """
                INSERT INTO admin_requests (id, document, operation, requester, created_at, expires_at, state)
                VALUES (\(request.id), \(ByteBuffer(bytes: request.document)), \(request.operation), \(request.requester),
                        \(Self.seconds(request.createdAt)), \(Self.seconds(request.expiresAt)), \(request.state.rawValue))
                """,
                logger: logger
            )
        }
    }

    public func adminRequest(id: String) async throws -> AdminRequestRecord? {
        try await read { [self] connection in try await rows("SELECT * FROM admin_requests WHERE id = \(id)", on: connection).first.map(Self.adminRequest(from:)) }
    }

    public func adminRequests(state: AdminRequestRecord.State?, limit: Int) async throws -> [AdminRequestRecord] {
        try await read { [self] connection in
            let query: PostgresQuery =
                if let state {
                    "SELECT * FROM admin_requests WHERE state = \(state.rawValue) ORDER BY created_at DESC, id LIMIT \(Int64(limit))"
                } else {
                    "SELECT * FROM admin_requests ORDER BY created_at DESC, id LIMIT \(Int64(limit))"
                }
            return try await rows(query, on: connection).map(Self.adminRequest(from:))
        }
    }

    static func adminRequest(from row: PostgresRandomAccessRow) throws -> AdminRequestRecord {
        AdminRequestRecord(
            id: try row.string("id"), document: try row.bytes("document"), operation: try row.string("operation"),
            requester: try row.string("requester"), createdAt: date(try row.int64("created_at")), expiresAt: date(try row.int64("expires_at")),
            state: AdminRequestRecord.State(rawValue: try row.string("state")) ?? .failed,
            executedAt: try row.optionalInt64("executed_at").map(date), executedBy: try row.optionalString("executed_by"),
            outcome: try row.optionalString("outcome")
        )
    }

    public func insertApproval(_ approval: ApprovalRecord) async throws {
        try await transaction { [self] connection in
            try await execute(connection, 
                """
                INSERT INTO approvals (request_id, custodian, document, received_at)
                VALUES (\(approval.requestID), \(approval.custodian), \(ByteBuffer(bytes: approval.document)), \(Self.seconds(approval.receivedAt)))
                """,
                logger: logger
            )
        }
    }

    public func approvals(requestID: String) async throws -> [ApprovalRecord] {
        try await read { [self] connection in
            try await rows("SELECT * FROM approvals WHERE request_id = \(requestID) ORDER BY received_at, custodian", on: connection).map {
                ApprovalRecord(
                    requestID: try $0.string("request_id"), custodian: try $0.string("custodian"), document: try $0.bytes("document"),
                    receivedAt: Self.date(try $0.int64("received_at"))
                )
            }
        }
    }

    /// Run-once: the conditional update takes the request's row lock; a second claim (on any node) waits for it, then
    /// finds the state no longer pending and claims nothing.
    public func claimAdminRequest(id: String, by custodian: String, at date: Date) async throws -> Bool {
        try await transaction { [self] connection in
            try await rows(
                """
                UPDATE admin_requests SET state = 'executing', executed_at = \(Self.seconds(date)), executed_by = \(custodian)
                WHERE id = \(id) AND state = 'pending' RETURNING id
                """,
                on: connection
            ).count == 1
        }
    }

    public func finishAdminRequest(id: String, state: AdminRequestRecord.State, outcome: String) async throws {
        try await transaction { [self] connection in
            let updated = try await rows(
                "UPDATE admin_requests SET state = \(state.rawValue), outcome = \(outcome) WHERE id = \(id) AND state = 'executing' RETURNING id",
                on: connection
            )
            guard updated.count == 1 else { throw StoreError(.notFound, "request \(id) is not being executed") }
        }
    }

    public func setBackupKey(_ record: BackupKeyRecord) async throws {
        try await transaction { [self] connection in
            try await execute(connection, 
                """
                INSERT INTO backup_key (id, label, threshold, shares, key_check_value, created_at, so_pin_shares)
                VALUES (1, \(record.label), \(Int64(record.threshold)), \(ByteBuffer(bytes: record.shares)), \(record.keyCheckValue),
                        \(Self.seconds(record.createdAt)), \(record.securityOfficerPINShares.map { ByteBuffer(bytes: $0) }))
                """,
                logger: logger
            )
        }
    }

    public func replaceBackupKey(_ record: BackupKeyRecord, replacing label: String) async throws {
        try await transaction { [self] connection in
            let updated = try await rows(
                """
                UPDATE backup_key SET label = \(record.label), threshold = \(Int64(record.threshold)), shares = \(ByteBuffer(bytes: record.shares)),
                    key_check_value = \(record.keyCheckValue), created_at = \(Self.seconds(record.createdAt)),
                    so_pin_shares = \(record.securityOfficerPINShares.map { ByteBuffer(bytes: $0) })
                WHERE id = 1 AND label = \(label) RETURNING id
                """,
                on: connection
            )
            guard updated.count == 1 else { throw StoreError(.notFound, "the backup key \(label) is no longer the deployment's backup key") }
        }
    }

    public func deleteBackupKey(label: String) async throws {
        try await transaction { [self] connection in
            try await execute(connection, "DELETE FROM backup_key WHERE id = 1 AND label = \(label)", logger: logger)
        }
    }

    public func backupKey() async throws -> BackupKeyRecord? {
        try await read { [self] connection in
            try await rows("SELECT * FROM backup_key WHERE id = 1", on: connection).first.map {
                BackupKeyRecord(
                    label: try $0.string("label"), threshold: try $0.int("threshold"), shares: try $0.bytes("shares"),
                    keyCheckValue: try $0.string("key_check_value"), createdAt: Self.date(try $0.int64("created_at")),
                    securityOfficerPINShares: try $0.optionalBytes("so_pin_shares")
                )
            }
        }
    }
}
