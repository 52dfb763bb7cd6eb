import Crypto
import Foundation
import Hummingbird
import Logging
import MeterTrustAccountAPI
import MeterTrustAudit
import MeterTrustCore
import MeterTrustOnboarding
import MeterTrustPKI
import MeterTrustRevocation
import MeterTrustStore
import NIOCore
import NIOSSL
import X509

/// Request context of the roles that judge the TLS peer's certificate on every request (account, est): the channel
/// (for the peer's certificate) and the request's observation. Bodies beyond 1 MiB are refused unless a route reads
/// them itself (account uploads stream past it, bounded by ``EnrollmentLimits``; EST bodies are bounded lower).
struct PeerCertificateRequestContext: ObservedRequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    let observation = RequestObservation()

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    var maxUploadSize: Int { AccountRoutes.maximumBodySize }
}

typealias AccountRequestContext = PeerCertificateRequestContext

/// The utility operator behind a connection: the account is the certificate's O, nothing else.
struct AuthenticatedOperator: Sendable {
    let account: String
    let name: String
    let fingerprint: String
}

/// Routes of the account API: utility operators (certificates from the Operator CA, O = their account) manage their
/// account's operators, upload enrollment lists, and read and release their claims. Every route names the account
/// it acts on (`/v1/accounts/{account}/…`); one that is not the caller's is refused before anything is read, and the
/// domain (``Onboarding``) acts within that account only, whatever the edge checked.
struct AccountRoutes: Sendable {
    static let maximumBodySize = 1 << 20
    let onboarding: Onboarding
    let hierarchy: CAHierarchy
    /// The Operator CA operator certificates must chain to (checked again on every request).
    let operatorCA: CertificateAuthority
    let logger: Logger

    func router(observation: RequestObservationMiddleware<AccountRequestContext>? = nil) -> Router<AccountRequestContext> {
        let router = Router(context: AccountRequestContext.self)
        if let observation { router.add(middleware: observation) }
        router.add(middleware: ProblemMiddleware<AccountRequestContext>(api: "account API"))

        router.get("/v1/accounts/:account") { _, context in
            let id = try await authorize(context).account
            return try json(try await onboarding.account(id))
        }
        router.get("/v1/accounts/:account/operators") { _, context in
            let id = try await authorize(context).account
            return try json(try await onboarding.operators(account: id))
        }
        router.post("/v1/accounts/:account/operators") { request, context in
            let caller = try await authorize(context)
            let id = caller.account
            let new = try decode(AccountAPIMessage.NewOperator.self, from: try await read(request, context: context))
            let issued = try await OperatorCertification.issue(
                csr: Array(new.csr.utf8), name: new.name, account: id, hierarchy: hierarchy, onboarding: onboarding, actor: "operator:\(id)/\(caller.name)"
            )
            return try json(
                AccountAPIMessage.IssuedOperator(
                    account: id, name: new.name, serial: issued.record.serial, fingerprint: issued.record.fingerprintSHA256,
                    certificate: try issued.certificate.serializeAsPEM().pemString, chain: try issued.chain.map { try $0.serializeAsPEM().pemString }
                ),
                status: .created
            )
        }
        router.delete("/v1/accounts/:account/operators/:fingerprint") { _, context in
            let caller = try await authorize(context)
            let id = caller.account
            let fingerprint = try context.parameters.require("fingerprint").lowercased()
            guard fingerprint != caller.fingerprint else {
                throw OnboardingError(.invalidArgument, "an operator cannot remove themselves: another operator of \(id) removes you")
            }
            try await onboarding.removeOperator(account: id, fingerprintSHA256: fingerprint, actor: "operator:\(id)/\(caller.name)")
            return Response(status: .noContent)
        }
        router.post("/v1/accounts/:account/enrollments") { request, context in
            let caller = try await authorize(context)
            let id = caller.account
            let query = request.uri.queryParameters
            guard let formatText = query.get("format"), let format = EnrollmentUploadRecord.Format(rawValue: formatText) else {
                throw HTTPProblem(.malformedInput, "name the upload's format: ?format=manifest or ?format=list")
            }
            guard let manufacturer = query.get("manufacturer"), !manufacturer.isEmpty else {
                throw HTTPProblem(.malformedInput, "name the meters' manufacturer: ?manufacturer=NAME")
            }
            var signature: [UInt8]?
            let headerName = AccountAPIMessage.signatureHeader.lowercased()
            if let header = request.headers.first(where: { $0.name.canonicalName == headerName })?.value {
                guard let bytes = Data(base64Encoded: header) else {
                    throw HTTPProblem(.malformedInput, "the \(AccountAPIMessage.signatureHeader) header is not base64")
                }
                signature = Array(bytes)
            }
            let session = try await onboarding.beginUpload(
                account: id, format: format, manufacturer: manufacturer, signature: signature, actor: "operator:\(id)/\(caller.name)"
            )
            do {
                for try await buffer in request.body {
                    try await session.append(Array(buffer.readableBytesView))
                }
            } catch {
                await session.abandon()
                throw error
            }
            return try json(try await session.finish(), status: .created)
        }
        router.get("/v1/accounts/:account/claims") { request, context in
            let id = try await authorize(context).account
            let limit = try pageLimit(request)
            let after = try request.uri.queryParameters.get("after").map { try EUI64(String($0)).description }
            let claims = try await onboarding.claims(account: id, after: after, limit: limit)
            return try json(AccountAPIMessage.Page(items: claims, next: claims.count == limit ? claims.last?.eui64 : nil))
        }
        router.get("/v1/accounts/:account/claims/:eui64") { _, context in
            let id = try await authorize(context).account
            let eui64 = try meter(context)
            guard let claim = try await onboarding.claim(eui64: eui64, account: id) else {
                throw OnboardingError(.notClaimed, "account \(id) does not hold meter \(eui64)")
            }
            return try json(claim)
        }
        router.post("/v1/accounts/:account/claims/:eui64/release") { _, context in
            let caller = try await authorize(context)
            let id = caller.account
            return try json(try await onboarding.release(eui64: try meter(context), account: id, actor: "operator:\(id)/\(caller.name)"))
        }
        router.get("/v1/accounts/:account/conflicts") { request, context in
            let id = try await authorize(context).account
            let openOnly = request.uri.queryParameters.get("all") == nil
            return try json(try await onboarding.conflicts(account: id, openOnly: openOnly))
        }
        router.post("/v1/accounts/:account/meters/:eui64/revoke") { request, context in
            let caller = try await authorize(context)
            let id = caller.account
            let eui64 = try EUI64(try meter(context))
            let body = try decode(AccountAPIMessage.Revoke.self, from: try await read(request, context: context))
            guard let reason = RevocationReason(parsing: body.reason ?? "unspecified") else {
                throw OnboardingError(.invalidArgument, "reason must be one of \(RevocationReason.revocable.map(\.name).joined(separator: ", "))")
            }
            var invalidity: Date?
            if let text = body.invalidityDate {
                guard let date = ISO8601DateFormatter().date(from: text) else {
                    throw OnboardingError(.invalidArgument, "invalidityDate must be an RFC 3339 time such as 2026-11-30T00:00:00Z")
                }
                invalidity = date
            }
            let account = try await onboarding.account(id)
            let revocation = CertificateRevocation(store: onboarding.store, audit: onboarding.audit, clock: onboarding.clock)
            let results = try await revocation.revokeOperational(
                meter: eui64, account: id, operationalCA: account.operationalCA, reason: reason, invalidityDate: invalidity,
                actor: "operator:\(id)/\(caller.name)"
            )
            return try json(results)
        }
        router.get("/v1/accounts/:account/meters/:eui64/history") { _, context in
            let id = try await authorize(context).account
            return try json(try await onboarding.history(eui64: try meter(context), account: id))
        }
        return router
    }

    /// The caller, if the account the route names is theirs; refused otherwise, before anything is read.
    private func authorize(_ context: AccountRequestContext) async throws -> AuthenticatedOperator {
        let caller = try await authenticate(context)
        let named = try context.parameters.require("account")
        guard named == caller.account else {
            throw OnboardingError(
                .otherAccount,
                "your certificate acts for account \(caller.account) only, not \(DisplayText.escaped(named, asciiOnly: true, limit: 70))"
            )
        }
        return caller
    }

    /// The operator behind this connection's client certificate, checked on every request (a resumed TLS session
    /// skips the handshake's callback, and the operator may have been removed since): chain to the Operator CA,
    /// the utility-operator profile, validity now, not revoked in the verified audit log, and a live operator of the
    /// account the certificate's O names.
    func authenticate(_ context: AccountRequestContext) async throws -> AuthenticatedOperator {
        guard let certificate = try await context.channel.nioSSL_peerCertificate().get() else {
            throw HTTPProblem(.unauthenticated, "no client certificate")
        }
        let der = try certificate.toDERBytes()
        let fingerprint = hexString(SHA256.hash(data: der))
        context.observation.identity = "cert:" + fingerprint.prefix(16)
        let caller = try await OperatorAdmission(operatorCA: operatorCA, onboarding: onboarding).admit(certificateDER: der)
        context.observation.identity = caller.name
        context.observation.account = caller.account
        return caller
    }

    private func meter(_ context: AccountRequestContext) throws -> String {
        let text = try context.parameters.require("eui64")
        guard let eui64 = try? EUI64(text) else { throw HTTPProblem(.malformedInput, "\(DisplayText.escaped(text, asciiOnly: true, limit: 40)) is not an EUI-64") }
        return eui64.description
    }

    private func pageLimit(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters.get("limit") else { return 100 }
        guard let limit = Int(String(text)), (1...Onboarding.maximumPage).contains(limit) else {
            throw HTTPProblem(.malformedInput, "limit is 1 to \(Onboarding.maximumPage)")
        }
        return limit
    }

    private func read(_ request: Request, context: AccountRequestContext) async throws -> [UInt8] {
        Array(try await request.body.collect(upTo: Self.maximumBodySize).readableBytesView)
    }

    private func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw HTTPProblem(.malformedInput, JSONInput.problem(error, in: "the request body"))
        }
    }
}

/// Who may use the account API: the checks of a client certificate, in the handshake and on every request.
struct OperatorAdmission: Sendable {
    let operatorCA: CertificateAuthority
    let onboarding: Onboarding

    func admit(certificateDER der: [UInt8]) async throws -> AuthenticatedOperator {
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: der)
        } catch {
            throw HTTPProblem(.unauthenticated, "the client certificate is not a DER X.509 certificate")
        }
        guard certificate.issuer == operatorCA.certificate.subject else {
            throw HTTPProblem(.unauthenticated, "the client certificate is not a utility operator's: it was issued by \(certificate.issuer), not the Operator CA")
        }
        do {
            try await ChainVerification.verify(leaf: certificate, intermediates: [operatorCA.certificate], root: operatorCA.root)
        } catch {
            throw HTTPProblem(.unauthenticated, "the client certificate does not chain to the Operator CA \(operatorCA.name) or is not valid now")
        }
        guard let usage = try? certificate.extensions.extendedKeyUsage, usage.contains(.clientAuth) else {
            throw HTTPProblem(.unauthenticated, "the client certificate lacks extended key usage clientAuth")
        }
        let attributes = certificate.subject.flatMap { Array($0) }
        let organizations = attributes.filter { $0.type == .RDNAttributeType.organizationName }.compactMap { String($0.value) }
        let names = attributes.filter { $0.type == .RDNAttributeType.commonName }.compactMap { String($0.value) }
        guard organizations.count == 1, names.count == 1 else {
            throw HTTPProblem(.unauthenticated, "an operator certificate names one person (CN) and one account (O)")
        }
        // Revocation as the HSM-anchored audit log records it (an operator's removal revokes their certificate).
        let state = try await onboarding.audit.verifiedState()
        guard !state.isRevoked(issuer: operatorCA.name, serial: certificate.serialHex) else {
            throw HTTPProblem(.unauthenticated, "the client certificate is revoked")
        }
        let fingerprint = hexString(SHA256.hash(data: der))
        guard let record = try await onboarding.liveOperator(fingerprintSHA256: fingerprint), record.account == organizations[0] else {
            throw HTTPProblem(.unauthenticated, "the client certificate is not that of a current operator of account \(organizations[0])")
        }
        return AuthenticatedOperator(account: organizations[0], name: names[0], fingerprint: fingerprint)
    }
}
