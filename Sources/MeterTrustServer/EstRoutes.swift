import Crypto
import Foundation
import Hummingbird
import MeterTrustCore
import MeterTrustOnboarding
import NIOCore
import NIOSSL
import X509

/// A request context the EST routes can serve: it says what the connection proved about the meter.
protocol EstRequestContext: ObservedRequestContext {
    /// The meter's credential on this connection for `operation` (setting `observation.identity`), or 401.
    func meterCredential(for operation: EnrollmentOperation) async throws -> MeterCredential
}

extension PeerCertificateRequestContext: EstRequestContext {
    /// The TLS client certificate: the factory certificate for `simpleenroll`, the operational one for
    /// `simplereenroll`.
    func meterCredential(for operation: EnrollmentOperation) async throws -> MeterCredential {
        guard let peer = try await channel.nioSSL_peerCertificate().get() else {
            throw HTTPProblem(.unauthenticated, "enrollment needs the meter's certificate in the TLS handshake: its factory certificate for simpleenroll, its operational certificate for simplereenroll")
        }
        let der = try peer.toDERBytes()
        observation.identity = "cert:" + hexString(SHA256.hash(data: der)).prefix(16)
        return operation == .simpleEnroll ? .factoryCertificate(der) : .operationalCertificate(der)
    }
}

/// The EST endpoints (RFC 7030 §3.2.2), under `/.well-known/est/` and, with the optional label naming the account,
/// `/.well-known/est/<account>/`: `cacerts` and `csrattrs` (GET), `simpleenroll` and `simplereenroll` (POST a base64
/// PKCS#10, the meter authenticated by its connection). Bodies both ways are base64 DER (``Base64Body``,
/// ``CertsOnlyCMS``); errors are problem documents (``ProblemMiddleware``). The same routes serve the TLS 1.3
/// listener (`est`: the meter's certificate) and the TLS 1.2 PSK listener (`est-psk`: the meter's PSK); the
/// context says which credential the connection carries (``EstRequestContext``).
struct EstRoutes<Context: EstRequestContext>: Sendable {
    let enrollment: OperationalEnrollment

    /// A router of its own with the problem middleware (and `observation` outermost): the `est` role's.
    func router(observation: RequestObservationMiddleware<Context>? = nil) -> Router<Context> {
        let router = Router(context: Context.self)
        if let observation { router.add(middleware: observation) }
        router.add(middleware: ProblemMiddleware<Context>(api: "EST server"))
        add(to: router)
        return router
    }

    /// Adds the EST paths to `router`, whose middleware (problem documents, observation) is the caller's.
    func add(to router: Router<Context>) {
        for path in [EstPaths.prefix, EstPaths.prefix + "/:label"] {
            router.get("\(path)/cacerts") { _, context in
                base64(try CertsOnlyCMS(certificates: try await enrollment.caCertificates(label: label(context))).derBytes(), type: EstPaths.certsOnly)
            }
            router.get("\(path)/csrattrs") { _, context in
                _ = try label(context)
                return base64(try enrollment.csrAttributes(), type: EstPaths.csrattrs)
            }
            router.post("\(path)/simpleenroll") { request, context in
                try await enroll(request, context: context, operation: .simpleEnroll)
            }
            router.post("\(path)/simplereenroll") { request, context in
                try await enroll(request, context: context, operation: .simpleReenroll)
            }
        }
    }

    /// Enrollment with the credential the connection carries: the credential, then the body, then the domain's
    /// checks; the issued certificate in a certs-only CMS (RFC 7030 §4.2.3).
    private func enroll(_ request: Request, context: Context, operation: EnrollmentOperation) async throws -> Response {
        let credential = try await context.meterCredential(for: operation)
        let label = try label(context)
        if let type = request.headers[.contentType], type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() != EstPaths.pkcs10 {
            throw HTTPProblem(.malformedInput, "the body must be \(EstPaths.pkcs10) (base64 DER), not \(DisplayText.escaped(type, asciiOnly: true, limit: 60))")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: EstPaths.maximumBodySize)
        } catch is NIOTooManyBytesError {
            throw HTTPProblem(.payloadTooLarge, "the body is larger than the EST server accepts (\(EstPaths.maximumBodySize / 1024) KiB): send one base64 PKCS#10 request")
        }
        let csr = try Base64Body.decode(body.readableBytesView, maximumLength: EstPaths.maximumBodySize)
        let observation = context.observation
        let issued = try await enrollment.enroll(credential, csr: csr, label: label, operation: operation) { meter in observation.identity = meter.eui64.description }
        observation.account = issued.account
        // Only the issued certificate (RFC 7030 §4.2.3); its CA comes from cacerts.
        return base64(try CertsOnlyCMS(certificates: [issued.certificate]).derBytes(), type: EstPaths.certsOnly)
    }

    /// The label (an account id) if the path has one; one that cannot be an account is refused before anything is read.
    private func label(_ context: Context) throws -> String? {
        guard let label = context.parameters.get("label") else { return nil }
        guard Onboarding.isAccountID(label) else {
            throw HTTPProblem(.malformedInput, "\(DisplayText.escaped(label, asciiOnly: true, limit: 70)) is not an EST label: the label is an account id (1 to 63 lowercase letters, digits and -)")
        }
        return label
    }

    private func base64(_ der: [UInt8], type: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: type, EstPaths.transferEncoding: "base64"],
            body: .init(byteBuffer: ByteBuffer(string: Base64Body.encode(der)))
        )
    }
}

/// EST's paths, media types and bounds (RFC 7030 §3.2.2, §4).
enum EstPaths {
    static let prefix = "/.well-known/est"
    /// A base64 P-256 request is under 1.5 KiB; 16 KiB bounds reading and decoding.
    static let maximumBodySize = 16 * 1024
    static let certsOnly = "application/pkcs7-mime; smime-type=certs-only"
    static let pkcs10 = "application/pkcs10"
    static let csrattrs = "application/csrattrs"
    static let transferEncoding = HTTPFields.Element.Name("Content-Transfer-Encoding")!
}
