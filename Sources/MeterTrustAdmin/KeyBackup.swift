import Crypto
import Foundation
import MeterTrustCore
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
    public let shares: SecretShares
    public let keys: [WrappedKey]

    public var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try! encoder.encode(self)) + [UInt8(ascii: "\n")]
    }

    public static func parse(_ bytes: [UInt8]) throws -> KeyBackupFile {
        guard bytes.count <= maximumSize else { throw QuorumError(.backup, "the backup file is over \(maximumSize) bytes") }
        guard let file = try? JSONDecoder().decode(KeyBackupFile.self, from: Data(bytes)), file.format == formatName,
            file.shares.purpose == .backupKey
        else {
            throw QuorumError(.backup, "the file is not a \(formatName) document")
        }
        return file
    }
}

/// What a backup-key ceremony did: the record now in the store and who holds the shares.
public struct BackupKeyCeremonyResult: Sendable {
    public let record: BackupKeyRecord
    public let holders: [String]
    /// The backup key this one replaced (a reshare), and whether it was still on the token to be destroyed.
    public let replaced: String?
    public let replacedKeyWasPresent: Bool
}

/// Key backup under split knowledge.
///
/// Who holds what after the backup-key ceremony (docs/threat-model.md, "Key custody"):
/// - the server host holds the token's user PIN: it can sign with CA keys and wrap backup-enabled keys under the
///   backup key, but nothing can unwrap them on this token (the backup key cannot unwrap);
/// - the security officers each hold one share of the backup key and one share of the SO PIN, encrypted to their
///   admin certificates; any k of them rebuild either, fewer learn nothing;
/// - nobody holds the SO PIN: the ceremony replaced it with a random one that exists only as those shares, so nobody
///   alone can make a trusted key of known value and wrap a CA key under it.
public enum KeyBackup {
    /// CKA_LABEL of the first backup key; a reshare's keys are labelled `metertrust/backup-key/<8 hex digits>`.
    public static let defaultKeyLabel = "metertrust/backup-key"

    /// Who receives shares: the active security officers the audit log backs, and k (the backup-restore policy's
    /// quorum, at least 2).
    public struct ShareHolders: Sendable {
        public let custodians: [Custodian]
        public let threshold: Int
        public var names: [String] { custodians.map(\.name) }
    }

    /// The share holders as the gate (the verified audit log) sees them. Needs a user login (the audit key); call it
    /// before a security-officer session, in its own scope.
    public static func shareHolders(gate: QuorumGate) async throws -> ShareHolders {
        let holders = try await gate.registry().active.filter { $0.role == .securityOfficer }
        let threshold = max(2, try await gate.policy(for: .backupRestore).required)
        guard holders.count >= threshold else {
            throw QuorumError(.backup, "\(holders.count) security officer(s) are registered; a \(threshold)-of-n split needs at least \(threshold)")
        }
        return ShareHolders(custodians: holders, threshold: threshold)
    }

    /// A new random security-officer PIN: 24 bytes of the kernel CSPRNG as 48 hex digits.
    static func randomPIN() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var pin: [UInt8] = []
        for _ in 0..<24 {
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            pin.append(digits[Int(byte >> 4)])
            pin.append(digits[Int(byte & 0x0f)])
        }
        return pin
    }

    /// Makes a backup key in `so`, splits it and a new SO PIN among `holders`, records both, then changes the SO PIN
    /// from `currentPIN` to the new one. If the PIN cannot be changed, the record and the new key are removed again.
    private static func makeBackupKey(
        in so: SecurityOfficerSession, label: String, currentPIN: [UInt8], holders: [Custodian], threshold: Int,
        record store: @Sendable (BackupKeyRecord) async throws -> Void, rollback: @Sendable (BackupKeyRecord) async throws -> Void
    ) async throws -> BackupKeyRecord {
        var key = try so.createTrustedBackupKey(label: label)
        defer { for index in key.indices { key[index] = 0 } }
        var newPIN = randomPIN()
        defer { for index in newPIN.indices { newPIN[index] = 0 } }
        let record: BackupKeyRecord
        do {
            let keyShares = try SecretShares(secret: key, purpose: .backupKey, threshold: threshold, custodians: holders)
            let pinShares = try SecretShares(secret: newPIN, purpose: .securityOfficerPIN, threshold: threshold, custodians: holders)
            record = BackupKeyRecord(
                label: label, threshold: threshold, shares: keyShares.encoded, keyCheckValue: keyShares.keyCheckValue,
                securityOfficerPINShares: pinShares.encoded
            )
            try await store(record)
        } catch {
            _ = try? so.destroySecretKeys(label: label)
            throw error
        }
        do {
            try so.changePIN(from: currentPIN, to: newPIN)
        } catch {
            try? await rollback(record)
            _ = try? so.destroySecretKeys(label: label)
            throw error
        }
        return record
    }

    /// Ceremony: creates the backup key (``SecurityOfficerSession/createTrustedBackupKey(label:)``: trusted, wrap
    /// only), splits it k-of-n among the active security officers, replaces the SO PIN with a random one split the
    /// same way, and stores both sets of shares. k is the backup-restore policy's quorum.
    ///
    /// Every precondition is checked before anything is created: no backup key yet, the quorum bootstrapped, enough
    /// security officers, the SO PIN and the user PIN both readable and accepted by the token (the user PIN signs the
    /// audit entry afterwards). Runs in a process without a user login to the token (the CLI ceremony).
    public static func createBackupKey(
        module: PKCS11Module, tokenLabel: String, securityOfficerPIN: PINSource, userPIN: PINSource, store: any QuorumStore,
        holders shareHolders: ShareHolders, label: String = defaultKeyLabel
    ) async throws -> BackupKeyCeremonyResult {
        if try await store.backupKey() != nil {
            throw QuorumError(.backup, "the backup key exists already; a deployment has one (replace it with backup.reshare)")
        }
        let (holders, threshold) = (shareHolders.custodians, shareHolders.threshold)
        var soPIN = try securityOfficerPIN.read()
        defer { for index in soPIN.indices { soPIN[index] = 0 } }
        try module.checkLogin(tokenLabel: tokenLabel, as: .user, pin: userPIN)
        let current = soPIN
        let record = try await module.withSecurityOfficerSession(tokenLabel: tokenLabel, pin: soPIN, describedAs: "\(securityOfficerPIN)") { so in
            guard try so.secretKeyCount(label: label) == 0 else {
                throw QuorumError(.backup, "token \(tokenLabel) already holds a secret key labelled \(label); a token has one backup key")
            }
            return try await makeBackupKey(
                in: so, label: label, currentPIN: current, holders: holders, threshold: threshold,
                record: { try await store.setBackupKey($0) }, rollback: { try await store.deleteBackupKey(label: $0.label) }
            )
        }
        return BackupKeyCeremonyResult(record: record, holders: holders.map(\.name), replaced: nil, replacedKeyWasPresent: false)
    }

    /// Ceremony `backup.reshare`, step 1 (no user login): rebuilds the SO PIN from the shares k security officers'
    /// admin keys decrypt (`custodianKeys`), or, for a backup key made before the SO PIN was split, takes it once from
    /// `legacy`, and checks the token accepts it. Changes nothing. The caller wipes the result.
    public static func recoverSecurityOfficerPIN(
        module: PKCS11Module, tokenLabel: String, record: BackupKeyRecord, custodianKeys: [String: P256.Signing.PrivateKey], legacy: PINSource?
    ) throws -> [UInt8] {
        var pin: [UInt8]
        let described: String
        if let stored = record.securityOfficerPINShares {
            guard legacy == nil else {
                throw QuorumError(.backup, "the SO PIN is split among the security officers; it is rebuilt from their shares, not given")
            }
            pin = try SecretShares.decode(stored, purpose: .securityOfficerPIN).recover(with: custodianKeys)
            described = "the security officers' shares"
        } else {
            guard let legacy else {
                throw QuorumError(
                    .backup,
                    "this backup key predates the split SO PIN: give the current SO PIN once (--so-pin-file or $\(PINSource.securityOfficerEnvironmentVariable))"
                )
            }
            pin = try legacy.read()
            described = "\(legacy)"
        }
        do {
            try module.checkLogin(tokenLabel: tokenLabel, as: .securityOfficer, pin: pin, describedAs: described)
        } catch {
            for index in pin.indices { pin[index] = 0 }
            throw error
        }
        return pin
    }

    /// Ceremony `backup.reshare`, step 2 (user login, after ``QuorumGate/claim(_:by:at:)`` of the approved request):
    /// in a security-officer session logged in with `securityOfficerPIN`, makes a new backup key, splits it and a new
    /// SO PIN among `holders` (the security officers registered now), records them in place of `old` and destroys the
    /// old key. Needs a process with no user login. Older backup files stay restorable by the holders of *their*
    /// shares: they must be destroyed (README).
    public static func reshare(
        module: PKCS11Module, tokenLabel: String, securityOfficerPIN: [UInt8], replacing old: BackupKeyRecord, holders: ShareHolders,
        store: any QuorumStore
    ) async throws -> BackupKeyCeremonyResult {
        let label = KeyLabel.unique("backup-key")
        let current = securityOfficerPIN
        let (record, present) = try await module.withSecurityOfficerSession(
            tokenLabel: tokenLabel, pin: securityOfficerPIN, describedAs: "the security officers' shares"
        ) { so in
            let record = try await makeBackupKey(
                in: so, label: label, currentPIN: current, holders: holders.custodians, threshold: holders.threshold,
                record: { try await store.replaceBackupKey($0, replacing: old.label) },
                rollback: { try await store.replaceBackupKey(old, replacing: $0.label) }
            )
            return (record, try so.destroySecretKeys(label: old.label) > 0)
        }
        return BackupKeyCeremonyResult(record: record, holders: holders.names, replaced: old.label, replacedKeyWasPresent: present)
    }

    /// Wraps the keys of `authorities` (all CAs whose keys allow it, if nil) under the backup key.
    public static func export(
        hierarchy: CAHierarchy, backupKeys: any QuorumStore, authorities names: [String]?, at now: Date = Date()
    ) async throws -> KeyBackupFile {
        guard let record = try await backupKeys.backupKey() else {
            throw QuorumError(.backup, "there is no backup key: run the backup-key ceremony (metertrust backup init-key) first")
        }
        let shares = try SecretShares.decode(record.shares, purpose: .backupKey)
        let token = hierarchy.token
        let backupKey = try await token.perform { try $0.findSecretKey(label: record.label) }
        let all = try await hierarchy.store.certificateAuthorities().filter { $0.destroyedAt == nil }
        var keys: [KeyBackupFile.WrappedKey] = []
        for authorityRecord in all where names?.contains(authorityRecord.name) ?? true {
            let authority = try await hierarchy.authority(named: authorityRecord.name, toIssue: false)
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
            format: KeyBackupFile.formatName, created: formatter.string(from: now), sourceToken: token.label,
            mechanism: "CKM_AES_KEY_WRAP_PAD", shares: shares, keys: keys
        )
    }

    /// Restores every key of `file` into `token` (a fresh, empty one): recovers the backup key from the shares that
    /// the custodians' admin keys decrypt (at least k), imports it as a private session object that can only unwrap
    /// into sensitive keys wrappable solely under a trusted key (its CKA_UNWRAP_TEMPLATE), unwraps each key, checks
    /// each restored public key against its CA certificate, and destroys the session copy of the backup key.
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
            // Manufacturer CA keys sign factory batches from session copies (HSMKeyPolicy.sessionCopies).
            let sessionCopies = entry.role == CertificateAuthorityRole.manufacturer.rawValue
            let key = try await token.perform {
                try $0.unwrap(
                    Array(wrapped), with: unwrapping, curve: curve, label: entry.label, id: id, publicPoint: Array(point), sessionCopies: sessionCopies
                )
            }
            guard HSMSigningKey(token: token, key: key).publicKey == certificate.publicKey else {
                throw QuorumError(.backup, "the restored key of CA \(entry.ca) does not match its certificate")
            }
            restored.append(key)
        }
        return restored
    }
}
