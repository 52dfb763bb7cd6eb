import ArgumentParser
import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustOnboarding

/// PSK meters: the onboarding key the OEM seals its PSKs to, and the import of the OEM's sealed file.
struct PSKCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "psk",
        abstract: "PSK meters: the onboarding key for OEM-generated PSKs, and importing an OEM's sealed PSK file.",
        discussion: """
            PSKs of keyMode psk batches are derived in the HSM and written only into each meter's bundle (factory run); \
            nothing here is needed for them. An OEM that generates its meters' PSKs itself seals each to the platform's \
            onboarding key (HPKE, RFC 9180) and sends the file (format metertrust-psk-import v1, see README), which \
            psk import opens in the HSM and stores sealed under an HSM key. A PSK is never printed.
            """,
        subcommands: [OnboardingKey.self, Import.self]
    )

    struct OnboardingKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "onboarding-key",
            abstract: "Create (once) and show the PSK onboarding key's public half, for the OEM.",
            discussion: """
                The key pair is made in the HSM (P-256, the private half private, sensitive, unextractable and able only to \
                derive); the command prints its public key as PEM (SubjectPublicKeyInfo) and its SHA-256, which an import \
                file's "recipient" must name. Running it again shows the same key.

                EXAMPLES:
                  metertrust psk onboarding-key > psk-onboarding.pem
                  metertrust psk onboarding-key --json
                """
        )
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        struct Shown: Encodable {
            var label: String
            var curve: String
            var publicKeyPEM: String
            var spkiSHA256: String
            var created: Bool
        }

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            let token = try context.openToken()
            let keys = PSKKeys(token: token)
            let existing = try await keys.onboardingKey(create: false)
            let found: (key: HSMKey, created: Bool)
            if let existing {
                found = existing
            } else {
                found = try await context.audited("psk.onboarding-key", subject: "psk-onboarding", store: store, token: token) {
                    let made = try await keys.onboardingKey(create: true)!
                    return (made, ["label": made.key.label])
                }
            }
            let (pem, fingerprint) = try PSKKeys.publicKey(of: found.key)
            if output.json {
                try Output.json(Shown(label: found.key.label, curve: found.key.curve.rawValue, publicKeyPEM: pem, spkiSHA256: fingerprint, created: found.created))
            } else {
                Output.line(pem)
                FileHandle.standardError.write(Data("PSK onboarding key \(found.key.label)\(found.created ? " (created now)" : ""), SPKI SHA-256 \(fingerprint)\n".utf8))
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Import an OEM's sealed PSK file: each PSK opened in the HSM and stored sealed under an HSM key.",
            discussion: """
                All or nothing: a malformed line, a PSK that does not open (sealed to another key, another batch or \
                another meter, or changed), a meter listed twice or already holding an imported PSK refuses the whole \
                file and stores nothing. Audited (psk.import).

                EXAMPLES:
                  metertrust psk import --batch acme-2026-psk-1 acme-psks.jsonl
                  metertrust psk import --batch acme-2026-psk-1 acme-psks.jsonl --json
                """
        )
        @Option(help: "The OEM batch the file is for (its header must name it).") var batch: String
        @Argument(help: "The OEM's file (metertrust-psk-import v1, JSON lines).") var file: String
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let context = try Context(data)
            let store = try await context.openStore()
            let token = try context.openToken()
            let report = try await context.audited("psk.import", subject: batch, store: store, token: token, details: ["file": file]) {
                let report = try await PSKImport(store: store, keys: PSKKeys(token: token)).run(batch: batch, path: file)
                return (report, ["imported": "\(report.imported)", "sealingKey": report.sealingKey, "recipient": report.recipient])
            }
            if output.json {
                try Output.json(report)
            } else {
                Output.line("imported \(report.imported) PSKs for batch \(report.batch), sealed under \(report.sealingKey)")
            }
        }
    }
}
