import Crypto
import Foundation
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import X509

/// A backup of CA keys: each wrapped (CKM_AES_KEY_WRAP_PAD, RFC 5649) under the backup key, and the backup key's
/// k-of-n shares, each encrypted to one custodian. Nothing in it is usable without k custodians.
public struct KeyBackupFile: Sendable, Codable {
    public static let formatName = "metertrust-key-backup/v1"
    public static let maximumSize = 4 * 1024 * 1024

    public struct WrappedKey: Sendable, Codable {
        /// The CA's name and role.
        public let ca: String
        public let role: String
        /// CKA_LABEL and CKA_ID (hex) on the source token; the restore keeps both.
        public let label: String
        public let id: String
        public let curve: String
        /// Uncompressed SEC1 public point, base64.
        public let publicPoint: String
        /// The CA's certificate, DER base64 (to check the restored key against).
        public let certificate: String
        /// The PKCS#8 private key wrapped by the token, base64.
        public let wrapped: String
    }

    public let format: String
    public let created: String
    public let sourceToken: String
    public let mechanism: String
    public let shares: BackupShares
    public let keys: [WrappedKey]

    public var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try! encoder.encode(self)) + [UInt8(ascii: "\n")]
    }

    public static func parse(_ bytes: [UInt8]) throws -> KeyBackupFile {
        guard bytes.count <= maximumSize else { throw QuorumError(.backup, "the backup file is over \(maximumSize) bytes") }
        guard let file = try? JSONDecoder().decode(KeyBackupFile.self, from: Data(bytes)), file.format == formatName else {
            throw QuorumError(.backup, "the file is not a \(formatName) document")
        }
        return file
    }
}

/// Key backup under split knowledge.
public enum KeyBackup {
    /// CKA_LABEL of the backup key.
    public static let defaultKeyLabel = "metertrust/backup-key"

    /// Ceremony: generates the AES-256 backup key on the token in a security-officer session (it alone may mark the
    /// key CKA_TRUSTED), splits it k-of-n among the active security officers, each share encrypted to their admin
    /// certificate, stores the shares, and wipes the key from memory. k is the backup-restore policy's quorum.
    ///
    /// Runs in a process without a user login to the token (the CLI ceremony, not the server).
    public static func createBackupKey(
        module: PKCS11Module, tokenLabel: String, securityOfficerPIN: PINSource, store: any MeterTrustStore, label: String = defaultKeyLabel
    ) async throws -> BackupKeyRecord {
        if try await store.backupKey() != nil {
            throw QuorumError(.backup, "the backup key exists already; a deployment has one")
        }
        let registry = try CustodianRegistry(try await store.custodians())
        let holders = registry.active.filter { $0.role == .securityOfficer }
        let policies = try await store.quorumPolicies().map(QuorumPolicy.init)
        guard let restorePolicy = policies.first(where: { $0.operationClass == .backupRestore }) else {
            throw QuorumError(.notBootstrapped, "no quorum is set up: run the bootstrap ceremony (metertrust admin bootstrap) first")
        }
        let threshold = max(2, restorePolicy.required)
        guard holders.count >= threshold else {
            throw QuorumError(.backup, "\(holders.count) security officer(s) are registered; a \(threshold)-of-n split needs at least \(threshold)")
        }
        var key = try module.generateTrustedBackupKey(tokenLabel: tokenLabel, securityOfficerPIN: securityOfficerPIN, label: label)
        defer { for index in key.indices { key[index] = 0 } }
        let shares = try BackupShares(key: key, threshold: threshold, custodians: holders)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let record = BackupKeyRecord(label: label, threshold: threshold, shares: Array(try encoder.encode(shares)), keyCheckValue: shares.keyCheckValue)
        try await store.setBackupKey(record)
        return record
    }

    /// Wraps the keys of `authorities` (all CAs whose keys allow it, if nil) under the backup key.
    public static func export(hierarchy: CAHierarchy, authorities names: [String]?) async throws -> KeyBackupFile {
        guard let record = try await hierarchy.store.backupKey() else {
            throw QuorumError(.backup, "there is no backup key: run the backup-key ceremony (metertrust backup init-key) first")
        }
        let shares = try JSONDecoder().decode(BackupShares.self, from: Data(record.shares))
        let token = hierarchy.token
        let backupKey = try await token.perform { try $0.findSecretKey(label: record.label) }
        let all = try await hierarchy.store.certificateAuthorities().filter { $0.destroyedAt == nil }
        var keys: [KeyBackupFile.WrappedKey] = []
        for authorityRecord in all where names?.contains(authorityRecord.name) ?? true {
            let authority = try await hierarchy.authority(named: authorityRecord.name)
            let key = authority.signingKey.key
            let protection = try await token.perform { try $0.protection(of: key) }
            guard protection.isExtractable && protection.wrapWithTrusted else {
                if names == nil { continue }
                throw QuorumError(.backup, "the key of CA \(authority.name) was not created for backup (it is unextractable); it cannot be exported")
            }
            let wrapped = try await token.perform { try $0.wrap(key, with: backupKey) }
            keys.append(
                KeyBackupFile.WrappedKey(
                    ca: authority.name, role: authority.role.rawValue, label: key.label, id: hexString(key.id), curve: key.curve.rawValue,
                    publicPoint: Data(key.publicPoint).base64EncodedString(),
                    certificate: Data(try authority.certificate.derBytes).base64EncodedString(), wrapped: Data(wrapped).base64EncodedString()
                )
            )
        }
        if let names, let missing = Set(names).subtracting(keys.map(\.ca)).first {
            throw QuorumError(.backup, "there is no live CA named \(missing)")
        }
        guard !keys.isEmpty else { throw QuorumError(.backup, "no CA key is marked for backup") }
        let formatter = ISO8601DateFormatter()
        return KeyBackupFile(
            format: KeyBackupFile.formatName, created: formatter.string(from: Date()), sourceToken: token.label,
            mechanism: "CKM_AES_KEY_WRAP_PAD", shares: shares, keys: keys
        )
    }

    /// Restores every key of `file` into `token` (a fresh, empty one): recovers the backup key from the shares that
    /// the custodians' admin keys decrypt (at least k), imports it as a session object, unwraps each key, checks each
    /// restored public key against its CA certificate, and destroys the session copy of the backup key.
    public static func restore(_ file: KeyBackupFile, into token: HSMToken, custodianKeys: [String: P256.Signing.PrivateKey]) async throws -> [HSMKey] {
        var key = try file.shares.recover(with: custodianKeys)
        let unwrapping: HSMSecretKey
        do {
            let value = key
            unwrapping = try await token.perform { try $0.importUnwrappingKey(value, label: "metertrust/restore") }
        } catch {
            for index in key.indices { key[index] = 0 }
            throw error
        }
        for index in key.indices { key[index] = 0 }
        defer { _ = try? token.destroy(unwrapping) }
        var restored: [HSMKey] = []
        for entry in file.keys {
            guard let curve = ECCurve(rawValue: entry.curve), let id = hexBytes(entry.id),
                let point = Data(base64Encoded: entry.publicPoint), let wrapped = Data(base64Encoded: entry.wrapped),
                let certificateDER = Data(base64Encoded: entry.certificate)
            else {
                throw QuorumError(.backup, "the backup entry for CA \(entry.ca) is malformed")
            }
            let certificate = try Certificate(derEncoded: Array(certificateDER))
            let key = try await token.perform {
                try $0.unwrap(Array(wrapped), with: unwrapping, curve: curve, label: entry.label, id: id, publicPoint: Array(point))
            }
            guard HSMSigningKey(token: token, key: key).publicKey == certificate.publicKey else {
                throw QuorumError(.backup, "the restored key of CA \(entry.ca) does not match its certificate")
            }
            restored.append(key)
        }
        return restored
    }
}
