import Crypto
import Foundation
import Logging
import MeterTrustAudit
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import X509

/// A request with everything known about it now.
public struct RequestStatus: Sendable, Codable {
    public let id: String
    public let request: AdminRequest
    public let state: AdminRequestRecord.State
    public let policy: QuorumPolicy
    public let tally: QuorumTally
    public let approvals: [String]
    public let executedBy: String?
    /// What the execution produced, readable by every custodian: never a secret.
    public let outcome: String?
    /// A `backup.export`'s backup document: only in the executing custodian's execute answer, never stored, never
    /// in any other answer or log.
    public var backup: String? = nil
    /// When each approval on record (``approvals``) was received, by custodian.
    public var approvedAt: [String: Date]? = nil
}

/// Operations under quorum: requests, approvals and execution, the custodian registry and policies. The admin API
/// and the CLI are thin over this. Every step is recorded in the audit log, refusals included.
///
/// The operations themselves are ``QuorumOperation`` values from `operations`, each registered by its own module;
/// the service knows none of them by name. Every rule that reads the time reads `clock`.
public struct AdminService: Sendable {
    public let hierarchy: CAHierarchy
    /// The whole store: the quorum's requests and approvals, the registry, backups (the hierarchy reads only its own
    /// views of it).
    public let store: any MeterTrustStore
    public let audit: AuditLog
    public let operations: QuorumOperationRegistry
    public let clock: any WallClock
    private let logger: Logger

    public init(
        hierarchy: CAHierarchy, store: any MeterTrustStore, audit: AuditLog, operations: QuorumOperationRegistry = .standard, clock: any WallClock = SystemClock(),
        logger: Logger = Logger(label: "metertrust.admin")
    ) {
        self.hierarchy = hierarchy
        self.store = store
        self.audit = audit
        self.operations = operations
        self.clock = clock
        self.logger = logger
    }

    // MARK: Registry and policies

    /// The quorum gate over the store and the verified audit log (every decision starts here).
    public func gate() async throws -> QuorumGate {
        try await QuorumGate(store: store, audit: audit, operations: operations, clock: clock)
    }

    /// The custodians the audit log backs.
    public func registry() async throws -> CustodianRegistry {
        try await gate().registry(now: clock.now())
    }

    public func policies() async throws -> [QuorumPolicy] {
        try await gate().policies()
    }

    public func policy(for operationClass: OperationClass) async throws -> QuorumPolicy {
        try await gate().policy(for: operationClass)
    }

    /// The admin CA custodian certificates must come from.
    public func adminAuthority() async throws -> CertificateAuthority {
        let admins = try await hierarchy.authorities(role: .admin).filter { $0.destroyedAt == nil }
        guard admins.count == 1 else {
            throw QuorumError(
                .notBootstrapped, admins.isEmpty ? "there is no Admin CA: create one with metertrust ca create-admin" : "there are several Admin CAs"
            )
        }
        return try await hierarchy.authority(named: admins[0].name)
    }

    /// The active custodian whose admin certificate is `der` (a TLS client, checked on every request), or a
    /// refusal: registered in the audit log, not removed, certificate neither revoked nor outside its validity.
    public func authenticate(certificateDER der: [UInt8]) async throws -> Custodian {
        guard let custodian = try await registry().activeCustodian(certificateDER: der) else {
            throw QuorumError(
                .unknownCustodian,
                "the client certificate is not the admin certificate of an active custodian (unregistered, removed, revoked or expired)"
            )
        }
        return custodian
    }

    // MARK: Bootstrap ceremony

    /// Registers the first custodians (certificates issued by the Admin CA) and the default policies: every class
    /// needs `required` approvals. Runs once per deployment; refused afterwards.
    public func bootstrap(custodianCertificates: [[UInt8]], required: Int = 2, actor: String) async throws -> [CustodianRecord] {
        try await audit.audited(actor: "custodian:\(actor)", action: "quorum.bootstrap", subject: "quorum", details: ["required": "\(required)"], recordingIntent: false) {
            // The log says whether the quorum exists; a deleted bootstrap row does not reopen the ceremony.
            let state = try await audit.verifiedState()
            guard !state.bootstrapped, try await !store.isQuorumBootstrapped() else {
                throw QuorumError(.underQuorumControl, "the quorum was bootstrapped already; add custodians with an approved custodian.add request")
            }
            let adminCA = try await adminAuthority()
            var records: [CustodianRecord] = []
            for der in custodianCertificates {
                let record = try await Custodian.admit(certificate: der, adminCA: adminCA, registeredBy: nil)
                guard !records.contains(where: { $0.name == record.name }) else {
                    throw QuorumError(.invalidCertificate, "custodian \(record.name) is named twice")
                }
                records.append(record)
            }
            let officers = records.filter { $0.role == CustodianRole.securityOfficer.rawValue }.count
            guard required >= 1, officers >= required, records.count > required || required == 1 else {
                throw QuorumError(
                    .invalidRequest,
                    "a quorum of \(required) needs at least \(required) security officers among more than \(required) custodians (here \(officers) of \(records.count)): a quorum must survive the loss of one custodian"
                )
            }
            let defaults = QuorumPolicy.defaults(for: operations.operationClasses, required: required)
            try await store.bootstrapQuorum(custodians: records, policies: defaults.map { $0.record(updatedBy: nil) })
            var details = ["custodians": records.map(\.name).joined(separator: ",")]
            details.add(SecurityState.Change.bootstrapped())
            for record in records { details.add(SecurityState.Change.custodian(record.name, role: record.role, fingerprint: record.fingerprintSHA256)) }
            for policy in defaults { details.add(SecurityState.Change.policy(policy.operationClass.rawValue, policy.stateText)) }
            return (records, details)
        }
    }

    // MARK: Requests

    /// Records a new request by `requester`; parses and checks it first (``QuorumOperation``: lock-out, preflight) so
    /// nothing unrunnable waits for approvals.
    public func submit(
        operation: AdminOperation, parameters: [String: String], requester: Custodian, lifetime: TimeInterval = 3600
    ) async throws -> RequestStatus {
        try await audit.audited(actor: "custodian:\(requester.name)", action: "admin.request", subject: operation.rawValue, recordingIntent: false) {
            let request = try AdminRequest(
                operation: operation, parameters: parameters, requester: requester.name, created: clock.now(), lifetime: lifetime
            )
            let parsed = try operations.operation(of: request)
            let context = QuorumOperationContext(service: self, gate: try await gate())
            try await parsed.checkLockOut(in: context)
            try await parsed.preflight(in: context)
            let record = AdminRequestRecord(
                id: request.id, document: request.canonicalBytes, operation: operation.rawValue, requester: requester.name,
                createdAt: try request.createdDate, expiresAt: try request.expiresDate
            )
            try await store.insertAdminRequest(record)
            logger.info("request recorded", metadata: ["request": "\(record.id)", "operation": "\(operation.rawValue)", "requester": "\(requester.name)"])
            return (try await status(id: record.id), ["request": record.id])
        }
    }

    public func status(id: String) async throws -> RequestStatus {
        guard let record = try await store.adminRequest(id: id) else {
            throw QuorumError(.unknownRequest, "there is no request \(id)")
        }
        let request = try AdminRequest.parse(record.document)
        let gate = try await gate()
        let policy = try await gate.policy(for: try operations.definition(named: request.operation).operationClass)
        let approvals = try await store.approvals(requestID: id)
        // The tally of a request that ran shows the approvals it ran on, judged at its execution time.
        var view = record
        view.state = .pending
        let expires = try request.expiresDate
        let now = record.executedAt.map { min($0, expires.addingTimeInterval(-1)) } ?? clock.now()
        let tally = QuorumRules.tally(view, approvals: approvals, policy: policy, registry: try await gate.registry(now: now), now: now)
        return RequestStatus(
            id: id, request: request, state: record.state, policy: policy, tally: tally, approvals: approvals.map(\.custodian),
            executedBy: record.executedBy, outcome: record.outcome,
            approvedAt: Dictionary(approvals.map { ($0.custodian, $0.receivedAt) }, uniquingKeysWith: min)
        )
    }

    public func requests(state: AdminRequestRecord.State?, limit: Int = 100) async throws -> [AdminRequestRecord] {
        try await store.adminRequests(state: state, limit: limit)
    }

    /// Checks and records one approval (uploaded by `uploader`, who need not be the approver: offline approvals
    /// travel as files). Returns the tally after it.
    public func approve(_ document: [UInt8], uploader: String) async throws -> RequestStatus {
        let approval = try? Approval.parse(document)
        return try await audit.audited(
            actor: "custodian:\(uploader)", action: "admin.approve", subject: approval?.request ?? "unparseable",
            details: ["approver": approval?.custodian ?? "?"], recordingIntent: false
        ) {
            let approval = try Approval.parse(document)
            guard let record = try await store.adminRequest(id: approval.request) else {
                throw QuorumError(.wrongRequest, "the approval by \(approval.custodian) is for request \(approval.request.prefix(16))…, which does not exist here")
            }
            let request = try AdminRequest.parse(record.document)
            let gate = try await gate()
            let policy = try await gate.policy(for: try operations.definition(named: request.operation).operationClass)
            let now = clock.now()
            let custodian = try QuorumRules.check(approval, for: record, policy: policy, registry: try await gate.registry(now: now), now: now)
            if let logged = gate.state.requests[record.id] {
                throw QuorumError(.alreadyExecuted, "request \(record.id.prefix(16))… is \(logged) in the audit log; a request runs at most once")
            }
            do {
                try await store.insertApproval(ApprovalRecord(requestID: record.id, custodian: custodian.name, document: approval.bytes))
            } catch let error as StoreError where error.code == .duplicate {
                throw QuorumError(.duplicateApproval, "\(custodian.name) already approved request \(record.id.prefix(16))…; each custodian counts once")
            }
            return (try await status(id: record.id), [:])
        }
    }

    /// Runs request `id` if, now, enough distinct registered custodians of the right roles approved it, it has
    /// not expired and it never ran. Below quorum nothing runs; the refusal is recorded in the audit log. The answer
    /// carries a backup document only here, for the executor.
    public func execute(id: String, by executor: Custodian) async throws -> RequestStatus {
        // The answer is made after the audit entry: until it is in the log, the state it changed is not trusted.
        let backup: String? = try await audit.audited(actor: "custodian:\(executor.name)", action: "admin.execute", subject: id, recordingIntent: false) {
            let gate = try await gate()
            let authorized = try await gate.approved(id: id)
            let operation = authorized.operation
            let parsed = try operations.operation(operation, parameters: authorized.request.parameters)
            let context = QuorumOperationContext(service: self, gate: gate)
            try await parsed.checkExecution(requestID: id, in: context)
            try await gate.claim(authorized, by: executor.name)
            let result: QuorumOperationResult
            do {
                result = try await parsed.run(requestID: id, in: context)
            } catch {
                try await gate.finish(authorized, failure: error, outcome: [:])
                throw ExecutionFailure(requestID: id, underlying: error)
            }
            try await gate.finish(authorized, failure: nil, outcome: result.outcome)
            logger.notice("request executed", metadata: ["request": "\(id)", "operation": "\(operation.rawValue)", "approvers": "\(authorized.tally.counted)"])
            var details = result.outcome.merging(result.state) { $1 }
            details.add(SecurityState.Change.request(id, "executed"))
            details["operation"] = operation.rawValue
            details["approvers"] = authorized.tally.counted.joined(separator: ",")
            return (result.backup, details)
        }
        var answer = try await status(id: id)
        answer.backup = backup
        return answer
    }

    /// A claimed request whose operation failed: the audit entry records the request as failed (it never runs again).
    struct ExecutionFailure: AuditedFailure, CodedError {
        let requestID: String
        let underlying: any Error
        /// The code of what failed, so the edges answer as they would for the failure itself.
        var errorCode: ErrorCode { (underlying as? any CodedError)?.errorCode ?? .executionFailed }
        var message: String { "\(underlying)" }
        var description: String { message }
        var auditDetails: [String: String] { Dictionary([SecurityState.Change.request(requestID, "failed")]) { $1 } }
    }

    static func json(_ value: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

extension [String: String] {
    /// Adds one ``SecurityState/Change`` detail.
    mutating func add(_ change: (String, String)) { self[change.0] = change.1 }
}
