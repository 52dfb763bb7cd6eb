import Crypto
import Foundation
import MeterTrustCore

/// A Shamir share of a split secret (the backup key, the security officer's PIN) encrypted to one custodian with
/// HPKE (RFC 9180, base mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) under the public key of their admin
/// certificate. The HPKE `info` binds the share to what it is a share of, the secret's check value and the
/// custodian, so a share cannot be passed off as another custodian's, another secret's or another kind of secret's.
public struct EncryptedShare: Sendable, Hashable, Codable {
    public let custodian: String
    /// SHA-256 of the custodian's admin certificate, lowercase hex.
    public let certificate: String
    public let index: Int
    /// HPKE encapsulated key, base64.
    public let encapsulatedKey: String
    /// AES-256-GCM ciphertext and tag of the share value, base64.
    public let ciphertext: String

    static let suite = HPKE.Ciphersuite.P256_SHA256_AES_GCM_256

    static func info(purpose: SecretShares.Purpose, keyCheckValue: String, custodian: String, index: Int) -> Data {
        Data("\(purpose.shareLabel)\0\(keyCheckValue)\0\(custodian)\0\(index)".utf8)
    }

    public init(_ share: Shamir.Share, to custodian: Custodian, purpose: SecretShares.Purpose, keyCheckValue: String) throws {
        let recipient = try P256.KeyAgreement.PublicKey(rawRepresentation: custodian.publicKey.rawRepresentation)
        var sender = try HPKE.Sender(
            recipientKey: recipient, ciphersuite: Self.suite,
            info: Self.info(purpose: purpose, keyCheckValue: keyCheckValue, custodian: custodian.name, index: Int(share.index))
        )
        let sealed = try sender.seal(share.value)
        self.custodian = custodian.name
        self.certificate = custodian.record.fingerprintSHA256
        self.index = Int(share.index)
        self.encapsulatedKey = sender.encapsulatedKey.base64EncodedString()
        self.ciphertext = sealed.base64EncodedString()
    }

    /// Decrypts the share with the custodian's private key (their admin key). The caller wipes the value.
    public func decrypt(with key: P256.Signing.PrivateKey, purpose: SecretShares.Purpose, keyCheckValue: String) throws -> Shamir.Share {
        guard let encapsulated = Data(base64Encoded: encapsulatedKey), let sealed = Data(base64Encoded: ciphertext),
            (1...255).contains(index)
        else {
            throw QuorumError(.backup, "the share of \(custodian) is malformed")
        }
        do {
            let privateKey = try P256.KeyAgreement.PrivateKey(rawRepresentation: key.rawRepresentation)
            var recipient = try HPKE.Recipient(
                privateKey: privateKey, ciphersuite: Self.suite,
                info: Self.info(purpose: purpose, keyCheckValue: keyCheckValue, custodian: custodian, index: index),
                encapsulatedKey: encapsulated
            )
            return Shamir.Share(index: UInt8(index), value: Array(try recipient.open(sealed)))
        } catch {
            throw QuorumError(.backup, "the share of \(custodian) does not decrypt with this key: it is not \(custodian)'s admin key, or the share was altered")
        }
    }
}

/// A secret split k-of-n among custodians, each share encrypted to one of them: the backup key's shares (kept in the
/// store and in every backup file) and the security officer's PIN's shares (kept in the store).
public struct SecretShares: Sendable, Hashable, Codable {
    /// What is split. Stored values: never renamed.
    public enum Purpose: String, Sendable, Hashable, CaseIterable {
        /// The AES-256 backup key.
        case backupKey = "metertrust-backup-shares/v1"
        /// The token's security-officer PIN, which exists nowhere else after the backup-key ceremony.
        case securityOfficerPIN = "metertrust-so-pin-shares/v1"

        var shareLabel: String { self == .backupKey ? "metertrust backup share v1" : "metertrust so-pin share v1" }
        var checkLabel: String { self == .backupKey ? "metertrust backup key check" : "metertrust so-pin check" }
        var noun: String { self == .backupKey ? "the backup key" : "the security officer's PIN" }
    }

    /// The purpose's format name.
    public let format: String
    public let threshold: Int
    /// HMAC-SHA256(secret, purpose label), first 16 bytes, hex: tells a right reconstruction.
    public let keyCheckValue: String
    public let shares: [EncryptedShare]

    /// What these shares are of; nil for an unknown format.
    public var purpose: Purpose? { Purpose(rawValue: format) }

    /// Splits `secret` k-of-n among `custodians` (n = their number), each share encrypted to its custodian.
    public init(secret: [UInt8], purpose: Purpose, threshold: Int, custodians: [Custodian]) throws {
        let check = Self.checkValue(of: secret, purpose: purpose)
        let shares = try Shamir.split(secret, threshold: threshold, count: custodians.count)
        self.format = purpose.rawValue
        self.threshold = threshold
        self.keyCheckValue = check
        self.shares = try zip(shares, custodians).map { try EncryptedShare($0, to: $1, purpose: purpose, keyCheckValue: check) }
    }

    public static func checkValue(of secret: [UInt8], purpose: Purpose) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(purpose.checkLabel.utf8), using: SymmetricKey(data: secret))
        return hexString(mac.prefix(16))
    }

    /// The custodians holding a share.
    public var holders: [String] { shares.map(\.custodian) }

    /// Recovers the secret from the shares that `keys` (custodian name → admin private key) decrypt; needs at least
    /// the threshold. The caller wipes the result.
    public func recover(with keys: [String: P256.Signing.PrivateKey]) throws -> [UInt8] {
        guard let purpose else { throw QuorumError(.backup, "the shares are of an unknown kind (\(format))") }
        var decrypted: [Shamir.Share] = []
        for share in shares {
            guard let key = keys[share.custodian] else { continue }
            decrypted.append(try share.decrypt(with: key, purpose: purpose, keyCheckValue: keyCheckValue))
        }
        guard decrypted.count >= threshold else {
            throw QuorumError(
                .backup,
                "\(decrypted.count) share\(decrypted.count == 1 ? "" : "s") of \(purpose.noun) decrypted; \(threshold) are needed (holders: \(holders.joined(separator: ", ")))"
            )
        }
        var secret = try Shamir.combine(Array(decrypted.prefix(threshold)))
        guard Self.checkValue(of: secret, purpose: purpose) == keyCheckValue else {
            for index in secret.indices { secret[index] = 0 }
            throw QuorumError(.backup, "the shares do not reconstruct \(purpose.noun) (check value differs)")
        }
        return secret
    }

    /// The shares document as stored (sorted-key JSON).
    public var encoded: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// Parses a stored shares document of `purpose`.
    public static func decode(_ bytes: [UInt8], purpose: Purpose) throws -> SecretShares {
        guard let shares = try? JSONDecoder().decode(SecretShares.self, from: Data(bytes)), shares.purpose == purpose else {
            throw QuorumError(.backup, "the stored shares of \(purpose.noun) are not a \(purpose.rawValue) document")
        }
        return shares
    }
}
