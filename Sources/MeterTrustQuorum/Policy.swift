import MeterTrustStore

/// A custodian's role, carried in the OU of their admin certificate.
public enum CustodianRole: String, Sendable, Hashable, Codable, CaseIterable {
    /// Approves key, backup, custodian and policy operations.
    case securityOfficer = "security-officer"
    /// Approves CA certificate and manufacturer operations.
    case pkiOfficer = "pki-officer"
    /// Reads requests and the audit log; never counts towards a quorum.
    case auditor

    public static func parse(_ text: String) throws -> CustodianRole {
        guard let role = CustodianRole(rawValue: text) else {
            throw QuorumError(.invalidRequest, "unknown role \"\(text)\": use one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return role
    }
}

/// A class of operations that share one quorum policy.
public enum OperationClass: String, Sendable, Hashable, Codable, CaseIterable {
    case caKeyCreate = "ca-key-create"
    case caKeyDestroy = "ca-key-destroy"
    case caCertificate = "ca-certificate"
    case manufacturerRegister = "manufacturer-register"
    case policyChange = "policy-change"
    case custodianAdd = "custodian-add"
    case custodianRemove = "custodian-remove"
    case backupExport = "backup-export"
    case backupRestore = "backup-restore"
    case firmwareRelease = "firmware-release"

    public static func parse(_ text: String) throws -> OperationClass {
        guard let value = OperationClass(rawValue: text) else {
            throw QuorumError(.invalidRequest, "unknown operation class \"\(text)\": use one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }
}

/// How many distinct approvals of which roles an operation class needs, and whether the requester's own counts.
public struct QuorumPolicy: Sendable, Hashable, Codable {
    public var operationClass: OperationClass
    public var required: Int
    public var approverRoles: [CustodianRole]
    public var requesterMayApprove: Bool

    public init(operationClass: OperationClass, required: Int, approverRoles: [CustodianRole], requesterMayApprove: Bool = false) {
        self.operationClass = operationClass
        self.required = required
        self.approverRoles = approverRoles
        self.requesterMayApprove = requesterMayApprove
    }

    /// The defaults set by the bootstrap ceremony: 2 approvals for every class (2 of the 3 first custodians), from
    /// security officers, and pki officers too for CA certificates, manufacturers and firmware; the requester's own
    /// approval does not count.
    public static func defaults(required: Int = 2) -> [QuorumPolicy] {
        OperationClass.allCases.map { operationClass in
            let roles: [CustodianRole]
            switch operationClass {
            case .caCertificate, .manufacturerRegister, .firmwareRelease: roles = [.securityOfficer, .pkiOfficer]
            default: roles = [.securityOfficer]
            }
            return QuorumPolicy(operationClass: operationClass, required: required, approverRoles: roles)
        }
    }

    public init(_ record: QuorumPolicyRecord) throws {
        self.init(
            operationClass: try OperationClass.parse(record.operationClass), required: record.required,
            approverRoles: try record.approverRoles.map(CustodianRole.parse), requesterMayApprove: record.requesterMayApprove
        )
    }

    public func record(updatedBy request: String?) -> QuorumPolicyRecord {
        QuorumPolicyRecord(
            operationClass: operationClass.rawValue, required: required, approverRoles: approverRoles.map(\.rawValue),
            requesterMayApprove: requesterMayApprove, updatedBy: request
        )
    }

    /// The policy as the audit log records it (``SecurityState``): `required=2 roles=a,b requester-may-approve=false`.
    public var stateText: String {
        "required=\(required) roles=\(approverRoles.map(\.rawValue).joined(separator: ",")) requester-may-approve=\(requesterMayApprove)"
    }

    public var summary: String {
        "\(required) of [\(approverRoles.map(\.rawValue).joined(separator: ", "))]\(requesterMayApprove ? ", requester counts" : "")"
    }
}
