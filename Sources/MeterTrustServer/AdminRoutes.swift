import Crypto
import Foundation
import Hummingbird
import Logging
import MeterTrustAdmin
import MeterTrustAdminAPI
import MeterTrustCore
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import NIOCore
import NIOSSL

/// Request context of the admin API: keeps the channel so handlers can read the TLS peer's certificate.
struct AdminRequestContext: ObservedRequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    let observation = RequestObservation()

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    var maxUploadSize: Int { AdminRoutes.maximumBodySize }
}

/// Routes of the admin API (JSON in and out; errors as `{"code": ..., "message": ...}`).
struct AdminRoutes: Sendable {
    static let maximumBodySize = 1 << 20
    let service: AdminService
    /// The Admin CA custodian certificates must chain to (checked again on every request).
    let adminCA: CertificateAuthority
    /// The audit signer's certificate (DER), handed to witnesses with each checkpoint.
    let auditSigner: [UInt8]?
    let logger: Logger

    func router(observation: RequestObservationMiddleware<AdminRequestContext>? = nil) -> Router<AdminRequestContext> {
        let router = Router(context: AdminRequestContext.self)
        if let observation { router.add(middleware: observation) }
        router.add(middleware: ProblemMiddleware<AdminRequestContext>(api: "admin API"))
        router.get("/healthz") { _, context in
            _ = try await custodian(context)
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/v1/custodians") { _, context in
            _ = try await custodian(context)
            let custodians = try await service.store.custodians().map {
                AdminAPIMessage.CustodianSummary(name: $0.name, role: $0.role, certificate: $0.fingerprintSHA256, registeredAt: $0.registeredAt, removedAt: $0.removedAt)
            }
            return try json(custodians)
        }
        router.get("/v1/audit/checkpoint") { request, context in
            _ = try await custodian(context)
            guard let auditSigner else { throw QuorumError(.notBootstrapped, "this server has no audit log") }
            let since = request.uri.queryParameters.get("since").flatMap { Int(String($0)) } ?? 0
            guard since >= 0 else { throw HTTPProblem(.malformedInput, "since is a number of entries") }
            let evidence = try await service.audit.consistencyEvidence(since: since)
            return try json(
                AdminAPIMessage.AuditCheckpoint(
                    checkpoint: evidence.checkpoint, signerCertificate: Data(auditSigner).base64EncodedString(), since: since,
                    consistency: evidence.proof.map { Data($0).base64EncodedString() }
                )
            )
        }
        router.get("/v1/policies") { _, context in
            _ = try await custodian(context)
            return try json(try await service.policies())
        }
        router.post("/v1/requests") { request, context in
            let requester = try await custodian(context)
            let body = try await read(request, context: context)
            guard let new = try? JSONDecoder().decode(AdminAPIMessage.NewRequest.self, from: Data(body)) else {
                throw HTTPProblem(.malformedInput, "the body must be {\"operation\": ..., \"parameters\": {...}, \"lifetimeSeconds\": ...}")
            }
            let status = try await service.submit(
                operation: try service.operations.definition(named: new.operation), parameters: new.parameters, requester: requester,
                lifetime: TimeInterval(new.lifetimeSeconds ?? 3600)
            )
            return try json(status, status: .created)
        }
        router.get("/v1/requests") { request, context in
            _ = try await custodian(context)
            let state = try request.uri.queryParameters.get("state").map { text -> AdminRequestRecord.State in
                guard let state = AdminRequestRecord.State(rawValue: String(text)) else {
                    throw HTTPProblem(.malformedInput, "state must be pending, executing, executed or failed")
                }
                return state
            }
            let records = try await service.requests(state: state)
            return try json(records.map { AdminAPIMessage.RequestSummary(id: $0.id, operation: $0.operation, requester: $0.requester, state: $0.state.rawValue, created: $0.createdAt, expires: $0.expiresAt) })
        }
        router.get("/v1/requests/:id") { _, context in
            _ = try await custodian(context)
            return try json(try await service.status(id: try context.parameters.require("id")))
        }
        router.get("/v1/requests/:id/document") { _, context in
            _ = try await custodian(context)
            let id = try context.parameters.require("id")
            guard let record = try await service.store.adminRequest(id: id) else { throw QuorumError(.unknownRequest, "there is no request \(id)") }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: record.document)))
        }
        router.post("/v1/requests/:id/approvals") { request, context in
            let uploader = try await custodian(context)
            let id = try context.parameters.require("id")
            let body = try await read(request, context: context)
            if let approval = try? Approval.parse(body), approval.request != id {
                throw QuorumError(.wrongRequest, "the approval is for request \(approval.request.prefix(16))…, not \(id.prefix(16))…")
            }
            return try json(try await service.approve(body, uploader: uploader.name), status: .created)
        }
        router.post("/v1/requests/:id/execute") { _, context in
            let executor = try await custodian(context)
            return try json(try await service.execute(id: try context.parameters.require("id"), by: executor))
        }
        return router
    }

    /// The custodian behind this connection's client certificate, checked again on every request: chain to the
    /// Admin CA, validity now, revocation and the registry (both bound to the audit log). A resumed TLS session skips
    /// the handshake's verify callback, and the custodian may have been removed since; this is where both are caught.
    private func custodian(_ context: AdminRequestContext) async throws -> Custodian {
        guard let certificate = try await context.channel.nioSSL_peerCertificate().get() else {
            throw HTTPProblem(.unauthenticated, "no client certificate")
        }
        let der = try certificate.toDERBytes()
        context.observation.identity = "cert:" + hexString(SHA256.hash(data: der)).prefix(16)
        _ = try await Custodian.admit(certificate: der, adminCA: adminCA, registeredBy: nil)
        let custodian = try await service.authenticate(certificateDER: der)
        context.observation.identity = custodian.name
        return custodian
    }

    private func read(_ request: Request, context: AdminRequestContext) async throws -> [UInt8] {
        Array(try await request.body.collect(upTo: Self.maximumBodySize).readableBytesView)
    }
}

func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

/// Turns every error into a problem document; the status comes from the code alone (``HTTPErrorMapping``), never
/// from the message. Every role's router has it, inside the request observation.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The API's name in messages: `admin API`, `account API`.
    let api: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let code: ErrorCode
            let message: String
            switch error {
            case let coded as any CodedError:
                (code, message) = (coded.errorCode, coded.message)
            case let http as HTTPError where http.status == .contentTooLarge:
                (code, message) = (.payloadTooLarge, "the body is larger than the \(api) accepts")
            case let http as HTTPError where http.status == .notFound:
                (code, message) = (.notFound, "no such resource")
            case let http as HTTPError where (400..<500).contains(http.status.code):
                (code, message) = (.malformedInput, http.body ?? "\(http.status)")
            default:
                (code, message) = (.internalError, "the server failed; see its log")
            }
            let status = HTTPErrorMapping.status(for: code)
            if status.code >= 500 {
                context.logger.error("\(api) error", metadata: ["code": "\(code)", "error": "\(error)"])
            }
            var response = try json(AdminAPIMessage.ErrorBody(code: code.rawValue, message: message, status: status.code), status: status)
            response.headers[.contentType] = "application/problem+json"
            if let seconds = HTTPErrorMapping.retryAfter(for: code) { response.headers[.retryAfter] = "\(seconds)" }
            return response
        }
    }
}
