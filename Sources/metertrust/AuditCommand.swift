import ArgumentParser
import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustPKI
import X509

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The tamper-evident audit log: RFC 6962 Merkle tree with C2SP checkpoints signed in the HSM.",
        subcommands: [Init.self, Checkpoint.self, Verify.self, Prove.self, Log.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init", abstract: "Create the audit key in the HSM, have the root certify it, and sign the first checkpoint."
        )
        @Option(help: "Name for the audit signer certificate (CN=<name> Audit Log).") var name = "metertrust"
        @Option(name: .customLong("key-name"), help: "Checkpoint origin and signed-note key name.") var keyName = "metertrust.example/audit"
        @Option(help: "Sign a checkpoint every N entries.") var interval = 1
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            var context = try Context(data)
            guard context.configuration.audit == nil else { throw CLIError("the audit key already exists (\(context.configuration.audit!.keyLabel))") }
            guard interval >= 1 else { throw CLIError("--interval must be at least 1") }
            guard !keyName.isEmpty, !keyName.contains(" "), !keyName.contains("+") else {
                throw CLIError("--key-name must be non-empty without spaces or '+', e.g. metertrust.example/audit")
            }
            let hierarchy = try await context.hierarchy()
            let (key, certificate) = try await hierarchy.createAuditSigner(name: name)
            var configuration = context.configuration
            configuration.audit = .init(keyLabel: key.label, keyName: keyName, certificateSerial: certificate.serialHex, checkpointInterval: interval)
            try configuration.write(to: context.dataDirectory)
            try Data(try certificate.pem.utf8).write(to: context.dataDirectory.appendingPathComponent("audit-signer.pem"))
            context = try Context(data)
            try await context.audit(
                .init(actor: context.actor, action: "audit.init", subject: keyName, details: ["key": key.label, "certificate": certificate.serialHex]),
                store: hierarchy.store, token: hierarchy.token
            )
            let checkpoint = try await context.auditLog(store: hierarchy.store, token: hierarchy.token).checkpoint()
            if output.json {
                try Output.json(["keyLabel": key.label, "keyName": keyName, "certificate": context.dataDirectory.appendingPathComponent("audit-signer.pem").path, "checkpoint": checkpoint.text])
            } else {
                Output.line("audit key \(key.label) created in the HSM, certified by the root (audit-signer.pem); checkpoint:")
                print(checkpoint.text, terminator: "")
            }
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "checkpoint", abstract: "Sign a checkpoint over the whole log now.")
        @OptionGroup var data: DataDirectoryOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            print(try await context.auditLog(store: store).checkpoint().text, terminator: "")
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Recompute the tree, check every checkpoint signature and consistency; name the first tampered entry."
        )
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            guard let settings = context.configuration.audit else { throw CLIError("there is no audit key yet: run metertrust audit init") }
            let store = try await context.openStore()
            let certificates = try await store.certificates(serial: settings.certificateSerial)
            guard let record = certificates.first(where: { $0.profile == CertificateProfile.auditSigner.name }),
                let publicKey = P256.Signing.PublicKey(try Certificate(derEncoded: record.der).publicKey)
            else {
                throw CLIError("the audit-signer certificate \(settings.certificateSerial) is missing from the store")
            }
            let result = try await AuditVerifier(publicKey: publicKey, keyName: settings.keyName).verify(store)
            if output.json {
                try Output.json(result)
            } else {
                Output.line("audit log verified: \(result.entries) entries, \(result.checkpoints) checkpoints (latest covers \(result.latestCheckpointSize)), \(result.uncheckpointedEntries) entries since")
            }
        }
    }

    struct Prove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prove",
            abstract: "Print (JSON) an inclusion proof of entry N against the latest checkpoint covering it.",
            discussion: "Check it with the audit-signer certificate alone, e.g. Tests/tools/verify_inclusion.py."
        )
        @Argument(help: "Entry index (0-based).") var index: Int64
        @OptionGroup var data: DataDirectoryOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            try Output.json(try await context.auditLog(store: store).inclusionProof(index: index))
        }
    }

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "log", abstract: "Print the audit entries.")
        @Option(help: "Print at most this many, the latest.") var last = 50
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let store = try await Context(data).openStore()
            var rows: [String] = []
            var position: Int64 = -1
            while true {
                let page = try await store.auditEntries(after: position, limit: 10_000)
                guard let lastRow = page.last else { break }
                rows += page.map { String(decoding: $0.entry, as: UTF8.self) }
                position = lastRow.position
            }
            let shown = rows.suffix(last)
            if output.json {
                print("[" + shown.joined(separator: ",") + "]")
            } else {
                shown.forEach { Output.line($0) }
            }
        }
    }
}
