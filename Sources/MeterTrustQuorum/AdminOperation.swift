/// An operation that runs only under quorum, as a value: its name on the wire, its policy class and the parameters it
/// takes. The set is open: each module declares its own operations (``caCreate`` and the others here are MeterTrust
/// Admin's; Onboarding declares `account.create`) and registers them with the service, which knows none by name.
/// Two operations are the same operation when their names are.
public struct AdminOperation: Sendable, Hashable, CustomStringConvertible {
    /// The name on the wire (`ca.create`): lowercase letters, digits, `-` and `.`.
    public let rawValue: String
    public let operationClass: OperationClass
    /// Parameters that must be present.
    public let requiredParameters: Set<String>
    /// Parameters that may be present.
    public let optionalParameters: Set<String>

    public init(_ name: String, class operationClass: OperationClass, required: Set<String> = [], optional: Set<String> = []) {
        precondition(Self.isWellFormedName(name), "operation names are lowercase letters, digits, - and .")
        self.rawValue = name
        self.operationClass = operationClass
        self.requiredParameters = required
        self.optionalParameters = optional
    }

    public var description: String { rawValue }

    public static func == (lhs: AdminOperation, rhs: AdminOperation) -> Bool { lhs.rawValue == rhs.rawValue }
    public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    /// Create an operational, admin, service or operator CA (key in the HSM, certificate from the root).
    public static let caCreate = AdminOperation(
        "ca.create", class: .caKeyCreate, required: ["kind", "name"], optional: ["organization", "curve", "backup", "shards"]
    )
    /// Destroy a CA's key in the HSM.
    public static let caDestroy = AdminOperation("ca.destroy", class: .caKeyDestroy, required: ["name"])
    /// Revoke a CA's certificate.
    public static let caRevoke = AdminOperation("ca.revoke", class: .caCertificate, required: ["name"], optional: ["reason"])
    /// Register a manufacturer: create its Manufacturer Device CA.
    public static let manufacturerRegister = AdminOperation(
        "manufacturer.register", class: .manufacturerRegister, required: ["name"], optional: ["organization", "curve", "backup", "shards"]
    )
    /// Change the quorum policy of an operation class.
    public static let policySet = AdminOperation(
        "policy.set", class: .policyChange, required: ["class", "required"], optional: ["roles", "requester-may-approve"]
    )
    public static let custodianAdd = AdminOperation("custodian.add", class: .custodianAdd, required: ["certificate"])
    public static let custodianRemove = AdminOperation("custodian.remove", class: .custodianRemove, required: ["name"])
    /// Export the CA keys marked for backup, wrapped under the backup key.
    public static let backupExport = AdminOperation("backup.export", class: .backupExport, optional: ["cas"])
    /// Replace the backup key and re-split it and the security officer's PIN among the current security officers.
    /// Approved here, run as a ceremony on the HSM host (`metertrust backup reshare --request ID`), where k security
    /// officers' admin keys rebuild the SO PIN.
    public static let backupReshare = AdminOperation("backup.reshare", class: .backupRestore)

    /// The operations declared here, below the registry (MeterTrustAdmin registers them; other modules declare theirs).
    public static let builtIn: [AdminOperation] = [
        .caCreate, .caDestroy, .caRevoke, .manufacturerRegister, .policySet, .custodianAdd, .custodianRemove, .backupExport, .backupReshare,
    ]

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

    static func isWellFormedName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }
}
