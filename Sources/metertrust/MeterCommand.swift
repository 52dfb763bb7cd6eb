import ArgumentParser
import Crypto
import Foundation
import MeterTrustCore
import X509
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustPKI

/// A simulated meter's factory configurator client, stage by stage.
struct MeterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meter",
        abstract: "Drive a simulated meter's factory configurator (its state lives in --state DIR).",
        discussion: """
            EXAMPLES:
              metertrust meter init --state m1 --eui64 0024befffe800001 \\
                  --image image.bin --trust-anchor root.pem
              metertrust meter keygen --state m1 --append-to csrs.txt
              metertrust factory run --manifest batch.json --out out
              metertrust factory bundle --batch-dir out \\
                  --eui64 0024befffe800001 --out bundle.json
              metertrust meter install --state m1 --bundle bundle.json
              metertrust meter finalize --state m1
            """,
        subcommands: [Init.self, Keygen.self, Install.self, Finalize.self, Status.self]
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
