import Crypto
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustPKI
import Testing
import X509

/// Attacker: anyone sending garbage to a parser. Unicode "hex digits" (fullwidth ０–９, ａ–ｆ, which
/// `Character.isHexDigit` accepts) used to pass EUI-64 validation and then trap on a force-unwrap (exit 132): one such
/// line stopped a whole batch for good. Now ASCII is required wherever ASCII is meant.
@Suite("Hostile input: parsers refuse, never crash")
struct HostileInputTests {
    /// `0024befffe804ff1` in fullwidth digits and letters.
    static let fullwidth = "００２４ｂｅｆｆｆｅ８０４ｆｆ１"

    @Test(
        "EUI-64 parsing is ASCII only: fullwidth, Arabic-Indic and other Unicode digits are refused as invalid arguments, with a message that escapes them",
        arguments: [HostileInputTests.fullwidth, "٠٠٢٤befffe804ff1", "0024befffe804ff\u{0661}", "0024befffe804ff1\u{200B}", "0024befffe80４ff1"]
    )
    func rejectUnicodeDigitsInEUI64(_ text: String) throws {
        let error = #expect(throws: CoreError.self, "\(text.debugDescription)") { try EUI64(text) }
        #expect(error?.errorCode == .invalidArgument, "\(text.debugDescription): \(error?.errorCode.rawValue ?? "no error")")
        // The message is part of the feature here: it must not echo the hostile text raw.
        #expect(error?.message.contains("\\u{") == true, "non-ASCII is shown escaped: \(error?.message ?? "")")
        #expect(error?.message.unicodeScalars.allSatisfy(\.isASCII) == true)
    }

    @Test("EUI-64 separators : and - are read")
    func eui64Separators() throws {
        #expect(try EUI64("00:24:BE:FF:FE:80:4F:F1").description == "0024befffe804ff1")
        #expect(try EUI64("0024-befffe80-4ff1").description == "0024befffe804ff1")
    }

    @Test("attacker: fullwidth digits through the binary — issue --eui64, a CSR whose subject names such a device URN, meter init — each one error: line and exit 1")
    func fullwidthThroughTheBinary() throws {
        let deployment = try CLITests.Deployment.make()
        _ = try deployment.json(["ca", "create-root", "--name", "root", "--organization", "Test Operator"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme"])
        _ = try deployment.json(["ca", "create-operational", "--name", "north"])

        func expectOneErrorLine(_ result: TestEnvironment.ProcessResult, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(result.status == 1, "\(what): exit \(result.status) (132 is the old trap)", sourceLocation: sourceLocation)
            #expect(result.stderr.hasPrefix("error: ") && result.stderr.split(separator: "\n").count == 1, "\(what): \(result.stderr)", sourceLocation: sourceLocation)
        }

        // A good CSR with a fullwidth --eui64.
        let meter = MeterIdentity(eui64: try EUI64("0024befffe804ff1"))
        let good = deployment.file("good.csr")
        try meter.certificateSigningRequest(hardwareType: [2, 999, 2, 1]).serializeAsPEM().pemString.write(toFile: good, atomically: true, encoding: .utf8)
        expectOneErrorLine(try deployment.run(["issue", "--csr", good, "--profile", "device-identity", "--ca", "acme", "--eui64", Self.fullwidth]), "issue --eui64")

        // A CSR whose subject is the device URN in fullwidth digits, for both device profiles.
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName("urn:dev:mac:" + Self.fullwidth) }
        let hostile = try CertificateSigningRequest(
            version: .v1, subject: subject, privateKey: .init(key), attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256
        )
        let hostilePath = deployment.file("hostile.csr")
        try hostile.serializeAsPEM().pemString.write(toFile: hostilePath, atomically: true, encoding: .utf8)
        expectOneErrorLine(try deployment.run(["issue", "--csr", hostilePath, "--profile", "device-identity", "--ca", "acme"]), "CSR subject, device-identity")
        expectOneErrorLine(try deployment.run(["issue", "--csr", hostilePath, "--profile", "device-operational", "--ca", "north"]), "CSR subject, device-operational")

        // The meter's own tool.
        let image = deployment.file("image.bin")
        try Data("firmware".utf8).write(to: URL(fileURLWithPath: image))
        let rootPEM = deployment.file("root.pem")
        let authorities = try JSONSerialization.jsonObject(with: Data(try deployment.run(["ca", "list", "--json"]).stdout.utf8)) as? [[String: Any]]
        let rootSerial = try #require((authorities?.first { $0["role"] as? String == "root" }?["certificate"] as? [String: Any])?["serial"] as? String)
        try deployment.run(["cert", "show", rootSerial, "--pem"]).stdout.write(toFile: rootPEM, atomically: true, encoding: .utf8)
        let meterInit = try TestEnvironment.run(
            TestEnvironment.metertrust,
            ["meter", "init", "--state", deployment.file("meter"), "--eui64", Self.fullwidth, "--image", image, "--trust-anchor", rootPEM]
        )
        expectOneErrorLine(meterInit, "meter init --eui64")
    }

    @Test("attacker: a batch whose manifest and CSR list hold a fullwidth EUI-64 completes; that meter is refused by name and every other meter is provisioned")
    func batchWithFullwidthLineCompletes() async throws {
        let line = try await FactoryFixture.make()
        let meters = (1...3).map { EUI64(0x0024_BEFF_FEE0_0000 + UInt64($0)) }
        var csrLines: [String] = []
        for eui in meters {
            let (_, csr) = try line.keyedMeter(eui)
            csrLines.append(CSRListReader.line(eui64: eui, csr: csr))
        }
        // The hostile meter: listed in the manifest and in the CSR list, with a real CSR.
        let hostileCSR = try MeterIdentity(eui64: meters[0]).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)
        csrLines.insert("\(Self.fullwidth) \(Data(hostileCSR).base64EncodedString())\n", at: 1)
        let manifestPath = try line.manifest(
            batch: "fullwidth", meters: [meters[0].description, Self.fullwidth, meters[1].description, meters[2].description], csrLines: csrLines
        )
        let report = try await line.run(manifestPath)
        #expect(report.counts.issued == 3, "\(report.counts)")
        #expect(report.provisioned == 3)
        let refusal = try #require(report.refusals.first { $0.meter == Self.fullwidth }, "\(report.refusals)")
        #expect(refusal.reason.contains("not an EUI-64"), "\(refusal)")
        #expect(try line.bundles(of: manifestPath).map(\.bundle.eui64).sorted() == meters.map(\.description).sorted())
    }
}
