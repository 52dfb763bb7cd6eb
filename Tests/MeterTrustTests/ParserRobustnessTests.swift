import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustAdmin
import MeterTrustPKI
import MeterTrustQuorum
import Testing
import Crypto

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

    @Test("mutated provisioning bundles are refused by the configurator with a ConfiguratorError")
    func mutatedBundles() async throws {
        let directory = TestEnvironment.temporaryDirectory()
        let configurator = try FactoryConfigurator.injectImage(Data("image".utf8), eui64: EUI64(7), trustAnchorSHA256: String(repeating: "0", count: 64), into: directory)
        _ = try configurator.generateIdentity(hardwareType: PKIFixture.deviceType)
        let bundle = ProvisioningBundle(
            batch: "b", eui64: EUI64(7).description, endpointName: EUI64(7).deviceURN, bootstrapServerURI: "coaps+tcp://b.example",
            imageDigest: .init(value: String(repeating: "0", count: 64)), parameters: ["a": "b"],
            deviceCertificate: "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n", chain: [], trustAnchor: ""
        )
        for mutated in Self.mutations(of: Array(try bundle.encoded()), count: 300, seed: 0xB0B) {
            await #expect(throws: ConfiguratorError.self) { try await configurator.install(bundle: Data(mutated)) }
        }
        #expect(try configurator.state().stage == .keyed)
    }

    @Test("mutated batch manifests are refused with a FactoryError or parse as valid manifests")
    func mutatedManifests() throws {
        let manifest = Array(#"{"format":"metertrust-batch","version":1,"batch":"b1","manufacturer":"acme","firmware":{"sha256":"\#(String(repeating: "ab", count: 32))"},"bootstrapServerURI":"coaps+tcp://b.example:5684","meters":{"start":"0024befffe000001","count":10},"csrs":"c.txt"}"#.utf8)
        _ = try BatchManifest.load(from: Data(manifest))
        for mutated in Self.mutations(of: manifest, count: 1000, seed: 0xFAC7) {
            do {
                _ = try BatchManifest.load(from: Data(mutated))
            } catch is FactoryError {
            }
        }
    }

    @Test("mutated admin requests, approvals and backup files are refused with a QuorumError or parse intact")
    func mutatedQuorumDocuments() throws {
        let request = try AdminRequest(operation: .caCreate, parameters: ["kind": "admin", "name": "a2"], requester: "alice", lifetime: 600)
        for mutated in Self.mutations(of: request.canonicalBytes, count: 1500, seed: 0xA11CE) {
            do {
                // A mutation that still parses must be canonical, so its id is that of its own bytes.
                let parsed = try AdminRequest.parse(mutated)
                #expect(parsed.canonicalBytes == mutated)
            } catch is QuorumError {
            }
        }
        let approval = try Approval(approving: request, custodian: "bob", certificateFingerprint: String(repeating: "0", count: 64), key: P256.Signing.PrivateKey())
        for mutated in Self.mutations(of: approval.bytes, count: 1000, seed: 0xB0B0) {
            do { _ = try Approval.parse(mutated) } catch is QuorumError {}
        }
        let backup = Array(#"{"created":"2026-01-01T00:00:00Z","format":"metertrust-key-backup/v1","keys":[],"mechanism":"CKM_AES_KEY_WRAP_PAD","shares":{"format":"metertrust-backup-shares/v1","keyCheckValue":"00","shares":[],"threshold":2},"sourceToken":"t"}"#.utf8)
        _ = try KeyBackupFile.parse(backup)
        for mutated in Self.mutations(of: backup, count: 1000, seed: 0xBAC0) {
            do { _ = try KeyBackupFile.parse(mutated) } catch is QuorumError {}
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
