import Foundation
import MeterTrustAudit
import MeterTrustQuorum
import MeterTrustStore
import X509

extension QuorumOperationRegistry {
    /// `custodian.add`, `custodian.remove`.
    public mutating func registerCustodianOperations() {
        register(AddCustodianOperation.self)
        register(RemoveCustodianOperation.self)
    }
}

/// `custodian.add`: registers a custodian whose admin certificate the Admin CA issued.
public struct AddCustodianOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {
        /// The admin certificate, DER.
        public var certificate: [UInt8]
    }

    public static let operation = AdminOperation.custodianAdd
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        Parameters(certificate: try certificateDER(try QuorumParameters(raw, for: operation).required("certificate")))
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

    public func preflight(in context: QuorumOperationContext) async throws {
        _ = try await Custodian.admit(certificate: parameters.certificate, adminCA: try await context.service.adminAuthority(), registeredBy: nil)
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let record = try await Custodian.admit(
            certificate: parameters.certificate, adminCA: try await context.service.adminAuthority(), registeredBy: requestID
        )
        try await context.store.insertCustodian(record)
        return QuorumOperationResult(
            outcome: ["custodian": record.name, "role": record.role, "certificate": record.fingerprintSHA256],
            changes: [SecurityState.Change.custodian(record.name, role: record.role, fingerprint: record.fingerprintSHA256)]
        )
    }
}

/// `custodian.remove`: removes a custodian and revokes their admin certificate; refused if some policy could no
/// longer be met.
public struct RemoveCustodianOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {
        public var name: String
    }

    public static let operation = AdminOperation.custodianRemove
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        Parameters(name: try QuorumParameters(raw, for: operation).required("name"))
    }

    /// Refuses a removal that would leave some policy impossible to meet.
    public func checkLockOut(in context: QuorumOperationContext) async throws {
        try Self.checkQuorumsSurvive(
            removing: parameters.name, remaining: try await context.gate.registry(now: context.clock.now()).active.filter { $0.name != parameters.name },
            policies: try await context.gate.policies()
        )
    }

    static func checkQuorumsSurvive(removing name: String, remaining: [Custodian], policies: [QuorumPolicy]) throws {
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

    public func preflight(in context: QuorumOperationContext) async throws {
        guard try await context.gate.registry(now: context.clock.now()).custodian(named: parameters.name)?.isActive == true else {
            throw QuorumError(.unknownCustodian, "there is no registered custodian \(parameters.name)")
        }
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let name = parameters.name
        let now = context.clock.now()
        guard let custodian = try await context.gate.registry(now: now).custodian(named: name) else {
            throw QuorumError(.unknownCustodian, "there is no registered custodian \(name)")
        }
        // The check that a quorum survives runs inside the removal's own write transaction, on the rows as they are
        // then, so two concurrent removals cannot both pass it.
        let policies = try await context.gate.policies()
        let state = context.gate.state
        try await context.store.removeCustodian(named: name, at: now) { records in
            let remaining = try CustodianRegistry(records, boundTo: state, now: now).active.filter { $0.name != name }
            try Self.checkQuorumsSurvive(removing: name, remaining: remaining, policies: policies)
        }
        // Their admin certificate is revoked too (RFC 5280 reason 3, affiliationChanged): the log entry is what
        // counts; the store's row follows when the certificate is on record.
        let adminCA = custodian.certificate.issuer
        let issuer = try await context.hierarchy.authorities(role: .admin).first { $0.destroyedAt == nil }?.name ?? "\(adminCA)"
        let serial = custodian.certificate.serialHex
        try? await context.store.revokeCertificate(issuer: issuer, serial: serial, reason: 3, at: now)
        return QuorumOperationResult(
            outcome: ["custodian": name, "removed": "true", "certificateRevoked": serial],
            changes: [SecurityState.Change.custodianRemoved(name), SecurityState.Change.revoked(issuer: issuer, serial: serial, reason: 3, at: now)]
        )
    }
}
