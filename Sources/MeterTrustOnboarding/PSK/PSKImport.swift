import Crypto
import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustStore

/// The platform's PSK keys in the HSM: the onboarding key (P-256, derive only: the HPKE recipient of OEM-generated
/// PSKs, whose public half the OEM receives) and the sealing key (AES-256, encrypt/decrypt only: seals imported PSKs
/// for the store). One of each per token, found by their labels' prefix.
public struct PSKKeys: Sendable {
    public let token: HSMToken

    public init(token: HSMToken) {
        self.token = token
    }

    private static let onboardingPrefix = "\(KeyLabel.prefix)/\(KeyLabel.pskOnboarding)/"
    private static let sealingPrefix = "\(KeyLabel.prefix)/\(KeyLabel.pskSealing)/"

    /// The onboarding key; made now if there is none and `create` is set. Nil if there is none and `create` is not set.
    public func onboardingKey(create: Bool) async throws -> (key: HSMKey, created: Bool)? {
        try await token.perform { token in
            if let label = try token.privateKeyLabels().first(where: { $0.hasPrefix(Self.onboardingPrefix) }) {
                return (try token.findKey(label: label), false)
            }
            guard create else { return nil }
            return (try token.generateKeyAgreementPair(curve: .p256, label: KeyLabel.unique(KeyLabel.pskOnboarding)), true)
        }
    }

    /// The sealing key, made on first use.
    public func sealingKey() async throws -> HSMSecretKey {
        try await token.perform { token in
            if let label = try token.secretKeyLabels().first(where: { $0.hasPrefix(Self.sealingPrefix) }) {
                return try token.findSecretKey(label: label)
            }
            return try token.generateSealingKey(label: KeyLabel.unique(KeyLabel.pskSealing))
        }
    }

    /// The onboarding key's public half as the OEM needs it: SubjectPublicKeyInfo PEM, and its SHA-256 (what an
    /// import file's `recipient` names).
    public static func publicKey(of key: HSMKey) throws -> (pem: String, spkiSHA256: String) {
        let publicKey = try P256.KeyAgreement.PublicKey(x963Representation: key.publicPoint)
        return (publicKey.pemRepresentation, hexString(SHA256.hash(data: publicKey.derRepresentation)))
    }
}

/// What an import did.
public struct PSKImportReport: Sendable, Codable, Hashable {
    public var batch: String
    public var imported: Int
    /// The HSM key the PSKs are sealed under (CKA_LABEL).
    public var sealingKey: String
    /// The onboarding key they were sealed to: SHA-256 of its SubjectPublicKeyInfo.
    public var recipient: String
}

/// `psk import`: opens each PSK of an OEM's ``PSKImportFile`` with the onboarding key (HPKE, the DH inside the
/// HSM), seals it at once under the sealing key (AES-256-GCM in the HSM, the meter's EUI-64 as associated data),
/// and stores every sealed PSK in one transaction: all or nothing. A PSK is in the clear only in this process's
/// memory between the two HSM calls, and never in a message.
public struct PSKImport: Sendable {
    public let store: any PresharedKeyStore
    public let keys: PSKKeys
    public var clock: @Sendable () -> Date = { Date() }

    public init(store: any PresharedKeyStore, keys: PSKKeys) {
        self.store = store
        self.keys = keys
    }

    /// Imports the file at `path` for `batch` (which the file's header must name).
    public func run(batch: String, path: String, progress: @Sendable (Int) -> Void = { _ in }) async throws -> PSKImportReport {
        guard let onboarding = try await keys.onboardingKey(create: false)?.key else {
            throw OnboardingError(.pskUnknownMeter, "this platform has no PSK onboarding key yet: make it with metertrust psk onboarding-key and give its public key to the OEM")
        }
        let recipient = try PSKKeys.publicKey(of: onboarding).spkiSHA256
        guard let handle = FileHandle(forReadingAtPath: path) else { throw OnboardingError(.pskMalformedImport, "cannot read the PSK import file \(path)") }
        defer { try? handle.close() }
        var parser = PSKImportParser()
        var entries: [PSKImportFile.Entry] = []
        func take(_ items: [PSKImportParser.Item]) throws {
            for item in items {
                switch item {
                case .header(let header):
                    guard header.batch == batch else {
                        throw OnboardingError(.pskMalformedImport, "the PSK import file is for batch \(DisplayText.escaped(header.batch, asciiOnly: true, limit: 130)), not \(batch)")
                    }
                    guard header.recipient == recipient else {
                        throw OnboardingError(.pskMalformedImport, "the PSK import file is sealed to key \(header.recipient.prefix(16))…, not this platform's onboarding key \(recipient.prefix(16))…: the OEM must use the public key from metertrust psk onboarding-key")
                    }
                case .entry(let entry):
                    entries.append(entry)
                }
            }
        }
        while let chunk = try handle.read(upToCount: 1 << 16), !chunk.isEmpty { try take(try parser.feed(chunk)) }
        try take(try parser.finish())

        let sealing = try await keys.sealingKey()
        let receiver = HPKEBaseReceiver(recipientPublicKey: onboarding.publicPoint) { [token = keys.token] enc in
            try token.keyAgreement(onboarding, peerPoint: enc)
        }
        let info = PSKImportFile.info(batch: batch)
        let now = clock()
        var records: [SealedPSKRecord] = []
        records.reserveCapacity(entries.count)
        for start in stride(from: 0, to: entries.count, by: 500) {
            let slice = Array(entries[start..<min(start + 500, entries.count)])
            let sealed: [SealedPSKRecord] = try await keys.token.perform { token in
                try slice.map { entry in
                    var psk: [UInt8]
                    do {
                        psk = try receiver.open(enc: entry.enc, info: info, aad: entry.eui64.bytes, ciphertext: entry.ciphertext)
                    } catch is HPKEBaseReceiver.OpenFailure {
                        throw OnboardingError(
                            .pskCannotOpen,
                            "line \(entry.line) (meter \(entry.eui64)): the PSK does not open with this platform's onboarding key for batch \(batch) and this meter; nothing was imported"
                        )
                    }
                    defer { for index in psk.indices { psk[index] = 0 } }
                    guard psk.count == PresharedKey.length else {
                        throw OnboardingError(.pskMalformedImport, "line \(entry.line) (meter \(entry.eui64)): the sealed PSK is \(psk.count) octets, not \(PresharedKey.length)")
                    }
                    let value = try token.seal(psk, associatedData: SealedPSK.associatedData(entry.eui64), with: sealing)
                    return SealedPSKRecord(eui64: entry.eui64.description, batch: batch, sealingKeyLabel: sealing.label, sealed: value, importedAt: now)
                }
            }
            records += sealed
            progress(records.count)
        }
        do {
            try await store.insertSealedPSKs(records)
        } catch let error as StoreError where error.code == .duplicate {
            throw OnboardingError(.pskMalformedImport, "a meter of the file already has an imported PSK (\(error.message)); nothing was imported")
        }
        return PSKImportReport(batch: batch, imported: records.count, sealingKey: sealing.label, recipient: recipient)
    }
}
