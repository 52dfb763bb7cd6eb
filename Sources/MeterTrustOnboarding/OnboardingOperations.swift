import Crypto
import Foundation
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustRevocation
import MeterTrustStore
import X509

extension OperationClass {
    /// Creating a utility account and binding its Operational CA.
    public static let accountCreate = OperationClass("account-create", defaultApproverRoles: [.securityOfficer, .pkiOfficer])
    /// Deciding an enrollment conflict in favour of the account that listed the meter second.
    public static let enrollmentResolve = OperationClass("enrollment-resolve", defaultApproverRoles: [.securityOfficer, .pkiOfficer])
}

extension AdminOperation {
    /// Create a utility account: its id (its operators' O), the Operational CA that certifies its meters, the
    /// manufacturers whose meters it accepts, and its first operator (from that operator's CSR).
    public static let accountCreate = AdminOperation(
        "account.create", class: .accountCreate, required: ["id", "operational-ca", "manufacturers", "operator", "operator-csr"], optional: ["name"]
    )
    /// Resolve the open conflict over a meter: `in-favour-of=claimant` gives the meter to the account that listed it
    /// second (the holder's operational certificates are recorded for revocation), `holder` keeps it where it is.
    public static let enrollmentResolve = AdminOperation(
        "enrollment.resolve", class: .enrollmentResolve, required: ["eui64", "claimant", "in-favour-of"]
    )
}

extension QuorumOperationRegistry {
    /// `account.create`, `enrollment.resolve`: MeterTrustOnboarding's operations, registered next to the standard
    /// ones without the admin service knowing them.
    public mutating func registerOnboardingOperations(limits: EnrollmentLimits = EnrollmentLimits()) {
        register(CreateAccountOperation.self)
        register(ResolveConflictOperation.self)
    }

    /// The standard operations, Onboarding's and Revocation's: what a platform node runs.
    public static var platform: QuorumOperationRegistry {
        var registry = QuorumOperationRegistry.standard
        registry.registerOnboardingOperations()
        registry.registerRevocationOperations()
        return registry
    }
}

/// `account.create`: a utility account, bound to its Operational CA, with its first operator's certificate
/// (utility-operator, from the Operator CA, O = the account id).
public struct CreateAccountOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {
        public var id: String
        public var displayName: String
        public var operationalCA: String
        public var manufacturers: [String]
        public var operatorName: String
        /// The first operator's PKCS#10 request, DER.
        public var operatorCSR: [UInt8]
    }

    public static let operation = AdminOperation.accountCreate
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        let parameters = QuorumParameters(raw, for: operation)
        let id = try parameters.required("id")
        guard Onboarding.isAccountID(id) else {
            throw QuorumError(.invalidRequest, "id must be 1 to 63 lowercase letters, digits and - (it becomes the O of the account's operator certificates)")
        }
        let manufacturers = try parameters.required("manufacturers").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !manufacturers.isEmpty, manufacturers.allSatisfy({ !$0.isEmpty }) else {
            throw QuorumError(.invalidRequest, "manufacturers is a comma-separated list of registered manufacturers")
        }
        let csr: [UInt8]
        do {
            csr = try CSRCheck.decode(Array(try parameters.required("operator-csr").utf8))
        } catch {
            throw QuorumError(.invalidRequest, "operator-csr is not a PKCS#10 request (PEM): \(error)")
        }
        return Parameters(
            id: id, displayName: parameters.optional("name") ?? id, operationalCA: try parameters.required("operational-ca"),
            manufacturers: manufacturers, operatorName: try OperatorCertification.checkedName(try parameters.required("operator")), operatorCSR: csr
        )
    }

    public func preflight(in context: QuorumOperationContext) async throws {
        _ = try CSRCheck.validate(der: parameters.operatorCSR, profile: .utilityOperator)
        _ = try await OperatorCertification.authority(context.hierarchy)
        let onboarding = Onboarding(store: context.store, audit: context.service.audit, clock: context.clock)
        try await onboarding.checkNewAccount(
            id: parameters.id, displayName: parameters.displayName, operationalCA: parameters.operationalCA, manufacturers: parameters.manufacturers
        )
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let onboarding = Onboarding(store: context.store, audit: context.service.audit, clock: context.clock)
        let actor = "request:\(requestID.prefix(16))"
        let account = try await onboarding.createAccount(
            id: parameters.id, displayName: parameters.displayName, operationalCA: parameters.operationalCA,
            manufacturers: parameters.manufacturers, actor: actor, requestID: requestID
        )
        let issued = try await OperatorCertification.issue(
            csr: parameters.operatorCSR, name: parameters.operatorName, account: account.id, hierarchy: context.hierarchy,
            onboarding: onboarding, actor: actor
        )
        return QuorumOperationResult(outcome: [
            "account": account.id, "operationalCA": account.operationalCA, "manufacturers": account.manufacturers.joined(separator: ","),
            "operator": parameters.operatorName, "operatorSerial": issued.record.serial, "operatorFingerprint": issued.record.fingerprintSHA256,
            "operatorCertificate": try issued.certificate.serializeAsPEM().pemString,
        ])
    }
}

/// `enrollment.resolve`: decides an open conflict.
public struct ResolveConflictOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {
        public var eui64: EUI64
        public var claimant: String
        public var resolution: ConflictResolution
    }

    public static let operation = AdminOperation.enrollmentResolve
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        let parameters = QuorumParameters(raw, for: operation)
        guard let eui64 = try? EUI64(try parameters.required("eui64")) else {
            throw QuorumError(.invalidRequest, "eui64 must be 16 hex digits")
        }
        let resolution: ConflictResolution
        switch try parameters.required("in-favour-of") {
        case "claimant": resolution = .claimant
        case "holder": resolution = .holder
        default: throw QuorumError(.invalidRequest, "in-favour-of is claimant or holder")
        }
        return Parameters(eui64: eui64, claimant: try parameters.required("claimant"), resolution: resolution)
    }

    public func preflight(in context: QuorumOperationContext) async throws {
        let open = try await context.store.openConflicts(eui64: parameters.eui64.description)
        guard open.contains(where: { $0.claimant == parameters.claimant }) else {
            throw OnboardingError(.notFound, "there is no open conflict of \(parameters.claimant) over meter \(parameters.eui64): see metertrust enroll conflicts")
        }
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let onboarding = Onboarding(store: context.store, audit: context.service.audit, clock: context.clock)
        let conflict = try await onboarding.resolveConflict(
            eui64: parameters.eui64.description, claimant: parameters.claimant, inFavourOf: parameters.resolution,
            actor: "request:\(requestID.prefix(16))"
        )
        return QuorumOperationResult(outcome: [
            "eui64": conflict.eui64, "holder": conflict.holder, "claimant": conflict.claimant, "resolution": parameters.resolution.rawValue,
        ])
    }
}

/// Utility operators' certificates (profile utility-operator: CN = the person, O = the account id and nothing else)
/// from the deployment's one Operator CA, on the PKI's issuance path, recorded as the account's operators.
public enum OperatorCertification {
    /// The live Operator CA.
    public static func authority(_ hierarchy: CAHierarchy) async throws -> CertificateAuthority {
        let live = try await hierarchy.authorities(role: .operator).filter { $0.destroyedAt == nil }
        guard live.count == 1 else {
            throw OnboardingError(
                .unknownAuthority,
                live.isEmpty
                    ? "there is no Operator CA to certify utility operators: create one (metertrust admin request ca.create kind=operator name=NAME)"
                    : "there are \(live.count) Operator CAs (\(live.map(\.name).joined(separator: ", "))); a deployment has one"
            )
        }
        return try await hierarchy.authority(named: live[0].name)
    }

    /// An operator's name as their certificate's CN: 1 to 64 printable characters.
    public static func checkedName(_ name: String) throws -> String {
        guard (1...64).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw OnboardingError(.invalidArgument, "an operator's name is 1 to 64 printable characters")
        }
        return name
    }

    /// Issues `name`'s certificate for `account` from the CSR (DER or PEM) and records them as the account's
    /// operator; audited (`certificate.issue`, then `account.operator.add`) as `actor`.
    public static func issue(
        csr: [UInt8], name: String, account: String, hierarchy: CAHierarchy, onboarding: Onboarding, actor: String
    ) async throws -> IssuedCertificate {
        let name = try checkedName(name)
        _ = try await onboarding.account(account)
        let authority = try await authority(hierarchy)
        let validated = try CSRCheck.validate(der: try CSRCheck.decode(csr), profile: .utilityOperator)
        let issued = try await onboarding.audit.audited(
            actor: actor, action: "certificate.issue", subject: name,
            details: ["profile": CertificateProfile.utilityOperator.name, "account": account], recordingIntent: true
        ) {
            let issued = try await CertificateIssuer(hierarchy: hierarchy).issueNamed(
                validated, profile: .utilityOperator, authority: authority, commonName: name, organizationalUnit: nil, organization: account
            )
            return (issued, ["serial": issued.record.serial])
        }
        _ = try await onboarding.addOperator(account: account, name: name, certificateDER: issued.record.der, issuer: authority.name, actor: actor)
        return issued
    }
}
