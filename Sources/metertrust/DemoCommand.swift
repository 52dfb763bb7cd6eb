import ArgumentParser
import Foundation
import MeterTrustDevice
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
            $METERTRUST_HSM_PIN. `make demo` creates a project-local SoftHSM2 token and runs this.
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
        guard (1...100_000).contains(meters) else { throw ValidationError("--meters must be between 1 and 100000") }
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
        let hierarchy = try await context.hierarchy()
        progress("HSM token \(hierarchy.token.label): \(hierarchy.token.sessionCount) sessions")

        // 1. The hierarchy: every CA key generated in the HSM.
        let root = try await hierarchy.createRoot(name: "metertrust-demo", organization: "MeterTrust Demo")
        let manufacturer = try await hierarchy.createAuthority(role: .manufacturer, name: "acme-meters", organization: "Acme Meters Ltd")
        _ = try await hierarchy.createAuthority(role: .operational, name: "north-utility", organization: "North Utility plc")
        _ = try await hierarchy.createAuthority(role: .admin, name: "metertrust-admin", organization: "MeterTrust Demo")
        progress("created root, manufacturer, operational and admin CAs")

        // 2. Simulated meters make their keys and CSRs; the Manufacturer Device CA issues their IDevIDs.
        let issuer = CertificateIssuer(hierarchy: hierarchy)
        let deviceType = try configuration.pki.defaultDeviceType()
        var devices: [Device] = []
        var sample: IssuedCertificate?
        let firstEUI: UInt64 = 0x0024_BEFF_FE80_0001
        for index in 0..<meters {
            let meter = MeterIdentity(eui64: EUI64(firstEUI + UInt64(index)))
            let csr = try meter.certificateSigningRequestDER(hardwareType: deviceType)
            let issued = try await issuer.issue(
                IssuanceRequest(csr: csr, profile: CertificateProfile.deviceIdentity.name, authority: manufacturer.name)
            )
            guard issued.certificate.publicKey == Certificate.PublicKey(meter.privateKey.publicKey) else {
                throw CLIError("the certificate issued to meter \(meter.eui64) does not carry the meter's key")
            }
            devices.append(Device(eui64: meter.eui64.description, serial: issued.record.serial, fingerprintSHA256: issued.record.fingerprintSHA256))
            if sample == nil { sample = issued }
        }
        guard let sample else { throw CLIError("no meter was issued a certificate") }
        progress("issued \(devices.count) device identity certificates")

        // 3. PEM files for independent verifiers (openssl verify).
        let pemDirectory = directory.appendingPathComponent("pem")
        try FileManager.default.createDirectory(at: pemDirectory.appendingPathComponent("devices"), withIntermediateDirectories: true)
        try Data(try root.certificate.pem.utf8).write(to: pemDirectory.appendingPathComponent("root.pem"))
        try Data(try manufacturer.certificate.pem.utf8).write(to: pemDirectory.appendingPathComponent("\(manufacturer.name).pem"))
        let samplePath = pemDirectory.appendingPathComponent("devices/\(devices[0].eui64).pem")
        try Data(try sample.certificate.pem.utf8).write(to: samplePath)

        let summaries = try await AuthoritySummary.all(in: hierarchy.store)
        let description = try CertificateDescription(sample.certificate, profile: sample.record.profile)
        if output.json {
            try Output.json(Result(dataDirectory: directory.path, authorities: summaries, devices: devices, sample: description))
            return
        }
        Output.line("MeterTrust demo — data in \(directory.path), keys in HSM token \(hierarchy.token.label)")
        Output.line()
        Output.line("CA hierarchy")
        AuthoritySummary.tree(summaries).forEach { Output.line("  " + $0) }
        Output.line()
        Output.line("Meters provisioned with identity certificates (IDevID) by \(manufacturer.name)")
        Output.line("  EUI-64            serial")
        for device in devices.prefix(20) { Output.line("  \(device.eui64)  \(device.serial)") }
        if devices.count > 20 { Output.line("  ... and \(devices.count - 20) more") }
        Output.line()
        Output.line("Sample device certificate (meter \(devices[0].eui64))")
        description.textLines().forEach { Output.line($0) }
        Output.line()
        Output.line(description.pem)
        Output.line("Verify it yourself:")
        Output.line("  openssl verify -CAfile \(pemDirectory.path)/root.pem -untrusted \(pemDirectory.path)/\(manufacturer.name).pem \(samplePath.path)")
    }

    struct Device: Encodable {
        var eui64: String
        var serial: String
        var fingerprintSHA256: String
    }

    struct Result: Encodable {
        var dataDirectory: String
        var authorities: [AuthoritySummary]
        var devices: [Device]
        var sample: CertificateDescription
    }

    private func progress(_ message: String) {
        FileHandle.standardError.write(Data("demo: \(message)\n".utf8))
    }
}

extension DataDirectoryOptions {
    init(dataDirectory: String) {
        self.init()
        self.dataDirectory = dataDirectory
    }
}
