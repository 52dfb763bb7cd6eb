/// The operations that run only under quorum, with the parameters each takes.
public enum AdminOperation: String, Sendable, Hashable, Codable, CaseIterable {
    /// Create an operational or admin CA (key in the HSM, certificate from the root).
    case caCreate = "ca.create"
    /// Destroy a CA's key in the HSM.
    case caDestroy = "ca.destroy"
    /// Revoke a CA's certificate.
    case caRevoke = "ca.revoke"
    /// Register a manufacturer: create its Manufacturer Device CA.
    case manufacturerRegister = "manufacturer.register"
    /// Change the quorum policy of an operation class.
    case policySet = "policy.set"
    case custodianAdd = "custodian.add"
    case custodianRemove = "custodian.remove"
    /// Export the CA keys marked for backup, wrapped under the backup key.
    case backupExport = "backup.export"
    /// Replace the backup key and re-split it and the security officer's PIN among the current security officers.
    /// Approved here, run as a ceremony on the HSM host (`metertrust backup reshare --request ID`), where k security
    /// officers' admin keys rebuild the SO PIN.
    case backupReshare = "backup.reshare"

    public var operationClass: OperationClass {
        switch self {
        case .caCreate: return .caKeyCreate
        case .caDestroy: return .caKeyDestroy
        case .caRevoke: return .caCertificate
        case .manufacturerRegister: return .manufacturerRegister
        case .policySet: return .policyChange
        case .custodianAdd: return .custodianAdd
        case .custodianRemove: return .custodianRemove
        case .backupExport: return .backupExport
        case .backupReshare: return .backupRestore
        }
    }

    /// Parameters that must be present.
    public var requiredParameters: Set<String> {
        switch self {
        case .caCreate: return ["kind", "name"]
        case .caDestroy, .custodianRemove: return ["name"]
        case .caRevoke: return ["name"]
        case .manufacturerRegister: return ["name"]
        case .policySet: return ["class", "required"]
        case .custodianAdd: return ["certificate"]
        case .backupExport, .backupReshare: return []
        }
    }

    /// Parameters that may be present.
    public var optionalParameters: Set<String> {
        switch self {
        case .caCreate, .manufacturerRegister: return ["organization", "curve", "backup", "shards"]
        case .caRevoke: return ["reason"]
        case .policySet: return ["roles", "requester-may-approve"]
        case .backupExport: return ["cas"]
        case .caDestroy, .custodianAdd, .custodianRemove, .backupReshare: return []
        }
    }

    public static func parse(_ text: String) throws -> AdminOperation {
        guard let operation = AdminOperation(rawValue: text) else {
            throw QuorumError(.invalidRequest, "unknown operation \"\(text)\": use one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return operation
    }

    /// Checks that `parameters` has every required and no unknown parameter, each value bounded.
    public func check(_ parameters: [String: String]) throws {
        let missing = requiredParameters.subtracting(parameters.keys)
        guard missing.isEmpty else {
            throw QuorumError(.invalidRequest, "\(rawValue) needs parameter\(missing.count > 1 ? "s" : "") \(missing.sorted().joined(separator: ", "))")
        }
        let unknown = Set(parameters.keys).subtracting(requiredParameters).subtracting(optionalParameters)
        guard unknown.isEmpty else {
            let allowed = requiredParameters.union(optionalParameters).sorted().joined(separator: ", ")
            throw QuorumError(.invalidRequest, "\(rawValue) does not take \(unknown.sorted().joined(separator: ", ")); it takes \(allowed)")
        }
        for (name, value) in parameters where value.utf8.count > 16 * 1024 || value.isEmpty {
            throw QuorumError(.invalidRequest, "parameter \(name) must be 1 to 16384 bytes")
        }
    }
}
