import ArgumentParser
import Crypto
import Foundation
import MeterTrustAdmin
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
            """,
        subcommands: [InitKey.self, Restore.self]
    )

    struct InitKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init-key",
            abstract: "Ceremony: generate the AES-256 backup key in the HSM and split it k-of-n among the security officers.",
            discussion: """
                Needs the token's security-officer PIN in $METERTRUST_HSM_SO_PIN (or --so-pin-file): only the SO may mark \
                the key CKA_TRUSTED. k is the backup-restore policy's quorum; n the registered security officers. The \
                key's value exists in this process only long enough to be split; each share is encrypted (HPKE) to one \
                custodian's admin certificate.
                """
        )
        @Option(help: "File holding the security officer's PIN (mode 0600).") var soPinFile: String?
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            let module = try PKCS11Module.load(path: context.configuration.hsm.modulePath)
            let pin: PINSource = soPinFile.map { .file($0) } ?? .environment(PINSource.securityOfficerEnvironmentVariable)
            let record = try await context.audited("backup.init-key", subject: KeyBackup.defaultKeyLabel, store: store, token: nil) {
                let record = try await KeyBackup.createBackupKey(
                    module: module, tokenLabel: context.configuration.hsm.tokenLabel, securityOfficerPIN: pin, store: store
                )
                return (record, ["threshold": "\(record.threshold)", "kcv": record.keyCheckValue])
            }
            let shares = try JSONDecoder().decode(BackupShares.self, from: Data(record.shares))
            if output.json {
                try Output.json(["label": record.label, "threshold": "\(record.threshold)", "holders": shares.shares.map(\.custodian).joined(separator: ","), "keyCheckValue": record.keyCheckValue])
            } else {
                Output.line("backup key \(record.label) generated in the HSM (trusted, sensitive, unextractable)")
                Output.line("split \(record.threshold) of \(shares.shares.count) among \(shares.shares.map(\.custodian).joined(separator: ", ")); key check value \(record.keyCheckValue)")
            }
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
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard let bytes = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
            let backup = try KeyBackupFile.parse(Array(bytes))
            var keys: [String: P256.Signing.PrivateKey] = [:]
            for entry in custodians {
                guard let equals = entry.firstIndex(of: "=") else { throw CLIError("--custodian takes NAME=KEYFILE, not \(entry)") }
                keys[String(entry[..<equals])] = try CustodianKeyFile.load(String(entry[entry.index(after: equals)...]))
            }
            let target = try HSMToken.open(HSMConfiguration(modulePath: module, tokenLabel: token, pinFile: pinFile, sessionCount: 1))
            let restored = try await KeyBackup.restore(backup, into: target, custodianKeys: keys)
            if output.json {
                try Output.json(restored.map { ["label": $0.label, "curve": $0.curve.rawValue] })
            } else {
                for key in restored { Output.line("restored \(key.label) (\(key.curve.rawValue)) into token \(token)") }
            }
        }
    }
}
