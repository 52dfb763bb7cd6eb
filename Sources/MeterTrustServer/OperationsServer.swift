import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle

/// The process's metrics: swift-metrics, backed by swift-prometheus, bootstrapped once per process (by `serve`).
public enum ServerMetrics {
    /// The registry `/metrics` prints. The first use bootstraps the metrics system with it.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // HSM signatures take well under a millisecond on SoftHSM2 and a few on network HSMs: fine buckets.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5), .seconds(10),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }()
}

/// `/readyz`'s answer: whether an HSM session opens and a store read succeeds now.
public struct Readiness: Sendable, Encodable {
    public var ready: Bool
    /// `ok` or what failed, per dependency.
    public var hsm: String
    public var store: String
    /// The first failure, in one line.
    public var reason: String?
}

/// The operations listener: plain HTTP, loopback by default, for the platform's own monitoring. `/metrics`
/// (Prometheus text), `/healthz` (the process is up) and `/readyz` (``Readiness``; 503 when not ready).
struct OperationsServer: Sendable {
    let listener: ServeListener
    let readiness: @Sendable () async -> Readiness
    let logger: Logger

    func application(onBound: @escaping @Sendable (Int) async -> Void) -> any Service {
        let router = Router()
        let readiness = self.readiness
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: ServerMetrics.registry.emitToBuffer()))
            )
        }
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in
            let state = await readiness()
            var response = try json(state, status: state.ready ? .ok : .serviceUnavailable)
            response.headers[.cacheControl] = "no-store"
            return response
        }
        return Application(
            router: router, server: .http1(configuration: HTTP1Channel.Configuration(idleTimeout: listener.idleTimeout)),
            configuration: ApplicationConfiguration(address: .hostname(listener.host, port: listener.port), serverName: "metertrust-operations"),
            onServerRunning: { channel in await onBound(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }
}
