import Foundation
import MeterTrustCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import X509

/// The meter checks the EST server's certificate by OCSP (RFC 6960) during the TLS handshake: the chain is verified
/// to the meter's trust anchors and the host it dialled (swift-certificates: RFC 5280 path validation, MeterTrust's
/// critical extensions, the server's identity), then the responder is asked about the server's certificate with a
/// fresh nonce and its answer verified (``OCSPStatusCheck``). Hard failure: a server certificate revoked, unknown,
/// answered badly or not at all ends the handshake, and the certificate must name a responder (AIA id-ad-ocsp).
/// `responderURL` sends the query to one URL instead of the certificate's own (a meter behind a gateway; the tests'
/// loopback responder).
public struct ServerRevocationCheck: Sendable {
    public var responderURL: String?
    public var timeout: TimeAmount = .seconds(10)

    public init(responderURL: String? = nil) {
        self.responderURL = responderURL
    }

    /// Why the last handshake's verification failed, for the client's error line (the TLS stack only says it did).
    final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var reason: String?
        var failure: String? {
            get { lock.withLock { reason } }
            set { lock.withLock { reason = newValue } }
        }
    }

    /// Verifies `presented` (leaf first, as sent) and completes `promise`; runs off the event loop.
    func verify(
        presented: [NIOSSLCertificate], anchors: [Certificate], server: ESTServerAddress, group: any EventLoopGroup, outcome: Outcome,
        promise: EventLoopPromise<NIOSSLVerificationResult>
    ) {
        let check = self
        let ders = presented.compactMap { try? $0.toDERBytes() }
        Task {
            let failure = await check.failure(of: ders, anchors: anchors, server: server, group: group)
            outcome.failure = failure
            promise.succeed(failure == nil ? .certificateVerified : .failed)
        }
    }

    func failure(of presented: [[UInt8]], anchors: [Certificate], server: ESTServerAddress, group: any EventLoopGroup) async -> String? {
        guard let leafDER = presented.first, let leaf = try? Certificate(derEncoded: leafDER) else { return "the server presented no certificate" }
        let intermediates = presented.dropFirst().compactMap { try? Certificate(derEncoded: $0) }
        let names = (try? leaf.extensions.authorityInformationAccess)?.compactMap { description -> String? in
            guard description.method == .ocspServer, case .uniformResourceIdentifier(let uri) = description.location else { return nil }
            return uri
        } ?? []
        guard !names.isEmpty else { return "the server's certificate names no OCSP responder, and this meter checks it by OCSP" }
        var verifier = Verifier(rootCertificates: CertificateStore(anchors)) {
            RFC5280Policy()
            MeterTrustCertificatePolicy()
            ServerIdentityPolicy(serverHostname: server.hostIsAddress ? nil : server.host, serverIP: server.hostIsAddress ? server.host : nil)
        }
        let chain: [Certificate]
        switch await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates)) {
        case .validCertificate(let validated):
            chain = Array(validated)
        case .couldNotValidate(let failures):
            let reasons = Set(failures.map { "\($0.policyFailureReason)" }).sorted()
            return reasons.isEmpty ? "no chain to the meter's trust anchor" : reasons.joined(separator: "; ")
        }
        guard chain.count >= 2 else { return "the server's certificate is a trust anchor itself: nothing to ask a responder" }
        let issuer = chain[1]
        var generator = SystemRandomNumberGenerator()
        let nonce = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let target = responderURL ?? names[0]
        do {
            let request = try OCSPStatusCheck.request(for: leaf, issuer: issuer, nonce: nonce)
            let answer = try await HTTPOCSPRequester(group: group, timeout: timeout).post(request, to: target)
            switch try OCSPStatusCheck.status(of: answer, certificate: leaf, issuer: issuer, nonce: nonce) {
            case .good:
                return nil
            case .revoked(let at, let reason):
                let names = [0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged", 4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 9: "privilegeWithdrawn", 10: "aACompromise"]
                return "revoked (OCSP, \(target)): since \(ISO8601DateFormatter().string(from: at)), reason \(reason.flatMap { names[$0] } ?? "unspecified")"
            case .unknown:
                return "the OCSP responder \(target) does not know the server's certificate"
            }
        } catch {
            return "no trustworthy OCSP answer from \(target): \(error)"
        }
    }
}

/// The OCSP transport of ``ServerRevocationCheck``: `POST` of the DER request (RFC 6960 Appendix A.1) over plain
/// HTTP/1.1 (the answer is signed; TLS would need the very check it serves), the answer bounded at 64 KiB.
struct HTTPOCSPRequester {
    let group: any EventLoopGroup
    let timeout: TimeAmount

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The answer's body to `request` POSTed at `target` (an http:// URL).
    func post(_ request: [UInt8], to target: String) async throws -> [UInt8] {
        guard let url = URL(string: target), url.scheme == "http", let host = url.host else {
            throw Failure(description: "\(target) is not an http:// URL")
        }
        let port = url.port ?? 80
        let path = url.path.isEmpty ? "/" : url.path
        let loop = group.next()
        let promise = loop.makePromise(of: ESTResponse.self)
        let timeout = self.timeout
        let channel: any Channel
        do {
            channel = try await ESTResponseCollector.connect(
                loop: loop, host: host, port: port, timeout: timeout, limit: OCSPStatusCheck.maximumResponseSize, promise: promise
            )
        } catch {
            promise.fail(error)
            throw Failure(description: "not reached: \(DisplayText.escaped(String(describing: error), asciiOnly: true, limit: 200))")
        }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "Host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        head.headers.add(name: "User-Agent", value: "metertrust-meter")
        head.headers.add(name: "Content-Type", value: "application/ocsp-request")
        head.headers.add(name: "Content-Length", value: String(request.count))
        head.headers.add(name: "Connection", value: "close")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: request))), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        defer { channel.close(promise: nil) }
        let response = try await promise.futureResult.get()
        guard response.status == 200 else { throw Failure(description: "HTTP \(response.status)") }
        return response.body
    }
}
