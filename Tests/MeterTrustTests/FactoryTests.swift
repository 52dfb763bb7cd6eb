import Crypto
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustPKI
import MeterTrustStore
import MeterTrustStoreSQLite
import SwiftASN1
import Testing
import X509

/// A factory line on a real token and store: meters with their configurators, a CSR list, a batch manifest.
struct FactoryFixture {
    let pki: PKIFixture
    let directory: URL
    let image = Data("firmware 1.0.0".utf8) + Data((0..<2048).map { UInt8(truncatingIfNeeded: $0) })

    static func make() async throws -> FactoryFixture {
        FactoryFixture(pki: try await PKIFixture.make(), directory: TestEnvironment.temporaryDirectory())
    }

    var imageSHA256: String { hexString(SHA256.hash(data: image)) }
    /// The root the meters' images pin.
    var rootSHA256: String { hexString(SHA256.hash(data: (try? pki.root.certificate.derBytes) ?? [])) }

    func meterDirectory(_ eui: EUI64) -> URL { directory.appendingPathComponent("meters/\(eui)") }

    /// Stages 1 and 2 on the meter: image in, key generated, CSR out.
    func keyedMeter(_ eui: EUI64) throws -> (FactoryConfigurator, [UInt8]) {
        let configurator = try FactoryConfigurator.injectImage(image, eui64: eui, trustAnchorSHA256: rootSHA256, into: meterDirectory(eui))
        return (configurator, try configurator.generateIdentity(hardwareType: PKIFixture.deviceType))
    }

    /// Stages 1 and 2 on each meter: their configurators and the CSR list's lines.
    func keyedMeters(_ meters: [EUI64]) throws -> (configurators: [EUI64: FactoryConfigurator], csrLines: [String]) {
        var csrLines: [String] = []
        var configurators: [EUI64: FactoryConfigurator] = [:]
        for eui in meters {
            let (configurator, csr) = try keyedMeter(eui)
            configurators[eui] = configurator
            csrLines.append(CSRListReader.line(eui64: eui, csr: csr))
        }
        return (configurators, csrLines)
    }

    /// Writes the CSR list and a manifest; returns the manifest's path.
    func manifest(
        batch: String, meters: [String], csrLines: [String]? , manufacturer: String = "acme", keyGeneration: String = "on-device"
    ) throws -> String {
        let batchDirectory = directory.appendingPathComponent(batch)
        try FileManager.default.createDirectory(at: batchDirectory, withIntermediateDirectories: true)
        var manifest: [String: Any] = [
            "format": "metertrust-batch", "version": 1, "batch": batch, "manufacturer": manufacturer,
            "firmware": ["sha256": imageSHA256], "bootstrapServerURI": "coaps+tcp://bootstrap.example.net:5684",
            "meters": ["eui64s": meters], "keyGeneration": keyGeneration, "parameters": ["meterClass": "residential"],
        ]
        if let csrLines {
            try Data(csrLines.joined().utf8).write(to: batchDirectory.appendingPathComponent("csrs.txt"))
            manifest["csrs"] = "csrs.txt"
        }
        let path = batchDirectory.appendingPathComponent("batch.json")
        try JSONSerialization.data(withJSONObject: manifest).write(to: path)
        return path.path
    }

    func run(_ manifestPath: String) async throws -> BatchReport {
        try await BatchRunner(hierarchy: pki.hierarchy, store: pki.store).run(manifestPath: manifestPath, outputDirectory: output(of: manifestPath))
    }

    /// A batch of `count` meters of manufacturer acme from 0024befffe000000 in `directory`: generated CSRs
    /// (`csrs.txt`, the benchmark's) and the manifest (`batch.json`), whose URL is returned.
    static func generatedBatch(_ batch: String, count: Int, in directory: URL) async throws -> URL {
        let csrs = directory.appendingPathComponent("csrs.txt").path
        try await IssuanceBenchmark.makeCSRs(count: count, hardwareType: PKIFixture.deviceType, path: csrs, threads: 2, progress: SilentProgress())
        return try batchManifest(batch, count: count, in: directory, keys: ["csrs": "csrs.txt"])
    }

    /// A batch of `count` acme meters whose keys the factory makes (`keyGeneration: factory`): each bundle carries
    /// its meter's private key, as a test standing in for the meter needs it.
    static func factoryKeyBatch(_ batch: String, count: Int, in directory: URL) throws -> URL {
        try batchManifest(batch, count: count, in: directory, keys: ["keyGeneration": "factory"])
    }

    /// `batch.json` for `count` acme meters from 0024befffe000000, with how their keys are made (`keys`).
    private static func batchManifest(_ batch: String, count: Int, in directory: URL, keys: [String: Any]) throws -> URL {
        let manifest: [String: Any] = [
            "format": "metertrust-batch", "version": 1, "batch": batch, "manufacturer": "acme",
            "firmware": ["sha256": String(repeating: "ab", count: 32)], "bootstrapServerURI": "coaps+tcp://bootstrap.example.net",
            "meters": ["start": "0024befffe000000", "count": count],
        ].merging(keys) { $1 }
        let manifestPath = directory.appendingPathComponent("batch.json")
        try JSONSerialization.data(withJSONObject: manifest).write(to: manifestPath)
        return manifestPath
    }

    func output(of manifestPath: String) -> URL { URL(fileURLWithPath: manifestPath).deletingLastPathComponent().appendingPathComponent("out") }

    func bundles(of manifestPath: String) throws -> [(line: Data, bundle: ProvisioningBundle)] {
        let text = try Data(contentsOf: output(of: manifestPath).appendingPathComponent("bundles.jsonl"))
        return try text.split(separator: UInt8(ascii: "\n")).map { (Data($0), try JSONDecoder().decode(ProvisioningBundle.self, from: Data($0))) }
    }
}

@Suite("Factory provisioning")
struct FactoryTests {
    @Test("five stages: keys made on the meters, batch issued, bundles validated and stored, configurators locked; the enrollment manifest verifies with openssl and Python cryptography")
    func fiveStages() async throws {
        let line = try await FactoryFixture.make()
        let meters = (1...4).map { EUI64(0x0024_BEFF_FE90_0000 + UInt64($0)) }
        let (configurators, csrLines) = try line.keyedMeters(meters)
        let manifestPath = try line.manifest(batch: "five-stages", meters: meters.map(\.description), csrLines: csrLines)
        let report = try await line.run(manifestPath)
        #expect(report.counts.issued == 4 && report.refusalsTotal == 0 && report.provisioned == 4)

        let bundles = try line.bundles(of: manifestPath)
        #expect(bundles.map(\.bundle.eui64) == meters.map(\.description))
        for (data, bundle) in bundles {
            let eui = try EUI64(bundle.eui64)
            #expect(bundle.endpointName == "urn:dev:mac:\(eui)")
            #expect(bundle.imageDigest.value == line.imageSHA256)
            #expect(bundle.privateKey == nil)
            #expect(bundle.parameters["meterClass"] == "residential")
            let configurator = try #require(configurators[eui])
            _ = try await configurator.install(bundle: data)
            #expect(try configurator.state().stage == .provisioned)
            try configurator.finalize()
            #expect(try configurator.state().stage == .locked)
        }

        // The enrollment manifest: signed in the HSM by the manufacturer CA key, checked with that certificate alone.
        let out = line.output(of: manifestPath)
        let caPEM = out.appendingPathComponent("manufacturer-ca.pem").path
        let manifestFile = out.appendingPathComponent("enrollment-manifest.json").path
        let signatureFile = out.appendingPathComponent("enrollment-manifest.json.sig").path
        let python = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("verify_enrollment_manifest.py"), caPEM, manifestFile, signatureFile])
        try #require(python.status == 0, "\(python.stderr)")
        let checked = try #require(try JSONSerialization.jsonObject(with: Data(python.stdout.utf8)) as? [String: Any])
        #expect(checked["count"] as? Int == 4)
        let listed = (checked["meters"] as? [[String: String]]) ?? []
        for entry in listed {
            let stored = try #require(try await line.pki.store.deviceIdentities(eui64s: [entry["eui64"]!]).values.first)
            let record = try #require(try await line.pki.store.certificate(issuer: "acme", serial: stored.serial))
            #expect(record.fingerprintSHA256 == entry["certificateSHA256"])
        }
        let pubkey = out.appendingPathComponent("ca-pub.pem").path
        try #require(try TestEnvironment.run("openssl", ["x509", "-in", caPEM, "-pubkey", "-noout", "-out", pubkey]).status == 0)
        let openssl = try TestEnvironment.run("openssl", ["dgst", "-sha256", "-verify", pubkey, "-signature", signatureFile, manifestFile])
        #expect(openssl.status == 0 && openssl.stdout.contains("Verified OK"), "\(openssl.stdout) \(openssl.stderr)")
        // A changed manifest no longer verifies.
        var tampered = try Data(contentsOf: URL(fileURLWithPath: manifestFile))
        tampered[tampered.count - 10] ^= 0x01
        try tampered.write(to: URL(fileURLWithPath: manifestFile))
        let rejected = try TestEnvironment.run("openssl", ["dgst", "-sha256", "-verify", pubkey, "-signature", signatureFile, manifestFile])
        #expect(rejected.status != 0)
    }

    @Test("bad input is refused meter by meter, naming the meter, while the valid rest completes")
    func rejectBadMetersKeepTheRest() async throws {
        let line = try await FactoryFixture.make()
        let m = (1...9).map { EUI64(0x0024_BEFF_FEA0_0000 + UInt64($0)) }
        // m[5] is provisioned by an earlier batch.
        let (_, earlierCSR) = try line.keyedMeter(m[5])
        let earlier = try line.manifest(batch: "earlier", meters: [m[5].description], csrLines: [CSRListReader.line(eui64: m[5], csr: earlierCSR)])
        #expect(try await line.run(earlier).counts.issued == 1)

        var csrLines: [String] = []
        for eui in [m[0], m[1]] { csrLines.append(CSRListReader.line(eui64: eui, csr: try line.keyedMeter(eui).1)) }
        csrLines.append(CSRListReader.line(eui64: m[1], csr: try MeterIdentity(eui64: m[1]).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)))
        csrLines.append(CSRListReader.line(eui64: m[2], csr: try MeterIdentity(eui64: m[8]).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)))
        let subjectClaim = try PKIFixture.csr(subject: try DistinguishedName { CommonName("urn:dev:mac:\(m[8])") }, extensions: [])
        csrLines.append(CSRListReader.line(eui64: m[3], csr: subjectClaim))
        csrLines.append("\(m[4]) \(Data((0..<64).map { UInt8($0) }).base64EncodedString())\n")
        csrLines.append("00zz0000000000000 \(Data([0x30, 0x00]).base64EncodedString())\n")
        csrLines.append(CSRListReader.line(eui64: m[5], csr: try MeterIdentity(eui64: m[5]).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)))
        let batchMeters = m[0...6].map(\.description) + ["not-an-eui64"]
        let manifestPath = try line.manifest(batch: "mixed", meters: batchMeters, csrLines: csrLines)
        let report = try await line.run(manifestPath)

        #expect(report.counts.issued == 2)
        #expect(try line.bundles(of: manifestPath).map(\.bundle.eui64) == [m[0].description, m[1].description])
        let reportData = try Data(contentsOf: line.output(of: manifestPath).appendingPathComponent("report.json"))
        let refusals = try #require(try JSONSerialization.jsonObject(with: reportData) as? [String: Any])["refusals"] as? [[String: Any]]
        let expected: [(meter: String, mentions: String)] = [
            (m[1].description, "appears twice in this batch"),
            (m[2].description, "claims EUI-64 \(m[8])"),
            (m[3].description, "claims EUI-64 \(m[8])"),
            (m[4].description, "not a DER PKCS#10"),
            ("00zz0000000000000", "is not an EUI-64"),
            (m[5].description, "already provisioned (batch earlier"),
            (m[6].description, "no CSR for meter \(m[6])"),
            ("not-an-eui64", "is not an EUI-64"),
        ]
        #expect(refusals?.count == expected.count, "\(refusals ?? [])")
        for (meter, mentions) in expected {
            let match = refusals?.first { ($0["meter"] as? String) == meter && (($0["reason"] as? String)?.contains(mentions) ?? false) }
            #expect(match != nil, "no refusal of \(meter) mentioning \"\(mentions)\": \(refusals ?? [])")
        }
        #expect(report.refusalsTotal == expected.count)
        // Nothing refused was stored: m[2], m[3], m[4] have no certificate; m[5] keeps its earlier one.
        let held = try await line.pki.store.deviceIdentities(eui64s: m.map(\.description))
        #expect(Set(held.keys) == Set([m[0], m[1], m[5]].map(\.description)))
        #expect(held[m[5].description]?.batch == "earlier")
    }

    /// What a refused batch must leave as it was: every CA's certificate count, the meters' identities, the batch
    /// records, the audit log.
    struct StoreCounts: Equatable, CustomStringConvertible {
        var perIssuer: [String: Int]
        var total: Int
        var identities: Int
        var batches: [String: Bool]
        var auditEntries: Int64

        static func of(_ line: FactoryFixture, meters: [EUI64], batches: [String]) async throws -> StoreCounts {
            let store = line.pki.store
            var perIssuer: [String: Int] = [:]
            for authority in try await store.certificateAuthorities() {
                perIssuer[authority.name] = try await store.certificateCount(issuer: authority.name)
            }
            var stored: [String: Bool] = [:]
            for batch in batches { stored[batch] = try await store.batch(id: batch) != nil }
            return StoreCounts(
                perIssuer: perIssuer, total: try await store.certificateCount(issuer: nil),
                identities: try await store.deviceIdentities(eui64s: meters.map(\.description)).count, batches: stored,
                auditEntries: try await store.auditEntryCount()
            )
        }

        var description: String { "issuers \(perIssuer), total \(total), identities \(identities), batches \(batches), audit \(auditEntries)" }
    }

    @Test("an unregistered manufacturer, or an operational CA named as manufacturer, refuses the whole batch and changes nothing")
    func rejectUnregisteredManufacturer() async throws {
        let line = try await FactoryFixture.make()
        let eui = EUI64(0x0024_BEFF_FEB0_0001)
        let csr = CSRListReader.line(eui64: eui, csr: try line.keyedMeter(eui).1)
        let before = try await StoreCounts.of(line, meters: [eui], batches: ["nobody", "north"])
        #expect(before.batches.values.allSatisfy { !$0 } && before.identities == 0)
        let unregistered = try line.manifest(batch: "nobody", meters: [eui.description], csrLines: [csr], manufacturer: "nobody")
        let error = await #expect(throws: FactoryError.self) { try await line.run(unregistered) }
        #expect(error?.code == .unregisteredManufacturer && error?.message.contains("nobody") == true, "\(error?.message ?? "")")
        // An operational CA is not a manufacturer: "north" issues nothing for this batch.
        let operational = try line.manifest(batch: "north", meters: [eui.description], csrLines: [csr], manufacturer: "north")
        let notManufacturer = await #expect(throws: FactoryError.self) { try await line.run(operational) }
        #expect(notManufacturer?.code == .unregisteredManufacturer, "\(notManufacturer?.message ?? "")")
        let after = try await StoreCounts.of(line, meters: [eui], batches: ["nobody", "north"])
        #expect(after == before, "before: \(before); after: \(after)")
        #expect(after.perIssuer["north"] == before.perIssuer["north"] && after.perIssuer["acme"] == 0)
        // The same meter in a batch for the registered manufacturer is issued from acme: the counts above can move.
        let good = try line.manifest(batch: "acme-good", meters: [eui.description], csrLines: [csr])
        #expect(try await line.run(good).counts.issued == 1)
        let issued = try await StoreCounts.of(line, meters: [eui], batches: ["acme-good"])
        #expect(issued.perIssuer["acme"] == 1 && issued.identities == 1 && issued.batches["acme-good"] == true)
    }

    /// A batch manifest that breaks one rule of the format, with `IMAGE` standing for the image's SHA-256.
    static let badManifests: [String] = [
        #"{"format":"metertrust-batch","version":2}"#,
        #"{"format":"metertrust-batch","version":1,"batch":"x","manufacturer":"acme","firmware":{"sha256":"abc"},"bootstrapServerURI":"coaps+tcp://b.example","meters":{"start":"0024befffe000001","count":1},"csrs":"c.txt"}"#,
        #"{"format":"metertrust-batch","version":1,"batch":"x","manufacturer":"acme","firmware":{"sha256":"IMAGE"},"bootstrapServerURI":"http://b.example","meters":{"start":"0024befffe000001","count":1},"csrs":"c.txt"}"#,
        #"{"format":"metertrust-batch","version":1,"batch":"x","manufacturer":"acme","firmware":{"sha256":"IMAGE"},"bootstrapServerURI":"coaps+tcp://b.example","meters":{"start":"0024befffe000001","count":0},"csrs":"c.txt"}"#,
        #"{"format":"metertrust-batch","version":1,"batch":"x","manufacturer":"acme","firmware":{"sha256":"IMAGE"},"bootstrapServerURI":"coaps+tcp://b.example","meters":{"start":"0024befffe000001","count":1}}"#,
        #"{"format":"metertrust-batch","version":1,"batch":"x y","manufacturer":"acme","firmware":{"sha256":"IMAGE"},"bootstrapServerURI":"coaps+tcp://b.example","meters":{"start":"0024befffe000001","count":1},"csrs":"c.txt"}"#,
        "not json",
    ]

    @Test("a bad manifest refuses the whole batch with invalidManifest and changes nothing", arguments: FactoryTests.badManifests)
    func rejectBadManifest(_ template: String) async throws {
        let line = try await FactoryFixture.make()
        let eui = EUI64(0x0024_BEFF_FE00_0001)
        let bad = template.replacingOccurrences(of: "IMAGE", with: line.imageSHA256)
        let path = line.directory.appendingPathComponent("bad.json")
        try Data(bad.utf8).write(to: path)
        let before = try await StoreCounts.of(line, meters: [eui], batches: ["x"])
        let refused = await #expect(throws: FactoryError.self) { try await line.run(path.path) }
        #expect(refused?.code == .invalidManifest, "\(refused?.code.description ?? "no error"): \(refused?.message ?? "")")
        let after = try await StoreCounts.of(line, meters: [eui], batches: ["x"])
        #expect(after == before, "before: \(before); after: \(after)")
        // The line itself works: a valid manifest for batch x is run and issued from acme.
        let csr = CSRListReader.line(eui64: eui, csr: try line.keyedMeter(eui).1)
        #expect(try await line.run(try line.manifest(batch: "x", meters: [eui.description], csrLines: [csr])).counts.issued == 1)
        #expect(try await StoreCounts.of(line, meters: [eui], batches: ["x"]).perIssuer["acme"] == 1)
    }

    @Test("factory-generated keys (the weaker mode): the bundle brings the key and the meter installs it")
    func factoryGeneratedKeys() async throws {
        let line = try await FactoryFixture.make()
        let meters = (1...3).map { EUI64(0x0024_BEFF_FEC0_0000 + UInt64($0)) }
        let manifestPath = try line.manifest(batch: "factory-keys", meters: meters.map(\.description), csrLines: nil, keyGeneration: "factory")
        // Attacker: a local user who planted a world-readable keys file (or left one from an earlier run) hoping the
        // line writes the meters' private keys into it. The file is replaced by a new 0600 one, never reused.
        let keyFile = line.output(of: manifestPath).appendingPathComponent("factory-keys.txt").path
        try FileManager.default.createDirectory(at: line.output(of: manifestPath), withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: keyFile, contents: Data("planted\n".utf8), attributes: [.posixPermissions: 0o644]))
        let planted = try FileManager.default.attributesOfItem(atPath: keyFile)[.systemFileNumber] as? Int
        let report = try await line.run(manifestPath)
        #expect(report.counts.issued == 3)
        let attributes = try FileManager.default.attributesOfItem(atPath: keyFile)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        #expect(attributes[.systemFileNumber] as? Int != planted, "the planted inode was reused")
        #expect(try String(contentsOfFile: keyFile, encoding: .utf8).split(separator: "\n").count == 3)

        // `factory bundle --out` over an existing 0644 file: the bundle holds the meter's private key, so the file
        // is 0600 (checked with stat(1), as an operator would).
        let bundleOut = line.output(of: manifestPath).appendingPathComponent("meter.bundle.json").path
        #expect(FileManager.default.createFile(atPath: bundleOut, contents: Data("old".utf8), attributes: [.posixPermissions: 0o644]))
        let extracted = try TestEnvironment.run(
            TestEnvironment.metertrust,
            ["factory", "bundle", "--batch-dir", line.output(of: manifestPath).path, "--eui64", meters[0].description, "--out", bundleOut]
        )
        #expect(extracted.status == 0, "\(extracted.stderr)")
        #expect(try TestEnvironment.run("stat", ["-c", "%a", bundleOut]).stdout == "600\n")
        #expect(try String(contentsOfFile: bundleOut, encoding: .utf8).contains("PRIVATE KEY"))
        for (data, bundle) in try line.bundles(of: manifestPath) {
            let key = try P256.Signing.PrivateKey(pemRepresentation: try #require(bundle.privateKey))
            let certificate = try Certificate(pemEncoded: bundle.deviceCertificate)
            #expect(certificate.publicKey == Certificate.PublicKey(key.publicKey))
            let configurator = try FactoryConfigurator.injectImage(line.image, eui64: try EUI64(bundle.eui64), trustAnchorSHA256: line.rootSHA256, into: line.meterDirectory(try EUI64(bundle.eui64)))
            _ = try await configurator.install(bundle: data)
            try configurator.finalize()
        }
        // Running the batch again issues nothing new and rewrites the same bundles.
        let again = try await line.run(manifestPath)
        #expect(again.counts.issued == 0 && again.counts.alreadyIssued == 3 && again.provisioned == 3)
    }

    /// A bundle the configurator must refuse, how it is made from the good one, and the reason it must give (the
    /// reason is what the factory operator reads; the code is `.invalidBundle` for each).
    enum BadBundle: String, CaseIterable, Sendable {
        case wrongImage, foreign, wrongMeter, badURI, wrongEndpoint, otherRoot, consistentForgery, injectedKey, notABundle, oversized

        func reason(other: EUI64) -> String {
            switch self {
            case .wrongImage: "does not match the meter's image"
            case .foreign: "it is for meter \(other)"
            case .wrongMeter: "HardwareModuleName is not this meter's EUI-64"
            case .badURI: "bootstrap server URI"
            case .wrongEndpoint: "endpoint name"
            case .otherRoot, .consistentForgery: "is not the trust anchor this meter's image pins"
            case .injectedKey: "carries a private key"
            case .notABundle: "not a metertrust-provisioning-bundle"
            case .oversized: "the limit is"
            }
        }
    }

    /// A keyed meter, the bundle its batch made for it, and another meter's: made once for the table.
    struct BundleLine: Sendable {
        let line: FactoryFixture
        let eui = EUI64(0x0024_BEFF_FED0_0001)
        let other = EUI64(0x0024_BEFF_FED0_0002)
        let csr: [UInt8]
        let good: ProvisioningBundle
        let foreign: ProvisioningBundle

        static let shared = Task { try await make() }

        static func make() async throws -> BundleLine {
            let line = try await FactoryFixture.make()
            let eui = EUI64(0x0024_BEFF_FED0_0001)
            let other = EUI64(0x0024_BEFF_FED0_0002)
            let (_, csr) = try line.keyedMeter(eui)
            let (_, otherCSR) = try line.keyedMeter(other)
            let manifestPath = try line.manifest(
                batch: "lock", meters: [eui.description, other.description],
                csrLines: [CSRListReader.line(eui64: eui, csr: csr), CSRListReader.line(eui64: other, csr: otherCSR)]
            )
            _ = try await line.run(manifestPath)
            let bundles = try line.bundles(of: manifestPath)
            return BundleLine(
                line: line, csr: csr, good: try #require(bundles.first { $0.bundle.eui64 == eui.description }).bundle,
                foreign: try #require(bundles.first { $0.bundle.eui64 == other.description }).bundle
            )
        }

        /// A copy of the keyed meter, so each case starts from the same state.
        func keyedCopy() throws -> FactoryConfigurator {
            let copy = line.directory.appendingPathComponent("copies/\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: line.meterDirectory(eui), to: copy)
            return FactoryConfigurator(directory: copy)
        }

        func data(_ bad: BadBundle) async throws -> Data {
            var bundle = good
            switch bad {
            case .wrongImage: bundle.imageDigest.value = String(repeating: "0", count: 64)
            case .foreign: bundle = foreign
            case .wrongMeter:
                bundle = foreign
                bundle.eui64 = eui.description
                bundle.endpointName = eui.deviceURN
            case .badURI: bundle.bootstrapServerURI = "http://bootstrap.example"
            case .wrongEndpoint: bundle.endpointName = "urn:dev:mac:0000000000000000"
            case .otherRoot:
                let stranger = try await CAHierarchy(token: try TestEnvironment.openToken(), store: try await TestEnvironment.makeStore(), settings: PKISettings())
                    .createRoot(name: "stranger", organization: "Stranger")
                bundle.trustAnchor = try stranger.certificate.pem
            case .consistentForgery:
                // Attacker: someone with a CA of their own hands the meter a bundle that is consistent in itself — a
                // device certificate for the meter's own key and EUI-64, chained to their root. Only the pinned
                // anchor refuses it.
                let forger = try await PKIFixture.make()
                let forged = try await CertificateIssuer(hierarchy: forger.hierarchy).issue(IssuanceRequest(csr: csr, profile: "device-identity"))
                bundle.deviceCertificate = try forged.certificate.pem
                bundle.chain = try [forger.manufacturer.certificate.pem]
                bundle.trustAnchor = try forger.root.certificate.pem
            case .injectedKey: bundle.privateKey = P256.Signing.PrivateKey().pemRepresentation
            case .notABundle: return Data("{}".utf8)
            case .oversized: return Data(repeating: 0x20, count: 70_000)
            }
            return try bundle.encoded()
        }
    }

    @Test("the configurator refuses bundles that fail validation with invalidBundle and its reason, storing nothing", arguments: FactoryTests.BadBundle.allCases)
    func rejectBadBundle(_ bad: BadBundle) async throws {
        let context = try await BundleLine.shared.value
        let configurator = try context.keyedCopy()
        let data = try await context.data(bad)
        let error = await #expect(throws: ConfiguratorError.self) { try await configurator.install(bundle: data) }
        #expect(error?.code == .invalidBundle, "\(error?.code.description ?? "no error"): \(error?.message ?? "")")
        #expect(error?.message.contains(bad.reason(other: context.other)) == true, "\(bad.reason(other: context.other)): \(error?.message ?? "")")
        #expect(try configurator.state().stage == .keyed)
        // The same meter takes the good bundle: the refusal was this bundle's.
        _ = try await configurator.install(bundle: try context.good.encoded())
        #expect(try configurator.state().stage == .provisioned)
    }

    @Test("the configurator refuses finalize before a bundle, and every call after finalize")
    func rejectCallsOnLockedConfigurator() async throws {
        let context = try await BundleLine.shared.value
        let configurator = try context.keyedCopy()
        let line = context.line
        let eui = context.eui
        let good = context.good
        // Finalize before a bundle is installed is refused too.
        let early = #expect(throws: ConfiguratorError.self) { try configurator.finalize() }
        #expect(early?.code == .wrongStage)

        _ = try await configurator.install(bundle: try good.encoded())
        try configurator.finalize()
        let locked: [() async throws -> Void] = [
            { _ = try configurator.generateIdentity(hardwareType: PKIFixture.deviceType) },
            { _ = try await configurator.install(bundle: try good.encoded()) },
            { try configurator.finalize() },
            { _ = try FactoryConfigurator.injectImage(line.image, eui64: eui, trustAnchorSHA256: line.rootSHA256, into: configurator.directory) },
        ]
        for call in locked {
            let error = await #expect(throws: ConfiguratorError.self) { try await call() }
            #expect(error?.code == .locked)
            #expect(error?.message.contains("cannot be used again") == true)
        }
    }

    @Test("a batch killed with SIGKILL mid-way resumes: every meter issued exactly once, no serial twice, every output certificate stored")
    func resumeAfterSIGKILL() async throws {
        let count = 12_000
        let directory = TestEnvironment.temporaryDirectory()
        let hsm = try TestEnvironment.makeIsolatedToken()
        let environment = hsm.environment
        let data = directory.appendingPathComponent("data").path
        func metertrust(_ arguments: [String]) throws -> TestEnvironment.ProcessResult {
            try TestEnvironment.run(TestEnvironment.metertrust, arguments + ["--data-dir", data], environment: environment)
        }
        try #require(try metertrust(["init", "--token-label", hsm.label, "--module", TestEnvironment.modulePath]).status == 0)
        try #require(try metertrust(["ca", "create-root", "--name", "root"]).status == 0)
        try #require(try metertrust(["ca", "create-manufacturer", "--name", "acme"]).status == 0)
        let manifestPath = try await FactoryFixture.generatedBatch("killed", count: count, in: directory)
        let out = directory.appendingPathComponent("out").path
        let arguments = ["factory", "run", "--manifest", manifestPath.path, "--out", out, "--quiet", "--json", "--data-dir", data]

        // First run: SIGKILL as soon as the first rounds are in the store.
        let store = try SQLiteStore(path: directory.appendingPathComponent("data/metertrust.sqlite").path)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.metertrust)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The watcher runs on a thread of its own: a task on the cooperative pool can be starved for seconds by other
        // tests blocking their threads, and the kill would come too late. It asks sqlite3 (another process) how many
        // certificates of the batch are stored, and kills as soon as there are some.
        let storePath = directory.appendingPathComponent("data/metertrust.sqlite").path
        let watcher = Thread {
            let deadline = Date().addingTimeInterval(120)
            while process.isRunning && Date() < deadline {
                let count = (try? TestEnvironment.run("sqlite3", [storePath, "SELECT count(*) FROM certificates WHERE batch = 'killed'"]))
                    .flatMap { Int($0.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
                if count > 0 { break }
                usleep(2000)
            }
            kill(process.processIdentifier, SIGKILL)
        }
        watcher.start()
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)
        let afterKill = try await store.batchCertificateCount(batch: "killed")
        #expect(afterKill > 0 && afterKill < count, "the kill must land mid-batch: \(afterKill) of \(count) stored")
        #expect(!FileManager.default.fileExists(atPath: out + "/bundles.jsonl"), "no output before the batch is issued")

        // Second run: the same command completes the batch.
        let resumed = try TestEnvironment.run(TestEnvironment.metertrust, arguments, environment: environment)
        try #require(resumed.status == 0, "\(resumed.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(resumed.stdout.utf8)) as? [String: Any])
        let counts = try #require(report["counts"] as? [String: Int])
        #expect(counts["alreadyIssued"] == afterKill)
        #expect(counts["issued"] == count - afterKill)
        #expect(report["refusalsTotal"] as? Int == 0)

        // Exactly once: count meters, serials and certificates in the store.
        var meters = Set<String>()
        var serials = Set<String>()
        var fingerprints = Set<String>()
        var position: Int64 = 0
        while true {
            let page = try await store.batchCertificates(batch: "killed", afterPosition: position, limit: 2000)
            guard let last = page.last else { break }
            for record in page {
                meters.insert(record.eui64!)
                serials.insert(record.serial)
                fingerprints.insert(record.fingerprintSHA256)
            }
            position = last.batchPosition!
        }
        #expect(meters.count == count && serials.count == count && fingerprints.count == count)
        #expect(try await store.certificateCount(issuer: "acme") == count)
        // Every certificate in the outputs is one the store holds.
        let manifestData = try Data(contentsOf: URL(fileURLWithPath: out + "/enrollment-manifest.json"))
        let enrollment = try JSONDecoder().decode(EnrollmentManifest.self, from: manifestData)
        #expect(enrollment.count == count)
        #expect(Set(enrollment.meters.map(\.certificateSHA256)) == fingerprints)
        let bundleLines = try Data(contentsOf: URL(fileURLWithPath: out + "/bundles.jsonl")).split(separator: UInt8(ascii: "\n"))
        #expect(bundleLines.count == count)
    }
}
