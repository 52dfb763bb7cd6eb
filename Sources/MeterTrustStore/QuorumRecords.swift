import Foundation

/// A custodian: a person who holds an admin certificate and may approve operations under quorum.
public struct CustodianRecord: Sendable, Hashable, Codable {
    /// Unique name (the certificate's CN).
    public var name: String
    /// Role (the certificate's OU), e.g. `security-officer`.
    public var role: String
    /// The custodian's admin certificate, DER.
    public var certificateDER: [UInt8]
    /// SHA-256 of the certificate DER, lowercase hex; unique.
    public var fingerprintSHA256: String
    public var registeredAt: Date
    /// Id of the request that registered this custodian; nil for the bootstrap ceremony.
    public var registeredBy: String?
    /// Set when the custodian is removed; a removed custodian's approvals no longer count.
    public var removedAt: Date?

    public init(
        name: String, role: String, certificateDER: [UInt8], fingerprintSHA256: String, registeredAt: Date = Date(),
        registeredBy: String? = nil, removedAt: Date? = nil
    ) {
        self.name = name
        self.role = role
        self.certificateDER = certificateDER
        self.fingerprintSHA256 = fingerprintSHA256
        self.registeredAt = registeredAt
        self.registeredBy = registeredBy
        self.removedAt = removedAt
    }
}

/// How many approvals of which roles an operation class needs.
public struct QuorumPolicyRecord: Sendable, Hashable, Codable {
    public var operationClass: String
    public var required: Int
    public var approverRoles: [String]
    public var requesterMayApprove: Bool
    public var updatedAt: Date
    /// Id of the request that set this policy; nil for the defaults set at bootstrap.
    public var updatedBy: String?

    public init(operationClass: String, required: Int, approverRoles: [String], requesterMayApprove: Bool, updatedAt: Date = Date(), updatedBy: String? = nil) {
        self.operationClass = operationClass
        self.required = required
        self.approverRoles = approverRoles
        self.requesterMayApprove = requesterMayApprove
        self.updatedAt = updatedAt
        self.updatedBy = updatedBy
    }
}

/// A request for an operation under quorum, as submitted: its canonical document and where it stands.
public struct AdminRequestRecord: Sendable, Hashable, Codable {
    public enum State: String, Sendable, Hashable, Codable {
        /// Waiting for approvals.
        case pending
        /// Claimed for execution (the run-once guard); becomes executed or failed.
        case executing
        case executed
        case failed
    }

    /// SHA-256 of `document`, lowercase hex: the request's content address.
    public var id: String
    /// The canonical request document (what approvers sign).
    public var document: [UInt8]
    public var operation: String
    public var requester: String
    public var createdAt: Date
    public var expiresAt: Date
    public var state: State
    public var executedAt: Date?
    public var executedBy: String?
    /// What the execution produced or why it failed (JSON text).
    public var outcome: String?

    public init(
        id: String, document: [UInt8], operation: String, requester: String, createdAt: Date, expiresAt: Date,
        state: State = .pending, executedAt: Date? = nil, executedBy: String? = nil, outcome: String? = nil
    ) {
        self.id = id
        self.document = document
        self.operation = operation
        self.requester = requester
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.state = state
        self.executedAt = executedAt
        self.executedBy = executedBy
        self.outcome = outcome
    }
}

/// One custodian's approval of one request. (request, custodian) is unique.
public struct ApprovalRecord: Sendable, Hashable, Codable {
    public var requestID: String
    public var custodian: String
    /// The approval document as received (signature included).
    public var document: [UInt8]
    public var receivedAt: Date

    public init(requestID: String, custodian: String, document: [UInt8], receivedAt: Date = Date()) {
        self.requestID = requestID
        self.custodian = custodian
        self.document = document
        self.receivedAt = receivedAt
    }
}

/// The backup key's public description: where it is and its shares (each encrypted to one custodian), and the shares
/// of the security officer's PIN, which exists nowhere else once the backup-key ceremony changed it.
public struct BackupKeyRecord: Sendable, Hashable, Codable {
    /// CKA_LABEL of the backup key on the token.
    public var label: String
    public var threshold: Int
    /// The encrypted shares document (JSON).
    public var shares: [UInt8]
    /// Key check value (lets a restore tell a wrong reconstruction), lowercase hex.
    public var keyCheckValue: String
    public var createdAt: Date
    /// The encrypted shares of the security officer's PIN (JSON); nil for a backup key made before the PIN was split.
    public var securityOfficerPINShares: [UInt8]?

    public init(
        label: String, threshold: Int, shares: [UInt8], keyCheckValue: String, createdAt: Date = Date(), securityOfficerPINShares: [UInt8]? = nil
    ) {
        self.label = label
        self.threshold = threshold
        self.shares = shares
        self.keyCheckValue = keyCheckValue
        self.createdAt = createdAt
        self.securityOfficerPINShares = securityOfficerPINShares
    }
}
