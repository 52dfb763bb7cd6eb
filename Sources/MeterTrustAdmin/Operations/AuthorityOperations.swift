import Foundation
import MeterTrustCore
import MeterTrustAudit
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore

extension QuorumOperationRegistry {
    /// `ca.create`, `manufacturer.register`, `ca.destroy`, `ca.revoke`.
    public mutating func registerAuthorityOperations() {
        register(CreateAuthorityOperation.self)
        register(RegisterManufacturerOperation.self)
        register(DestroyAuthorityOperation.self)
        register(RevokeAuthorityOperation.self)
    }
}

/// What creating a CA under quorum takes.
public struct AuthorityCreationParameters: Sendable, Hashable {
    public var role: CertificateAuthorityRole
    public var name: String
    public var organization: String?
    public var curve: ECCurve
    public var backup: Bool
    /// How many shards the new CA's certificates are spread over (`shards=N`, default 256), fixed at creation.
    public var shards: ShardCount

    static func parse(_ parameters: QuorumParameters, role: CertificateAuthorityRole) throws -> AuthorityCreationParameters {
        let curve: ECCurve
        if let text = parameters.optional("curve") {
            guard let parsed = ECCurve(rawValue: text) else { throw QuorumError(.invalidRequest, "curve must be P-256 or P-384") }
            curve = parsed
        } else {
            curve = .p256
        }
        var shards = ShardCount.default
        if let text = parameters.optional("shards") {
            guard let value = Int(text), let parsed = ShardCount(value) else {
                throw QuorumError(.invalidRequest, ShardCount.refusal(of: text, option: "shards"))
            }
            shards = parsed
        }
        return AuthorityCreationParameters(
            role: role, name: try parameters.required("name"), organization: parameters.optional("organization"), curve: curve,
            backup: try parameters.flag("backup", default: false), shards: shards
        )
    }

    func create(in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let authority = try await context.hierarchy.createAuthority(
            role: role, name: name, organization: organization, curve: curve, backup: backup, shards: shards
        )
        return QuorumOperationResult(
            outcome: [
                "ca": authority.name, "role": role.rawValue, "serial": authority.certificate.serialHex, "key": authority.signingKey.key.label,
                "shards": String(shards.value),
            ]
        )
    }
}

/// `ca.create`: an operational, admin, service or operator CA (key in the HSM, certificate from the root).
public struct CreateAuthorityOperation: QuorumOperation {
    public static let operation = AdminOperation.caCreate
    /// The roles `kind` may name: the root exists once, manufacturers are registered by `manufacturer.register`.
    public static let kinds: [CertificateAuthorityRole] = [.operational, .admin, .service, .operator]
    public let parameters: AuthorityCreationParameters
    public init(_ parameters: AuthorityCreationParameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> AuthorityCreationParameters {
        let parameters = QuorumParameters(raw, for: operation)
        let kinds = CreateAuthorityOperation.kinds
        guard let role = CertificateAuthorityRole(rawValue: try parameters.required("kind")), kinds.contains(role) else {
            throw QuorumError(
                .invalidRequest,
                "ca.create makes \(kinds.map(\.rawValue).joined(separator: ", ")) CAs (kind=\(kinds.map(\.rawValue).joined(separator: "|"))); register manufacturers with manufacturer.register"
            )
        }
        return try AuthorityCreationParameters.parse(parameters, role: role)
    }

    /// A second Admin CA would leave the admin API unable to tell which one certifies custodians.
    public func checkLockOut(in context: QuorumOperationContext) async throws {
        guard parameters.role == .admin else { return }
        let admins = try await context.hierarchy.authorities(role: .admin).filter { $0.destroyedAt == nil }
        if let existing = admins.first {
            throw QuorumError(
                .lockOut,
                "the Admin CA \(existing.name) exists: a second one would leave the admin API unable to tell which certifies custodians; there is one Admin CA per deployment"
            )
        }
    }

    public func preflight(in context: QuorumOperationContext) async throws {}

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        try await parameters.create(in: context)
    }
}

/// `manufacturer.register`: the manufacturer's Manufacturer Device CA.
public struct RegisterManufacturerOperation: QuorumOperation {
    public static let operation = AdminOperation.manufacturerRegister
    public let parameters: AuthorityCreationParameters
    public init(_ parameters: AuthorityCreationParameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> AuthorityCreationParameters {
        try AuthorityCreationParameters.parse(QuorumParameters(raw, for: operation), role: .manufacturer)
    }

    public func preflight(in context: QuorumOperationContext) async throws {}

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        try await parameters.create(in: context)
    }
}

/// Refuses destroying or revoking the Admin CA in use or the root it chains to: every custodian certificate would
/// stop verifying.
private func checkNotQuorumAnchor(_ name: String, operation: AdminOperation, in context: QuorumOperationContext) async throws {
    guard let record = try await context.store.certificateAuthority(named: name) else { return }
    if record.role == .admin {
        throw QuorumError(
            .lockOut, "CA \(name) is the Admin CA that certifies every custodian: \(operation.rawValue) would leave nobody able to approve anything"
        )
    }
    if record.role == .root {
        throw QuorumError(.lockOut, "CA \(name) is the root the Admin CA chains to: \(operation.rawValue) would invalidate every custodian certificate")
    }
}

/// `ca.destroy`: destroys a CA's key in the HSM.
public struct DestroyAuthorityOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {
        public var name: String
    }

    public static let operation = AdminOperation.caDestroy
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        Parameters(name: try QuorumParameters(raw, for: operation).required("name"))
    }

    public func checkLockOut(in context: QuorumOperationContext) async throws {
        try await checkNotQuorumAnchor(parameters.name, operation: Self.operation, in: context)
    }

    public func preflight(in context: QuorumOperationContext) async throws {
        _ = try await context.hierarchy.authority(named: parameters.name, toIssue: false)
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        try await context.hierarchy.destroyAuthority(named: parameters.name)
        return QuorumOperationResult(outcome: ["ca": parameters.name, "destroyed": "true"], changes: [SecurityState.Change.destroyed(parameters.name)])
    }
}

/// `ca.revoke`: revokes a CA's certificate.
public struct RevokeAuthorityOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {
        public var name: String
        /// RFC 5280 reason code.
        public var reason: Int
    }

    public static let operation = AdminOperation.caRevoke
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        let parameters = QuorumParameters(raw, for: operation)
        var reason = 0
        if let text = parameters.optional("reason") {
            guard let code = Int(text) else { throw QuorumError(.invalidRequest, "reason must be an RFC 5280 reason code") }
            reason = code
        }
        return Parameters(name: try parameters.required("name"), reason: reason)
    }

    public func checkLockOut(in context: QuorumOperationContext) async throws {
        try await checkNotQuorumAnchor(parameters.name, operation: Self.operation, in: context)
    }

    public func preflight(in context: QuorumOperationContext) async throws {
        _ = try await context.hierarchy.authority(named: parameters.name, toIssue: false)
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let name = parameters.name
        guard let record = try await context.store.certificateAuthority(named: name), let parent = record.parent else {
            throw PKIError(.unknownAuthority, "there is no CA named \"\(name)\" under the root")
        }
        try await context.hierarchy.revokeAuthority(named: name, reason: parameters.reason)
        return QuorumOperationResult(
            outcome: ["ca": name, "revoked": "true"],
            changes: [SecurityState.Change.revoked(issuer: parent, serial: record.certificateSerial, reason: parameters.reason, at: context.clock.now())]
        )
    }
}
