import ArgumentParser
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore
import X509

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Build a demo hierarchy in a fresh data directory and issue identity certificates to simulated meters.",
        discussion: """
            Uses the HSM token named by --token-label (default $METERTRUST_HSM_TOKEN or metertrust-demo) with the PIN in \
            $METERTRUST_HSM_PIN. `make demo` creates a project-local SoftHSM2 token and runs this. With --json the \
            summary is one document: version, data directory, CAs, the batch report, the meters, a sample certificate.

            EXAMPLES:
              metertrust demo --token-label metertrust-demo --meters 20 --reset
              metertrust demo --reset --json > demo.json
            """
    )

    @Option(name: .customLong("data-dir"), help: "Demo data directory.") var dataDirectory = "demo-data"
    @Option(help: "Number of simulated meters.") var meters = 5
    @Option(help: "PKCS#11 module.")
    var module = ProcessInfo.processInfo.environment["METERTRUST_HSM_MODULE"] ?? HSMConfiguration.defaultModulePath
    @Option(name: .customLong("token-label"), help: "HSM token label.")
    var tokenLabel = ProcessInfo.processInfo.environment["METERTRUST_HSM_TOKEN"] ?? "metertrust-demo"
    @Flag(help: "Delete the demo data directory first if it exists.") var reset = false
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard (4...100_000).contains(meters) else {
            throw ValidationError("--meters must be between 4 and 100000 (one meter changes supplier, another is in conflict, another is released)")
        }
    }

    func run() async throws {
        let directory = URL(fileURLWithPath: dataDirectory).standardizedFileURL
        if FileManager.default.fileExists(atPath: directory.path) {
            guard reset else { throw CLIError("\(directory.path) exists: pass --reset to start the demo over") }
            try FileManager.default.removeItem(at: directory)
        }
        let configuration = Configuration(hsm: HSMConfiguration(modulePath: module, tokenLabel: tokenLabel), pki: PKISettings())
        _ = try await InitCommand.initialize(at: directory, configuration: configuration, force: false)
        let context = try Context(DataDirectoryOptions(dataDirectory: directory.path))
        let (store, hierarchy) = try await context.platform()
        progress("HSM token \(hierarchy.token.label): \(hierarchy.token.sessionCount) sessions")

        // 1. The hierarchy: every CA key generated in the HSM.
        let root = try await hierarchy.createRoot(name: "metertrust-demo", organization: "MeterTrust Demo")
        let manufacturer = try await hierarchy.createAuthority(role: .manufacturer, name: "acme-meters", organization: "Acme Meters Ltd")
        _ = try await hierarchy.createAuthority(role: .operational, name: "north-utility", organization: "North Utility plc")
        _ = try await hierarchy.createAuthority(role: .admin, name: "metertrust-admin", organization: "MeterTrust Demo")
        _ = try await hierarchy.createAuthority(role: .service, name: "metertrust-service", organization: "MeterTrust Demo")
        progress("created root, manufacturer, operational, admin and service CAs")

        // 2. The factory line, five stages, for a batch of simulated meters.
        let deviceType = try configuration.pki.defaultDeviceType()
        let line = try await FactoryLine(directory: directory, hierarchy: hierarchy, store: store, manufacturer: manufacturer.name, deviceType: deviceType)
            .run(meters: meters, progress: progress)
        guard let sampleBundle = line.bundles.first else { throw CLIError("no meter was provisioned") }
        let sample = try Certificate(pemEncoded: sampleBundle.deviceCertificate)
        let devices = try line.bundles.map {
            Device(eui64: $0.eui64, serial: try Certificate(pemEncoded: $0.deviceCertificate).serialHex, stage: "locked")
        }

        // 3. PEM files for independent verifiers (openssl verify).
        let pemDirectory = directory.appendingPathComponent("pem")
        try FileManager.default.createDirectory(at: pemDirectory.appendingPathComponent("devices"), withIntermediateDirectories: true)
        try Data(try root.certificate.pem.utf8).write(to: pemDirectory.appendingPathComponent("root.pem"))
        try Data(try manufacturer.certificate.pem.utf8).write(to: pemDirectory.appendingPathComponent("\(manufacturer.name).pem"))
        let samplePath = pemDirectory.appendingPathComponent("devices/\(devices[0].eui64).pem")
        try Data(sampleBundle.deviceCertificate.utf8).write(to: samplePath)

        // 4. Onboarding: accounts under quorum, the manifest uploaded, a conflict, a change of supplier.
        let onboarding = try await DemoOnboarding(context: context, hierarchy: hierarchy, store: store, manufacturer: manufacturer.name, progress: progress)
            .run(manifest: line.outputDirectory.appendingPathComponent("enrollment-manifest.json"), meters: devices.map(\.eui64))

        // 5. In the field: the meters enroll over EST with their factory identities; the unclaimed one is refused.
        let field = try await DemoEnrollment(
            context: try Context(DataDirectoryOptions(dataDirectory: directory.path)), store: store, token: hierarchy.token,
            meterDirectory: { directory.appendingPathComponent("meters/\($0)") }, progress: progress
        ).run(meters: devices.map(\.eui64))

        let summaries = try await AuthoritySummary.all(in: hierarchy.store)
        let description = try CertificateDescription(sample, profile: CertificateProfile.deviceIdentity.name)
        if output.json {
            try Output.json(
                Result(
                    dataDirectory: directory.path, authorities: summaries, batch: line.report, devices: devices, lockedConfigurator: line.lockError,
                    sample: description, onboarding: onboarding, est: field
                )
            )
            return
        }
        Output.line("MeterTrust demo (metertrust \(MeterTrustCommand.version)) — data in \(directory.path), keys in HSM token \(hierarchy.token.label)")
        Output.line()
        Output.line("CA hierarchy")
        AuthoritySummary.tree(summaries).forEach { Output.line("  " + $0) }
        Output.line()
        Output.line("Factory line: 1 image injected, 2 keys generated on the meters (CSRs), factory batch issued,")
        Output.line("              3 bundles written into the meters, 4 validated by their configurators, 5 finalized and locked")
        line.report.textLines().forEach { Output.line("  " + $0) }
        Output.line()
        Output.line("Meters provisioned with identity certificates (IDevID) by \(manufacturer.name)")
        Output.line("  EUI-64            serial                            configurator")
        for device in devices.prefix(20) { Output.line("  \(device.eui64)  \(device.serial)  \(device.stage)") }
        if devices.count > 20 { Output.line("  ... and \(devices.count - 20) more") }
        Output.line("  after finalize: \(line.lockError)")
        Output.line()
        Output.line("Enrollment manifest for utilities: \(line.outputDirectory.path)/enrollment-manifest.json (+ .sig, signed in the HSM)")
        Output.line()
        Output.line("Sample device certificate (meter \(devices[0].eui64))")
        description.textLines().forEach { Output.line($0) }
        Output.line()
        Output.line(description.pem)
        Output.line("Utility accounts (created under quorum: alice asked, two custodians approved)")
        for account in onboarding.accounts {
            Output.line("  \(account.id)  operational CA \(account.operationalCA)  operator \(account.operatorName)  \(account.claims) meters  approved by \(account.approvers.joined(separator: ", "))")
        }
        Output.line("  north uploaded the signed enrollment manifest: \(onboarding.upload.claimed) meters claimed")
        for conflict in onboarding.conflicts {
            Output.line("  conflict: \(conflict.eui64) held by \(conflict.holder), also listed by \(conflict.claimant) (reported to both; a quorum decides)")
        }
        Output.line("  change of supplier: \(onboarding.changedSupplier) released by north, claimed by south; history:")
        for event in onboarding.history {
            Output.line("    \(Output.timestamp.string(from: event.at))  \(event.kind.rawValue)  \(event.account)")
        }
        Output.line()
        Output.line("In the field: meters enroll over EST (\(field.server), TLS 1.3, each with its factory identity)")
        Output.line("  north released \(field.released) (its customer moved away): no account holds it")
        for meter in field.enrolled {
            Output.line("  \(meter.eui64)  account \(meter.account)  operational certificate \(meter.serial) from \(meter.issuer), valid to \(ISO8601DateFormatter().string(from: meter.notAfter))")
        }
        for meter in field.refused { Output.line("  \(meter.eui64)  refused: \(meter.message)") }
        Output.line()
        Output.line("Verify it yourself:")
        Output.line("  openssl verify -CAfile \(pemDirectory.path)/root.pem -untrusted \(pemDirectory.path)/\(manufacturer.name).pem \(samplePath.path)")
    }

    struct Device: Encodable {
        var eui64: String
        var serial: String
        var stage: String
    }

    struct Result: Encodable {
        var version = MeterTrustCommand.version
        var dataDirectory: String
        var authorities: [AuthoritySummary]
        var batch: BatchReport
        var devices: [Device]
        var lockedConfigurator: String
        var sample: CertificateDescription
        var onboarding: DemoOnboarding.Summary
        var est: DemoEnrollment.Summary
    }

    private func progress(_ message: String) {
        guard !output.json || isatty(STDERR_FILENO) == 1 else { return }
        FileHandle.standardError.write(Data("demo: \(message)\n".utf8))
    }
}

extension DataDirectoryOptions {
    init(dataDirectory: String) {
        self.init()
        self.dataDirectory = dataDirectory
    }
}
