import ArgumentParser
import Foundation
import MeterTrustCore
import MeterTrustPKI
import X509

struct CertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert", abstract: "Look up issued certificates.", subcommands: [Show.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a certificate by serial (hex).")
        @Argument(help: "Serial number, hex.") var serial: String
        @Option(name: .customLong("ca"), help: "Issuing CA, when several CAs used the same serial.") var authority: String?
        @Flag(help: "Print only the PEM.") var pem = false
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let normalized = serial.lowercased().replacingOccurrences(of: ":", with: "")
            guard !normalized.isEmpty, hexBytes(normalized.count % 2 == 0 ? normalized : "0" + normalized) != nil else {
                throw CLIError("\"\(serial)\" is not a hex serial number")
            }
            let store = try await Context(data).openStore()
            var records = try await store.certificates(serial: normalized)
            if let authority { records = records.filter { $0.issuer == authority } }
            guard let record = records.first else {
                throw CLIError(code: .notFound, "no certificate with serial \(normalized)\(authority.map { " from CA \($0)" } ?? "") in the store")
            }
            guard records.count == 1 else {
                throw CLIError("CAs \(records.map(\.issuer).joined(separator: ", ")) each issued serial \(normalized): add --ca NAME")
            }
            let description = try CertificateDescription(try Certificate(derEncoded: record.der), profile: record.profile)
            if pem {
                print(description.pem, terminator: "")
            } else if output.json {
                try Output.json(Shown(issuerCA: record.issuer, storedAt: record.createdAt, certificate: description))
            } else {
                Output.line("certificate \(record.serial) issued by CA \(record.issuer), stored \(Output.timestamp.string(from: record.createdAt))")
                description.textLines().forEach { Output.line($0) }
                Output.line()
                print(description.pem, terminator: "")
            }
        }

        struct Shown: Encodable {
            var issuerCA: String
            var storedAt: Date
            var certificate: CertificateDescription
        }
    }
}
