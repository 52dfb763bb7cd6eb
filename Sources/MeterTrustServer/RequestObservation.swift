import Foundation
import Hummingbird
import Logging
import Metrics

/// What a request's handlers learn about it while they run (who the client is, which account it acts for), read
/// once the response is made for the request's log line. A reference shared by every copy of the request context.
public final class RequestObservation: @unchecked Sendable {
    private let lock = NSLock()
    private var identityValue: String?
    private var accountValue: String?

    public init() {}

    /// Who made the request: a custodian's or operator's name once authenticated, before that `cert:` and the first
    /// 16 hex digits of the client certificate's SHA-256.
    public var identity: String? {
        get { lock.withLock { identityValue } }
        set { lock.withLock { identityValue = newValue } }
    }

    /// The account the request acts for, when the role knows it (the account role sets it; the admin role never does).
    public var account: String? {
        get { lock.withLock { accountValue } }
        set { lock.withLock { accountValue = newValue } }
    }
}

/// A role's request context: it carries the request's ``RequestObservation``.
public protocol ObservedRequestContext: RequestContext {
    var observation: RequestObservation { get }
}

/// The outermost middleware of every role's router: one structured log line per request (role, identity, account,
/// method, route pattern, status, outcome, duration; never a body, a header or a secret) and the request metrics
/// `metertrust_http_requests_total` (by role, endpoint (the route pattern, not the raw path), method, status and
/// outcome) and `metertrust_http_request_duration_seconds` (a histogram by role, endpoint and method).
public struct RequestObservationMiddleware<Context: ObservedRequestContext>: RouterMiddleware {
    public let role: String
    public let logger: Logger

    public init(role: String, logger: Logger) {
        self.role = role
        self.logger = logger
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context: context, status: Int(response.status.code), since: start)
            return response
        } catch {
            record(request, context: context, status: (error as? any HTTPResponseError).map { Int($0.status.code) } ?? 500, since: start)
            throw error
        }
    }

    /// `success` (1xx–3xx), `client_error` (4xx) or `server_error` (5xx).
    static func outcome(status: Int) -> String {
        switch status {
        case ..<400: return "success"
        case 400..<500: return "client_error"
        default: return "server_error"
        }
    }

    private func record(_ request: Request, context: Context, status: Int, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let endpoint = context.endpointPath ?? "unmatched"
        let method = request.method.rawValue
        let outcome = Self.outcome(status: status)
        let (counter, timer) = RequestMetrics.shared.handles(role: role, endpoint: endpoint, method: method, status: status, outcome: outcome)
        counter.increment()
        timer.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        logger.info(
            "request",
            metadata: [
                "role": "\(role)", "identity": "\(context.observation.identity ?? "-")", "account": "\(context.observation.account ?? "-")",
                "method": "\(method)", "route": "\(endpoint)", "status": "\(status)", "outcome": "\(outcome)",
                "duration_ms": "\(String(format: "%.1f", milliseconds))",
            ]
        )
    }
}

/// The request metrics' handles, made once per (role, endpoint, method, status) rather than per request: making one
/// asks the metrics factory (swift-prometheus validates the name and looks the series up under a lock), which at
/// OCSP's rates is a few per cent of the server's CPU. Endpoints are route patterns, so the set stays small.
final class RequestMetrics: @unchecked Sendable {
    static let shared = RequestMetrics()

    private struct Key: Hashable {
        let role: String, endpoint: String, method: String, status: Int
    }

    private let lock = NSLock()
    private var counters: [Key: Counter] = [:]
    private var timers: [Key: Metrics.Timer] = [:]

    func handles(role: String, endpoint: String, method: String, status: Int, outcome: String) -> (Counter, Metrics.Timer) {
        let key = Key(role: role, endpoint: endpoint, method: method, status: status)
        // The timer has no status dimension: one per (role, endpoint, method).
        let timerKey = Key(role: role, endpoint: endpoint, method: method, status: 0)
        return lock.withLock {
            // Bounded all the same (endpoints are route patterns, unmatched paths share one name).
            if counters.count > 10_000 { counters.removeAll(); timers.removeAll() }
            let counter = counters[key] ?? Counter(
                label: "metertrust_http_requests_total",
                dimensions: [("role", role), ("endpoint", endpoint), ("method", method), ("status", "\(status)"), ("outcome", outcome)]
            )
            let timer = timers[timerKey] ?? Metrics.Timer(
                label: "metertrust_http_request_duration_seconds", dimensions: [("role", role), ("endpoint", endpoint), ("method", method)]
            )
            counters[key] = counter
            timers[timerKey] = timer
            return (counter, timer)
        }
    }
}
