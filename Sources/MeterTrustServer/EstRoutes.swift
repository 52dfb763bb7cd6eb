import Crypto
import Foundation
import Hummingbird
import MeterTrustCore
import MeterTrustOnboarding
import NIOCore
import NIOSSL
import X509

typealias EstRequestContext = PeerCertificateRequestContext

/// The EST endpoints (RFC 7030 §3.2.2), under `/.well-known/est/` and, with the optional label naming the account,
/// `/.well-known/est/<account>/`: `cacerts` and `csrattrs` (GET, anonymous allowed), `simpleenroll` and
/// `simplereenroll` (POST a base64 PKCS#10, the meter's client certificate required). Bodies both ways are base64
/// DER (``Base64Body``, ``CertsOnlyCMS``); errors are problem documents (``ProblemMiddleware``).
struct EstRoutes: Sendable {
    static let prefix = "/.well-known/est"
    /// A base64 P-256 request is under 1.5 KiB; 16 KiB bounds reading and decoding.
    static let maximumBodySize = 16 * 1024
    static let certsOnly = "application/pkcs7-mime; smime-type=certs-only"
    static let pkcs10 = "application/pkcs10"
    static let csrattrs = "application/csrattrs"
    static let transferEncoding = HTTPFields.Element.Name("Content-Transfer-Encoding")!

    let enrollment: OperationalEnrollment

    func router(observation: RequestObservationMiddleware<EstRequestContext>? = nil) -> Router<EstRequestContext> {
        let router = Router(context: EstRequestContext.self)
        if let observation { router.add(middleware: observation) }
        router.add(middleware: ProblemMiddleware<EstRequestContext>(api: "EST server"))
        for path in [Self.prefix, Self.prefix + "/:label"] {
            router.get("\(path)/cacerts") { _, context in
                base64(try CertsOnlyCMS(certificates: try await enrollment.caCertificates(label: label(context))).derBytes(), type: Self.certsOnly)
            }
            router.get("\(path)/csrattrs") { _, context in
                _ = try label(context)
                return base64(try enrollment.csrAttributes(), type: Self.csrattrs)
            }
            router.post("\(path)/simpleenroll") { request, context in
                try await enroll(request, context: context) { .factoryCertificate($0) }
            }
            router.post("\(path)/simplereenroll") { request, context in
                try await enroll(request, context: context) { .operationalCertificate($0) }
            }
        }
        return router
    }

    /// Enrollment with the credential `credential` makes of the client certificate: the certificate, then the body,
    /// then the domain's checks; the issued certificate in a certs-only CMS (RFC 7030 §4.2.3).
    private func enroll(
        _ request: Request, context: EstRequestContext, credential: ([UInt8]) -> MeterCredential
    ) async throws -> Response {
        guard let peer = try await context.channel.nioSSL_peerCertificate().get() else {
            throw HTTPProblem(.unauthenticated, "enrollment needs the meter's certificate in the TLS handshake: its factory certificate for simpleenroll, its operational certificate for simplereenroll")
        }
        let der = try peer.toDERBytes()
        context.observation.identity = "cert:" + hexString(SHA256.hash(data: der)).prefix(16)
        let label = try label(context)
        if let type = request.headers[.contentType], type.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() != Self.pkcs10 {
            throw HTTPProblem(.malformedInput, "the body must be \(Self.pkcs10) (base64 DER), not \(DisplayText.escaped(type, asciiOnly: true, limit: 60))")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: Self.maximumBodySize)
        } catch is NIOTooManyBytesError {
            throw HTTPProblem(.payloadTooLarge, "the body is larger than the EST server accepts (\(Self.maximumBodySize / 1024) KiB): send one base64 PKCS#10 request")
        }
        let csr = try Base64Body.decode(body.readableBytesView, maximumLength: Self.maximumBodySize)
        let observation = context.observation
        let issued = try await enrollment.enroll(credential(der), csr: csr, label: label) { meter in observation.identity = meter.eui64.description }
        observation.account = issued.account
        // Only the issued certificate (RFC 7030 §4.2.3); its CA comes from cacerts.
        return base64(try CertsOnlyCMS(certificates: [issued.certificate]).derBytes(), type: Self.certsOnly)
    }

    /// The label (an account id) if the path has one; one that cannot be an account is refused before anything is read.
    private func label(_ context: EstRequestContext) throws -> String? {
        guard let label = context.parameters.get("label") else { return nil }
        guard Onboarding.isAccountID(label) else {
            throw HTTPProblem(.malformedInput, "\(DisplayText.escaped(label, asciiOnly: true, limit: 70)) is not an EST label: the label is an account id (1 to 63 lowercase letters, digits and -)")
        }
        return label
    }

    private func base64(_ der: [UInt8], type: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: type, Self.transferEncoding: "base64"],
            body: .init(byteBuffer: ByteBuffer(string: Base64Body.encode(der)))
        )
    }
}
