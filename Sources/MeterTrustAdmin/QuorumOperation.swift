import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore

/// An operation that runs only under quorum, as a value: its parameters parsed and checked into a typed struct once
/// (``parse(_:)``; nothing past parsing reads the request's `[String: String]`), then checked before approvals are
/// collected (``preflight(in:)``), checked again just before it runs (``checkExecution(requestID:in:)``), and run
/// (``run(requestID:in:)``).
///
/// Each module registers its own operations in a ``QuorumOperationRegistry``; ``AdminService`` dispatches through
/// the registry and knows no operation by name, so a new module adds an operation without editing the service. The
/// request's wire form (canonical JSON with `operation` and string `parameters`) does not change.
public protocol QuorumOperation: Sendable {
    /// The parsed, checked parameters.
    associatedtype Parameters: Sendable

    /// The operation (its name on the wire and its policy class).
    static var operation: AdminOperation { get }

    /// Parses and checks the request's string parameters (already checked for names and sizes by
    /// ``AdminOperation/check(_:)``) into typed parameters, or refuses them.
    static func parse(_ raw: [String: String]) throws -> Parameters

    init(_ parameters: Parameters)
    var parameters: Parameters { get }

    /// What would lock the deployment out of its own quorum; checked when the request is made and again before it
    /// runs. Default: nothing.
    func checkLockOut(in context: QuorumOperationContext) async throws

    /// Everything that can be checked before approvals are collected, so nothing unrunnable waits for them (the
    /// lock-out check runs first, separately).
    func preflight(in context: QuorumOperationContext) async throws

    /// Checked after the quorum was met and before the request is claimed (a refusal here leaves it pending).
    /// Default: ``checkLockOut(in:)``.
    func checkExecution(requestID: String, in context: QuorumOperationContext) async throws

    /// Runs the operation once, after the request was claimed.
    func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult
}

extension QuorumOperation {
    public func checkLockOut(in context: QuorumOperationContext) async throws {}

    public func checkExecution(requestID: String, in context: QuorumOperationContext) async throws {
        try await checkLockOut(in: context)
    }

    /// The operation parsed from a request's string parameters.
    public static func parsed(_ raw: [String: String]) throws -> Self {
        try operation.check(raw)
        return Self(try parse(raw))
    }
}

/// What an operation under quorum works with: the service (hierarchy, store, audit log), the gate over the verified
/// audit log, and the clock.
public struct QuorumOperationContext: Sendable {
    public let service: AdminService
    public let gate: QuorumGate

    public init(service: AdminService, gate: QuorumGate) {
        self.service = service
        self.gate = gate
    }

    public var hierarchy: CAHierarchy { service.hierarchy }
    public var store: any MeterTrustStore { service.store }
    public var clock: any WallClock { service.clock }
}

/// What an operation produced: the outcome everyone may read, the security-state changes its audit entry records
/// (``SecurityState/Change``), and for `backup.export` the backup document, which only the executor receives.
public struct QuorumOperationResult: Sendable {
    public var outcome: [String: String]
    public var state: [String: String]
    public var backup: String?

    public init(outcome: [String: String], state: [String: String] = [:], backup: String? = nil) {
        self.outcome = outcome
        self.state = state
        self.backup = backup
    }

    /// A result whose audit entry records `changes`.
    public init(outcome: [String: String], changes: [(String, String)], backup: String? = nil) {
        self.init(outcome: outcome, state: Dictionary(changes) { $1 }, backup: backup)
    }
}

/// The operations under quorum that can run, each registered by the module that defines it.
public struct QuorumOperationRegistry: Sendable {
    private var parsers: [AdminOperation: @Sendable ([String: String]) throws -> any QuorumOperation] = [:]

    /// An empty registry.
    public init() {}

    /// Registers `type` for its ``QuorumOperation/operation``; one type per operation (the last one registered wins).
    public mutating func register<Operation: QuorumOperation>(_ type: Operation.Type) {
        parsers[Operation.operation] = { raw in try Operation.parsed(raw) }
    }

    /// The operations registered.
    public var operations: Set<AdminOperation> { Set(parsers.keys) }

    /// The policy classes of the built-in modules and of every operation registered, each once, in that order: those
    /// the bootstrap ceremony sets a default policy for and `policy.set` accepts.
    public var operationClasses: [OperationClass] {
        var classes = OperationClass.builtIn
        for operation in operations.sorted(by: { $0.rawValue < $1.rawValue }) where !classes.contains(operation.operationClass) {
            classes.append(operation.operationClass)
        }
        return classes
    }

    /// The registered operation called `name` (a request's `operation`), or the refusal naming those there are.
    public func definition(named name: String) throws -> AdminOperation {
        guard let operation = parsers.keys.first(where: { $0.rawValue == name }) else {
            let known = operations.map(\.rawValue).sorted().joined(separator: ", ")
            throw QuorumError(.invalidRequest, "no module of this deployment runs \(name.prefix(64)); it runs \(known)")
        }
        return operation
    }

    /// The operation `operation` with `parameters` parsed and checked; refused if no module registered it.
    public func operation(_ operation: AdminOperation, parameters: [String: String]) throws -> any QuorumOperation {
        guard let parse = parsers[operation] else {
            throw QuorumError(.invalidRequest, "no module of this deployment runs \(operation.rawValue)")
        }
        return try parse(parameters)
    }

    /// The operation a request asks for.
    public func operation(of request: AdminRequest) throws -> any QuorumOperation {
        try operation(try definition(named: request.operation), parameters: request.parameters)
    }

    /// The operations MeterTrustAdmin defines: CAs, policies, custodians and backups.
    public static var standard: QuorumOperationRegistry {
        var registry = QuorumOperationRegistry()
        registry.registerAuthorityOperations()
        registry.registerPolicyOperations()
        registry.registerCustodianOperations()
        registry.registerBackupOperations()
        return registry
    }
}

/// Reading a request's string parameters into typed ones: refusals, never traps.
public struct QuorumParameters: Sendable {
    public let raw: [String: String]
    public let operation: AdminOperation

    public init(_ raw: [String: String], for operation: AdminOperation) {
        self.raw = raw
        self.operation = operation
    }

    /// A parameter that must be present.
    public func required(_ name: String) throws -> String {
        guard let value = raw[name] else { throw QuorumError(.invalidRequest, "\(operation.rawValue) needs parameter \(name)") }
        return value
    }

    public func optional(_ name: String) -> String? { raw[name] }

    /// `true` or `false`; `fallback` when absent.
    public func flag(_ name: String, default fallback: Bool) throws -> Bool {
        guard let value = raw[name] else { return fallback }
        switch value {
        case "true": return true
        case "false": return false
        default: throw QuorumError(.invalidRequest, "\(name) must be true or false")
        }
    }
}
