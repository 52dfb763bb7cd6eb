import Crypto
import Foundation
import MeterTrustCore

/// The recipient side of RFC 9180 HPKE in base mode (mode_base, §5.1.1) for one ciphersuite:
/// DHKEM(P-256, HKDF-SHA256) (kem_id 0x0010), HKDF-SHA256 (kdf_id 0x0001), AES-128-GCM (aead_id 0x0001).
///
/// swift-crypto's `HPKE.Recipient` needs the private key as a swift-crypto value, and the PSK onboarding key's private
/// half lives in the HSM; so this receiver does the RFC's steps itself and takes the one DH as a function
/// (``HSMToken/keyAgreement(_:peerPoint:)``: CKM_ECDH1_DERIVE inside the token). Everything after the DH is public
/// computation over the DH output: RFC 9180 §4.1 ExtractAndExpand, §5.1 KeySchedule, §5.2 Open. Tested against
/// swift-crypto's `HPKE.Sender` and the RFC's own test vector (A.3.1).
public struct HPKEBaseReceiver: Sendable {
    /// I2OSP(kem_id, 2) etc., RFC 9180 §7.
    static let kemID: [UInt8] = [0x00, 0x10]
    static let kdfID: [UInt8] = [0x00, 0x01]
    static let aeadID: [UInt8] = [0x00, 0x01]
    /// Nsecret (32), Nk (16), Nn (12), Nenc (65), Npk (65) for this suite (RFC 9180 §7.1, §7.3).
    static let secretLength = 32
    static let keyLength = 16
    static let nonceLength = 12
    public static let encapsulatedKeyLength = 65
    static let tagLength = 16

    /// The suite's name as the import format writes it.
    public static let suiteName = "DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM"

    /// pkRm: the recipient's public key, uncompressed SEC1 point (SerializePublicKey of DHKEM(P-256), §7.1.1).
    public let recipientPublicKey: [UInt8]
    /// DH(skR, pkE): the x-coordinate of skR·pkE, for the serialized ephemeral key `enc` (an uncompressed point).
    let diffieHellman: @Sendable (_ enc: [UInt8]) throws -> [UInt8]

    public init(recipientPublicKey: [UInt8], diffieHellman: @escaping @Sendable (_ enc: [UInt8]) throws -> [UInt8]) {
        self.recipientPublicKey = recipientPublicKey
        self.diffieHellman = diffieHellman
    }

    /// A value HPKE could not open: a wrong recipient, a changed `enc`, `info`, `aad` or ciphertext, or an `enc` that
    /// is not a point of P-256. Says nothing about which.
    public struct OpenFailure: Error, Sendable {}

    /// Decap (§4.1) then KeySchedule (§5.1) and Open with sequence number 0 (§5.2): a single-shot open
    /// (`OpenBase`, §6.1).
    public func open(enc: [UInt8], info: [UInt8], aad: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        guard enc.count == Self.encapsulatedKeyLength, enc.first == 0x04, ciphertext.count >= Self.tagLength else { throw OpenFailure() }
        // DeserializePublicKey: a point not on the curve is refused before it reaches the HSM.
        guard (try? P256.KeyAgreement.PublicKey(x963Representation: enc)) != nil else { throw OpenFailure() }
        let secret = try sharedSecret(enc: enc)
        let (key, nonce) = Self.keySchedule(sharedSecret: secret, info: info)
        do {
            let box = try AES.GCM.SealedBox(
                nonce: try AES.GCM.Nonce(data: nonce), ciphertext: ciphertext.dropLast(Self.tagLength), tag: ciphertext.suffix(Self.tagLength)
            )
            return Array(try AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: aad))
        } catch {
            throw OpenFailure()
        }
    }

    /// Decap (§4.1): shared_secret = ExtractAndExpand(DH(skR, pkE), enc ‖ pkRm).
    func sharedSecret(enc: [UInt8]) throws -> [UInt8] {
        let dh = try diffieHellman(enc)
        let kemSuite = Array("KEM".utf8) + Self.kemID
        let prk = Self.labeledExtract(salt: [], label: "eae_prk", ikm: dh, suite: kemSuite)
        return Self.labeledExpand(prk: prk, label: "shared_secret", info: enc + recipientPublicKey, length: Self.secretLength, suite: kemSuite)
    }

    /// KeySchedule (§5.1) in mode_base (psk and psk_id empty): the AEAD key and base nonce.
    static func keySchedule(sharedSecret: [UInt8], info: [UInt8]) -> (key: [UInt8], baseNonce: [UInt8]) {
        let suite = Array("HPKE".utf8) + kemID + kdfID + aeadID
        let pskIDHash = labeledExtract(salt: [], label: "psk_id_hash", ikm: [], suite: suite)
        let infoHash = labeledExtract(salt: [], label: "info_hash", ikm: info, suite: suite)
        let context = [0x00] + pskIDHash + infoHash
        let secret = labeledExtract(salt: sharedSecret, label: "secret", ikm: [], suite: suite)
        return (
            labeledExpand(prk: secret, label: "key", info: context, length: keyLength, suite: suite),
            labeledExpand(prk: secret, label: "base_nonce", info: context, length: nonceLength, suite: suite)
        )
    }

    /// LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm) (§4).
    static func labeledExtract(salt: [UInt8], label: String, ikm: [UInt8], suite: [UInt8]) -> [UInt8] {
        let labeled = Array("HPKE-v1".utf8) + suite + Array(label.utf8) + ikm
        // RFC 5869: an empty salt is HashLen zero octets, which HMAC treats as the empty key anyway.
        return Array(HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: labeled), salt: salt))
    }

    /// LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L) (§4).
    static func labeledExpand(prk: [UInt8], label: String, info: [UInt8], length: Int, suite: [UInt8]) -> [UInt8] {
        let labeled = [UInt8(length >> 8), UInt8(length & 0xFF)] + Array("HPKE-v1".utf8) + suite + Array(label.utf8) + info
        let key = HKDF<SHA256>.expand(pseudoRandomKey: prk, info: labeled, outputByteCount: length)
        return key.withUnsafeBytes { Array($0) }
    }
}
