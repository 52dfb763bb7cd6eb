import MeterTrustHSM
import NIOCore
import NIOSSL

/// A TLS server key that stays in the HSM: swift-nio-ssl asks for each handshake signature, the ``HSMSigner`` makes
/// it on the HSM queue (never on the event loop) and the future completes on the channel's loop.
struct HSMTLSKey: NIOSSLCustomPrivateKey, Hashable {
    let signer: HSMSigner

    init(token: HSMToken, key: HSMKey) {
        self.signer = token.signer(for: key)
    }

    var signatureAlgorithms: [SignatureAlgorithm] {
        signer.curve == .p256 ? [.ecdsaSecp256R1Sha256] : [.ecdsaSecp384R1Sha384]
    }

    func sign(channel: any Channel, algorithm: SignatureAlgorithm, data: ByteBuffer) -> EventLoopFuture<ByteBuffer> {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        let message = Array(data.readableBytesView)
        let signer = self.signer
        promise.completeWithTask {
            ByteBuffer(bytes: try await signer.signatureOnHSMQueue(for: message))
        }
        return promise.futureResult
    }

    func decrypt(channel: any Channel, data: ByteBuffer) -> EventLoopFuture<ByteBuffer> {
        channel.eventLoop.makeFailedFuture(NIOSSLError.failedToLoadPrivateKey)
    }
}
