import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustRevocation
import NIOCore
import ServiceLifecycle

/// Request context of the plain-HTTP roles (crl, ocsp): relying parties fetch CRLs and ask OCSP over HTTP (RFC 5280
/// §4.2.1.13, RFC 6960 Appendix A): the documents are signed, so TLS adds nothing and would loop (checking the
/// server's certificate needs them). Bodies beyond 64 KiB are refused.
struct PlainRequestContext: ObservedRequestContext {
    var coreContext: CoreRequestContextStorage
    let observation = RequestObservation()

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    var maxUploadSize: Int { 64 * 1024 }

    /// A plain HTTP/1.1 listener for `router` on `listener`.
    static func application(
        router: Router<PlainRequestContext>, listener: ServeListener, serverName: String, onBound: @escaping @Sendable (Int) async -> Void, logger: Logger
    ) -> some Service {
        Application(
            router: router, server: .http1(configuration: HTTP1Channel.Configuration(idleTimeout: listener.idleTimeout)),
            configuration: ApplicationConfiguration(address: .hostname(listener.host, port: listener.port), serverName: serverName),
            onServerRunning: { channel in await onBound(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }
}

/// The URL of a plain-HTTP listener bound to `bindHost`:`port`.
func plainURL(bindHost: String, port: Int) -> String {
    "http://\(bindHost.contains(":") ? "[\(bindHost)]" : bindHost):\(port)/"
}

/// How fresh the revocation state of the crl and ocsp roles is: the verified audit log at most this old (a
/// revocation committed on any node is answered within it).
enum RevocationFreshness {
    static let stateAge: Duration = .milliseconds(250)
}

/// The CRL role of `metertrust serve`: `GET /<ca>.crl` (the CA's complete CRL) and `GET /<ca>/<shard>.crl` (one
/// shard's, the URL its certificates name), over plain HTTP, with a strong ETag (the cRLNumber), `If-None-Match`,
/// Last-Modified and a Cache-Control that never outlasts nextUpdate.
public struct CRLRole: ServerRole {
    public static let name = "crl"
    public var name: String { Self.name }
    public let warnings: [String] = []
    let publisher: CRLPublisher
    let logger: Logger

    public init(environment: ServeEnvironment) async throws {
        let admin = environment.admin
        guard admin.audit.signer != nil else {
            throw ServeError("the crl role publishes what the audit log records: run metertrust audit init first")
        }
        publisher = CRLPublisher(
            hierarchy: admin.hierarchy, state: VerifiedStateCache(audit: admin.audit, maximumAge: RevocationFreshness.stateAge),
            logger: environment.logger
        )
        logger = environment.logger
    }

    public func service(listener: ServeListener, requestLogger: Logger, onBound: @escaping @Sendable (Int) async -> Void) async throws -> any Service {
        let router = Router(context: PlainRequestContext.self)
        router.add(middleware: RequestObservationMiddleware(role: Self.name, logger: requestLogger))
        router.add(middleware: ConnectionCloseMiddleware<PlainRequestContext>())
        router.add(middleware: ProblemMiddleware<PlainRequestContext>(api: "CRL server"))
        let publisher = self.publisher
        // One parameter name for the first segment in both routes (Hummingbird's trie requires it).
        router.get(":name") { request, context in
            let file = context.parameters.get("name") ?? ""
            guard file.hasSuffix(".crl"), file.count > 4 else { throw HTTPProblem(.notFound, "CRLs are at /<ca>.crl and /<ca>/<shard>.crl") }
            return try await Self.serve(try await publisher.crl(authority: String(file.dropLast(4)), scope: .complete), request: request)
        }
        router.get(":name/:file") { request, context in
            let file = context.parameters.get("file") ?? ""
            guard file.hasSuffix(".crl"), let shard = Int(file.dropLast(4)), shard >= 0 else {
                throw HTTPProblem(.notFound, "a shard's CRL is at /<ca>/<shard>.crl, the shard a whole number")
            }
            let authority = context.parameters.get("name") ?? ""
            return try await Self.serve(try await publisher.crl(authority: authority, scope: .shard(shard)), request: request)
        }
        return PlainRequestContext.application(router: router, listener: listener, serverName: "metertrust-crl", onBound: onBound, logger: logger)
    }

    static func serve(_ crl: PublishedCRL, request: Request) -> Response {
        let maxAge = max(0, min(60, Int(crl.nextUpdate.timeIntervalSinceNow)))
        var headers: HTTPFields = [
            .contentType: "application/pkix-crl", .eTag: crl.etag, .cacheControl: "public, max-age=\(maxAge), no-transform",
            .lastModified: HTTPDate.format(crl.thisUpdate), .expires: HTTPDate.format(crl.nextUpdate),
        ]
        if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == crl.etag }) {
            headers[.contentLength] = nil
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: crl.der)))
    }

    public func clientURLs(bindHost: String, port: Int) -> [String] {
        [plainURL(bindHost: bindHost, port: port)]
    }
}

/// The OCSP role of `metertrust serve` (RFC 6960 Appendix A): `POST /` with an `application/ocsp-request` body, or
/// `GET /<url-encoded base64 of the DER request>`; answers `application/ocsp-response`. Garbage is answered
/// malformedRequest (HTTP 200, as the RFC has it), an oversized body 413.
public struct OCSPRole: ServerRole {
    public static let name = "ocsp"
    public var name: String { Self.name }
    public let warnings: [String]
    let responder: OCSPResponder
    let logger: Logger
    /// An OCSP request for a few certificates is a few hundred octets; 8 KiB bounds one.
    static let maximumRequestSize = 8 * 1024

    public init(environment: ServeEnvironment) async throws {
        let admin = environment.admin
        guard admin.audit.signer != nil else {
            throw ServeError("the ocsp role answers what the audit log records: run metertrust audit init first")
        }
        responder = OCSPResponder(
            hierarchy: admin.hierarchy, state: VerifiedStateCache(audit: admin.audit, maximumAge: RevocationFreshness.stateAge),
            logger: environment.logger
        )
        let (served, notes) = try await responder.prepare()
        warnings = (served.isEmpty ? ["the ocsp role serves no CA yet: every CA gets a responder when serve starts (the root's once the custodians certify it)"] : []) + notes
        logger = environment.logger
    }

    public func service(listener: ServeListener, requestLogger: Logger, onBound: @escaping @Sendable (Int) async -> Void) async throws -> any Service {
        let router = Router(context: PlainRequestContext.self)
        router.add(middleware: RequestObservationMiddleware(role: Self.name, logger: requestLogger))
        router.add(middleware: ConnectionCloseMiddleware<PlainRequestContext>())
        let responder = self.responder
        router.post("/") { request, _ in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: Self.maximumRequestSize)
            } catch is NIOTooManyBytesError {
                return Response(status: .contentTooLarge, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "an OCSP request is at most \(Self.maximumRequestSize) octets\n")))
            }
            return Self.answer(await responder.respond(to: Array(body.readableBytesView)), cacheable: false)
        }
        router.get("**") { request, _ in
            // The path after "/", percent-decoded, is the base64 of the request (RFC 6960 Appendix A.1).
            guard let der = OCSPGetPath.request(fromPath: request.uri.path.utf8.dropFirst(), limit: Self.maximumRequestSize) else {
                return Self.answer(OCSPResponse.unsuccessful(.malformedRequest), cacheable: false)
            }
            return Self.answer(await responder.respond(to: der), cacheable: true)
        }
        return PlainRequestContext.application(router: router, listener: listener, serverName: "metertrust-ocsp", onBound: onBound, logger: logger)
    }

    /// RFC 5019 §5: a GET answer may be cached briefly; it is never cached past the state's freshness here (a
    /// revocation must be seen within a second), a POST answer not at all.
    static func answer(_ der: [UInt8], cacheable: Bool) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "application/ocsp-response", .cacheControl: cacheable ? "public, max-age=1, no-transform" : "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: der))
        )
    }

    public func clientURLs(bindHost: String, port: Int) -> [String] {
        [plainURL(bindHost: bindHost, port: port)]
    }
}

/// RFC 9112 §9.6: a client that sends `Connection: close` is told so in the response (the server closes after it);
/// without it an HTTP/1.1 client takes the connection as still open and meets the close as an error.
struct ConnectionCloseMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        if let connection = request.headers[.connection], connection.lowercased().split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "close" }) {
            response.headers[.connection] = "close"
        }
        return response
    }
}

/// The GET form of an OCSP request (RFC 6960 Appendix A.1): the DER request, base64 (RFC 4648 §4; the URL-safe
/// alphabet of §5 accepted as well), percent-encoded into the path. Decoded over the path's bytes, bounded: a path
/// that would decode to more than `limit` octets, or any octet outside the alphabets, is nil.
enum OCSPGetPath {
    static func request(fromPath path: Substring.UTF8View, limit: Int) -> [UInt8]? {
        guard path.count <= (limit * 4 / 3 + 4) * 3 else { return nil }
        var sextets: [UInt8] = []
        sextets.reserveCapacity(path.count)
        var padding = 0
        var index = path.startIndex
        while index != path.endIndex {
            var byte = path[index]
            index = path.index(after: index)
            if byte == UInt8(ascii: "%") {
                guard let high = path[index...].first.flatMap(hexValue), let low = path[path.index(after: index)...].first.flatMap(hexValue) else { return nil }
                byte = high << 4 | low
                index = path.index(index, offsetBy: 2)
            }
            if byte == UInt8(ascii: "=") {
                padding += 1
                guard padding <= 2 else { return nil }
                continue
            }
            guard padding == 0, let value = sextet(byte) else { return nil }
            sextets.append(value)
        }
        guard sextets.count % 4 != 1, (sextets.count + padding) % 4 == 0 || padding == 0 else { return nil }
        var der: [UInt8] = []
        der.reserveCapacity(sextets.count * 3 / 4)
        var start = 0
        while start < sextets.count {
            let group = sextets[start..<min(start + 4, sextets.count)]
            var bits: UInt32 = 0
            for (offset, value) in group.enumerated() { bits |= UInt32(value) << (18 - 6 * offset) }
            for offset in 0..<(group.count - 1) { der.append(UInt8(truncatingIfNeeded: bits >> (16 - 8 * offset))) }
            start += 4
        }
        guard der.count <= limit else { return nil }
        return der
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func sextet(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"), UInt8(ascii: "-"): 62
        case UInt8(ascii: "/"), UInt8(ascii: "_"): 63
        default: nil
        }
    }
}

/// IMF-fixdate (RFC 9110 §5.6.7).
enum HTTPDate {
    static func format(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }
}
