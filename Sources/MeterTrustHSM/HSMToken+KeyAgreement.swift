import CPKCS11
import Crypto
import Logging

/// Key agreement: an EC key pair whose private half can only derive (the PSK onboarding key, HPKE recipient of the
/// PSKs an OEM generates), and CKM_ECDH1_DERIVE with it.
extension HSMToken {
    /// Generates an EC key pair for key agreement: the private half private, sensitive, unextractable, uncopyable,
    /// CKA_DERIVE and nothing else (``KeyTemplates/keyAgreementPrivateKey(label:id:)``); the public half a private
    /// object that only verifies (it is published as PEM for the OEM, so nothing in it is secret).
    public func generateKeyAgreementPair(curve: ECCurve, label: String) throws -> HSMKey {
        let keyID = Array(SHA256.hash(data: Array(label.utf8) + randomBytes(16)).prefix(16))
        let key = try generatePair(curve: curve, label: label, id: keyID, privateTemplate: KeyTemplates.keyAgreementPrivateKey(label: label, id: keyID))
        logger.info("generated key-agreement key pair in HSM", metadata: ["label": "\(label)", "curve": "\(curve.rawValue)"])
        return key
    }

    /// ECDH with `key`'s private half and the peer's uncompressed SEC1 point: CKM_ECDH1_DERIVE with CKD_NULL, so the
    /// result is the shared point's x-coordinate (SEC 1 §3.3.1), the `dh` of RFC 9180 §4.1's DHKEM.
    ///
    /// Why this one value leaves the token: RFC 9180's KEM feeds `dh` into HKDF (ExtractAndExpand) together with the
    /// encapsulated key and the recipient's public key, and PKCS#11 v2.40/3.0 has no mechanism that runs HPKE's
    /// labelled HKDF inside the token. `dh` is an ephemeral value: it depends on the sender's one-time key, opens
    /// only the one message encapsulated to it, and says nothing about the private key (computing the key from it is
    /// the discrete-logarithm problem). So the token derives it into a *session* object with no ability at all
    /// (``KeyTemplates/derivedSharedSecret(length:)``), the value is read once and the object destroyed before this
    /// returns; the private key itself stays sensitive and unextractable.
    public func keyAgreement(_ key: HSMKey, peerPoint: [UInt8]) throws -> [UInt8] {
        guard peerPoint.count == 1 + 2 * key.curve.coordinateLength, peerPoint.first == 0x04 else {
            throw HSMError.make(.invalidKeyMaterial, "the peer's public key is not an uncompressed \(key.curve.rawValue) point")
        }
        var publicData = peerPoint
        return try publicData.withUnsafeMutableBufferPointer { point in
            var parameters = CK_ECDH1_DERIVE_PARAMS(
                kdf: ck_ec_kdf_t(CKD_NULL), ulSharedDataLen: 0, pSharedData: nil,
                ulPublicDataLen: CK_ULONG(point.count), pPublicData: point.baseAddress
            )
            return try withUnsafeMutablePointer(to: &parameters) { parametersPointer in
                var mechanism = CK_MECHANISM(
                    mechanism: CK_MECHANISM_TYPE(CKM_ECDH1_DERIVE), pParameter: UnsafeMutableRawPointer(parametersPointer),
                    ulParameterLen: CK_ULONG(MemoryLayout<CK_ECDH1_DERIVE_PARAMS>.size)
                )
                return try pool.withSession { session in
                    var derived: CK_OBJECT_HANDLE = 0
                    try withTemplate(KeyTemplates.derivedSharedSecret(length: key.curve.coordinateLength)) { attributes, count in
                        try module.check("C_DeriveKey", context: "key agreement with \(key.label)") {
                            $0.C_DeriveKey(session, &mechanism, key.privateHandle, attributes, count, &derived)
                        }
                    }
                    defer { _ = module.functions.pointee.C_DestroyObject(session, derived) }
                    var value = [UInt8](repeating: 0, count: key.curve.coordinateLength)
                    try value.withUnsafeMutableBytes { buffer in
                        var attribute = CK_ATTRIBUTE(type: CK_ATTRIBUTE_TYPE(CKA_VALUE), pValue: buffer.baseAddress, ulValueLen: CK_ULONG(buffer.count))
                        try module.check("C_GetAttributeValue", context: "reading the shared secret of a key agreement") {
                            $0.C_GetAttributeValue(session, derived, &attribute, 1)
                        }
                    }
                    return value
                }
            }
        }
    }
}
