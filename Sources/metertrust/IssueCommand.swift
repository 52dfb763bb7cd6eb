import ArgumentParser
import Foundation
import MeterTrustCore
import MeterTrustPKI
import X509

struct IssueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Issue a certificate from a PKCS#10 CSR under a profile.",
        discussion: """
            Profiles: \(CertificateProfile.requestable.map(\.name).joined(separator: ", ")). A CSR that asks for more than \
            the profile allows is refused, never trimmed. The certificate is stored before it is printed.

            EXAMPLES:
              metertrust issue --csr meter.csr --profile device-identity --ca acme --eui64 0024befffe804ff1 --out meter.pem
              metertrust issue --csr meter.csr --profile device-identity --ca acme --json
            """
    )

    @Option(help: "CSR file, PEM or DER.") var csr: String
    @Option(help: "Profile to issue under.") var profile: String
    @Option(name: .customLong("ca"), help: "Issuing CA (default: the only CA of the profile's issuer role).") var authority: String?
    @Option(help: "The meter's EUI-64 (default: the one in the CSR's HardwareModuleName).") var eui64: String?
    @Option(name: .customLong("device-type"), help: "hwType OID (default: the deployment's device-type OID).") var deviceType: String?
    @Option(help: "Write the certificate (PEM) to this file.") var out: String?
    @Option(name: .customLong("chain-out"), help: "Write the issuer chain (PEM, issuing CA first) to this file.") var chainOut: String?
    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        guard let bytes = FileManager.default.contents(atPath: csr) else {
            throw CLIError(code: .fileSystem, "cannot read the CSR file \(csr)")
        }
        let eui = try eui64.map { try EUI64($0) }
        let context = try Context(data)
        let (store, hierarchy) = try await context.platform()
        let issuer = CertificateIssuer(hierarchy: hierarchy)
        var details = ["profile": profile, "csr": csr]
        if let authority { details["ca"] = authority }
        let issued = try await context.audited(
            "certificate.issue", subject: eui.map { "meter \($0)" } ?? csr, store: store, token: hierarchy.token, details: details
        ) {
            let issued = try await issuer.issue(
                IssuanceRequest(csr: Array(bytes), profile: profile, authority: authority, eui64: eui, hardwareType: deviceType)
            )
            return (issued, ["serial": issued.record.serial, "ca": issued.record.issuer, "eui64": issued.record.eui64 ?? ""])
        }
        let description = try CertificateDescription(issued.certificate, profile: issued.record.profile)
        let chainPEM = try issued.chain.map { try $0.pem }
        if let out { try write(description.pem, to: out) }
        if let chainOut { try write(chainPEM.joined(), to: chainOut) }
        if output.json {
            try Output.json(Result(certificate: description, issuer: issued.record.issuer, chain: chainPEM))
        } else {
            Output.line("issued \(issued.record.profile) certificate \(issued.record.serial) by CA \(issued.record.issuer)")
            description.textLines().forEach { Output.line($0) }
            if out == nil { Output.line(); Output.line(description.pem) }
        }
    }

    struct Result: Encodable {
        var certificate: CertificateDescription
        var issuer: String
        var chain: [String]
    }

    private func write(_ text: String, to path: String) throws {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            throw CLIError(code: .fileSystem, "cannot write \(path): \(error.localizedDescription)")
        }
    }
}
