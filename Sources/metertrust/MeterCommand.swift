import ArgumentParser
import Crypto
import Foundation
import MeterTrustCore
import X509
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustPKI
import MeterTrustStore

/// A simulated meter's factory configurator client, stage by stage.
struct MeterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meter",
        abstract: "Drive a simulated meter's factory configurator (its state lives in --state DIR); show a meter as the platform holds it.",
        discussion: """
            init, keygen, install, finalize, status, enroll and reenroll are the meter's side (a simulator, on \
            --state DIR; enroll and reenroll talk EST to the platform). \
            show is the platform's view of a meter, from its store (--data-dir).

            EXAMPLES:
              metertrust meter init --state m1 --eui64 0024befffe800001 \\
                  --image image.bin --trust-anchor root.pem
              metertrust meter keygen --state m1 --append-to csrs.txt
              metertrust factory run --manifest batch.json --out out
              metertrust factory bundle --batch-dir out \\
                  --eui64 0024befffe800001 --out bundle.json
              metertrust meter install --state m1 --bundle bundle.json
              metertrust meter finalize --state m1
              metertrust meter enroll --state m1 --server https://127.0.0.1:8443 --label north
              metertrust meter show 0024befffe800001 --data-dir /var/lib/metertrust
            """,
        subcommands: [Init.self, Keygen.self, Install.self, Finalize.self, Status.self, Enroll.self, Reenroll.self, Show.self]
    )

    struct StateOptions: ParsableArguments {
        @Option(help: "The simulated meter's storage directory.") var state: String
        var directory: URL { URL(fileURLWithPath: state).standardizedFileURL }
    }

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "init", abstract: "Stage 1: inject the software image.")
        @OptionGroup var meter: StateOptions
        @Option(help: "The meter's EUI-64.") var eui64: String
        @Option(help: "Firmware image file.") var image: String
        @Option(name: .customLong("trust-anchor"), help: "The root CA certificate (PEM) the image pins; bundles with another root are refused.")
        var trustAnchor: String
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: image) else { throw CLIError(code: .fileSystem, "cannot read the image \(image)") }
            guard let text = try? String(contentsOfFile: trustAnchor, encoding: .utf8), let root = try? Certificate(pemEncoded: text) else {
                throw CLIError("\(trustAnchor) is not a PEM certificate (the root CA the meter's image pins)")
            }
            let pin = hexString(SHA256.hash(data: try root.derBytes))
            let eui = try EUI64(eui64)
            _ = try FactoryConfigurator.injectImage(data, eui64: eui, trustAnchorSHA256: pin, into: meter.directory)
            if output.json {
                try Output.json(["eui64": eui.description, "stage": "imaged", "trustAnchorSHA256": pin, "state": meter.directory.path])
            } else {
                Output.line("meter \(eui): image injected, trust anchor \(pin.prefix(16))… pinned (state in \(meter.directory.path))")
            }
        }
    }

    struct Keygen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "keygen", abstract: "Stage 2: generate the identity key on the meter and print its CSR line for the batch's CSR list."
        )
        @OptionGroup var meter: StateOptions
        @Option(name: .customLong("device-type"), help: "hwType OID for the HardwareModuleName.") var deviceType = "2.999.2.1"
        @Option(name: .customLong("append-to"), help: "Append the CSR line to this CSR list instead of printing it.") var appendTo: String?
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let configurator = FactoryConfigurator(directory: meter.directory)
            let csr = try configurator.generateIdentity(hardwareType: try PKISettings.oid(deviceType, setting: "--device-type"))
            let eui = try EUI64(try configurator.state().eui64)
            let line = CSRListReader.line(eui64: eui, csr: csr)
            if let appendTo {
                if !FileManager.default.fileExists(atPath: appendTo) { _ = FileManager.default.createFile(atPath: appendTo, contents: nil) }
                guard let handle = FileHandle(forWritingAtPath: appendTo) else { throw CLIError(code: .fileSystem, "cannot write \(appendTo)") }
                try handle.seekToEnd()
                try handle.write(contentsOf: Data(line.utf8))
                try handle.close()
                if output.json {
                    try Output.json(["eui64": eui.description, "stage": "keyed", "appendedTo": appendTo])
                } else {
                    Output.line("meter \(eui): identity key generated on the meter; its CSR line appended to \(appendTo)")
                }
            } else if output.json {
                try Output.json(["eui64": eui.description, "stage": "keyed", "csrLine": line.trimmingCharacters(in: .newlines)])
            } else {
                print(line, terminator: "")
            }
        }
    }

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "install", abstract: "Stages 3 and 4: receive a provisioning bundle, validate it, store it."
        )
        @OptionGroup var meter: StateOptions
        @Option(help: "Bundle file (one metertrust-provisioning-bundle JSON document).") var bundle: String
        @OptionGroup var output: OutputOptions

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: bundle) else { throw CLIError(code: .fileSystem, "cannot read the bundle \(bundle)") }
            let installed = try await FactoryConfigurator(directory: meter.directory).install(bundle: data)
            if output.json {
                try Output.json(["eui64": installed.eui64, "endpointName": installed.endpointName, "stage": "provisioned"])
            } else {
                Output.line("meter \(installed.eui64): bundle validated and stored (endpoint \(installed.endpointName), bootstrap \(installed.bootstrapServerURI))")
            }
        }
    }

    struct Finalize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "finalize", abstract: "Stage 5: finalize and lock the configurator.")
        @OptionGroup var meter: StateOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let configurator = FactoryConfigurator(directory: meter.directory)
            try configurator.finalize()
            let eui64 = try configurator.state().eui64
            if output.json {
                try Output.json(["eui64": eui64, "stage": "locked"])
            } else {
                Output.line("meter \(eui64): provisioning finalized, configurator locked")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the meter's provisioning stage.")
        @OptionGroup var meter: StateOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let state = try FactoryConfigurator(directory: meter.directory).state()
            if output.json {
                try Output.json(state)
            } else {
                Output.line("meter \(state.eui64): stage \(state.stage.rawValue)")
            }
        }
    }
}

extension MeterCommand {
    /// The platform's view of a meter (its store), not the simulated meter's.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "The platform's view of a meter: every certificate it holds for it (factory identity, operational) and its batch.",
            discussion: """
                Reads the platform's store (--data-dir), not a simulated meter's state. Example:
                  metertrust meter show 0024befffe804ff1 --json
                """
        )
        @Argument(help: "The meter's EUI-64.") var eui64: String
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let eui = try EUI64(eui64)
            let store = try await Context(data).openStore()
            // A meter has a handful of certificates; page through them all the same.
            var records: [CertificateRecord] = []
            var position: CertificateListPosition?
            repeat {
                let page = try await store.certificates(matching: CertificateFilter(eui64: eui.description), after: position, limit: 1000)
                records += page.certificates
                position = page.next
            } while position != nil
            guard !records.isEmpty else {
                throw CLIError(code: .notFound, "the platform holds no certificate for meter \(eui): see metertrust cert list, or provision it with metertrust factory run")
            }
            var certificates: [MeterView.Held] = []
            for record in records {
                let revocation = try await store.revocation(issuer: record.issuer, serial: record.serial)
                certificates.append(MeterView.Held(certificate: ListedCertificate(record), revokedAt: revocation?.date, revocationReason: revocation?.reason))
            }
            let identity = certificates.first { $0.certificate.kind == CertificateRecord.Kind.deviceIdentity.rawValue }
            var batch: MeterView.Batch?
            if let id = identity?.certificate.batch, let record = try await store.batch(id: id) {
                batch = MeterView.Batch(id: id, manufacturer: record.manufacturer, position: identity?.certificate.batchPosition, startedAt: record.createdAt)
            }
            let view = MeterView(
                eui64: eui.description, deviceIdentity: identity,
                operational: certificates.filter { $0.certificate.kind == CertificateRecord.Kind.deviceOperational.rawValue },
                other: certificates.filter {
                    $0.certificate.kind != CertificateRecord.Kind.deviceIdentity.rawValue && $0.certificate.kind != CertificateRecord.Kind.deviceOperational.rawValue
                },
                batch: batch
            )
            if output.json {
                try Output.json(view)
            } else {
                view.textLines().forEach { Output.line($0) }
            }
        }
    }
}

/// `meter show`: what the platform holds for one meter. (Its utility account and claim come with onboarding.)
struct MeterView: Encodable {
    struct Held: Encodable {
        var certificate: ListedCertificate
        var revokedAt: Date?
        var revocationReason: Int?
    }

    struct Batch: Encodable {
        var id: String
        var manufacturer: String
        /// The meter's line in the batch's input.
        var position: Int64?
        var startedAt: Date
    }

    var eui64: String
    /// The factory identity (IDevID), from its manufacturer CA; null if the platform holds none.
    var deviceIdentity: Held?
    /// Operational certificates (LDevID), from operational CAs.
    var operational: [Held]
    /// Any other certificate naming the meter.
    var other: [Held]
    /// The factory batch that issued its identity; null if it was issued singly (metertrust issue).
    var batch: Batch?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(eui64, forKey: .eui64)
        try container.encode(deviceIdentity, forKey: .deviceIdentity)
        try container.encode(operational, forKey: .operational)
        try container.encode(other, forKey: .other)
        try container.encode(batch, forKey: .batch)
    }

    enum CodingKeys: String, CodingKey { case eui64, deviceIdentity, operational, other, batch }

    func textLines() -> [String] {
        func line(_ held: Held) -> String {
            let c = held.certificate
            let revoked = held.revokedAt.map { "  REVOKED \(Output.timestamp.string(from: $0)) (reason \(held.revocationReason ?? 0))" } ?? ""
            return "  \(c.profile)  serial \(c.serial) from CA \(c.issuerCA), valid \(ISO8601DateFormatter().string(from: c.notBefore)) to \(ISO8601DateFormatter().string(from: c.notAfter))\(revoked)"
        }
        var lines = ["meter \(eui64) (as the platform's store holds it)"]
        lines.append("factory identity:")
        lines.append(deviceIdentity.map(line) ?? "  none")
        if let batch {
            lines.append("batch:\n  \(batch.id) of manufacturer \(batch.manufacturer)\(batch.position.map { ", line \($0)" } ?? ""), started \(Output.timestamp.string(from: batch.startedAt))")
        } else if deviceIdentity != nil {
            lines.append("batch:\n  none (issued singly)")
        }
        lines.append("operational certificates:")
        lines += operational.isEmpty ? ["  none"] : operational.map(line)
        if !other.isEmpty {
            lines.append("other certificates:")
            lines += other.map(line)
        }
        return lines
    }
}
