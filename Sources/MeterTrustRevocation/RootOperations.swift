import Foundation
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustQuorum

extension OperationClass {
    /// Signing the root's CRL: the root signs nothing online.
    public static let rootCRL = OperationClass("root-crl", defaultApproverRoles: [.securityOfficer, .pkiOfficer])
    /// Certifying the root's OCSP signer: the root signs nothing online.
    public static let rootOCSP = OperationClass("root-ocsp", defaultApproverRoles: [.securityOfficer, .pkiOfficer])
}

extension AdminOperation {
    /// Sign the root's CRL (the revoked CA certificates), valid `days` (default 365, 1 to 3650).
    public static let crlSignRoot = AdminOperation("crl.sign-root", class: .rootCRL, optional: ["days"])
    /// Certify a new OCSP signer for the root (profile root-ocsp-signer, key generated in the HSM).
    public static let ocspCertifyRootSigner = AdminOperation("ocsp.certify-root-signer", class: .rootOCSP)
}

extension QuorumOperationRegistry {
    /// `crl.sign-root` and `ocsp.certify-root-signer`: MeterTrustRevocation's operations.
    public mutating func registerRevocationOperations() {
        register(SignRootCRLOperation.self)
        register(CertifyRootOCSPSignerOperation.self)
    }
}

/// `crl.sign-root`: the root's CRL, built from the verified audit log's revocations of CA certificates, signed by the
/// root's key in the HSM under quorum, with a long nextUpdate. The document itself is the operation's state change
/// (`state.crl.root`), so it is in the sealed log and every node's `serve --roles crl` serves it at `/<root>.crl`
/// until it is replaced; custodians sign a new one before nextUpdate and after each CA revocation.
public struct SignRootCRLOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {
        public var days: Int
    }

    public static let operation = AdminOperation.crlSignRoot
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        let parameters = QuorumParameters(raw, for: operation)
        guard let text = parameters.optional("days") else { return Parameters(days: 365) }
        guard let days = Int(text), (1...3650).contains(days) else { throw QuorumError(.invalidRequest, "days must be a whole number from 1 to 3650") }
        return Parameters(days: days)
    }

    public func preflight(in context: QuorumOperationContext) async throws {
        _ = try await context.hierarchy.rootAuthority()
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let root = try await context.hierarchy.rootAuthority()
        let state = try await context.service.audit.verifiedState()
        var entries: [CertificateRevocationList.Entry] = []
        (state.revoked[root.name] ?? RevokedSerials()).forEach { serial, revocation in
            guard let octets = hexBytes(serial) else { return }
            entries.append(
                CertificateRevocationList.Entry(
                    serial: octets, revocationDate: revocation.revokedAt, reason: RevocationReason(rawValue: revocation.reason) ?? .unspecified,
                    invalidityDate: revocation.invalidityDate
                )
            )
        }
        entries = entries.sortedBySerial()
        let now = context.clock.now()
        let thisUpdate = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        var number = CRLNumber(auditSize: state.verifiedSize, thisUpdate: thisUpdate)
        if let previous = state.rootCRL, let octets = hexBytes(previous.number), octets.count <= 12 {
            // Never below the number before it (a clock set back).
            let padded = [UInt8](repeating: 0, count: 12 - octets.count) + octets
            let high = padded[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = padded[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let last = CRLNumber(auditSize: Int(high), thisUpdate: Date(timeIntervalSince1970: TimeInterval(low)))
            if number <= last { number = last.successor }
        }
        let list = CertificateRevocationList(
            issuer: root.certificate.subject, authorityKeyIdentifier: try root.keyIdentifier, number: number, thisUpdate: thisUpdate,
            nextUpdate: thisUpdate.addingTimeInterval(TimeInterval(parameters.days) * 86_400), scope: nil, entries: entries
        )
        let signingKey = root.signingKey
        let algorithm: SignatureAlgorithmIdentifier = signingKey.key.curve == .p256 ? .ecdsaWithSHA256 : .ecdsaWithSHA384
        let der = try await context.hierarchy.token.perform { _ in
            try list.signed(algorithm: algorithm) { tbs in try signingKey.signer.signature(for: tbs) }
        }
        let crl = SecurityState.RootCRL(der: der, number: number.description, thisUpdate: thisUpdate, nextUpdate: list.nextUpdate, entries: entries.count)
        return QuorumOperationResult(
            outcome: [
                "ca": root.name, "number": number.description, "entries": "\(entries.count)",
                "nextUpdate": ISO8601DateFormatter().string(from: list.nextUpdate),
            ],
            changes: [SecurityState.Change.rootCRL(crl)]
        )
    }
}

/// `ocsp.certify-root-signer`: a P-256 key generated in the HSM for the root's delegated OCSP responder and certified
/// by the root's key under quorum (profile root-ocsp-signer: id-kp-OCSPSigning, id-pkix-ocsp-nocheck, a year). Every
/// node's `serve --roles ocsp` finds it in the store (its key by label on the token) and answers for the certificates
/// the root issued (the CAs') with it; until there is one, a request about them is answered unauthorized. The
/// custodians certify the next before two thirds of its year have passed (the responder warns from then).
public struct CertifyRootOCSPSignerOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {}

    public static let operation = AdminOperation.ocspCertifyRootSigner
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        _ = QuorumParameters(raw, for: operation)
        return Parameters()
    }

    public func preflight(in context: QuorumOperationContext) async throws {
        _ = try await context.hierarchy.rootAuthority()
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let root = try await context.hierarchy.rootAuthority()
        let (_, certificate) = try await context.hierarchy.certifyRootOCSPSigner()
        return QuorumOperationResult(
            outcome: [
                "ca": root.name, "serial": certificate.serialHex, "profile": CertificateProfile.rootOCSPSigner.name,
                "notAfter": ISO8601DateFormatter().string(from: certificate.notValidAfter),
            ]
        )
    }
}
