import MeterTrustHSM
import NIOCore
import NIOSSL

/// A TLS server key that stays in the HSM: swift-nio-ssl asks for each handshake signature, the token makes it on
/// the HSM queue (never on the event loop) and the future completes on the channel's loop.
struct HSMTLSKey: NIOSSLCustomPrivateKey, Hashable {
    let token: HSMToken
    let key: HSMKey

    var signatureAlgorithms: [SignatureAlgorithm] {
        key.curve == .p256 ? [.ecdsaSecp256R1Sha256] : [.ecdsaSecp384R1Sha384]
    }

    func sign(channel: any Channel, algorithm: SignatureAlgorithm, data: ByteBuffer) -> EventLoopFuture<ByteBuffer> {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        let message = Array(data.readableBytesView)
        let token = self.token
        let key = self.key
        promise.completeWithTask {
            let signature = try await token.perform { try $0.sign(message: message, with: key) }
            return ByteBuffer(bytes: signature)
        }
        return promise.futureResult
    }

    func decrypt(channel: any Channel, data: ByteBuffer) -> EventLoopFuture<ByteBuffer> {
        channel.eventLoop.makeFailedFuture(NIOSSLError.failedToLoadPrivateKey)
    }

    static func == (lhs: HSMTLSKey, rhs: HSMTLSKey) -> Bool { lhs.key == rhs.key && lhs.token === rhs.token }
    func hash(into hasher: inout Hasher) { hasher.combine(key) }
}
