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

/// A class of operations that share one quorum policy. The set is open, like ``AdminOperation``'s: a module that
/// declares an operation declares its class, with the roles whose approvals count by default. Two classes are the
/// same class when their names are.
public struct OperationClass: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The name (`ca-key-create`), as policies, the store and the audit log's security state record it.
    public let rawValue: String
    /// Whose approvals count until a `policy.set` says otherwise: what the declaring module says; a class read back
    /// from a name (a policy row, a wire document) has the built-in default, since its policy says who approves.
    public let defaultApproverRoles: [CustodianRole]

    public init(_ name: String, defaultApproverRoles: [CustodianRole] = [.securityOfficer]) {
        precondition(AdminOperation.isWellFormedName(name), "class names are lowercase letters, digits, - and .")
        self.rawValue = name
        self.defaultApproverRoles = defaultApproverRoles
    }

    public var description: String { rawValue }
    public static func == (lhs: OperationClass, rhs: OperationClass) -> Bool { lhs.rawValue == rhs.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        self = try Self.parse(name, among: nil)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public static let caKeyCreate = OperationClass("ca-key-create")
    public static let caKeyDestroy = OperationClass("ca-key-destroy")
    public static let caCertificate = OperationClass("ca-certificate", defaultApproverRoles: [.securityOfficer, .pkiOfficer])
    public static let manufacturerRegister = OperationClass("manufacturer-register", defaultApproverRoles: [.securityOfficer, .pkiOfficer])
    public static let policyChange = OperationClass("policy-change")
    public static let custodianAdd = OperationClass("custodian-add")
    public static let custodianRemove = OperationClass("custodian-remove")
    public static let backupExport = OperationClass("backup-export")
    public static let backupRestore = OperationClass("backup-restore")
    public static let firmwareRelease = OperationClass("firmware-release", defaultApproverRoles: [.securityOfficer, .pkiOfficer])

    /// The classes MeterTrust's own modules below the registry declare.
    public static let builtIn: [OperationClass] = [
        .caKeyCreate, .caKeyDestroy, .caCertificate, .manufacturerRegister, .policyChange, .custodianAdd, .custodianRemove,
        .backupExport, .backupRestore, .firmwareRelease,
    ]

    /// The class named `text` among `known`; an unknown name is refused with the known ones listed, and a well-formed
    /// name outside `known` kept (a class the audit log set a policy for, declared by a module this build has) only
    /// when `known` is nil.
    public static func parse(_ text: String, among known: [OperationClass]?) throws -> OperationClass {
        if let known {
            guard let value = known.first(where: { $0.rawValue == text }) else {
                throw QuorumError(.invalidRequest, "unknown operation class \"\(text)\": use one of \(known.map(\.rawValue).joined(separator: ", "))")
            }
            return value
        }
        guard AdminOperation.isWellFormedName(text) else {
            throw QuorumError(.invalidRequest, "\"\(text.prefix(64))\" is not an operation class name")
        }
        return OperationClass(text)
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
    public static func defaults(for classes: [OperationClass] = OperationClass.builtIn, required: Int = 2) -> [QuorumPolicy] {
        classes.map { QuorumPolicy(operationClass: $0, required: required, approverRoles: $0.defaultApproverRoles) }
    }

    public init(_ record: QuorumPolicyRecord) throws {
        self.init(
            operationClass: try OperationClass.parse(record.operationClass, among: nil), required: record.required,
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
