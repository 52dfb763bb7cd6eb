import ArgumentParser
import Foundation
import MeterTrustCore
import MeterTrustDevice

extension MeterCommand {
    /// The options `meter enroll` and `meter reenroll` share.
    struct EnrollmentOptions: ParsableArguments {
        @Option(help: "The EST server, https://HOST:PORT (the meter adds /.well-known/est[/LABEL]/…).") var server: String
        @Option(help: "The EST label: the utility account whose Operational CA issues (/.well-known/est/LABEL/…).") var label: String?
        @Flag(help: "Authenticate with the meter's pre-shared key over TLS 1.2 (ECDHE-PSK-CHACHA20-POLY1305) instead of its certificate over TLS 1.3.")
        var psk = false
        @Option(name: .customLong("max-retries"), help: "Retries of a 202/503 answer with Retry-After, waiting what the server asks.") var maximumRetries = 3
        @Flag(name: .customLong("check-server-ocsp"), help: "Check the EST server's certificate by OCSP in the handshake (hard failure: revoked, unknown or no answer ends it).")
        var checkServerOCSP = false
        @Option(name: .customLong("ocsp-url"), help: "With --check-server-ocsp: ask this responder (http://HOST:PORT/) instead of the one the certificates name.")
        var ocspURL: String?

        func address() throws -> ESTServerAddress { try ESTServerAddress(url: server, label: label) }
        var mode: MeterEnrollment.Mode { psk ? .psk : .pki }

        func enrollment(directory: URL) -> MeterEnrollment {
            var enrollment = MeterEnrollment(directory: directory, maximumRetries: maximumRetries)
            if checkServerOCSP { enrollment.serverRevocation = ServerRevocationCheck(responderURL: ocspURL) }
            return enrollment
        }

        func validate() throws {
            guard (0...10).contains(maximumRetries) else { throw ValidationError("--max-retries must be between 0 and 10") }
            if checkServerOCSP, psk { throw ValidationError("--check-server-ocsp needs a server certificate: not with --psk (no certificates on either side)") }
            if ocspURL != nil, !checkServerOCSP { throw ValidationError("--ocsp-url goes with --check-server-ocsp") }
            if let ocspURL, !(ocspURL.hasPrefix("http://") && URL(string: ocspURL)?.host != nil) { throw ValidationError("--ocsp-url must be an http:// URL") }
        }
    }

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enroll",
            abstract: "Obtain the meter's operational certificate (LDevID) over EST simpleenroll, authenticated by its factory identity.",
            discussion: """
                The meter fetches the CA certificates (cacerts), generates a new operational key, sends its CSR \
                (CN=urn:dev:mac:<eui64>, the HardwareModuleName of its identity) and keeps the certificate only if it \
                carries that key, names the meter and chains to the trust anchor its image pins. TLS 1.3 with the \
                factory identity certificate, the server verified against the bundle's root; --psk: TLS 1.2 with the \
                meter's pre-shared key (psk.key in its state), its EUI-64 as the identity.

                EXAMPLES:
                  metertrust meter enroll --state m1 --server https://127.0.0.1:8443 --label north
                  metertrust meter enroll --state m1 --server https://est.example.net --psk --json
                  metertrust meter enroll --state m1 --server https://127.0.0.1:8443 --check-server-ocsp --ocsp-url http://127.0.0.1:8081/
                """
        )
        @OptionGroup var meter: StateOptions
        @OptionGroup var enrollment: EnrollmentOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let outcome = try await enrollment.enrollment(directory: meter.directory).enroll(server: try enrollment.address(), mode: enrollment.mode)
            try MeterCommand.report(outcome, json: output.json)
        }
    }

    struct Reenroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reenroll",
            abstract: "Renew the meter's operational certificate over EST simplereenroll, authenticated by the current one.",
            discussion: """
                The same subject and HardwareModuleName as the certificate it renews (RFC 7030 §4.2.2), for the same key \
                or, with --rekey, a new one (kept only once the new certificate is accepted).

                EXAMPLES:
                  metertrust meter reenroll --state m1 --server https://127.0.0.1:8443 --label north
                  metertrust meter reenroll --state m1 --server https://127.0.0.1:8443 --label north --rekey --json
                """
        )
        @OptionGroup var meter: StateOptions
        @OptionGroup var enrollment: EnrollmentOptions
        @Flag(help: "Generate a new operational key for the renewed certificate.") var rekey = false
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let outcome = try await enrollment.enrollment(directory: meter.directory).reenroll(server: try enrollment.address(), mode: enrollment.mode, rekey: rekey)
            try MeterCommand.report(outcome, json: output.json)
        }
    }

    static func report(_ outcome: MeterEnrollment.Outcome, json: Bool) throws {
        if json {
            try Output.json(outcome)
            return
        }
        let how = outcome.mode == .psk ? "pre-shared key, TLS 1.2" : "certificate, TLS 1.3"
        Output.line("meter \(outcome.eui64): operational certificate from \(outcome.server) (\(outcome.operation), \(how)\(outcome.newKey ? ", new key" : ", same key"))")
        Output.line("  serial      \(outcome.serial)")
        Output.line("  subject     \(outcome.subject)")
        Output.line("  issuer      \(outcome.issuer)")
        Output.line("  not after   \(ISO8601DateFormatter().string(from: outcome.notAfter))")
        Output.line("  CRL DP      \(outcome.crlDistributionPoints.isEmpty ? "none" : outcome.crlDistributionPoints.joined(separator: ", "))")
        Output.line("  OCSP        \(outcome.ocsp.isEmpty ? "none" : outcome.ocsp.joined(separator: ", "))")
        Output.line("  stored in   \(outcome.certificatePath)")
    }
}
