import CPKCS11
import Dispatch
import Logging
import MeterTrustCore
import Metrics

/// Secret keys MeterTrust uses in place, never out of the token: the per-batch PSK master keys (HMAC-SHA256 through
/// C_Sign) and the key that seals imported PSKs for the store (AES-256-GCM through C_Encrypt / C_Decrypt).
extension HSMToken {
    /// Generates a per-batch PSK master key inside the token (CKM_GENERIC_SECRET_KEY_GEN, 32 octets) with the
    /// attributes of ``KeyTemplates/pskMasterKey(label:)``: private, sensitive, unextractable, uncopyable, sign only.
    public func generatePSKMasterKey(label: String) throws -> HSMSecretKey {
        try generateSecretKey(CKM_GENERIC_SECRET_KEY_GEN, KeyTemplates.pskMasterKey(label: label), label: label)
    }

    /// Generates the AES-256 key that seals imported PSKs (``KeyTemplates/pskSealingKey(label:)``).
    public func generateSealingKey(label: String) throws -> HSMSecretKey {
        try generateSecretKey(CKM_AES_KEY_GEN, KeyTemplates.pskSealingKey(label: label), label: label)
    }

    private func generateSecretKey(_ mechanismType: some BinaryInteger, _ template: [PKCS11Attribute], label: String) throws -> HSMSecretKey {
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(mechanismType), pParameter: nil, ulParameterLen: 0)
        var handle: CK_OBJECT_HANDLE = 0
        try pool.withSession { session in
            try withTemplate(template) { attributes, count in
                try module.check("C_GenerateKey", context: "generating secret key \(label)") {
                    $0.C_GenerateKey(session, &mechanism, attributes, count, &handle)
                }
            }
        }
        logger.info("generated secret key in HSM", metadata: ["label": "\(label)"])
        return HSMSecretKey(label: label, handle: handle)
    }

    /// A meter's PSK: HMAC-SHA256 under the batch's master key over ``PSKDerivation/message(for:)``, computed by the
    /// token (CKM_SHA256_HMAC, C_Sign). The master key never leaves the HSM; the result is the meter's PSK, which the
    /// caller puts into the meter's bundle (factory) or hands to TLS (server), and nowhere else.
    ///
    /// Each derivation's latency (waiting for a session included) is the swift-metrics timer
    /// `metertrust_hsm_psk_derivation_seconds`.
    public func derivePSK(for eui64: EUI64, master: HSMSecretKey) throws -> PresharedKey {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            Metrics.Timer(label: "metertrust_hsm_psk_derivation_seconds").recordNanoseconds(DispatchTime.now().uptimeNanoseconds - start)
        }
        var mechanism = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_SHA256_HMAC), pParameter: nil, ulParameterLen: 0)
        let mac: [UInt8] = try pool.withSession { session in
            try module.check("C_SignInit", context: "deriving a PSK with \(master.label)") {
                $0.C_SignInit(session, &mechanism, master.handle)
            }
            var input = PSKDerivation.message(for: eui64)
            var output = [UInt8](repeating: 0, count: PresharedKey.length)
            var length = CK_ULONG(output.count)
            try module.check("C_Sign", context: "deriving a PSK with \(master.label)") {
                $0.C_Sign(session, &input, CK_ULONG(input.count), &output, &length)
            }
            return Array(output.prefix(Int(length)))
        }
        return try PresharedKey(bytes: mac)
    }

    /// AES-256-GCM in the token (CKM_AES_GCM, C_Encrypt) under `key`: returns nonce (12 octets, random) ‖ ciphertext
    /// ‖ tag (16 octets). `associatedData` binds the sealed value to what it belongs to (a meter).
    public func seal(_ plaintext: [UInt8], associatedData: [UInt8], with key: HSMSecretKey) throws -> [UInt8] {
        let nonce = randomBytes(12)
        let sealed = try gcm(encrypt: true, input: plaintext, nonce: nonce, associatedData: associatedData, key: key)
        return nonce + sealed
    }

    /// Opens what ``seal(_:associatedData:with:)`` made; the token refuses (CKR_ENCRYPTED_DATA_INVALID) a value or
    /// associated data changed by one bit.
    public func open(_ sealed: [UInt8], associatedData: [UInt8], with key: HSMSecretKey) throws -> [UInt8] {
        guard sealed.count >= 12 + 16 else { throw HSMError.make(.invalidKeyMaterial, "a sealed value is at least 28 octets, not \(sealed.count)") }
        return try gcm(encrypt: false, input: Array(sealed.dropFirst(12)), nonce: Array(sealed.prefix(12)), associatedData: associatedData, key: key)
    }

    private func gcm(encrypt: Bool, input: [UInt8], nonce: [UInt8], associatedData: [UInt8], key: HSMSecretKey) throws -> [UInt8] {
        var iv = nonce
        var aad = associatedData
        var data = input
        let operation = encrypt ? "C_Encrypt" : "C_Decrypt"
        return try iv.withUnsafeMutableBufferPointer { ivBuffer in
            try aad.withUnsafeMutableBufferPointer { aadBuffer in
                var parameters = CK_GCM_PARAMS(
                    pIv: ivBuffer.baseAddress, ulIvLen: CK_ULONG(ivBuffer.count), ulIvBits: CK_ULONG(ivBuffer.count * 8),
                    pAAD: aadBuffer.baseAddress, ulAADLen: CK_ULONG(aadBuffer.count), ulTagBits: 128
                )
                return try withUnsafeMutablePointer(to: &parameters) { parametersPointer in
                    var mechanism = CK_MECHANISM(
                        mechanism: CK_MECHANISM_TYPE(CKM_AES_GCM), pParameter: UnsafeMutableRawPointer(parametersPointer),
                        ulParameterLen: CK_ULONG(MemoryLayout<CK_GCM_PARAMS>.size)
                    )
                    return try pool.withSession { session in
                        try module.check(encrypt ? "C_EncryptInit" : "C_DecryptInit", context: "sealing with \(key.label)") {
                            encrypt ? $0.C_EncryptInit(session, &mechanism, key.handle) : $0.C_DecryptInit(session, &mechanism, key.handle)
                        }
                        var output = [UInt8](repeating: 0, count: data.count + 16)
                        var length = CK_ULONG(output.count)
                        try module.check(operation, context: encrypt ? "sealing with \(key.label)" : "opening a value sealed with \(key.label)") {
                            encrypt
                                ? $0.C_Encrypt(session, &data, CK_ULONG(data.count), &output, &length)
                                : $0.C_Decrypt(session, &data, CK_ULONG(data.count), &output, &length)
                        }
                        return Array(output.prefix(Int(length)))
                    }
                }
            }
        }
    }
}

extension HSMToken {
    /// Labels of every secret key on the token (inventory; finding the PSK sealing key by its label's prefix).
    public func secretKeyLabels() throws -> [String] {
        try findObjects([.ulong(CK_ATTRIBUTE_TYPE(CKA_CLASS), CK_ULONG(CKO_SECRET_KEY))]).map {
            String(decoding: try attribute(CK_ATTRIBUTE_TYPE(CKA_LABEL), of: $0), as: UTF8.self)
        }.sorted()
    }
}
