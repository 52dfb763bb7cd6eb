import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustAdmin
import MeterTrustPKI
import MeterTrustQuorum
import Testing
import Crypto
import X509

/// Seeded mutation runs over the input parsers: every mutated input is either accepted as valid or refused with
/// the parser's typed error; nothing crashes, nothing hangs. (A coverage-guided fuzzer can reuse the same entry
/// points over time.)
@Suite("Parser robustness under mutated input")
struct ParserRobustnessTests {
    /// A small deterministic generator (SplitMix64), so a failure reproduces.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func mutations(of input: [UInt8], count: Int, seed: UInt64) -> [[UInt8]] {
        var random = SplitMix(state: seed)
        return (0..<count).map { _ in
            var bytes = input
            switch Int.random(in: 0..<4, using: &random) {
            case 0:  // flip bits
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    let index = Int.random(in: 0..<bytes.count, using: &random)
                    bytes[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &random)
                }
            case 1:  // truncate
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &random)))
            case 2:  // overwrite a length-ish byte with a large value
                let index = Int.random(in: 0..<bytes.count, using: &random)
                bytes[index] = [0x80, 0x81, 0x82, 0x84, 0xFF].randomElement(using: &random)!
            default:  // splice random bytes in
                let index = Int.random(in: 0..<bytes.count, using: &random)
                bytes.insert(contentsOf: (0..<Int.random(in: 1...16, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }, at: index)
            }
            return bytes
        }
    }

    @Test("mutated CSRs are refused with a PKIError or accepted intact")
    func mutatedCSRs() throws {
        let csr = try MeterIdentity(eui64: EUI64(42)).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)
        var refused = 0
        for mutated in Self.mutations(of: csr, count: 2000, seed: 0x5EED) {
            do {
                let checked = try CSRCheck.validate(der: mutated, profile: .deviceIdentity)
                // Accepted only if the signature still verifies, i.e. the mutation touched nothing signed.
                #expect(checked.publicKey.isValidSignature(checked.request.signature, for: checked.request))
            } catch is PKIError {
                refused += 1
            }
        }
        #expect(refused > 1900)
    }

    /// What the configurator must answer to a bundle, judged field by field against the bundle it accepted: nil if
    /// it must accept it, else a phrase of its refusal. Follows the configurator's documented order of checks.
    static func expectedRefusal(of data: Data, good: ProvisioningBundle) -> String? {
        guard data.count <= FactoryConfigurator.maximumBundleSize else { return "the limit is" }
        guard let bundle = try? JSONDecoder().decode(ProvisioningBundle.self, from: data) else { return "not a metertrust-provisioning-bundle document" }
        if bundle.format != good.format || bundle.version != good.version { return "is not supported" }
        if bundle.eui64 != good.eui64 { return "it is for meter" }
        if bundle.endpointName != good.endpointName { return "endpoint name" }
        if bundle.bootstrapServerURI != good.bootstrapServerURI {
            // Still CoAP over TLS or DTLS with a host: another bootstrap server, which the meter may be given.
            let components = URLComponents(string: bundle.bootstrapServerURI)
            guard let scheme = components?.scheme, ["coaps+tcp", "coaps"].contains(scheme), components?.host?.isEmpty == false else {
                return "bootstrap server URI"
            }
        }
        if bundle.imageDigest.algorithm != good.imageDigest.algorithm { return "is not sha-256" }
        // Hex case does not matter; any other change is another image.
        if bundle.imageDigest.value.lowercased() != good.imageDigest.value.lowercased() { return "does not match the meter's image" }
        if bundle.parameters.contains(where: { $0.key.isEmpty || $0.value.isEmpty }) { return "is empty" }
        func der(_ pem: String) -> [UInt8]? { try? Certificate(pemEncoded: pem).derBytes }
        let certificates = [bundle.deviceCertificate, bundle.trustAnchor] + bundle.chain
        let goodCertificates = [good.deviceCertificate, good.trustAnchor] + good.chain
        let ders = certificates.map(der)
        if ders.contains(where: { $0 == nil }) { return "is not valid PEM/DER" }
        // Another certificate (the PEM decodes to other DER): refused by the HardwareModuleName, anchor, chain or
        // key check, whichever comes first.
        if ders != goodCertificates.map(der) { return "certificate" }
        if bundle.privateKey != nil { return "carries a private key" }
        return nil
    }

    @Test("mutated provisioning bundles: starting from a bundle the configurator accepts, each mutation is refused with its reason, or accepted when it changes nothing the meter checks")
    func mutatedBundles() async throws {
        // A real bundle from a real batch, for a keyed meter.
        let line = try await FactoryFixture.make()
        let eui = EUI64(0x0024_BEFF_FEF0_0001)
        let (configurator, csr) = try line.keyedMeter(eui)
        let manifestPath = try line.manifest(batch: "mutations", meters: [eui.description], csrLines: [CSRListReader.line(eui64: eui, csr: csr)])
        #expect(try await line.run(manifestPath).counts.issued == 1)
        let (goodData, good) = try #require(try line.bundles(of: manifestPath).first)
        // Each attempt runs on a copy of the keyed meter, so an accepted bundle does not end the run.
        var copies = 0
        func keyedCopy() throws -> FactoryConfigurator {
            copies += 1
            let copy = line.directory.appendingPathComponent("copies/\(copies)")
            try FileManager.default.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: configurator.directory, to: copy)
            return FactoryConfigurator(directory: copy)
        }
        // The unmutated bundle is accepted: the refusals below are the mutations' doing.
        #expect(Self.expectedRefusal(of: goodData, good: good) == nil)
        let accepting = try keyedCopy()
        _ = try await accepting.install(bundle: goodData)
        #expect(try accepting.state().stage == .provisioned)

        var refused = 0
        var accepted = 0
        for mutated in Self.mutations(of: Array(goodData), count: 300, seed: 0xB0B) {
            let meter = try keyedCopy()
            let expected = Self.expectedRefusal(of: Data(mutated), good: good)
            let shown = String(decoding: mutated, as: UTF8.self).debugDescription.prefix(400)
            do {
                _ = try await meter.install(bundle: Data(mutated))
                accepted += 1
                #expect(expected == nil, "accepted a bundle that must be refused (\(expected ?? "")): \(shown)")
                #expect(try meter.state().stage == .provisioned)
            } catch let error as ConfiguratorError {
                refused += 1
                #expect(error.code == .invalidBundle, "\(error.code): \(error.message)")
                #expect(expected != nil, "refused a bundle that changes nothing the meter checks: \(error.message): \(shown)")
                if let expected { #expect(error.message.contains(expected), "expected \"\(expected)\", got \(error.message): \(shown)") }
                #expect(try meter.state().stage == .keyed, "a refused bundle changed the meter")
            }
        }
        #expect(refused > 200, "\(refused) refused, \(accepted) accepted")
        #expect(try configurator.state().stage == .keyed)
    }

    /// Whether a manifest is valid, judged independently of `BatchManifest` (JSONSerialization and the format's
    /// rules as documented): nil if valid, else the rule it breaks.
    static func manifestFault(_ bytes: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return "not a JSON object" }
        func isNumber(_ value: Any?) -> Int? {
            guard let number = value as? NSNumber else { return nil }
            return Int(exactly: number.doubleValue)
        }
        guard object["format"] as? String == "metertrust-batch", isNumber(object["version"]) == 1 else { return "format/version" }
        let idCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard let batch = object["batch"] as? String, (1...128).contains(batch.count), batch.allSatisfy({ idCharacters.contains($0) }) else { return "batch" }
        guard object["manufacturer"] is String else { return "manufacturer" }
        let hex = Set("0123456789abcdefABCDEF")
        guard let sha256 = (object["firmware"] as? [String: Any])?["sha256"] as? String, sha256.count == 64, sha256.allSatisfy({ hex.contains($0) }) else {
            return "firmware.sha256"
        }
        if let name = (object["firmware"] as? [String: Any])?["name"], !(name is String) { return "firmware.name" }
        guard let uri = object["bootstrapServerURI"] as? String, let components = URLComponents(string: uri),
            let scheme = components.scheme, ["coaps+tcp", "coaps"].contains(scheme), components.host?.isEmpty == false
        else { return "bootstrapServerURI" }
        guard let meters = object["meters"] as? [String: Any], meters["eui64s"] == nil,
            let start = meters["start"] as? String, let eui = try? EUI64(start), let count = isNumber(meters["count"]),
            (1...BatchManifest.maximumMeters).contains(count), UInt64(count - 1) <= UInt64.max - eui.value
        else { return "meters" }
        guard object["csrs"] is String else { return "csrs" }
        guard object["keyGeneration"] == nil, object["deviceType"] == nil, object["parameters"] == nil else { return "unexpected optional field" }
        return nil
    }

    @Test("mutated batch manifests are refused with invalidManifest exactly when they break a rule of the format, and parse to what they say otherwise")
    func mutatedManifests() throws {
        let manifest = Array(#"{"format":"metertrust-batch","version":1,"batch":"b1","manufacturer":"acme","firmware":{"sha256":"\#(String(repeating: "ab", count: 32))"},"bootstrapServerURI":"coaps+tcp://b.example:5684","meters":{"start":"0024befffe000001","count":10},"csrs":"c.txt"}"#.utf8)
        #expect(Self.manifestFault(manifest) == nil)
        let original = try BatchManifest.load(from: Data(manifest))
        #expect(original.batch == "b1" && original.meterCount == 10)
        var refused = 0
        var accepted = 0
        for mutated in Self.mutations(of: manifest, count: 1000, seed: 0xFAC7) {
            let fault = Self.manifestFault(mutated)
            let shown = String(decoding: mutated, as: UTF8.self).debugDescription
            do {
                let loaded = try BatchManifest.load(from: Data(mutated))
                accepted += 1
                #expect(fault == nil, "accepted a manifest that breaks \(fault ?? ""): \(shown)")
                // What it parsed to is what the document says.
                let object = try #require(try JSONSerialization.jsonObject(with: Data(mutated)) as? [String: Any])
                #expect(loaded.batch == object["batch"] as? String && loaded.manufacturer == object["manufacturer"] as? String, "\(shown)")
                #expect(loaded.firmware.sha256 == (object["firmware"] as? [String: Any])?["sha256"] as? String, "\(shown)")
                #expect(loaded.meterCount == ((object["meters"] as? [String: Any])?["count"] as? Int), "\(shown)")
            } catch let error as FactoryError {
                refused += 1
                #expect(error.code == .invalidManifest, "\(error.code): \(error.message)")
                #expect(fault != nil, "refused a valid manifest: \(error.message): \(shown)")
            }
        }
        // Both answers are exercised.
        #expect(refused > 900 && accepted >= 10, "\(refused) refused, \(accepted) accepted")
    }

    @Test("mutated admin requests, approvals and backup files are refused with a QuorumError or parse intact")
    func mutatedQuorumDocuments() throws {
        let request = try AdminRequest(operation: .caCreate, parameters: ["kind": "admin", "name": "a2"], requester: "alice", lifetime: 600)
        for mutated in Self.mutations(of: request.canonicalBytes, count: 1500, seed: 0xA11CE) {
            do {
                // A mutation that still parses must be canonical, so its id is that of its own bytes.
                let parsed = try AdminRequest.parse(mutated)
                #expect(parsed.canonicalBytes == mutated)
            } catch let error as QuorumError {
                #expect(error.code == .invalidRequest, "\(error.code): \(error.message)")
            }
        }
        let approval = try Approval(approving: request, custodian: "bob", certificateFingerprint: String(repeating: "0", count: 64), key: P256.Signing.PrivateKey())
        for mutated in Self.mutations(of: approval.bytes, count: 1000, seed: 0xB0B0) {
            do {
                let parsed = try Approval.parse(mutated)
                // What parses is an approval document: re-encoding it gives a document that parses to the same.
                #expect(try Approval.parse(parsed.bytes) == parsed)
            } catch let error as QuorumError {
                #expect(error.code == .forgedApproval, "\(error.code): \(error.message)")
            }
        }
        let backup = Array(#"{"created":"2026-01-01T00:00:00Z","format":"metertrust-key-backup/v1","keys":[],"mechanism":"CKM_AES_KEY_WRAP_PAD","shares":{"format":"metertrust-backup-shares/v1","keyCheckValue":"00","shares":[],"threshold":2},"sourceToken":"t"}"#.utf8)
        _ = try KeyBackupFile.parse(backup)
        for mutated in Self.mutations(of: backup, count: 1000, seed: 0xBAC0) {
            do { _ = try KeyBackupFile.parse(mutated) } catch let error as QuorumError {
                #expect(error.code == .backup, "\(error.code): \(error.message)")
            }
        }
    }

    @Test("a CSR list of garbage lines yields one refusal per line, never a crash")
    func garbageCSRList() throws {
        var random = SplitMix(state: 77)
        let path = TestEnvironment.temporaryDirectory().appendingPathComponent("csrs.txt").path
        var text = Data()
        for _ in 0..<200 {
            text.append(contentsOf: (0..<Int.random(in: 1...200, using: &random)).map { _ in UInt8.random(in: 0x20...0x7E, using: &random) })
            text.append(UInt8(ascii: "\n"))
        }
        text.append(contentsOf: [UInt8](repeating: 0x41, count: CSRListReader.maximumLineLength + 10))
        text.append(UInt8(ascii: "\n"))
        try text.write(to: URL(fileURLWithPath: path))
        var reader = try CSRListReader(path: path)
        var lines = 0
        var tooLong = 0
        while let line = try reader.next() {
            lines += 1
            if case .refused(let refusal) = line, refusal.reason.contains("longer than") { tooLong += 1 }
        }
        #expect(lines > 150)
        #expect(tooLong == 1)
    }
}
