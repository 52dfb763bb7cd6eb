import Foundation
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

/// The quorum rules applied to a stored request, from the store alone: who may run what, now, once.
///
/// Both the admin service (which runs operations in the server) and the ceremonies that run on the HSM host without a
/// user login (``KeyBackup/reshare(module:tokenLabel:requestID:custodianKeys:store:executor:)``) pass through here,
/// so there is one judge of "approved".
public struct QuorumGate: Sendable {
    public let store: any QuorumStore

    public init(store: any QuorumStore) {
        self.store = store
    }

    public func policy(for operationClass: OperationClass) async throws -> QuorumPolicy {
        guard let record = try await store.quorumPolicies().first(where: { $0.operationClass == operationClass.rawValue }) else {
            throw QuorumError(.notBootstrapped, "no quorum policy for \(operationClass.rawValue): run the bootstrap ceremony (metertrust admin bootstrap)")
        }
        return try QuorumPolicy(record)
    }

    /// Checks that request `id` is pending, unexpired and approved by enough distinct custodians now; `expected`, if
    /// given, is the only operation accepted. Changes nothing.
    public func approved(id: String, expected: AdminOperation? = nil, now: Date = Date()) async throws -> AuthorizedRequest {
        guard let record = try await store.adminRequest(id: id) else {
            throw QuorumError(.wrongRequest, "there is no request \(id)")
        }
        let request = try AdminRequest.parse(record.document)
        let operation = try request.adminOperation
        if let expected, operation != expected {
            throw QuorumError(.wrongRequest, "request \(id.prefix(16))… is \(operation.rawValue), not \(expected.rawValue)")
        }
        guard record.state == .pending else {
            throw QuorumError(.alreadyExecuted, "request \(id.prefix(16))… is \(record.state.rawValue); a request runs at most once")
        }
        guard now < record.expiresAt else {
            throw QuorumError(.expiredRequest, "request \(id.prefix(16))… expired at \(record.expiresAt); make a new request")
        }
        let policy = try await policy(for: operation.operationClass)
        let registry = try CustodianRegistry(try await store.custodians())
        let tally = QuorumRules.tally(record, approvals: try await store.approvals(requestID: id), policy: policy, registry: registry, now: now)
        guard tally.isMet else {
            let notCounted = tally.notCounted.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            throw QuorumError(
                .belowQuorum,
                "request \(id.prefix(16))… has \(tally.counted.count) of the \(policy.required) approvals \(operation.operationClass.rawValue) needs (\(policy.summary))\(tally.counted.isEmpty ? "" : "; counted: \(tally.counted.joined(separator: ", "))")\(notCounted.isEmpty ? "" : "; not counted: \(notCounted)"); nothing was run"
            )
        }
        return AuthorizedRequest(record: record, request: request, operation: operation, policy: policy, tally: tally)
    }

    /// Claims an approved request for `executor` (the run-once guard, a conditional update that holds across nodes).
    public func claim(_ authorized: AuthorizedRequest, by executor: String, at date: Date = Date()) async throws {
        guard try await store.claimAdminRequest(id: authorized.record.id, by: executor, at: date) else {
            throw QuorumError(.alreadyExecuted, "request \(authorized.record.id.prefix(16))… was executed by someone else meanwhile; a request runs at most once")
        }
    }

    /// Records how a claimed request ended. `outcome` is what every custodian may read: never a secret.
    public func finish(_ authorized: AuthorizedRequest, failure: (any Error)?, outcome: [String: String]) async throws {
        if let failure {
            try await store.finishAdminRequest(id: authorized.record.id, state: .failed, outcome: AdminService.json(["error": "\(failure)"]))
        } else {
            try await store.finishAdminRequest(id: authorized.record.id, state: .executed, outcome: AdminService.json(outcome))
        }
    }
}
