import Dispatch
import Foundation
import HummingbirdCore
import Logging
import MeterTrustCore
import MeterTrustOnboarding
import Metrics
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// Which meter a PSK connection's handshake proved: set by the connection's own PSK callback, then confirmed when
/// the handshake completes (the client's Finished message verified under the PSK, so the client holds that meter's
/// key). One per connection; the request handlers read ``authenticated``.
final class PSKPeer: Sendable {
    private let state = Mutex<(offered: EUI64?, authenticated: EUI64?)>((nil, nil))

    /// The identity the callback found a key for (not proven yet).
    func offer(_ eui64: EUI64) { state.withLock { $0.offered = $0.authenticated == nil ? eui64 : $0.offered } }

    /// The handshake completed: the offered identity is proven.
    func confirm() { state.withLock { $0.authenticated = $0.authenticated ?? $0.offered } }

    var authenticated: EUI64? { state.withLock { $0.authenticated } }
}

/// Holds a connection's ``PSKPeer`` in its pipeline (right after the TLS handler, so it sees the handshake complete)
/// and passes everything on.
final class PSKPeerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let peer: PSKPeer

    init(peer: PSKPeer) {
        self.peer = peer
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls { peer.confirm() }
        context.fireUserInboundEventTriggered(event)
    }
}

/// The TLS 1.2 PSK server side of the PSK listener, wrapping the HTTP channel as HummingbirdTLS's `TLSChannel` does,
/// with one difference: a TLS context **per connection**.
///
/// swift-nio-ssl calls the PSK callback with the client's identity but no connection, so a callback shared by all
/// connections could not tell the request handlers which meter a connection proved. Each connection therefore gets
/// its own `NIOSSLContext` whose callback writes into that connection's ``PSKPeer``, which a ``PSKPeerHandler`` in
/// the same pipeline holds; the request handlers read it from their channel's pipeline. The context is small (no
/// certificate, no key) and a fresh one per connection also means no session is ever resumed (an SSL_CTX's session
/// cache and ticket keys are its own), so every connection runs the callback.
struct PSKTLSChannel<BaseChannel: ServerChildChannel>: ServerChildChannel {
    typealias Value = BaseChannel.Value

    let configuration: TLSConfiguration
    let keys: PSKHandshakeKeys
    var baseChannel: BaseChannel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let peer = PSKPeer()
            var tls = configuration
            let keys = self.keys
            tls.pskServerProvider = { context in try keys.respond(to: context, peer: peer) }
            let sslContext = try NIOSSLContext(configuration: tls)
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
            try channel.pipeline.syncOperations.addHandler(PSKPeerHandler(peer: peer))
        }.flatMap {
            self.baseChannel.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: BaseChannel.Value, logger: Logger) async {
        await baseChannel.handle(value: value, logger: logger)
    }
}

extension PSKTLSChannel: HTTPChannelHandler where BaseChannel: HTTPChannelHandler {
    var responder: HTTPChannelHandler.Responder { baseChannel.responder }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 over TLS 1.2 PSK (``PSKTLSChannel``).
    static func psk(http1 http: HTTP1Channel.Configuration, configuration: TLSConfiguration, keys: PSKHandshakeKeys) -> HTTPServerBuilder {
        .init { responder in
            PSKTLSChannel(configuration: configuration, keys: keys, baseChannel: HTTP1Channel(responder: responder, configuration: http))
        }
    }
}

/// The PSK callback's work: the client's identity (the EUI-64, 16 lowercase hex digits) to that meter's PSK through
/// ``PSKResolver``, which re-derives it in the HSM (or opens the imported one) on every handshake.
///
/// swift-nio-ssl calls the callback synchronously on the connection's event loop and cannot wait for a future, so
/// this blocks that event loop until the resolver is done (bounded by ``timeout``). That is why the PSK listener
/// runs on an event-loop group of its own: only PSK connections wait on it, never another listener's. The resolver
/// itself runs as a task on the cooperative pool and the HSM's own queue; nothing it waits for needs this group.
///
/// Each resolution is one line in the request log (`psk key`, with the meter, the source and `duration_ms`; never
/// the key; a refusal `psk handshake refused` with the reason) and the
/// swift-metrics timer `metertrust_psk_handshake_key_seconds{outcome}` (the histogram of the handshake's wait).
struct PSKHandshakeKeys: Sendable {
    let resolver: PSKResolver
    let logger: Logger
    var timeout: DispatchTimeInterval = .seconds(5)

    func respond(to context: PSKServerContext, peer: PSKPeer) throws -> PSKServerIdentityResponse {
        let start = DispatchTime.now().uptimeNanoseconds
        var outcome = "refused"
        defer {
            Metrics.Timer(label: "metertrust_psk_handshake_key_seconds", dimensions: [("outcome", outcome)])
                .recordNanoseconds(DispatchTime.now().uptimeNanoseconds - start)
        }
        // Only the canonical form: 16 lowercase hex digits, so one meter has one identity.
        guard let eui64 = try? EUI64(context.clientIdentity), eui64.description == context.clientIdentity else {
            logger.warning("psk handshake refused", metadata: ["identity": "\(DisplayText.escaped(context.clientIdentity, asciiOnly: true, limit: 40))", "reason": "not an EUI-64 in 16 lowercase hex digits"])
            throw PSKHandshakeRefusal()
        }
        let result: (key: PresharedKey, source: PSKSource)
        do {
            result = try wait { [resolver] in try await resolver.presharedKey(for: eui64) }
        } catch {
            let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            logger.warning("psk handshake refused", metadata: ["meter": "\(eui64)", "reason": "\(error)", "duration_ms": "\(String(format: "%.2f", milliseconds))"])
            throw PSKHandshakeRefusal()
        }
        outcome = "resolved"
        let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        logger.info("psk key", metadata: ["meter": "\(eui64)", "source": "\(result.source.rawValue)", "duration_ms": "\(String(format: "%.2f", milliseconds))"])
        peer.offer(eui64)
        var key = NIOSSLSecureBytes()
        key.append(result.key.bytes)
        return PSKServerIdentityResponse(key: key)
    }

    /// Runs `work` as a task and blocks this thread (a PSK event loop) until it is done or ``timeout`` passes.
    private func wait<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = Mutex<Result<T, any Error>?>(nil)
        let task = Task {
            let result: Result<T, any Error>
            do { result = .success(try await work()) } catch { result = .failure(error) }
            box.withLock { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success, let result = box.withLock({ $0 }) else {
            task.cancel()
            throw PSKHandshakeRefusal()
        }
        return try result.get()
    }
}

/// The PSK callback found no key: the handshake fails (the client sees a TLS alert; the log line says why).
struct PSKHandshakeRefusal: Error {}
