import Crypto
import Foundation

/// A Shamir share of the backup key encrypted to one custodian with HPKE (RFC 9180, base mode,
/// DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) under the public key of their admin certificate.
/// The HPKE `info` binds the share to the backup key's check value and the custodian, so a share cannot be
/// passed off as another custodian's or another backup key's.
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

    static func info(keyCheckValue: String, custodian: String, index: Int) -> Data {
        Data("metertrust backup share v1\0\(keyCheckValue)\0\(custodian)\0\(index)".utf8)
    }

    public init(_ share: Shamir.Share, to custodian: Custodian, keyCheckValue: String) throws {
        let recipient = try P256.KeyAgreement.PublicKey(rawRepresentation: custodian.publicKey.rawRepresentation)
        var sender = try HPKE.Sender(
            recipientKey: recipient, ciphersuite: Self.suite,
            info: Self.info(keyCheckValue: keyCheckValue, custodian: custodian.name, index: Int(share.index))
        )
        let sealed = try sender.seal(share.value)
        self.custodian = custodian.name
        self.certificate = custodian.record.fingerprintSHA256
        self.index = Int(share.index)
        self.encapsulatedKey = sender.encapsulatedKey.base64EncodedString()
        self.ciphertext = sealed.base64EncodedString()
    }

    /// Decrypts the share with the custodian's private key (their admin key). The caller wipes the value.
    public func decrypt(with key: P256.Signing.PrivateKey, keyCheckValue: String) throws -> Shamir.Share {
        guard let encapsulated = Data(base64Encoded: encapsulatedKey), let sealed = Data(base64Encoded: ciphertext),
            (1...255).contains(index)
        else {
            throw QuorumError(.backup, "the share of \(custodian) is malformed")
        }
        do {
            let privateKey = try P256.KeyAgreement.PrivateKey(rawRepresentation: key.rawRepresentation)
            var recipient = try HPKE.Recipient(
                privateKey: privateKey, ciphersuite: Self.suite,
                info: Self.info(keyCheckValue: keyCheckValue, custodian: custodian, index: index), encapsulatedKey: encapsulated
            )
            return Shamir.Share(index: UInt8(index), value: Array(try recipient.open(sealed)))
        } catch {
            throw QuorumError(.backup, "the share of \(custodian) does not decrypt with this key: it is not \(custodian)'s admin key, or the share was altered")
        }
    }
}

/// The backup key's shares as kept in the store and in every backup file.
public struct BackupShares: Sendable, Hashable, Codable {
    public static let formatName = "metertrust-backup-shares/v1"
    public let format: String
    public let threshold: Int
    /// HMAC-SHA256(key, "metertrust backup key check"), first 16 bytes, hex: tells a right reconstruction.
    public let keyCheckValue: String
    public let shares: [EncryptedShare]

    /// Splits `key` k-of-n among `custodians` (n = their number), each share encrypted to its custodian.
    public init(key: [UInt8], threshold: Int, custodians: [Custodian]) throws {
        let check = Self.keyCheckValue(of: key)
        let shares = try Shamir.split(key, threshold: threshold, count: custodians.count)
        self.format = Self.formatName
        self.threshold = threshold
        self.keyCheckValue = check
        self.shares = try zip(shares, custodians).map { try EncryptedShare($0, to: $1, keyCheckValue: check) }
    }

    public static func keyCheckValue(of key: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("metertrust backup key check".utf8), using: SymmetricKey(data: key))
        return mac.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// Recovers the backup key from the shares that `keys` (custodian name → admin private key) decrypt; needs at
    /// least the threshold. The caller wipes the result.
    public func recover(with keys: [String: P256.Signing.PrivateKey]) throws -> [UInt8] {
        var decrypted: [Shamir.Share] = []
        for share in shares {
            guard let key = keys[share.custodian] else { continue }
            decrypted.append(try share.decrypt(with: key, keyCheckValue: keyCheckValue))
        }
        guard decrypted.count >= threshold else {
            throw QuorumError(
                .backup,
                "\(decrypted.count) share\(decrypted.count == 1 ? "" : "s") of the backup key decrypted; \(threshold) are needed (holders: \(shares.map(\.custodian).joined(separator: ", ")))"
            )
        }
        var key = try Shamir.combine(Array(decrypted.prefix(threshold)))
        guard Self.keyCheckValue(of: key) == keyCheckValue else {
            for index in key.indices { key[index] = 0 }
            throw QuorumError(.backup, "the shares do not reconstruct the backup key (key check value differs)")
        }
        return key
    }
}
