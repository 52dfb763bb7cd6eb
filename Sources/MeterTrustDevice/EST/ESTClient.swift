import Crypto
import Foundation
import MeterTrustCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwiftASN1
import X509

/// The meter's EST client (RFC 7030 §4): `cacerts`, `csrattrs`, `simpleenroll`, `simplereenroll` over HTTPS, one
/// connection (a full TLS handshake, no resumption) per request.
///
/// Certificate mode speaks TLS 1.3 only, presents the ``ESTCredential/certificate(_:chain:key:)`` and verifies the
/// server against the trust anchors the meter was given (its bundle's root): the chain, and the host the meter
/// dialled in the server's subjectAltName (an IP literal against an iPAddress entry, a name against dNSName, with SNI).
/// PSK mode speaks TLS 1.2 with ECDHE-PSK-CHACHA20-POLY1305 only. Answers are read by ``ESTResponse`` (bounded at
/// ``ESTResponse/maximumBodySize``); a 202 or 503 with Retry-After is retried up to ``maximumRetries`` times,
/// waiting what the server asks up to ``maximumRetryWait`` seconds.
public struct ESTClient: Sendable {
    public let server: ESTServerAddress
    public var timeout: TimeAmount = .seconds(30)
    public var maximumRetries = 3
    public var maximumRetryWait = 120
    /// Check the server's certificate by OCSP in every handshake (certificate mode only; see ``ServerRevocationCheck``).
    public var serverRevocation: ServerRevocationCheck?
    private let context: NIOSSLContext
    private let group: any EventLoopGroup
    private let trustAnchors: [Certificate]
    private let certificateMode: Bool

    public init(
        server: ESTServerAddress, credential: ESTCredential, trustAnchors: [Certificate],
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        self.server = server
        self.group = group
        self.trustAnchors = trustAnchors
        if case .certificate = credential { certificateMode = true } else { certificateMode = false }
        var tls = TLSConfiguration.makeClientConfiguration()
        switch credential {
        case .certificate(let certificate, let chain, let key):
            guard !trustAnchors.isEmpty else {
                throw CoreError(.invalidArgument, "the meter has no trust anchor to verify the EST server \(server) with")
            }
            tls.minimumTLSVersion = .tlsv13
            tls.maximumTLSVersion = .tlsv13
            tls.certificateVerification = .fullVerification
            tls.trustRoots = .certificates(try trustAnchors.map { try NIOSSLCertificate(bytes: try $0.derBytes, format: .der) })
            tls.certificateChain = try ([certificate] + chain).map { .certificate(try NIOSSLCertificate(bytes: try $0.derBytes, format: .der)) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        case .preSharedKey(let identity, let key):
            tls.minimumTLSVersion = .tlsv12
            tls.maximumTLSVersion = .tlsv12
            tls.cipherSuites = ESTCredential.pskCipherSuite
            // No certificate on either side: the key authenticates the server as much as the meter.
            tls.certificateVerification = .none
            tls.pskClientProvider = { _ in
                var secret = NIOSSLSecureBytes()
                secret.append(contentsOf: key.bytes)
                return PSKClientIdentityResponse(key: secret, identity: identity)
            }
        }
        do {
            self.context = try NIOSSLContext(configuration: tls)
        } catch {
            throw CoreError(.invalidArgument, "the meter's TLS credential is not usable: \(error)")
        }
    }

    /// The CA certificates the server distributes (RFC 7030 §4.1), in the order of its certs-only CMS.
    public func caCertificates() async throws -> [Certificate] {
        guard case .certificates(let certificates) = try await request(.cacerts, body: nil) else { throw unexpected(.cacerts) }
        return certificates
    }

    /// The attributes the server would like in the CSR (RFC 7030 §4.5); empty when it has none (204 or 404).
    public func csrAttributes() async throws -> CsrAttrs {
        guard case .attributes(let attributes) = try await request(.csrattrs, body: nil) else { throw unexpected(.csrattrs) }
        return attributes
    }

    /// `simpleenroll` (RFC 7030 §4.2.1) or `simplereenroll` (§4.2.2) of a PKCS#10 request (DER): the certificates of
    /// the answer, the issued one among them.
    public func enroll(csr: [UInt8], reenroll: Bool = false) async throws -> [Certificate] {
        let operation: ESTOperation = reenroll ? .simplereenroll : .simpleenroll
        guard case .certificates(let certificates) = try await request(operation, body: csr) else { throw unexpected(operation) }
        return certificates
    }

    /// One request, retried while the server says "later" (bounded).
    public func request(_ operation: ESTOperation, body: [UInt8]?) async throws -> ESTResponse.Meaning {
        var retries = 0
        while true {
            let response = try await exchange(operation, body: body)
            let meaning = try response.meaning(of: operation, from: server.description)
            guard case .retry(let seconds) = meaning else { return meaning }
            guard retries < maximumRetries else {
                throw ESTClientError(
                    .unreachable, "EST \(operation.rawValue) at \(server): still busy after \(retries) retries (HTTP \(response.status)); try again later",
                    status: response.status
                )
            }
            guard seconds <= maximumRetryWait else {
                throw ESTClientError(
                    .unreachable, "EST \(operation.rawValue) at \(server): the server asks to retry in \(seconds) s, longer than the meter waits (\(maximumRetryWait) s)",
                    status: response.status
                )
            }
            retries += 1
            try await Task.sleep(for: .seconds(seconds))
        }
    }

    /// One connection: TLS handshake, the request, the whole answer (bounded), close.
    public func exchange(_ operation: ESTOperation, body: [UInt8]?) async throws -> ESTResponse {
        let loop = group.next()
        let promise = loop.makePromise(of: ESTResponse.self)
        let context = self.context
        let serverHostname = server.hostIsAddress ? nil : server.host
        let timeout = self.timeout
        let what = "EST \(operation.rawValue) at \(server)"
        let revocation = certificateMode ? serverRevocation : nil
        let outcome = ServerRevocationCheck.Outcome()
        let (anchors, server, group) = (trustAnchors, self.server, self.group)
        let channel: any Channel
        do {
            channel = try await ESTResponseCollector.connect(
                loop: loop, host: server.host, port: server.port, timeout: timeout, limit: ESTResponse.maximumBodySize, promise: promise
            ) { operations in
                if let revocation {
                    try operations.addHandler(
                        try NIOSSLClientHandler(context: context, serverHostname: serverHostname) { presented, verdict in
                            revocation.verify(presented: presented, anchors: anchors, server: server, group: group, outcome: outcome, promise: verdict)
                        }
                    )
                } else {
                    try operations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverHostname))
                }
            }
        } catch {
            promise.fail(error)
            throw Self.transportError(error, what: what, verification: outcome.failure)
        }
        var head = HTTPRequestHead(version: .http1_1, method: body == nil ? .GET : .POST, uri: server.path(operation))
        head.headers.add(name: "Host", value: server.host.contains(":") ? "[\(server.host)]:\(server.port)" : "\(server.host):\(server.port)")
        head.headers.add(name: "User-Agent", value: "metertrust-meter")
        head.headers.add(name: "Accept", value: operation == .csrattrs ? "application/csrattrs" : "application/pkcs7-mime")
        head.headers.add(name: "Connection", value: "close")
        var payload: ByteBuffer?
        if let body {
            // RFC 7030 §4.2.1: application/pkcs10, base64 (RFC 8951: the transfer-encoding header is informative).
            let text = Data(body).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
            payload = ByteBuffer(string: text)
            head.headers.add(name: "Content-Type", value: "application/pkcs10")
            head.headers.add(name: "Content-Transfer-Encoding", value: "base64")
            head.headers.add(name: "Content-Length", value: String(text.utf8.count))
        }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let payload { channel.write(HTTPClientRequestPart.body(.byteBuffer(payload)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        do {
            let response = try await promise.futureResult.get()
            channel.close(promise: nil)
            return response
        } catch {
            channel.close(promise: nil)
            throw Self.transportError(error, what: what, verification: outcome.failure)
        }
    }

    private func unexpected(_ operation: ESTOperation) -> ESTClientError {
        ESTClientError(.estBadResponse, "EST \(operation.rawValue) at \(server): the answer is not what \(operation.rawValue) returns")
    }

    /// A transport failure in one line: the server's certificate not trusted, the meter refused in the handshake, or
    /// the server not reached.
    static func transportError(_ error: any Error, what: String, verification: String? = nil) -> any Error {
        if let verification {
            return ESTClientError(.untrustedChain, "\(what): the server's certificate failed the meter's check: \(DisplayText.escaped(verification, asciiOnly: true, limit: 300))")
        }
        if error is ESTClientError { return error }
        let text = String(describing: error)
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("failedToValidateHostname") {
            return ESTClientError(
                .untrustedChain,
                "\(what): the server's certificate is not trusted by this meter (it must chain to the meter's trust anchor and name the host it dialled)"
            )
        }
        if let alert = Self.alert(in: text) {
            return ESTClientError(.estRefused, "\(what): the server refused the meter in the TLS handshake (\(alert))")
        }
        if let ssl = error as? NIOSSLError {
            return ESTClientError(.unreachable, "\(what): TLS failed: \(DisplayText.escaped(String(describing: ssl), asciiOnly: true, limit: 300))")
        }
        return ESTClientError(.unreachable, "\(what): cannot reach the server: \(DisplayText.escaped(text, asciiOnly: true, limit: 300))")
    }

    /// The TLS alert name BoringSSL reports for an alert the peer sent (`SSLV3_ALERT_BAD_CERTIFICATE`, …), if any.
    static func alert(in text: String) -> String? {
        for marker in ["SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV1_CERTIFICATE_REQUIRED", "PSK_IDENTITY_NOT_FOUND", "DECRYPTION_FAILED_OR_BAD_RECORD_MAC", "BAD_DECRYPT"] {
            guard let range = text.range(of: marker) else { continue }
            let tail = text[range.lowerBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            return String(tail).lowercased().replacingOccurrences(of: "_", with: " ")
        }
        return nil
    }
}

/// Collects one HTTP answer (head and body up to a limit) and completes the promise once: with the answer at its
/// end, or with the failure (an error, the connection closed first, the body too large, the deadline passed).
final class ESTResponseCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<ESTResponse>
    private let timeout: TimeAmount
    private let limit: Int
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []
    private var done = false
    private var deadline: Scheduled<Void>?

    /// A client connection to `host`:`port`: `front`'s handlers (TLS), the HTTP/1.1 codec, then a collector for
    /// `promise`.
    static func connect(
        loop: any EventLoop, host: String, port: Int, timeout: TimeAmount, limit: Int, promise: EventLoopPromise<ESTResponse>,
        front: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void = { _ in }
    ) async throws -> any Channel {
        try await ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try front(operations)
                    try operations.addHTTPClientHandlers()
                    try operations.addHandler(ESTResponseCollector(promise: promise, timeout: timeout, limit: limit))
                }
            }
            .connect(host: host, port: port).get()
    }

    init(promise: EventLoopPromise<ESTResponse>, timeout: TimeAmount, limit: Int) {
        self.promise = promise
        self.timeout = timeout
        self.limit = limit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timeout = self.timeout
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            let (collector, context) = bound.value
            collector.finish(.failure(ESTClientError(.unreachable, "no answer within \(timeout.nanoseconds / 1_000_000_000) s")), context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let response):
            head = response
        case .body(var buffer):
            guard body.count + buffer.readableBytes <= limit else {
                finish(.failure(ESTClientError(.estBadResponse, "the answer is larger than \(limit) bytes")), context: context)
                return
            }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else {
                finish(.failure(ESTClientError(.estBadResponse, "an answer without a status line")), context: context)
                return
            }
            finish(
                .success(
                    ESTResponse(
                        status: Int(head.status.code), contentType: head.headers.first(name: "Content-Type"),
                        retryAfter: head.headers.first(name: "Retry-After"), body: body
                    )
                ),
                context: context
            )
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(error), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(ESTClientError(.unreachable, "the server closed the connection before it answered")), context: context)
        context.fireChannelInactive()
    }

    private func finish(_ result: Result<ESTResponse, any Error>, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        deadline?.cancel()
        promise.completeWith(result)
        context.close(promise: nil)
    }
}
