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
}

/// Operations under quorum: requests, approvals and execution, the custodian registry and policies. The admin API
/// and the CLI are thin over this. Every step is recorded in the audit log, refusals included.
public struct AdminService: Sendable {
    public let hierarchy: CAHierarchy
    public let audit: AuditLog
    private let logger: Logger
    public var store: any MeterTrustStore { hierarchy.store }

    public init(hierarchy: CAHierarchy, audit: AuditLog, logger: Logger = Logger(label: "metertrust.admin")) {
        self.hierarchy = hierarchy
        self.audit = audit
        self.logger = logger
    }

    // MARK: Registry and policies

    /// The quorum gate over the store and the verified audit log (every decision starts here).
    public func gate() async throws -> QuorumGate {
        try await QuorumGate(store: store, audit: audit)
    }

    /// The custodians the audit log backs.
    public func registry() async throws -> CustodianRegistry {
        try await gate().registry()
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
        try await recorded(actor: actor, action: "quorum.bootstrap", subject: "quorum", details: ["required": "\(required)"]) {
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
            let defaults = QuorumPolicy.defaults(required: required)
            try await store.bootstrapQuorum(custodians: records, policies: defaults.map { $0.record(updatedBy: nil) })
            var details = ["custodians": records.map(\.name).joined(separator: ",")]
            details.add(SecurityState.Change.bootstrapped())
            for record in records { details.add(SecurityState.Change.custodian(record.name, role: record.role, fingerprint: record.fingerprintSHA256)) }
            for policy in defaults { details.add(SecurityState.Change.policy(policy.operationClass.rawValue, policy.stateText)) }
            return (records, details)
        }
    }

    // MARK: Requests

    /// Records a new request by `requester`; checks its parameters first so nothing unrunnable waits for approvals.
    public func submit(
        operation: AdminOperation, parameters: [String: String], requester: Custodian, lifetime: TimeInterval = 3600
    ) async throws -> RequestStatus {
        try await recorded(actor: requester.name, action: "admin.request", subject: operation.rawValue, details: [:]) {
            let request = try AdminRequest(operation: operation, parameters: parameters, requester: requester.name, lifetime: lifetime)
            try await preflight(request)
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
            throw QuorumError(.wrongRequest, "there is no request \(id)")
        }
        let request = try AdminRequest.parse(record.document)
        let gate = try await gate()
        let policy = try await gate.policy(for: try request.adminOperation.operationClass)
        let approvals = try await store.approvals(requestID: id)
        // The tally of a request that ran shows the approvals it ran on, judged at its execution time.
        var view = record
        view.state = .pending
        let expires = try request.expiresDate
        let now = record.executedAt.map { min($0, expires.addingTimeInterval(-1)) } ?? Date()
        let tally = QuorumRules.tally(view, approvals: approvals, policy: policy, registry: try await gate.registry(now: now), now: now)
        return RequestStatus(
            id: id, request: request, state: record.state, policy: policy, tally: tally, approvals: approvals.map(\.custodian),
            executedBy: record.executedBy, outcome: record.outcome
        )
    }

    public func requests(state: AdminRequestRecord.State?, limit: Int = 100) async throws -> [AdminRequestRecord] {
        try await store.adminRequests(state: state, limit: limit)
    }

    /// Checks and records one approval (uploaded by `uploader`, who need not be the approver: offline approvals
    /// travel as files). Returns the tally after it.
    public func approve(_ document: [UInt8], uploader: String) async throws -> RequestStatus {
        let approval = try? Approval.parse(document)
        return try await recorded(
            actor: uploader, action: "admin.approve", subject: approval?.request ?? "unparseable",
            details: ["approver": approval?.custodian ?? "?"]
        ) {
            let approval = try Approval.parse(document)
            guard let record = try await store.adminRequest(id: approval.request) else {
                throw QuorumError(.wrongRequest, "the approval by \(approval.custodian) is for request \(approval.request.prefix(16))…, which does not exist here")
            }
            let request = try AdminRequest.parse(record.document)
            let gate = try await gate()
            let policy = try await gate.policy(for: try request.adminOperation.operationClass)
            let custodian = try QuorumRules.check(approval, for: record, policy: policy, registry: try await gate.registry(), now: Date())
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
        let backup: String? = try await recorded(actor: executor.name, action: "admin.execute", subject: id, details: [:]) {
            let gate = try await gate()
            let authorized = try await gate.approved(id: id)
            let operation = authorized.operation
            if operation == .backupReshare {
                throw QuorumError(
                    .invalidRequest,
                    "backup.reshare runs as a ceremony on the HSM host with k security officers present: metertrust backup reshare --request \(id) --custodian NAME=KEYFILE ..."
                )
            }
            try await checkNoLockOut(operation, parameters: authorized.request.parameters, gate: gate)
            try await gate.claim(authorized, by: executor.name)
            let result: OperationResult
            do {
                result = try await run(operation, parameters: authorized.request.parameters, requestID: id, gate: gate)
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

    /// What an operation produced: the outcome everyone may read, and for `backup.export` the backup document,
    /// which only the executor receives.
    struct OperationResult {
        var outcome: [String: String]
        /// The security-state changes the audit entry records (``SecurityState/Change``).
        var state: [String: String] = [:]
        var backup: String? = nil
    }

    /// A claimed request whose operation failed: the audit entry records the request as failed.
    struct ExecutionFailure: Error, CustomStringConvertible {
        let requestID: String
        let underlying: any Error
        var description: String { "\(underlying)" }
    }

    /// Refuses what would lock the deployment out of its own quorum: a second Admin CA (the admin API could not tell
    /// which one certifies custodians), destroying or revoking the Admin CA in use or the root it chains to (every
    /// custodian certificate would stop verifying), and, for custodian removals, leaving a policy no one can meet.
    /// Checked when a request is made, so nobody collects approvals for it, and again at execution.
    func checkNoLockOut(_ operation: AdminOperation, parameters: [String: String], gate: QuorumGate) async throws {
        switch operation {
        case .caCreate where parameters["kind"] == "admin":
            let admins = try await hierarchy.authorities(role: .admin).filter { $0.destroyedAt == nil }
            if let existing = admins.first {
                throw QuorumError(
                    .lockOut,
                    "the Admin CA \(existing.name) exists: a second one would leave the admin API unable to tell which certifies custodians; there is one Admin CA per deployment"
                )
            }
        case .caDestroy, .caRevoke:
            guard let name = parameters["name"], let record = try await store.certificateAuthority(named: name) else { return }
            if record.role == .admin {
                throw QuorumError(
                    .lockOut,
                    "CA \(name) is the Admin CA that certifies every custodian: \(operation.rawValue) would leave nobody able to approve anything"
                )
            }
            if record.role == .root {
                throw QuorumError(
                    .lockOut, "CA \(name) is the root the Admin CA chains to: \(operation.rawValue) would invalidate every custodian certificate"
                )
            }
        case .custodianRemove:
            if let name = parameters["name"] { try await checkQuorumsSurvive(removing: name, gate: gate) }
        default:
            return
        }
    }

    // MARK: Operations

    /// Checks what can be checked before approvals are collected.
    private func preflight(_ request: AdminRequest) async throws {
        let parameters = request.parameters
        let gate = try await gate()
        try await checkNoLockOut(try request.adminOperation, parameters: parameters, gate: gate)
        switch try request.adminOperation {
        case .caCreate:
            guard ["operational", "admin"].contains(parameters["kind"]) else {
                throw QuorumError(.invalidRequest, "ca.create makes operational or admin CAs (kind=operational|admin); register manufacturers with manufacturer.register")
            }
            try Self.checkKeyParameters(parameters)
        case .manufacturerRegister:
            try Self.checkKeyParameters(parameters)
        case .caDestroy, .caRevoke:
            _ = try await hierarchy.authority(named: try parameters.required("name"), toIssue: false)
            if let reason = parameters["reason"], Int(reason) == nil { throw QuorumError(.invalidRequest, "reason must be an RFC 5280 reason code") }
        case .policySet:
            _ = try await proposedPolicy(parameters)
        case .custodianAdd:
            _ = try await Custodian.admit(certificate: try Self.certificateDER(try parameters.required("certificate")), adminCA: try await adminAuthority(), registeredBy: nil)
        case .custodianRemove:
            guard try await gate.registry().custodian(named: try parameters.required("name"))?.isActive == true else {
                throw QuorumError(.unknownCustodian, "there is no registered custodian \(try parameters.required("name"))")
            }
        case .backupExport, .backupReshare:
            guard try await store.backupKey() != nil else {
                throw QuorumError(.backup, "there is no backup key: run the backup-key ceremony (metertrust backup init-key) first")
            }
        }
    }

    private func run(_ operation: AdminOperation, parameters: [String: String], requestID: String, gate: QuorumGate) async throws -> OperationResult {
        switch operation {
        case .caCreate, .manufacturerRegister:
            let role: CertificateAuthorityRole = operation == .manufacturerRegister ? .manufacturer : (parameters["kind"] == "admin" ? .admin : .operational)
            let curve = try Self.curve(parameters["curve"])
            let authority = try await hierarchy.createAuthority(
                role: role, name: try parameters.required("name"), organization: parameters["organization"], curve: curve, backup: parameters["backup"] == "true"
            )
            return OperationResult(outcome: ["ca": authority.name, "role": role.rawValue, "serial": authority.certificate.serialHex, "key": authority.signingKey.key.label])
        case .caDestroy:
            let name = try parameters.required("name")
            try await hierarchy.destroyAuthority(named: name)
            return OperationResult(outcome: ["ca": name, "destroyed": "true"], state: Dictionary([SecurityState.Change.destroyed(name)]) { $1 })
        case .caRevoke:
            let name = try parameters.required("name")
            let reason = Int(parameters["reason"] ?? "0") ?? 0
            guard let record = try await store.certificateAuthority(named: name), let parent = record.parent else {
                throw PKIError(.unknownAuthority, "there is no CA named \"\(name)\" under the root")
            }
            try await hierarchy.revokeAuthority(named: name, reason: reason)
            return OperationResult(
                outcome: ["ca": name, "revoked": "true"],
                state: Dictionary([SecurityState.Change.revoked(issuer: parent, serial: record.certificateSerial, reason: reason)]) { $1 }
            )
        case .policySet:
            let policy = try await proposedPolicy(parameters)
            try await store.setQuorumPolicy(policy.record(updatedBy: requestID))
            return OperationResult(
                outcome: ["class": policy.operationClass.rawValue, "policy": policy.summary],
                state: Dictionary([SecurityState.Change.policy(policy.operationClass.rawValue, policy.stateText)]) { $1 }
            )
        case .custodianAdd:
            let record = try await Custodian.admit(
                certificate: try Self.certificateDER(try parameters.required("certificate")), adminCA: try await adminAuthority(), registeredBy: requestID
            )
            try await store.insertCustodian(record)
            return OperationResult(
                outcome: ["custodian": record.name, "role": record.role, "certificate": record.fingerprintSHA256],
                state: Dictionary([SecurityState.Change.custodian(record.name, role: record.role, fingerprint: record.fingerprintSHA256)]) { $1 }
            )
        case .custodianRemove:
            let name = try parameters.required("name")
            guard let custodian = try await gate.registry().custodian(named: name) else {
                throw QuorumError(.unknownCustodian, "there is no registered custodian \(name)")
            }
            // The check that a quorum survives runs inside the removal's own write transaction, on the rows as they
            // are then, so two concurrent removals cannot both pass it.
            let policies = try await gate.policies()
            let state = gate.state
            try await store.removeCustodian(named: name, at: Date()) { records in
                let remaining = try CustodianRegistry(records, boundTo: state).active.filter { $0.name != name }
                try Self.checkQuorumsSurvive(removing: name, remaining: remaining, policies: policies)
            }
            // Their admin certificate is revoked too (RFC 5280 reason 3, affiliationChanged): the log entry is what
            // counts; the store's row follows when the certificate is on record.
            let adminCA = custodian.certificate.issuer
            let issuer = try await hierarchy.authorities(role: .admin).first { $0.destroyedAt == nil }?.name ?? "\(adminCA)"
            let serial = custodian.certificate.serialHex
            try? await store.revokeCertificate(issuer: issuer, serial: serial, reason: 3, at: Date())
            var changes: [String: String] = [:]
            changes.add(SecurityState.Change.custodianRemoved(name))
            changes.add(SecurityState.Change.revoked(issuer: issuer, serial: serial, reason: 3))
            return OperationResult(outcome: ["custodian": name, "removed": "true", "certificateRevoked": serial], state: changes)
        case .backupExport:
            let names = parameters["cas"].map { $0.split(separator: ",").map(String.init) }
            let file = try await KeyBackup.export(hierarchy: hierarchy, authorities: names)
            return OperationResult(outcome: ["keys": file.keys.map(\.ca).joined(separator: ",")], backup: String(decoding: file.bytes, as: UTF8.self))
        case .backupReshare:
            throw QuorumError(.invalidRequest, "backup.reshare runs as a ceremony: metertrust backup reshare --request \(requestID)")
        }
    }

    private func proposedPolicy(_ parameters: [String: String]) async throws -> QuorumPolicy {
        let operationClass = try OperationClass.parse(try parameters.required("class"))
        guard let required = Int(try parameters.required("required")), required >= 1 else {
            throw QuorumError(.invalidRequest, "required must be a whole number of approvals, at least 1")
        }
        let gate = try await gate()
        let current = try await gate.policy(for: operationClass)
        let roles: [CustodianRole] = try parameters["roles"].map { try $0.split(separator: ",").map { try CustodianRole.parse(String($0)) } } ?? current.approverRoles
        guard !roles.contains(.auditor) else { throw QuorumError(.invalidRequest, "auditors never approve") }
        let eligible = try await gate.registry().active.filter { roles.contains($0.role) }.count
        guard required <= eligible else {
            throw QuorumError(.invalidRequest, "\(required) approvals from [\(roles.map(\.rawValue).joined(separator: ", "))] can never be met: \(eligible) such custodians are registered")
        }
        let requesterMayApprove = parameters["requester-may-approve"].map { $0 == "true" } ?? current.requesterMayApprove
        return QuorumPolicy(operationClass: operationClass, required: required, approverRoles: roles, requesterMayApprove: requesterMayApprove)
    }

    /// Refuses a removal that would leave some policy impossible to meet (a lock-out).
    private func checkQuorumsSurvive(removing name: String, gate: QuorumGate) async throws {
        try Self.checkQuorumsSurvive(
            removing: name, remaining: try await gate.registry().active.filter { $0.name != name }, policies: try await gate.policies()
        )
    }

    private static func checkQuorumsSurvive(removing name: String, remaining: [Custodian], policies: [QuorumPolicy]) throws {
        for policy in policies {
            let eligible = remaining.filter { policy.approverRoles.contains($0.role) }.count
            guard eligible >= policy.required else {
                throw QuorumError(
                    .lockOut,
                    "removing \(name) would leave \(eligible) custodians able to approve \(policy.operationClass.rawValue), which needs \(policy.required): add a custodian first"
                )
            }
        }
    }

    private static func checkKeyParameters(_ parameters: [String: String]) throws {
        _ = try curve(parameters["curve"])
        if let backup = parameters["backup"], !["true", "false"].contains(backup) {
            throw QuorumError(.invalidRequest, "backup must be true or false")
        }
    }

    private static func curve(_ text: String?) throws -> ECCurve {
        guard let text else { return .p256 }
        guard let curve = ECCurve(rawValue: text) else { throw QuorumError(.invalidRequest, "curve must be P-256 or P-384") }
        return curve
    }

    /// A certificate parameter: PEM, or DER in base64.
    static func certificateDER(_ text: String) throws -> [UInt8] {
        if text.contains("-----BEGIN"), let certificate = try? Certificate(pemEncoded: text) {
            return try certificate.derBytes
        }
        guard let der = Data(base64Encoded: text) else {
            throw QuorumError(.invalidCertificate, "the certificate parameter is neither PEM nor base64 DER")
        }
        return Array(der)
    }

    static func json(_ value: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Runs `body` and records its outcome in the audit log (refusals and failures too).
    private func recorded<T>(
        actor: String, action: String, subject: String, details: [String: String], _ body: () async throws -> (T, [String: String])
    ) async throws -> T {
        do {
            let (result, more) = try await body()
            _ = try await audit.record(
                AuditEvent(actor: "custodian:\(actor)", action: action, subject: subject, outcome: .success, details: details.merging(more) { $1 })
            )
            return result
        } catch let failure as ExecutionFailure {
            // The request was claimed and its operation failed: the log records it failed (it never runs again).
            var more = ["reason": "\(failure.underlying)"]
            more.add(SecurityState.Change.request(failure.requestID, "failed"))
            _ = try? await audit.record(
                AuditEvent(actor: "custodian:\(actor)", action: action, subject: subject, outcome: .failed, details: details.merging(more) { $1 })
            )
            throw failure.underlying
        } catch {
            let outcome: AuditEvent.Outcome = error is QuorumError || error is PKIError ? .refused : .failed
            _ = try? await audit.record(
                AuditEvent(actor: "custodian:\(actor)", action: action, subject: subject, outcome: outcome, details: details.merging(["reason": "\(error)"]) { $1 })
            )
            throw error
        }
    }
}

extension [String: String] {
    /// A parameter ``AdminOperation/check(_:)`` made sure is present; refused, not trapped, if it is not.
    func required(_ name: String) throws -> String {
        guard let value = self[name] else { throw QuorumError(.invalidRequest, "parameter \(name) is missing") }
        return value
    }
}

extension [String: String] {
    /// Adds one ``SecurityState/Change`` detail.
    mutating func add(_ change: (String, String)) { self[change.0] = change.1 }
}
