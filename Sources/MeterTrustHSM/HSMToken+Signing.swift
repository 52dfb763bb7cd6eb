import CPKCS11
import Dispatch
import Foundation
import Metrics

/// Signing: the one CKM_ECDSA call; everything above it (hashing, DER) is ``HSMSigner``.
extension HSMToken {
    /// Signs a digest computed by the caller with CKM_ECDSA; returns the raw r||s the token produced.
    /// Each signature's latency (waiting for a session included) is recorded as the swift-metrics timer
    /// `metertrust_hsm_signature_seconds` (by curve); whatever metrics backend the process bootstrapped receives it.
    public func signDigest(_ digest: [UInt8], with key: HSMKey) throws -> [UInt8] {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            Metrics.Timer(label: "metertrust_hsm_signature_seconds", dimensions: [("curve", key.curve.rawValue)])
                .recordNanoseconds(DispatchTime.now().uptimeNanoseconds - start)
        }
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_ECDSA), pParameter: nil, ulParameterLen: 0)
        return try pool.withSession { session in
            try module.check("C_SignInit", context: "signing with \(key.label)") {
                $0.C_SignInit(session, &mechanism, key.privateHandle)
            }
            var signature = [UInt8](repeating: 0, count: 2 * key.curve.coordinateLength)
            var length = CK_ULONG(signature.count)
            var input = digest
            try module.check("C_Sign", context: "signing with \(key.label)") {
                $0.C_Sign(session, &input, CK_ULONG(input.count), &signature, &length)
            }
            return Array(signature.prefix(Int(length)))
        }
    }

    /// Hashes `message` in software with the curve's hash (SHA-256 for P-256, SHA-384 for P-384), signs the digest
    /// in the HSM, and returns the ECDSA signature DER-encoded (ECDSA-Sig-Value, RFC 3279 §2.2.3): the same as
    /// ``HSMSigner/signature(for:)``.
    public func sign(message: some DataProtocol, with key: HSMKey) throws -> [UInt8] {
        try signer(for: key).signature(for: message)
    }

    /// The signer for `key` on this token.
    public func signer(for key: HSMKey) -> HSMSigner {
        HSMSigner(token: self, key: key)
    }
}
