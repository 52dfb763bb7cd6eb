import ArgumentParser
import Crypto
import Foundation
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustHSM
import MeterTrustQuorum
import MeterTrustStore

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Key backup under split knowledge: the backup-key ceremony and the restore ceremony.",
        discussion: """
            Exporting is an operation under quorum: metertrust admin request backup.export, then admin execute \
            ID --backup-out FILE.

            EXAMPLES:
              METERTRUST_HSM_SO_PIN=... metertrust backup init-key
              metertrust backup reshare --request ID \\
                  --custodian alice=alice.key --custodian bob=bob.key
              metertrust backup restore --file backup.json --token NEW \\
                  --pin-file new.pin \\
                  --custodian alice=alice.key --custodian carol=carol.key
            """,
        subcommands: [InitKey.self, Reshare.self, Restore.self]
    )

    struct InitKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init-key",
            abstract: "Ceremony: create the backup key in the HSM, split it and the SO PIN k-of-n among the security officers.",
            discussion: """
                Needs the token's security-officer PIN in $METERTRUST_HSM_SO_PIN (or --so-pin-file): only the SO may mark \
                the key CKA_TRUSTED. k is the backup-restore policy's quorum; n the registered security officers. The \
                key's value exists in this process only long enough to be split; each share is encrypted (HPKE) to one \
                custodian's admin certificate. The key can only wrap: nothing wrapped under it can be unwrapped on this \
                token. The ceremony then replaces the SO PIN with a random one, split the same way: the PIN you gave no \
                longer works and nobody knows the new one; destroy the file or variable that held it. Every precondition \
                (no backup key yet, the quorum, enough security officers, both PINs) is checked before anything is made.
                """
        )
        @Option(help: "File holding the security officer's PIN (mode 0600).") var soPinFile: String?
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            let pin: PINSource = soPinFile.map { .file($0) } ?? .environment(PINSource.securityOfficerEnvironmentVariable)
            let result = try await context.audited("backup.init-key", subject: KeyBackup.defaultKeyLabel, store: store, token: nil) {
                let module = try PKCS11Module.load(path: context.configuration.hsm.modulePath)
                // The security officers as the verified audit log registered them (user login, closed before the SO's).
                let holders = try await context.withGate(store: store) { try await KeyBackup.shareHolders(gate: $0) }
                let result = try await KeyBackup.createBackupKey(
                    module: module, tokenLabel: context.configuration.hsm.tokenLabel, securityOfficerPIN: pin,
                    userPIN: context.configuration.hsm.pinSource, store: store, holders: holders
                )
                return (result, ["threshold": "\(result.record.threshold)", "kcv": result.record.keyCheckValue, "holders": result.holders.joined(separator: ",")])
            }
            BackupCommand.report(result, json: output.json)
        }
    }

    struct Reshare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ceremony: replace the backup key and re-split it and the SO PIN among today's security officers.",
            discussion: """
                Runs an approved backup.reshare request (metertrust admin request backup.reshare, approved under the \
                backup-restore policy) on the HSM host, with k security officers present: each supplies their admin key \
                file (--custodian NAME=KEYFILE), which decrypts their share of the SO PIN. A new backup key is made and \
                split, with a new SO PIN, among the security officers registered now; the old backup key is destroyed. \
                Backup files exported before stay restorable by the holders of their own shares: destroy them once a \
                new backup is taken. A backup key made before the SO PIN was split takes the SO PIN once from \
                --so-pin-file or $METERTRUST_HSM_SO_PIN.
                """
        )
        @Option(help: "The approved backup.reshare request.") var request: String
        @Option(name: .customLong("custodian"), help: "NAME=KEYFILE of a security officer taking part; repeat.") var custodians: [String] = []
        @Option(help: "Only for a backup key made before the SO PIN was split: file holding the SO PIN (mode 0600).") var soPinFile: String?
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            let keys = try BackupCommand.custodianKeys(custodians)
            let legacy: PINSource? = soPinFile.map { .file($0) }
                ?? (ProcessInfo.processInfo.environment[PINSource.securityOfficerEnvironmentVariable]?.isEmpty == false
                    ? .environment(PINSource.securityOfficerEnvironmentVariable) : nil)
            let executor = keys.keys.sorted().joined(separator: "+")
            let result = try await context.audited("backup.reshare", subject: request, store: store, token: nil, details: ["officers": executor]) {
                let module = try PKCS11Module.load(path: context.configuration.hsm.modulePath)
                let tokenLabel = context.configuration.hsm.tokenLabel
                guard let old = try await store.backupKey() else {
                    throw QuorumError(.backup, "there is no backup key to replace: run the backup-key ceremony (metertrust backup init-key) first")
                }
                // 1. The request is approved and who the security officers are, from the verified audit log.
                let holders = try await context.withGate(store: store) { gate in
                    _ = try await gate.approved(id: request, expected: .backupReshare)
                    return try await KeyBackup.shareHolders(gate: gate)
                }
                // 2. k officers rebuild the SO PIN (no login in this process meanwhile); nothing changes yet.
                var soPIN = try KeyBackup.recoverSecurityOfficerPIN(
                    module: module, tokenLabel: tokenLabel, record: old, custodianKeys: keys, legacy: old.securityOfficerPINShares == nil ? legacy : nil
                )
                defer { for index in soPIN.indices { soPIN[index] = 0 } }
                // 3. The run-once claim and its intent entry in the log.
                let authorized = try await context.withGate(store: store) { gate in
                    let authorized = try await gate.approved(id: request, expected: .backupReshare)
                    try await gate.claim(authorized, by: executor)
                    return authorized
                }
                // 4. The security officer's work.
                let result: BackupKeyCeremonyResult
                do {
                    result = try await KeyBackup.reshare(
                        module: module, tokenLabel: tokenLabel, securityOfficerPIN: soPIN, replacing: old, holders: holders, store: store
                    )
                } catch {
                    try? await QuorumGate.finish(authorized, in: store, failure: error, outcome: [:])
                    let failed = SecurityState.Change.request(request, "failed")
                    try? await context.audit(
                        AuditEvent(actor: "custodian:\(executor)", action: "admin.execute", subject: request, outcome: .failed, details: [failed.0: failed.1, "reason": "\(error)"]),
                        store: store
                    )
                    throw error
                }
                let outcome = [
                    "backupKey": result.record.label, "replaced": old.label, "threshold": "\(result.record.threshold)",
                    "holders": result.holders.joined(separator: ","),
                ]
                try await QuorumGate.finish(authorized, in: store, failure: nil, outcome: outcome)
                let executed = SecurityState.Change.request(request, "executed")
                return (result, outcome.merging([executed.0: executed.1, "approvers": authorized.tally.counted.joined(separator: ",")]) { $1 })
            }
            BackupCommand.report(result, json: output.json)
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ceremony: restore the keys of a backup file into a token, with k custodians' admin keys.",
            discussion: """
                Each custodian present supplies their admin key file (--custodian NAME=KEYFILE); at least k are needed to \
                rebuild the backup key, which only ever exists inside the target token (as a session object) and in this \
                process's memory for the import. The target token's user PIN comes from --pin-file or $METERTRUST_HSM_PIN.
                """
        )
        @Option(help: "The backup file (from admin execute --backup-out).") var file: String
        @Option(help: "Label of the target token (a fresh, empty one).") var token: String
        @Option(help: "PKCS#11 module of the target token.") var module = HSMConfiguration.defaultModulePath
        @Option(help: "File holding the target token's user PIN (mode 0600).") var pinFile: String?
        @Option(name: .customLong("custodian"), help: "NAME=KEYFILE of a custodian taking part; repeat.") var custodians: [String] = []
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard let bytes = FileManager.default.contents(atPath: file) else { throw CLIError(code: .fileSystem, "cannot read \(file)") }
            let backup = try KeyBackupFile.parse(Array(bytes))
            let keys = try BackupCommand.custodianKeys(custodians)
            let restore = { () async throws -> [HSMKey] in
                let target = try HSMToken.open(HSMConfiguration(modulePath: module, tokenLabel: token, pinFile: pinFile, sessionCount: 1))
                return try await KeyBackup.restore(backup, into: target, custodianKeys: keys)
            }
            // Recorded in the deployment's audit log (intent, then outcome) when the ceremony runs in one.
            let restored: [HSMKey]
            if let context = Context.ifPresent(data) {
                let store = try await context.openStore()
                restored = try await context.audited(
                    "backup.restore", subject: token, store: store,
                    details: ["custodians": keys.keys.sorted().joined(separator: ","), "source": backup.sourceToken, "keys": backup.keys.map(\.ca).joined(separator: ",")]
                ) {
                    let keys = try await restore()
                    return (keys, ["restored": keys.map(\.label).joined(separator: ",")])
                }
            } else {
                Output.warning("no data directory at \(data.url.path): this restore is not recorded in an audit log")
                restored = try await restore()
            }
            if output.json {
                try Output.json(
                    Restored(token: token, restored: restored.map { .init(label: $0.label, curve: $0.curve.rawValue) }, audited: Context.ifPresent(data) != nil)
                )
            } else {
                for key in restored { Output.line("restored \(key.label) (\(key.curve.rawValue)) into token \(token)") }
            }
        }
    }

    /// `backup restore --json`: the keys restored into `token`, and whether the audit log of a data directory
    /// recorded it (without one, the text form warns).
    struct Restored: Encodable {
        struct Key: Encodable {
            var label: String
            var curve: String
        }
        var token: String
        var restored: [Key]
        var audited: Bool
    }

    /// `NAME=KEYFILE` arguments: each custodian's admin key.
    static func custodianKeys(_ arguments: [String]) throws -> [String: P256.Signing.PrivateKey] {
        var keys: [String: P256.Signing.PrivateKey] = [:]
        for entry in arguments {
            guard let equals = entry.firstIndex(of: "=") else { throw CLIError(code: .usage, "--custodian takes NAME=KEYFILE, not \(entry)") }
            keys[String(entry[..<equals])] = try CustodianKeyFile.load(String(entry[entry.index(after: equals)...]))
        }
        return keys
    }

    static func report(_ result: BackupKeyCeremonyResult, json: Bool) {
        let record = result.record
        if json {
            var fields = [
                "label": record.label, "threshold": "\(record.threshold)", "holders": result.holders.joined(separator: ","),
                "keyCheckValue": record.keyCheckValue, "securityOfficerPIN": "split",
            ]
            if let replaced = result.replaced { fields["replaced"] = replaced }
            try? Output.json(fields)
            return
        }
        if let replaced = result.replaced {
            Output.line("backup key \(replaced) replaced by \(record.label)\(result.replacedKeyWasPresent ? " (old key destroyed)" : " (the old key was no longer on the token)")")
        } else {
            Output.line("backup key \(record.label) created in the HSM (trusted, wrap only, sensitive, unextractable, unmodifiable)")
        }
        Output.line("split \(record.threshold) of \(result.holders.count) among \(result.holders.joined(separator: ", ")); key check value \(record.keyCheckValue)")
        Output.line("the security officer's PIN was replaced by a random one, split the same way: the old SO PIN no longer works")
    }
}
