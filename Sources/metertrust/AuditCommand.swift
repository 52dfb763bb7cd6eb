import ArgumentParser
import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore
import X509

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The tamper-evident audit log: RFC 6962 Merkle tree with C2SP checkpoints signed in the HSM.",
        discussion: """
            EXAMPLES:
              metertrust audit init
              metertrust audit log --last 20
              metertrust audit verify --offline --root root.pem \\
                  --since saved.checkpoint --save saved.checkpoint
              metertrust audit verify --json
                  # {"verified": true, ...}; tampered: {"verified": false,
                  # "error": {...}} and exit status 5
              metertrust audit prove 12 > proof.json
            """,
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

        struct Initialised: Encodable {
            var keyLabel: String
            var keyName: String
            var certificate: String
            var checkpoint: CheckpointDocument
        }

        func run() async throws {
            let made = try await Self.initialize(data: data, name: name, keyName: keyName, interval: interval)
            if output.json {
                try Output.json(made)
            } else {
                Output.line("audit key \(made.keyLabel) created in the HSM, certified by the root (audit-signer.pem); checkpoint:")
                print(made.checkpoint.note, terminator: "")
            }
        }

        /// What `audit init` (and `setup`) does: the audit key in the HSM, its certificate from the root, the
        /// configuration, the `audit.init` entry and the first checkpoint.
        static func initialize(data: DataDirectoryOptions, name: String, keyName: String, interval: Int) async throws -> Initialised {
            var context = try Context(data)
            guard context.configuration.audit == nil else { throw CLIError("the audit key already exists (\(context.configuration.audit!.keyLabel))") }
            guard interval >= 1 else { throw CLIError(code: .usage, "--interval must be at least 1") }
            guard !keyName.isEmpty, !keyName.contains(" "), !keyName.contains("+") else {
                throw CLIError(code: .usage, "--key-name must be non-empty without spaces or '+', e.g. metertrust.example/audit")
            }
            let (store, hierarchy) = try await context.platform()
            let (key, certificate) = try await hierarchy.createAuditSigner(name: name)
            var configuration = context.configuration
            configuration.audit = .init(keyLabel: key.label, keyName: keyName, certificateSerial: certificate.serialHex, checkpointInterval: interval)
            try configuration.write(to: context.dataDirectory)
            try Data(try certificate.pem.utf8).write(to: context.dataDirectory.appendingPathComponent("audit-signer.pem"))
            context = try Context(data)
            try await context.audit(
                .init(actor: context.actor, action: "audit.init", subject: keyName, details: ["key": key.label, "certificate": certificate.serialHex]),
                store: store, token: hierarchy.token
            )
            let checkpoint = try await context.auditLog(store: store, token: hierarchy.token).checkpoint()
            return Initialised(
                keyLabel: key.label, keyName: keyName, certificate: context.dataDirectory.appendingPathComponent("audit-signer.pem").path,
                checkpoint: CheckpointDocument(checkpoint)
            )
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "checkpoint", abstract: "Sign a checkpoint over the whole log now.")
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            let checkpoint = try await context.auditLog(store: store).checkpoint()
            if output.json {
                try Output.json(CheckpointDocument(checkpoint))
            } else {
                print(checkpoint.text, terminator: "")
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Recompute the tree, check every checkpoint signature and consistency; name the first tampered entry.",
            discussion: """
                The audit signer's certificate (from the store) must chain to the root pinned in metertrust.json when \
                the root was made, or to --root FILE (an outside auditor's copy of the root certificate). With the HSM \
                at hand (the user PIN configured) the log is also checked against the head kept in the HSM, which \
                catches entries and checkpoints deleted together. --since FILE checks a consistency proof from a \
                checkpoint you saved earlier (with --save FILE) to the latest one: anyone holding an earlier \
                checkpoint detects truncation or rewriting.
                """
        )
        @Option(help: "The root CA certificate (PEM) to verify the audit signer against, instead of the pinned one.") var root: String?
        @Option(help: "A checkpoint note saved earlier (--save): check the log is consistent with it.") var since: String?
        @Option(help: "Write the latest checkpoint note here, to check against next time with --since.") var save: String?
        @Flag(help: "Do not open the HSM (no head check): an auditor without the PIN.") var offline = false
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        struct Report: Encodable {
            var verified = true
            var entries: Int
            var checkpoints: Int
            var latestCheckpointSize: Int
            var uncheckpointedEntries: Int
            var signer: String
            var root: String
            var headChecked: Bool
            var since: Int?
        }

        /// With `--json` a tampered (or unverifiable) log still gets a document on stdout, `{"verified": false,
        /// "error": {...}}`, besides the error on stderr and the exit status of its code.
        struct Failure: Encodable {
            var verified = false
            var error: Output.ErrorDocument.Body
        }

        func run() async throws {
            do {
                try await verify()
            } catch {
                if output.json { try Output.json(Failure(error: Output.ErrorDocument(error).error)) }
                throw error
            }
        }

        private func verify() async throws {
            let context = try Context(data)
            guard let settings = context.configuration.audit else { throw CLIError(code: .auditNotInitialised, "there is no audit key yet: run metertrust audit init") }
            let store = try await context.openStore()
            let (verifier, result, signer, anchor) = try await AuditVerification.verify(store: store, context: context, settings: settings, rootFile: root)
            var headChecked = false
            if !offline, context.configuration.hsm.pinAvailable {
                // The process holds the HSM: check the log against the head kept there too.
                let token = try context.openToken()
                _ = try await context.auditLog(store: store, token: token).verifiedState()
                headChecked = true
            }
            var sinceSize: Int?
            if let since {
                guard let text = try? String(contentsOfFile: since, encoding: .utf8) else { throw CLIError(code: .fileSystem, "cannot read \(since)") }
                sinceSize = try await verifier.verifyConsistency(from: try SignedCheckpoint(text: text), store: store)
            }
            if let save, let latest = try await store.auditCheckpoints().max(by: { $0.size < $1.size }) {
                try latest.note.write(toFile: save, atomically: true, encoding: .utf8)
            }
            let report = Report(
                entries: result.entries, checkpoints: result.checkpoints, latestCheckpointSize: result.latestCheckpointSize,
                uncheckpointedEntries: result.uncheckpointedEntries, signer: "\(signer.subject)",
                root: hexString(SHA256.hash(data: try anchor.derBytes)), headChecked: headChecked, since: sinceSize
            )
            if output.json {
                try Output.json(report)
            } else {
                Output.line("audit log verified: \(result.entries) entries, \(result.checkpoints) checkpoints (latest covers \(result.latestCheckpointSize)), \(result.uncheckpointedEntries) entries since")
                Output.line("signer \(signer.subject) chains to the root \(report.root.prefix(16))…\(headChecked ? "; consistent with the head kept in the HSM" : "; HSM head not checked")")
                if let sinceSize { Output.line("consistent with the checkpoint you saved for \(sinceSize) entries") }
            }
        }
    }

    struct Prove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prove",
            abstract: "Print (JSON) an inclusion proof of entry N against the latest checkpoint covering it.",
            discussion: """
                The proof is JSON with or without --json. Its entry field is the entry's exact canonical bytes (what the \
                leaf hash covers), kept as a string so that a verifier hashes them as they are. Check it with the \
                audit-signer certificate alone, e.g. Tests/tools/verify_inclusion.py.
                """
        )
        @Argument(help: "Entry index (0-based).") var index: Int64
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            try Output.json(try await context.auditLog(store: store).inclusionProof(index: index))
        }
    }

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "log", abstract: "Print the audit entries: one line each (time, actor, action, outcome, subject), or --json.",
            discussion: """
                Text: index, time, actor, action, outcome, subject, then the details as key=value, one entry per line, \
                with control characters escaped. --json: one JSON array of the entries as stored (index, time, actor, \
                action, subject, outcome, details, previous, seal).
                """
        )
        @Option(help: "Print at most this many, the latest.") var last = 50
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            guard last >= 0 else { throw ValidationError("--last must be 0 or more") }
        }

        func run() async throws {
            let store = try await Context(data).openStore()
            var rows: [[UInt8]] = []
            var position: Int64 = -1
            while true {
                let page = try await store.auditEntries(after: position, limit: 10_000)
                guard let lastRow = page.last else { break }
                rows += page.map(\.entry)
                position = lastRow.position
            }
            let shown = rows.suffix(last)
            if output.json {
                // Each entry as the object it is (an undecodable row as what it holds), never a string of JSON.
                try Output.json(shown.map { JSONValue(parsing: String(decoding: $0, as: UTF8.self)) })
                return
            }
            if shown.isEmpty { Output.line("the audit log is empty") }
            for bytes in shown {
                guard let entry = AuditEntry.decode(bytes) else {
                    Output.line("(an entry that is not an audit entry: \(DisplayText.escaped(String(decoding: bytes, as: UTF8.self), limit: 120)); run metertrust audit verify)")
                    continue
                }
                Output.line(Self.line(entry))
            }
        }

        /// `12  2026-12-01 15:02:03 UTC  cli:ops(uid 1000)  ca.create  success  acme  role=manufacturer`.
        static func line(_ entry: AuditEntry) -> String {
            let parser = ISO8601DateFormatter()
            parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let time = parser.date(from: entry.time).map { Output.timestamp.string(from: $0) } ?? entry.time
            let details = entry.details.sorted { $0.key < $1.key }.map { "\(DisplayText.escaped($0.key))=\(DisplayText.escaped($0.value, limit: 80))" }
            return ([
                "\(entry.index)", time, DisplayText.escaped(entry.actor), DisplayText.escaped(entry.action), entry.outcome.rawValue,
                DisplayText.escaped(entry.subject),
            ] + details).joined(separator: "  ")
        }
    }
}

/// A signed checkpoint as JSON: origin, size, root hash (base64) and the signed note itself.
struct CheckpointDocument: Encodable {
    var origin: String
    var size: Int
    var rootHash: String
    var note: String

    init(_ signed: SignedCheckpoint) {
        origin = signed.checkpoint.origin
        size = signed.checkpoint.size
        rootHash = Data(signed.checkpoint.rootHash).base64EncodedString()
        note = signed.text
    }

}

/// The audit log's verification without the HSM (`audit verify --offline`, `store copy`'s check of its copy): the
/// signer certificate from the store must chain to the pinned root (or `rootFile`), then every checkpoint signature
/// and the tree are checked.
enum AuditVerification {
    static func verify(
        store: any MeterTrustStore, context: Context, settings: Configuration.AuditSettings, rootFile: String? = nil
    ) async throws -> (verifier: AuditVerifier, result: AuditVerifier.Result, signer: Certificate, root: Certificate) {
        let anchor = try await trustedRoot(context: context, store: store, rootFile: rootFile)
        let certificates = try await store.certificates(serial: settings.certificateSerial)
        guard let record = certificates.first(where: { $0.profile == CertificateProfile.auditSigner.name }) else {
            throw CLIError(code: .untrustedState, "the audit-signer certificate \(settings.certificateSerial) is missing from the store")
        }
        let signer = try Certificate(derEncoded: record.der)
        do {
            try await ChainVerification.verify(leaf: signer, intermediates: [], root: anchor)
        } catch {
            throw AuditError(.signature, "the audit-signer certificate in the store does not chain to the pinned root (\(error)): the store was tampered with, or the wrong root was given")
        }
        guard signer.issuer == anchor.subject, let publicKey = P256.Signing.PublicKey(signer.publicKey) else {
            throw AuditError(.signature, "the audit-signer certificate was not issued by the pinned root")
        }
        let verifier = AuditVerifier(publicKey: publicKey, keyName: settings.keyName)
        return (verifier, try await verifier.verify(store), signer, anchor)
    }

    static func verify(store: any MeterTrustStore, context: Context) async throws -> AuditVerifier.Result {
        guard let settings = context.configuration.audit else { throw CLIError(code: .auditNotInitialised, "there is no audit key yet: run metertrust audit init") }
        return try await verify(store: store, context: context, settings: settings).result
    }

        /// The root to trust: --root FILE, or the store's root certificate if its SHA-256 is the pinned one.
        static func trustedRoot(context: Context, store: any MeterTrustStore, rootFile root: String?) async throws -> Certificate {
            if let root {
                guard let text = try? String(contentsOfFile: root, encoding: .utf8), let certificate = try? Certificate(pemEncoded: text) else {
                    throw CLIError("\(root) is not a PEM certificate")
                }
                return certificate
            }
            guard let pinned = context.configuration.rootFingerprint else {
                throw CLIError(code: .configuration, "no root is pinned in \(Configuration.fileName) (it is pinned when ca create-root makes the root): give the root certificate with --root FILE")
            }
            let roots = try await store.certificateAuthorities().filter { $0.role == .root }
            for record in roots {
                if let stored = try await store.certificate(issuer: record.name, serial: record.certificateSerial),
                    hexString(SHA256.hash(data: stored.der)) == pinned
                {
                    return try Certificate(derEncoded: stored.der)
                }
            }
            throw AuditError(.signature, "the store holds no root certificate with the pinned SHA-256 \(pinned.prefix(16))…: the store was tampered with")
        }
}
