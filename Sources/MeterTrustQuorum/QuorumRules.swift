import Foundation
import MeterTrustCore
import MeterTrustStore

/// Where a request stands against its policy.
public struct QuorumTally: Sendable, Hashable, Codable {
    public var required: Int
    /// Custodians whose approvals count, in the order received.
    public var counted: [String]
    /// Approvals on record that do not count now, with why (custodian removed since, role changed...).
    public var notCounted: [String: String]
    public var isMet: Bool { counted.count >= required }
}

/// The rules of M-of-N approval. Pure functions of the request, the policy, the registry and the clock.
public enum QuorumRules {
    /// Checks one approval for one request; returns the approving custodian or throws why it does not count.
    ///
    /// An approval counts when: it names this request; its custodian is registered and not removed, under the
    /// certificate the approval names; its signature verifies over this request's canonical bytes with that
    /// certificate's key; the custodian's role is one the policy accepts; the requester approves their own request
    /// only if the policy allows it; the request is still pending and not expired.
    public static func check(
        _ approval: Approval, for request: AdminRequestRecord, policy: QuorumPolicy, registry: CustodianRegistry, now: Date
    ) throws -> Custodian {
        guard approval.request == request.id else {
            throw QuorumError(
                .wrongRequest,
                "the approval by \(approval.custodian) is for request \(approval.request.prefix(16))…, not \(request.id.prefix(16))…; an approval never counts for another request"
            )
        }
        guard let custodian = registry.custodian(named: approval.custodian) else {
            throw QuorumError(.unknownCustodian, "\(approval.custodian) is not a registered custodian")
        }
        guard custodian.isActive else {
            throw QuorumError(.removedCustodian, "custodian \(custodian.name) was removed; their approvals no longer count")
        }
        guard approval.certificate == custodian.record.fingerprintSHA256 else {
            throw QuorumError(.forgedApproval, "the approval names a certificate that is not \(custodian.name)'s registered admin certificate")
        }
        guard approval.verifies(document: request.document, key: custodian.publicKey) else {
            throw QuorumError(
                .forgedApproval,
                "the approval's signature does not verify with \(custodian.name)'s admin certificate over request \(request.id.prefix(16))…"
            )
        }
        guard policy.approverRoles.contains(custodian.role) else {
            throw QuorumError(
                .wrongRole,
                "\(custodian.name) is a \(custodian.role.rawValue); \(policy.operationClass.rawValue) needs approvals from \(policy.approverRoles.map(\.rawValue).joined(separator: " or "))"
            )
        }
        // The requester the document names (signed by every approver), not the store's copy of it.
        let document = try AdminRequest.parse(request.document)
        if custodian.name == document.requester && !policy.requesterMayApprove {
            throw QuorumError(
                .selfApproval,
                "\(custodian.name) made request \(request.id.prefix(16))…; the \(policy.operationClass.rawValue) policy does not count the requester's own approval"
            )
        }
        guard request.state == .pending else {
            throw QuorumError(.alreadyExecuted, "request \(request.id.prefix(16))… is \(request.state.rawValue); a request runs at most once")
        }
        // The expiry the approvers signed, not the store's copy of it (a row anyone with the database can extend).
        let expires = try document.expiresDate
        guard now < expires else {
            throw QuorumError(.expiredRequest, "request \(request.id.prefix(16))… expired at \(AdminRequest.timestamp(expires))")
        }
        return custodian
    }

    /// Re-checks every stored approval of `request` now and counts the distinct custodians that pass.
    public static func tally(
        _ request: AdminRequestRecord, approvals: [ApprovalRecord], policy: QuorumPolicy, registry: CustodianRegistry, now: Date
    ) -> QuorumTally {
        var tally = QuorumTally(required: policy.required, counted: [], notCounted: [:])
        for record in approvals {
            do {
                let approval = try Approval.parse(record.document)
                guard approval.custodian == record.custodian else {
                    throw QuorumError(.forgedApproval, "the stored approval names \(approval.custodian), not \(record.custodian)")
                }
                let custodian = try check(approval, for: request, policy: policy, registry: registry, now: now)
                if !tally.counted.contains(custodian.name) { tally.counted.append(custodian.name) }
            } catch {
                tally.notCounted[record.custodian] = "\(error)"
            }
        }
        return tally
    }
}
