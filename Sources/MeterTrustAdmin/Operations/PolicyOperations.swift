import Foundation
import MeterTrustAudit
import MeterTrustQuorum
import MeterTrustStore

extension QuorumOperationRegistry {
    /// `policy.set`.
    public mutating func registerPolicyOperations() {
        register(SetPolicyOperation.self)
    }
}

/// `policy.set`: changes the quorum policy of an operation class.
public struct SetPolicyOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {
        public var operationClass: OperationClass
        public var required: Int
        /// Absent: the current policy's roles.
        public var roles: [CustodianRole]?
        /// Absent: the current policy's rule.
        public var requesterMayApprove: Bool?
    }

    public static let operation = AdminOperation.policySet
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        let parameters = QuorumParameters(raw, for: operation)
        // Any well-formed name here; preflight refuses a class no registered operation has.
        let operationClass = try OperationClass.parse(try parameters.required("class"), among: nil)
        guard let required = Int(try parameters.required("required")), required >= 1 else {
            throw QuorumError(.invalidRequest, "required must be a whole number of approvals, at least 1")
        }
        let roles = try parameters.optional("roles").map { try $0.split(separator: ",").map { try CustodianRole.parse(String($0)) } }
        guard roles?.contains(.auditor) != true else { throw QuorumError(.invalidRequest, "auditors never approve") }
        return Parameters(
            operationClass: operationClass, required: required, roles: roles,
            requesterMayApprove: parameters.optional("requester-may-approve").map { $0 == "true" }
        )
    }

    /// The policy this request sets, completed from the current one; refused if no quorum could ever meet it.
    func proposedPolicy(gate: QuorumGate) async throws -> QuorumPolicy {
        let current = try await gate.policy(for: parameters.operationClass)
        let roles = parameters.roles ?? current.approverRoles
        let eligible = try await gate.registry().active.filter { roles.contains($0.role) }.count
        guard parameters.required <= eligible else {
            throw QuorumError(
                .invalidRequest,
                "\(parameters.required) approvals from [\(roles.map(\.rawValue).joined(separator: ", "))] can never be met: \(eligible) such custodians are registered"
            )
        }
        return QuorumPolicy(
            operationClass: parameters.operationClass, required: parameters.required, approverRoles: roles,
            requesterMayApprove: parameters.requesterMayApprove ?? current.requesterMayApprove
        )
    }

    public func preflight(in context: QuorumOperationContext) async throws {
        _ = try OperationClass.parse(parameters.operationClass.rawValue, among: context.service.operations.operationClasses)
        _ = try await proposedPolicy(gate: context.gate)
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let policy = try await proposedPolicy(gate: context.gate)
        try await context.store.setQuorumPolicy(policy.record(updatedBy: requestID))
        return QuorumOperationResult(
            outcome: ["class": policy.operationClass.rawValue, "policy": policy.summary],
            changes: [SecurityState.Change.policy(policy.operationClass.rawValue, policy.stateText)]
        )
    }
}
