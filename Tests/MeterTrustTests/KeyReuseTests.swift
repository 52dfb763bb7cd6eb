import Crypto
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustStore
import MeterTrustStoreSQLite
import SwiftASN1
import Testing
import X509

/// Issue 12, item 5 and the duplicate-EUI message: a key seen before on another meter is refused by the database, on
/// `metertrust issue` and in factory batches, naming that meter; a meter issued twice is told so, not drawn serials.
///
/// Attacker throughout: a cloned meter, or one lying about who it is, presenting another meter's public key under
/// its own EUI-64 (its CSR is well formed and its proof of possession verifies: it holds the copied private key).
@Suite("Keys seen before are refused")
struct KeyReuseTests {
    typealias Deployment = CLITests.Deployment
    static let deviceType: ASN1ObjectIdentifier = [2, 999, 2, 1]

    /// Writes `meter`'s CSR (PEM) and returns its path.
    static func csr(_ meter: MeterIdentity, in deployment: Deployment, name: String) throws -> String {
        let path = deployment.file("\(name).csr")
        try meter.certificateSigningRequest(hardwareType: deviceType).serializeAsPEM().pemString.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func hierarchy() throws -> Deployment {
        let deployment = try Deployment.make()
        _ = try deployment.json(["ca", "create-root", "--name", "root"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme"])
        _ = try deployment.json(["ca", "create-operational", "--name", "north"])
        return deployment
    }

    @Test("issue: a CSR with another meter's key is refused, naming that meter; the same meter keeps its key for its operational certificate")
    func issueRefusesAnotherMetersKey() throws {
        let deployment = try Self.hierarchy()
        let genuine = MeterIdentity(eui64: try EUI64("0024befffe800001"))
        let clone = MeterIdentity(eui64: try EUI64("0024befffe800002"), privateKey: genuine.privateKey)
        _ = try deployment.json(["issue", "--csr", try Self.csr(genuine, in: deployment, name: "genuine"), "--profile", "device-identity"])

        let refused = try deployment.run(["issue", "--csr", try Self.csr(clone, in: deployment, name: "clone"), "--profile", "device-identity"])
        #expect(refused.status == 1, "\(refused.stderr)")
        let lines = refused.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("error: "), "\(refused.stderr)")
        #expect(refused.stderr.contains("already belongs to meter 0024befffe800001"), "\(refused.stderr)")
        #expect(!refused.stderr.contains("serial collision"))
        // The clone got nothing; its operational certificate is refused too.
        let operational = try deployment.run([
            "issue", "--csr", deployment.file("clone.csr"), "--profile", "device-operational", "--ca", "north",
        ])
        #expect(operational.status == 1 && operational.stderr.contains("already belongs to meter 0024befffe800001"), "\(operational.stderr)")

        // The genuine meter keeps its key: an operational certificate for the factory key, and a renewal without rekey.
        for _ in 0..<2 {
            let renewed = try deployment.json(["issue", "--csr", deployment.file("genuine.csr"), "--profile", "device-operational", "--ca", "north"])
            #expect((renewed["certificate"] as? [String: Any])?["eui64"] as? String == "0024befffe800001")
        }
        let authorities = try #require(try JSONSerialization.jsonObject(with: Data(try deployment.run(["ca", "list", "--json"]).stdout.utf8)) as? [[String: Any]])
        let issued = Dictionary(uniqueKeysWithValues: authorities.map { ($0["name"] as! String, $0["issuedCertificates"] as? Int ?? -1) })
        #expect(issued["acme"] == 1 && issued["north"] == 2, "\(issued)")
    }

    @Test("issue for a meter that already has its device identity: no serial collision, the certificate it has, exit 1")
    func duplicateEUIMessage() throws {
        let deployment = try Self.hierarchy()
        let meter = MeterIdentity(eui64: try EUI64("0024befffe800011"))
        let first = try deployment.json(["issue", "--csr", try Self.csr(meter, in: deployment, name: "meter"), "--profile", "device-identity"])
        let serial = try #require((first["certificate"] as? [String: Any])?["serial"] as? String)
        // Again, with the same CSR, and with a new key: the meter has its identity either way.
        let rekeyed = MeterIdentity(eui64: meter.eui64)
        for csr in [deployment.file("meter.csr"), try Self.csr(rekeyed, in: deployment, name: "rekeyed")] {
            let again = try deployment.run(["issue", "--csr", csr, "--profile", "device-identity"])
            #expect(again.status == 1, "\(again.stderr)")
            #expect(!again.stderr.contains("serial collision") && !again.stderr.contains("UNIQUE constraint"), "\(again.stderr)")
            #expect(again.stderr == "error: EUI-64 0024befffe800011 is already provisioned (batch none, CA acme, serial \(serial))\n", "\(again.stderr)")
        }
        // The refused request claimed nothing: its key was never certified, so it belongs to no meter yet (the claim
        // rolled back with the refused certificate).
        let other = MeterIdentity(eui64: try EUI64("0024befffe800012"), privateKey: rekeyed.privateKey)
        _ = try deployment.json(["issue", "--csr", try Self.csr(other, in: deployment, name: "other"), "--profile", "device-identity"])
    }

    @Test("factory batch: a meter presenting a key already certified (by issue, or earlier in the batch) is refused in refusals.jsonl, naming the owner; the rest is issued")
    func batchRefusesAnotherMetersKey() throws {
        let deployment = try Self.hierarchy()
        // Meter 1 certified on the model path (`issue`); the batch's requests take the template path: both must name
        // the key by the same digest.
        let genuine = MeterIdentity(eui64: try EUI64("0024befffe800101"))
        _ = try deployment.json(["issue", "--csr", try Self.csr(genuine, in: deployment, name: "genuine"), "--profile", "device-identity"])
        let cloneOfGenuine = MeterIdentity(eui64: try EUI64("0024befffe800102"), privateKey: genuine.privateKey)
        let honest = MeterIdentity(eui64: try EUI64("0024befffe800103"))
        let twinA = MeterIdentity(eui64: try EUI64("0024befffe800104"))
        let twinB = MeterIdentity(eui64: try EUI64("0024befffe800105"), privateKey: twinA.privateKey)
        let meters = [cloneOfGenuine, honest, twinA, twinB]

        let directory = deployment.dataDirectory.deletingLastPathComponent()
        let lines = try meters.map { CSRListReader.line(eui64: $0.eui64, csr: try $0.certificateSigningRequestDER(hardwareType: Self.deviceType)) }
        try Data(lines.joined().utf8).write(to: directory.appendingPathComponent("csrs.txt"))
        let manifest: [String: Any] = [
            "format": "metertrust-batch", "version": 1, "batch": "clones", "manufacturer": "acme",
            "firmware": ["sha256": String(repeating: "ab", count: 32)], "bootstrapServerURI": "coaps+tcp://bootstrap.example.net",
            "meters": ["eui64s": meters.map(\.eui64.description)], "csrs": "csrs.txt",
        ]
        let manifestPath = directory.appendingPathComponent("batch.json").path
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: manifestPath))
        let out = directory.appendingPathComponent("out").path
        let run = try deployment.run(["factory", "run", "--manifest", manifestPath, "--out", out, "--quiet", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout) \(run.stderr)")
        #expect((report["counts"] as? [String: Any])?["issued"] as? Int == 2, "\(report)")

        let refusals = try String(contentsOfFile: out + "/refusals.jsonl", encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let byMeter = Dictionary(uniqueKeysWithValues: refusals.map { ($0["meter"] as? String ?? "", $0["reason"] as? String ?? "") })
        #expect(byMeter.keys.sorted() == ["0024befffe800102", "0024befffe800105"], "\(refusals)")
        #expect(byMeter["0024befffe800102"]?.contains("already belongs to meter 0024befffe800101") == true, "\(byMeter)")
        #expect(byMeter["0024befffe800105"]?.contains("already belongs to meter 0024befffe800104") == true, "\(byMeter)")
        // Nothing of the clones reached the bundles.
        let bundles = try String(contentsOfFile: out + "/bundles.jsonl", encoding: .utf8)
        #expect(bundles.contains("0024befffe800103") && bundles.contains("0024befffe800104"))
        #expect(!bundles.contains("0024befffe800102") && !bundles.contains("0024befffe800105"))

        // And the other way round: a key the batch certified is refused to another meter on `issue`.
        let cloneOfTwin = MeterIdentity(eui64: try EUI64("0024befffe800106"), privateKey: twinA.privateKey)
        let refused = try deployment.run(["issue", "--csr", try Self.csr(cloneOfTwin, in: deployment, name: "twin"), "--profile", "device-identity"])
        #expect(refused.status == 1 && refused.stderr.contains("already belongs to meter 0024befffe800104"), "\(refused.stderr)")
    }

    // MARK: The migration

    /// A self-signed certificate for `key` (the migration reads only its subjectPublicKeyInfo).
    static func certificateDER(_ key: P256.Signing.PrivateKey) throws -> [UInt8] {
        let name = try DistinguishedName { CommonName("meter") }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey), notValidBefore: Date(),
            notValidAfter: Date().addingTimeInterval(3600), issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: Certificate.Extensions(), issuerPrivateKey: .init(key)
        )
        return try certificate.derBytes
    }

    @Test("migration 0007 claims the keys of the device certificates a store already holds: a clone of an old meter is refused after the upgrade")
    func migrationClaimsExistingKeys() async throws {
        let (old, shared, operational) = (P256.Signing.PrivateKey(), P256.Signing.PrivateKey(), P256.Signing.PrivateKey())
        let columns = "(issuer, serial, profile, kind, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at)"
        func row(_ serial: String, _ kind: String, _ eui: String, _ der: [UInt8], at time: Int) -> String {
            "('acme', '\(serial)', '\(kind)', '\(kind)', '', '\(eui)', 0, 1, 'f', x'\(hexString(der))', \(time))"
        }
        let path = try await StoreTests.oldStore(
            before: "0007-device-keys",
            rows: """
                INSERT INTO certificate_authorities (name, role, parent, key_label, key_id, curve, certificate_serial, created_at) VALUES
                    ('acme', 'manufacturer', NULL, 'k-acme', '02', 'P-256', 'a1', 0);
                INSERT INTO certificates \(columns) VALUES
                    \(row("d1", "device-identity", "0024befffe800001", try Self.certificateDER(old), at: 10)),
                    \(row("d2", "device-identity", "0024befffe800002", try Self.certificateDER(shared), at: 20)),
                    \(row("d3", "device-identity", "0024befffe800003", try Self.certificateDER(shared), at: 30)),
                    \(row("o4", "device-operational", "0024befffe800004", try Self.certificateDER(operational), at: 40)),
                    ('acme', 'x5', 'device-identity', 'device-identity', '', '0024befffe800005', 0, 1, 'f', x'30', 50);
                """
        )
        let store = try SQLiteStore(path: path)
        try await store.migrate()
        #expect(try await store.appliedMigrations() == StoreTests.migrations)

        func record(_ serial: String, _ eui: String, _ key: P256.Signing.PrivateKey, kind: CertificateRecord.Kind = .deviceIdentity) -> CertificateRecord {
            CertificateRecord(
                issuer: "acme", serial: serial, profile: kind.rawValue, kind: kind, subject: "", eui64: eui, notBefore: Date(timeIntervalSince1970: 0),
                notAfter: Date(timeIntervalSince1970: 1), fingerprintSHA256: "f", der: [0x30],
                subjectKeyDigest: SubjectKeyDigest.of(subjectPublicKeyInfo: key.publicKey.derRepresentation)
            )
        }
        // A clone of each old meter is refused, naming it; where old data held one key for two meters, the earlier one.
        for (key, owner) in [(old, "0024befffe800001"), (shared, "0024befffe800002"), (operational, "0024befffe800004")] {
            let error = await #expect(throws: StoreError.self) { try await store.insertCertificate(record("n-\(owner)", "0024befffe8000ff", key)) }
            #expect(error?.code == .keyReused && error?.message.contains("belongs to meter \(owner)") == true, "\(error.map(\.message) ?? "none")")
        }
        // The old meters keep their keys; a fresh key is anyone's.
        try await store.insertCertificate(record("r1", "0024befffe800001", old, kind: .deviceOperational))
        try await store.insertCertificate(record("r4", "0024befffe800004", operational, kind: .deviceOperational))
        try await store.insertCertificate(record("f1", "0024befffe8000fe", P256.Signing.PrivateKey()))
    }

    @Test("the digest of the template path (header and point) is the digest of the key as the certificate carries it")
    func digestAgreesAcrossPaths() throws {
        let key = P256.Signing.PrivateKey()
        let spki = key.publicKey.derRepresentation
        let header = Array(spki.prefix(26))
        #expect(SubjectKeyDigest.of(header: header, rest: Array(spki.dropFirst(26))[...]) == SubjectKeyDigest.of(subjectPublicKeyInfo: spki))
        #expect(try SubjectKeyDigest.of(certificate: try Self.certificateDER(key)) == SubjectKeyDigest.of(subjectPublicKeyInfo: spki))
        #expect(SubjectKeyDigest.of(subjectPublicKeyInfo: spki).count == 16)
        #expect(throws: CoreError.self) { try SubjectKeyDigest.of(certificate: [0x30, 0x00]) }
    }
}
