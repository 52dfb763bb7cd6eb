import Crypto
import Foundation
import Logging
import MeterTrustAudit
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore
import X509

/// The OCSP responder (RFC 6960) of every CA, each answering through its delegated signer, key in the HSM: for an
/// online CA profile ocsp-signer, created and rolled here before a third of its life is left; for the root profile
/// root-ocsp-signer, certified by the custodians under quorum (`ocsp.certify-root-signer`) and only found here (until
/// there is one, requests about the root's certificates are answered unauthorized).
///
/// **What decides an answer:** revoked (with time and reason) if the **verified audit log** says so; otherwise good if
/// the store holds the certificate, unknown if not. A deleted or rolled-back revocation row changes nothing.
///
/// **Signatures:** a request without a nonce is answered from a response produced once and kept until half its
/// validity has passed: no signature per request. Each kept response remembers what it said of each certificate and is
/// checked against the current verified state on every use; a certificate revoked since is answered by a response
/// signed at once (and kept in its place), so a kept "good" never outlives a revocation by more than the state's age.
/// A response past its nextUpdate is never served (it is replaced at half its validity). A request with a nonce
/// (RFC 9654, 1 to 128 octets) is signed live: the nonce is inside the signed data.
public final class OCSPResponder: @unchecked Sendable {
    public let hierarchy: CAHierarchy
    public let state: VerifiedStateCache
    /// thisUpdate to nextUpdate of every response.
    public let validity: TimeInterval
    /// The most responses kept (each a few hundred octets).
    public let cacheLimit: Int
    let logger: Logger

    struct Signer: Sendable {
        let authority: String
        let certificate: Certificate
        let certificateDER: [UInt8]
        let keyHash: [UInt8]
        let signingKey: HSMSigningKey
        /// When to look for (online CAs: make) the next signer: two thirds into its life; for the root's, once that
        /// has passed, every minute (the custodians may have certified the next).
        let refreshAfter: Date
        /// The last moment a response it signs can start (its nextUpdate must not outlive the certificate).
        let usableUntil: Date
    }

    /// The root has no signer yet (the custodians have not certified one): such requests are unauthorized.
    struct NoRootSigner: Error {}

    struct Kept: Sendable {
        let der: [UInt8]
        /// Per certificate asked about: issuer, serial, and whether the response said revoked.
        let statuses: [(issuer: String, serial: String, revoked: Bool)]
        let refreshAfter: Date
    }

    private let lock = NSLock()
    /// Issuer hashes (every algorithm) → CA name, for the CAs this responder serves.
    private var issuers: [OCSPCertID.IssuerHashes: String] = [:]
    private var signers: [String: Signer] = [:]
    /// The root's name, and when to look for its signer again after finding none.
    private var root: String?
    private var noRootSignerUntil = Date.distantPast
    private var kept: [[UInt8]: Kept] = [:]
    private let signerGate = RefreshGateway()

    /// Counts, for metrics and benchmarks: responses served from what was kept, and signed.
    public private(set) var servedKept = 0
    public private(set) var signed = 0

    public init(
        hierarchy: CAHierarchy, state: VerifiedStateCache, validity: TimeInterval = 4 * 3600, cacheLimit: Int = 1_000_000,
        logger: Logger = Logger(label: "metertrust.ocsp")
    ) {
        self.hierarchy = hierarchy
        self.state = state
        self.validity = validity
        self.cacheLimit = cacheLimit
        self.logger = logger
    }

    /// Finds the CAs to serve (every live CA) and makes sure each online CA has a current signer, creating or
    /// rolling one where needed. Returns the names served and what an operator should know (the root without a
    /// signer the custodians certified).
    @discardableResult
    public func prepare() async throws -> (served: [String], warnings: [String]) {
        var served: [String] = []
        var warnings: [String] = []
        for record in try await hierarchy.store.certificateAuthorities() where record.destroyedAt == nil {
            let authority = try await hierarchy.authority(named: record.name, toIssue: false)
            let hashes = try OCSPCertID.issuerHashes(of: authority.certificate)
            lock.withLock {
                for hash in hashes { issuers[hash] = record.name }
                if record.parent == nil { root = record.name }
            }
            do {
                let signer = try await signer(for: record.name)
                served.append(record.name)
                if record.parent == nil, Date() >= signer.certificate.notValidBefore.addingTimeInterval(Self.twoThirds(of: signer.certificate)) {
                    warnings.append(Self.rootRenewalWarning(record.name, signer.certificate))
                }
            } catch is NoRootSigner {
                warnings.append(
                    "the root \(record.name) has no OCSP signer: requests about its certificates are answered unauthorized until the custodians certify one (metertrust admin request ocsp.certify-root-signer)"
                )
            }
        }
        return (served, warnings)
    }

    static func twoThirds(of certificate: Certificate) -> TimeInterval {
        certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore) * 2 / 3
    }

    static func rootRenewalWarning(_ root: String, _ certificate: Certificate) -> String {
        "the OCSP signer of the root \(root) (serial \(certificate.serialHex)) ends \(ISO8601DateFormatter().string(from: certificate.notValidAfter)): the custodians should certify the next (ocsp.certify-root-signer)"
    }

    /// The DER OCSPResponse for the DER OCSPRequest `request`. Never throws: garbage is malformedRequest, a CA not
    /// served unauthorized, a failure to decide internalError (nothing is guessed).
    public func respond(to request: [UInt8]) async -> [UInt8] {
        let parsed: OCSPRequest
        do {
            parsed = try OCSPRequest(derEncoded: request)
        } catch {
            return OCSPResponse.unsuccessful(.malformedRequest)
        }
        let names: [String]? = lock.withLock {
            var names: [String] = []
            for id in parsed.certificates {
                guard let name = issuers[id.issuerHashes] else { return nil }
                names.append(name)
            }
            return names
        }
        guard let names, Set(names).count == 1, let authority = names.first else {
            // RFC 6960 §2.3: a responder that cannot answer for that CA. (A request mixing CAs is answered by no one
            // signer: unauthorized as well.)
            return OCSPResponse.unsuccessful(.unauthorized)
        }
        do {
            let state = try await self.state.state()
            let key = parsed.certificates.flatMap(\.der)
            let now = Date()
            if parsed.nonceExtensionValue == nil, let kept = lock.withLock({ kept[key] }), now < kept.refreshAfter,
                kept.statuses.allSatisfy({ state.isRevoked(issuer: $0.issuer, serial: $0.serial) == $0.revoked })
            {
                lock.withLock { servedKept += 1 }
                return kept.der
            }
            var statuses: [(issuer: String, serial: String, revoked: Bool)] = []
            var responses: [OCSPSingleResponse] = []
            let thisUpdate = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
            var anyUnknown = false
            for id in parsed.certificates {
                let serial = hexString(id.serial)
                let status: OCSPCertificateStatus
                if let revocation = state.revocation(issuer: authority, serial: serial) {
                    status = .revoked(at: revocation.revokedAt, reason: RevocationReason(rawValue: revocation.reason) ?? .unspecified)
                } else if try await hierarchy.store.certificate(issuer: authority, serial: serial) != nil {
                    status = .good
                } else {
                    status = .unknown
                    anyUnknown = true
                }
                statuses.append((authority, serial, { if case .revoked = status { true } else { false } }()))
                responses.append(OCSPSingleResponse(certID: id, status: status, thisUpdate: thisUpdate, nextUpdate: thisUpdate.addingTimeInterval(validity)))
            }
            let signer: Signer
            do {
                signer = try await self.signer(for: authority)
            } catch is NoRootSigner {
                return OCSPResponse.unsuccessful(.unauthorized)
            }
            let nonce = parsed.nonceExtensionValue
            let signingKey = signer.signingKey
            let singles = responses
            let der = try await hierarchy.token.perform { _ in
                try OCSPResponse.successful(
                    responderKeyHash: signer.keyHash, producedAt: thisUpdate, responses: singles, nonceExtensionValue: nonce,
                    signerCertificate: signer.certificateDER, algorithm: .ecdsaWithSHA256
                ) { tbs in try signingKey.signer.signature(for: tbs) }
            }
            lock.withLock {
                signed += 1
                // Unknown is not kept: the certificate may be stored a moment later.
                if nonce == nil, !anyUnknown {
                    if kept.count >= cacheLimit { kept.removeAll(keepingCapacity: true) }
                    kept[key] = Kept(der: der, statuses: statuses, refreshAfter: thisUpdate.addingTimeInterval(validity / 2))
                }
            }
            return der
        } catch {
            logger.error("OCSP response failed", metadata: ["ca": "\(authority)", "error": "\(error)"])
            return OCSPResponse.unsuccessful(.internalError)
        }
    }

    /// The current signer of `authority`. An online CA's is created or rolled first if there is none with a third of
    /// its life left. The root's is the newest the custodians certified that outlives a response; past two thirds of
    /// its life it is still used (with a warning in the log), since only they can replace it. Throws ``NoRootSigner``
    /// when the root has none.
    func signer(for authority: String) async throws -> Signer {
        if let current = lock.withLock({ signers[authority] }), Date() < current.refreshAfter { return current }
        return try await signerGate.run(key: authority) { [self] in
            let now = Date()
            if let current = lock.withLock({ signers[authority] }), now < current.refreshAfter { return current }
            let (isRoot, noneUntil) = lock.withLock { (root == authority, noRootSignerUntil) }
            if isRoot {
                if now < noneUntil, lock.withLock({ signers[authority] }) == nil { throw NoRootSigner() }
                guard var found = try await findSigner(for: authority, profile: .rootOCSPSigner) else {
                    lock.withLock {
                        signers[authority] = nil
                        noRootSignerUntil = now.addingTimeInterval(1)
                    }
                    throw NoRootSigner()
                }
                if now >= found.refreshAfter {
                    logger.warning("\(Self.rootRenewalWarning(authority, found.certificate))")
                    found = Signer(
                        authority: found.authority, certificate: found.certificate, certificateDER: found.certificateDER, keyHash: found.keyHash,
                        signingKey: found.signingKey, refreshAfter: now.addingTimeInterval(60), usableUntil: found.usableUntil
                    )
                }
                lock.withLock { signers[authority] = found }
                return found
            }
            let found = try await findSigner(for: authority, profile: .ocspSigner)
            let signer = if let found, now < found.refreshAfter { found } else { try await createSigner(for: authority) }
            lock.withLock { signers[authority] = signer }
            return signer
        }
    }

    /// The newest stored signer certificate of `authority` under `profile` whose key this token holds, that is not
    /// revoked and can still sign a response (another node, or the custodians, may have made it).
    private func findSigner(for authority: String, profile: CertificateProfile) async throws -> Signer? {
        var position: CertificateListPosition?
        var candidates: [CertificateRecord] = []
        repeat {
            let page = try await hierarchy.store.certificates(
                matching: CertificateFilter(issuer: authority, profile: profile.name), after: position, limit: 500
            )
            candidates += page.certificates
            position = page.next
        } while position != nil
        let state = try await self.state.state()
        let now = Date()
        for record in candidates.sorted(by: { $0.notBefore > $1.notBefore }) {
            let signer = try? await makeSigner(authority: authority, record: record)
            if let signer, now >= signer.certificate.notValidBefore, now < signer.usableUntil, !state.isRevoked(issuer: authority, serial: record.serial) {
                return signer
            }
        }
        return nil
    }

    private func createSigner(for authority: String) async throws -> Signer {
        let (_, certificate) = try await hierarchy.createOCSPSigner(for: authority)
        guard let record = try await hierarchy.store.certificate(issuer: authority, serial: certificate.serialHex) else {
            throw RevocationError(.storeNotFound, "the new OCSP signer of CA \(authority) is missing from the store")
        }
        return try await makeSigner(authority: authority, record: record)
    }

    private func makeSigner(authority: String, record: CertificateRecord) async throws -> Signer {
        let certificate = try Certificate(derEncoded: record.der)
        let label = CAHierarchy.ocspSignerKeyLabel(authority: authority, serial: record.serial)
        let key = try await hierarchy.token.perform { try $0.findKey(label: label) }
        let signingKey = try HSMSigningKey.validated(token: hierarchy.token, key: key)
        guard signingKey.publicKey == certificate.publicKey else {
            throw RevocationError(.hsmKeyNotFound, "the HSM key \(label) does not match OCSP signer certificate \(record.serial)")
        }
        return Signer(
            authority: authority, certificate: certificate, certificateDER: record.der, keyHash: try OCSPResponse.keyHash(of: certificate),
            signingKey: signingKey, refreshAfter: certificate.notValidBefore.addingTimeInterval(Self.twoThirds(of: certificate)),
            usableUntil: certificate.notValidAfter.addingTimeInterval(-validity)
        )
    }
}
