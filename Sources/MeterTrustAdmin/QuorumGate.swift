import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustQuorum
import MeterTrustStore

/// A request that met its quorum now and was claimed for execution by one executor (run once).
public struct AuthorizedRequest: Sendable {
    public let record: AdminRequestRecord
    public let request: AdminRequest
    public let operation: AdminOperation
    public let policy: QuorumPolicy
    public let tally: QuorumTally
}

/// The quorum rules applied to a stored request, with the store's rows bound to the verified audit log: who may run
/// what, now, once.
///
/// Every row a decision uses is checked against ``SecurityState`` (replayed from the signed, HSM-anchored log): a
/// policy must be the one the log set, a custodian the one the log registered (role, certificate, not removed, not
/// revoked, valid now), a request not claimed before in the log. So someone with write access to the database
/// but not the HSM can deny service (a changed row is refused) and nothing else.
///
/// Both the admin service and the ceremonies that run on the HSM host (``KeyBackup``) pass through here, so there
/// is one judge of "approved".
public struct QuorumGate: Sendable {
    public let store: any QuorumStore
    public let audit: AuditLog
    /// The operations this deployment runs: what a stored request's `operation` names.
    public let operations: QuorumOperationRegistry
    public let state: SecurityState
    /// What "now" is for every rule here (expiry, validity, claim times).
    public let clock: any WallClock

    /// Verifies the audit log and replays its state (throws if the log was tampered with).
    public init(store: any QuorumStore, audit: AuditLog, operations: QuorumOperationRegistry = .standard, clock: any WallClock = SystemClock()) async throws {
        self.store = store
        self.audit = audit
        self.operations = operations
        self.clock = clock
        self.state = try await audit.verifiedState()
    }

    /// The policies, each as the audit log last set it; a row that differs from the log is refused.
    public func policies() async throws -> [QuorumPolicy] {
        let rows = try await store.quorumPolicies()
        var policies: [QuorumPolicy] = []
        for row in rows {
            let policy = try QuorumPolicy(row)
            guard state.policies[row.operationClass] == policy.stateText else {
                throw QuorumError(
                    .untrustedState,
                    "the store's quorum policy for \(row.operationClass) (\(policy.summary)) is not the one the audit log set: it was changed outside MeterTrust; restore the store from a backup"
                )
            }
            policies.append(policy)
        }
        if let missing = state.policies.keys.first(where: { name in !rows.contains { $0.operationClass == name } }) {
            throw QuorumError(.untrustedState, "the audit log sets a quorum policy for \(missing) that the store no longer holds: it was deleted outside MeterTrust")
        }
        return policies
    }

    /// The policy of `operationClass`. A class declared after the bootstrap ceremony (a module added since, such as
    /// Onboarding's `account-create`) that no `policy.set` ever set has its default roles and the strictest count of
    /// the policies the log set: it rests on this build's code and the verified log, never on a row alone.
    public func policy(for operationClass: OperationClass) async throws -> QuorumPolicy {
        let policies = try await policies()
        if let policy = policies.first(where: { $0.operationClass == operationClass }) { return policy }
        guard let strictest = policies.map(\.required).max() else {
            throw QuorumError(.notBootstrapped, "no quorum policy for \(operationClass.rawValue): run the bootstrap ceremony (metertrust admin bootstrap)")
        }
        return QuorumPolicy(operationClass: operationClass, required: strictest, approverRoles: operationClass.defaultApproverRoles)
    }

    /// The custodians the audit log backs (``CustodianRegistry/init(_:boundTo:now:)``).
    public func registry(now: Date? = nil) async throws -> CustodianRegistry {
        try CustodianRegistry(try await store.custodians(), boundTo: state, now: now ?? clock.now())
    }

    /// Checks that request `id` is pending (in the store and in the log), unexpired (by its signed document) and
    /// approved by enough distinct custodians now; `expected`, if given, is the only operation accepted. Changes
    /// nothing.
    public func approved(id: String, expected: AdminOperation? = nil, now: Date? = nil) async throws -> AuthorizedRequest {
        let now = now ?? clock.now()
        guard let record = try await store.adminRequest(id: id) else {
            throw QuorumError(.unknownRequest, "there is no request \(id)")
        }
        let request = try AdminRequest.parse(record.document)
        guard request.id == record.id else {
            throw QuorumError(.untrustedState, "the store's request \(id.prefix(16))… holds another request's document: it was changed outside MeterTrust")
        }
        let operation = try operations.definition(named: request.operation)
        if let expected, operation != expected {
            throw QuorumError(.wrongRequest, "request \(id.prefix(16))… is \(operation.rawValue), not \(expected.rawValue)")
        }
        if let logged = state.requests[id] {
            throw QuorumError(.alreadyExecuted, "request \(id.prefix(16))… is \(logged) in the audit log; a request runs at most once")
        }
        guard record.state == .pending else {
            throw QuorumError(.alreadyExecuted, "request \(id.prefix(16))… is \(record.state.rawValue); a request runs at most once")
        }
        guard now < (try request.expiresDate) else {
            throw QuorumError(.expiredRequest, "request \(id.prefix(16))… expired at \(request.expires); make a new request")
        }
        let policy = try await policy(for: operation.operationClass)
        let tally = QuorumRules.tally(record, approvals: try await store.approvals(requestID: id), policy: policy, registry: try await registry(now: now), now: now)
        guard tally.isMet else {
            let notCounted = tally.notCounted.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            throw QuorumError(
                .belowQuorum,
                "request \(id.prefix(16))… has \(tally.counted.count) of the \(policy.required) approvals \(operation.operationClass.rawValue) needs (\(policy.summary))\(tally.counted.isEmpty ? "" : "; counted: \(tally.counted.joined(separator: ", "))")\(notCounted.isEmpty ? "" : "; not counted: \(notCounted)"); nothing was run"
            )
        }
        return AuthorizedRequest(record: record, request: request, operation: operation, policy: policy, tally: tally)
    }

    /// Claims an approved request for `executor`: the run-once guard (a conditional update that holds across nodes),
    /// then an intent entry in the audit log (`state.request.<id> = executing`, checkpointed), before anything runs.
    /// If the intent cannot be recorded the request is marked failed and nothing runs.
    public func claim(_ authorized: AuthorizedRequest, by executor: String, at date: Date? = nil) async throws {
        guard try await store.claimAdminRequest(id: authorized.record.id, by: executor, at: date ?? clock.now()) else {
            throw QuorumError(.alreadyExecuted, "request \(authorized.record.id.prefix(16))… was executed by someone else meanwhile; a request runs at most once")
        }
        let intent = SecurityState.Change.request(authorized.record.id, "executing")
        do {
            try await audit.record(
                AuditEvent(
                    actor: "custodian:\(executor)", action: "admin.claim", subject: authorized.record.id,
                    details: [intent.0: intent.1, "operation": authorized.operation.rawValue, "approvers": authorized.tally.counted.joined(separator: ",")]
                )
            )
        } catch {
            try? await store.finishAdminRequest(id: authorized.record.id, state: .failed, outcome: AdminService.json(["error": "the claim could not be audited: \(error)"]))
            throw error
        }
    }

    /// Records how a claimed request ended in the store. `outcome` is what every custodian may read: never a secret.
    /// (The audit entry that ends it, with `state.request.<id>`, is the caller's.)
    public func finish(_ authorized: AuthorizedRequest, failure: (any Error)?, outcome: [String: String]) async throws {
        try await Self.finish(authorized, in: store, failure: failure, outcome: outcome)
    }

    /// ``finish(_:failure:outcome:)`` without a gate (a ceremony whose token was closed meanwhile).
    public static func finish(_ authorized: AuthorizedRequest, in store: any QuorumStore, failure: (any Error)?, outcome: [String: String]) async throws {
        if let failure {
            try await store.finishAdminRequest(id: authorized.record.id, state: .failed, outcome: AdminService.json(["error": "\(failure)"]))
        } else {
            try await store.finishAdminRequest(id: authorized.record.id, state: .executed, outcome: AdminService.json(outcome))
        }
    }
}
