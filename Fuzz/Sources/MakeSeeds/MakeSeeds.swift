import Crypto
import Foundation
import FuzzSupport
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import MeterTrustStoreSQLite
import SwiftASN1
import X509

/// Writes the seed corpora, Fuzz/Corpus/<Target>/ (and Fuzz/Fixtures/: the seed bundles' trust anchor), with the real code: meters' CSRs from `MeterIdentity` and the
/// configurator, CSR lists from `CSRListReader.line`, bundles from a real factory run (BatchRunner on a fresh
/// SoftHSM2 token and SQLite store), requests and approvals from their initialisers, audit entries and checkpoints
/// from an `AuditLog`. Run by `make fuzz-seeds`; the seeds are committed, so fuzzing never needs this.
@main
struct MakeSeeds {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 2 else {
            FileHandle.standardError.write(Data("usage: MakeSeeds <Fuzz directory>\n".utf8))
            exit(2)
        }
        let fuzz = URL(fileURLWithPath: arguments[1])
        let corpus = fuzz.appendingPathComponent("Corpus")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("metertrust-seeds-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var seeds = Seeds(corpus: corpus, fixtures: fuzz.appendingPathComponent("Fixtures"))
        try await seeds.make(work: work)
        for (target, count) in seeds.written.sorted(by: { $0.key < $1.key }) { print("\(target): \(count) seeds") }
    }
}

struct Seeds {
    let corpus: URL
    let fixtures: URL
    var written: [String: Int] = [:]
    let deviceType = try! ASN1ObjectIdentifier(dotRepresentation: FuzzFixture.deviceType)

    mutating func write(_ target: String, _ name: String, _ bytes: some Sequence<UInt8>) throws {
        let directory = corpus.appendingPathComponent(target)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(bytes).write(to: directory.appendingPathComponent(name))
        written[target, default: 0] += 1
    }

    mutating func make(work: URL) async throws {
        let meter = FuzzFixture.meter
        let key = P256.Signing.PrivateKey()

        // CSRs: the factory shapes the octet-level reader takes, and shapes it leaves to the model path.
        let identity = MeterIdentity(eui64: meter, privateKey: key)
        let meterCSR = try identity.certificateSigningRequestDER(hardwareType: deviceType)
        let urn = try DistinguishedName { CommonName(meter.deviceURN) }
        let san = try Self.hardwareModuleNameSAN(meter, type: deviceType)
        try write("FuzzCSR", "meter-identity.der", meterCSR)
        try write("FuzzCSR", "meter-identity-key-agreement.der", try identity.certificateSigningRequestDER(hardwareType: deviceType, keyAgreement: true))
        try write("FuzzCSR", "meter-identity.pem", Array(PEMDocument(type: "CERTIFICATE REQUEST", derBytes: meterCSR).pemString.utf8))
        try write("FuzzCSR", "empty-subject-hmn.der", try Self.csr(key: key, extensions: [san]))
        try write("FuzzCSR", "urn-subject.der", try Self.csr(key: key, subject: urn, extensions: []))
        try write("FuzzCSR", "urn-subject-hmn-basic-constraints.der", try Self.csr(
            key: key, subject: urn, extensions: [try .init(BasicConstraints.notCertificateAuthority, critical: true), san]))
        try write("FuzzCSR", "digital-signature.der", try Self.csr(
            key: key, extensions: [san, try .init(KeyUsage(digitalSignature: true), critical: false)]))
        try write("FuzzCSR", "no-attributes.der", try Self.csr(key: key, extensions: []))
        try write("FuzzCSR", "extended-key-usage.der", try Self.csr(
            key: key, extensions: [san, try .init(ExtendedKeyUsage([.clientAuth]), critical: false)]))
        let p384 = try CertificateSigningRequest(
            version: .v1, subject: DistinguishedName(), privateKey: .init(P384.Signing.PrivateKey()), attributes: .init(),
            signatureAlgorithm: .ecdsaWithSHA384)
        var serializer = DER.Serializer()
        try serializer.serialize(p384)
        try write("FuzzCSR", "p384.der", serializer.serializedBytes)

        // What a csrattrs answer carries for device-operational.
        var attributes = DER.Serializer()
        try attributes.serialize(CsrAttrs.deviceOperational)
        try write("FuzzCsrAttrs", "csrattrs-device-operational.der", attributes.serializedBytes)

        // CSR lists: as the factory line writes them, and with what the reader also takes or refuses.
        let others = (1...2).map { EUI64(meter.value + UInt64($0)) }
        let otherCSRs = try others.map { try MeterIdentity(eui64: $0).certificateSigningRequestDER(hardwareType: deviceType) }
        try write("FuzzCSRList", "three-meters.txt", Array(
            (CSRListReader.line(eui64: meter, csr: meterCSR) + zip(others, otherCSRs).map { CSRListReader.line(eui64: $0, csr: $1) }.joined()).utf8))
        let colons = others[0].bytes.map { String(format: "%02X", $0) }.joined(separator: ":")
        let mixed = "# metertrust-csr-list v1, line 3\n\n" + "  \(others[1].description.uppercased())  \(Data(otherCSRs[1]).base64EncodedString())\r\n"
            + "\(colons) \(Data(otherCSRs[0]).base64EncodedString(options: [.lineLength64Characters]).replacingOccurrences(of: "\r\n", with: ""))\n"
            + "not-a-meter \(Data(meterCSR).base64EncodedString())\n" + "\(meter)\n" + "\(meter) !!notbase64!!"
        try write("FuzzCSRList", "mixed.txt", Array(mixed.utf8))
        // Regression: an EUI-64 with a fullwidth digit (U+FF11) once trapped in EUI64(_:) (Character.isHexDigit).
        try write("FuzzCSRList", "regression-fullwidth-digit.txt", Array("0024befffe70000\u{FF11} \(Data(otherCSRs[0]).base64EncodedString())\n".utf8))

        // Batch manifests.
        let range = #"{"format":"metertrust-batch","version":1,"batch":"b1","manufacturer":"acme","firmware":{"sha256":"\#(String(repeating: "ab", count: 32))"},"bootstrapServerURI":"coaps+tcp://b.example:5684","meters":{"start":"0024befffe000001","count":10},"csrs":"c.txt"}"#
        try write("FuzzBatchManifest", "range-on-device.json", Array(range.utf8))
        try write("FuzzBatchManifest", "regression-fullwidth-digit.json", Array(range.replacingOccurrences(of: "0024befffe000001", with: "0024befffe00000\u{FF11}").utf8))

        // Enrollment lists: the first byte picks the parser (bit 7: plain list) and the piece size (low 3 bits).
        let sha = String(repeating: "ab", count: 32)
        let enrollment = #"{"format":"metertrust-enrollment-manifest","version":1,"batch":"b1","manufacturer":"acme","manufacturerCA":{"subject":"CN=acme","serial":"0a","certificateSHA256":"\#(sha)"},"meters":[{"eui64":"0024befffe000001","certificateSHA256":"\#(sha)"},{"certificateSHA256":"\#(sha)","eui64":"0024BEFFFE000002","x":[1,{"y":null}]}],"count":2}"#
        try write("FuzzEnrollmentList", "manifest.json", [0x02] + Array(enrollment.utf8))
        try write("FuzzEnrollmentList", "manifest-escapes.json", [0x05] + Array(#"{"meters":[],"batch":"caf\u00e9 \ud83d\ude00 \"q\"","count":0}"#.utf8))
        try write("FuzzEnrollmentList", "list.txt", [0x83] + Array("# batch b1\r\n0024befffe000001\n\n 00-24-be-ff-fe-00-00-02 # two\n00:24:be:ff:fe:00:00:03".utf8))
        try write("FuzzEnrollmentList", "list-bad.txt", [0x81] + Array("0024befffe000001\n0024befffe00zz01\n".utf8))

        // PSK import files (first byte: the piece size): a good one, CRLF and a blank line, and refusals.
        let header = #"{"format":"metertrust-psk-import","version":1,"batch":"oem-1","suite":"DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM","recipient":"\#(sha)"}"#
        func pskLine(_ eui: String) -> String {
            #"{"eui64":"\#(eui)","enc":"\#(Data([4] + Array(repeating: 7, count: 64)).base64EncodedString())","ciphertext":"\#(Data(repeating: 9, count: 48).base64EncodedString())"}"#
        }
        try write("FuzzPSKImport", "import.jsonl", [0x03] + Array([header, pskLine("0024befffe000001"), pskLine("0024befffe000002")].joined(separator: "\n").utf8))
        try write("FuzzPSKImport", "import-crlf.jsonl", [0x06] + Array([header, "", pskLine("00:24:be:ff:fe:00:00:03")].joined(separator: "\r\n").utf8))
        try write("FuzzPSKImport", "import-twice.jsonl", [0x01] + Array([header, pskLine("0024befffe000001"), pskLine("0024BEFFFE000001")].joined(separator: "\n").utf8))
        try write("FuzzPSKImport", "import-no-header.jsonl", [0x00] + Array(pskLine("0024befffe000001").utf8))

        // The factory: a fresh token and store, root and manufacturer CA, then real batches. The meters pin the root.
        let token = try Self.token(work)
        let store = try SQLiteStore(path: work.appendingPathComponent("store.sqlite").path)
        try await store.migrate()
        let hierarchy = CAHierarchy(token: token, store: store, settings: PKISettings())
        let root = try await hierarchy.createRoot(name: "fuzz-root", organization: "MeterTrust Fuzz")
        let authority = try await hierarchy.createAuthority(role: .manufacturer, name: "acme", organization: "Acme Meters")
        var rootDER = DER.Serializer()
        try rootDER.serialize(root.certificate)
        let trustAnchor = hexString(SHA256.hash(data: rootDER.serializedBytes))
        try FileManager.default.createDirectory(at: fixtures, withIntermediateDirectories: true)
        try Data((trustAnchor + "\n").utf8).write(to: fixtures.appendingPathComponent("bundle-trust-anchor.sha256"))

        // On-device keys: the meter's own configurator makes the key and CSR (stages 1 and 2).
        let configurator = try FactoryConfigurator.injectImage(
            FuzzFixture.image, eui64: meter, trustAnchorSHA256: trustAnchor, into: work.appendingPathComponent("meter"))
        let configuratorCSR = try configurator.generateIdentity(hardwareType: deviceType)
        let onDevice = try Self.manifest(
            work, batch: "fuzz-on-device", meters: ["eui64s": [meter.description]], keyGeneration: "on-device",
            csrLines: CSRListReader.line(eui64: meter, csr: configuratorCSR), parameters: ["meterClass": "residential"])
        let factoryKeys = try Self.manifest(
            work, batch: "fuzz-factory-keys", meters: ["start": FuzzFixture.factoryKeyMeter.description, "count": 2], keyGeneration: "factory",
            csrLines: nil, parameters: ["meterClass": "commercial", "tariff": "t2"])
        for (name, path) in [("on-device", onDevice), ("factory-keys", factoryKeys)] {
            try write("FuzzBatchManifest", "\(name).json", try Data(contentsOf: URL(fileURLWithPath: path)))
            let list = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("csrs.txt")
            if let csrs = FileManager.default.contents(atPath: list.path) { try write("FuzzCSRList", "\(name)-batch.txt", csrs) }
            let out = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("out")
            let report = try await BatchRunner(hierarchy: hierarchy).run(manifestPath: path, outputDirectory: out)
            guard report.counts.issued > 0 else { throw SeedError("batch \(name) issued nothing") }
            if report.refusalsTotal > 0, let refusals = FileManager.default.contents(atPath: out.appendingPathComponent("refusals.jsonl").path) {
                FileHandle.standardError.write(refusals)
            }
            let lines = try Data(contentsOf: out.appendingPathComponent("bundles.jsonl")).split(separator: UInt8(ascii: "\n"))
            for (index, line) in lines.enumerated() { try write("FuzzBundle", "\(name)-\(index).json", line) }
        }
        // EST answers as a server sends them: certs-only CMS of the real CA certificates, CSR attributes, a problem
        // document, a 503 with Retry-After (first byte: operation | status index << 2; second: Content-Type index).
        let certsOnly = Array(try CertsOnlyCMS(certificates: [authority.certificate, root.certificate]).base64Body().utf8)
        try write("FuzzESTResponse", "cacerts.txt", [0x00, 0x00] + certsOnly)
        try write("FuzzESTResponse", "simpleenroll.txt", [0x01, 0x06] + certsOnly)
        var attributes = DER.Serializer()
        try attributes.serialize(CsrAttrs([.oid([1, 2, 840, 10045, 4, 3, 2]), .attribute(type: [1, 2, 840, 10045, 2, 1], values: [[1, 2, 840, 10045, 3, 1, 7]])]))
        try write("FuzzESTResponse", "csrattrs.txt", [0x03, 0x02] + Array(Data(attributes.serializedBytes).base64EncodedString().utf8))
        try write("FuzzESTResponse", "problem.json", [0x01 | (6 << 2), 0x03] + Array(#"{"type":"urn:metertrust:error:onboarding.not-claimed","title":"onboarding.not-claimed","status":403,"code":"onboarding.not-claimed","detail":"meter 0024befffe000001 is not claimed"}"#.utf8))
        try write("FuzzESTResponse", "busy.txt", [0x01 | (10 << 2), 0x04, 0x80] + Array("Sun, 06 Nov 1994 08:49:37 GMT\nbusy".utf8))

        // The installed bundle must be accepted by the meter that made the key: the seed is a real, valid bundle.
        let bundles = try Data(contentsOf: URL(fileURLWithPath: onDevice).deletingLastPathComponent().appendingPathComponent("out/bundles.jsonl"))
        _ = try await configurator.install(bundle: Data(bundles.split(separator: UInt8(ascii: "\n"))[0]))

        // Requests and approvals, with a custodian's admin certificate made here.
        let custodianKeys = (0..<3).map { _ in P256.Signing.PrivateKey() }
        let certificates = try custodianKeys.enumerated().map { try Self.selfSigned(name: "custodian-\($0.offset)", key: $0.element) }
        let fingerprint = { (certificate: Certificate) -> String in
            var serializer = DER.Serializer()
            try! serializer.serialize(certificate)
            return hexString(SHA256.hash(data: serializer.serializedBytes))
        }
        let certificatePEM = try certificates[0].serializeAsPEM().pemString
        let requests = [
            try AdminRequest(operation: .caCreate, parameters: ["kind": "admin", "name": "a2"], requester: "alice", lifetime: 600),
            try AdminRequest(operation: .manufacturerRegister, parameters: ["name": "zeta", "organization": "Zeta Meters / Line 2", "curve": "P-256", "backup": "true"], requester: "alice", lifetime: 86_400),
            try AdminRequest(operation: .policySet, parameters: ["class": "ca-key-create", "required": "2", "roles": "pki-officer,security-officer", "requester-may-approve": "false"], requester: "bob", lifetime: 3_600),
            try AdminRequest(operation: .custodianAdd, parameters: ["certificate": certificatePEM], requester: "carol", lifetime: 600),
            try AdminRequest(operation: .caRevoke, parameters: ["name": "north", "reason": "1"], requester: "alice", lifetime: 60),
            try AdminRequest(operation: .backupExport, parameters: ["cas": "root,acme"], requester: "bob", lifetime: 600),
            try AdminRequest(operation: .backupReshare, parameters: [:], requester: "dave", lifetime: 7 * 86_400),
        ]
        for request in requests {
            try write("FuzzAdminRequest", "\(request.operation).json", request.canonicalBytes)
        }
        for (index, request) in requests.prefix(3).enumerated() {
            let approval = try Approval(approving: request, custodian: "custodian-\(index)", certificateFingerprint: fingerprint(certificates[index]), key: custodianKeys[index])
            try write("FuzzApproval", "\(request.operation).json", approval.bytes)
        }

        // Backup files: the shape ParserRobustnessTests parses, and one with real 2-of-3 shares of a backup key.
        let minimal = Array(#"{"created":"2026-01-01T00:00:00Z","format":"metertrust-key-backup/v1","keys":[],"mechanism":"CKM_AES_KEY_WRAP_PAD","shares":{"format":"metertrust-backup-shares/v1","keyCheckValue":"00","shares":[],"threshold":2},"sourceToken":"t"}"#.utf8)
        try write("FuzzBackupFile", "no-keys.json", try KeyBackupFile.parse(minimal).bytes)
        let custodians = try certificates.enumerated().map { index, certificate in
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return try Custodian(CustodianRecord(
                name: "custodian-\(index)", role: CustodianRole.securityOfficer.rawValue, certificateDER: serializer.serializedBytes,
                fingerprintSHA256: fingerprint(certificate)))
        }
        let shares = try SecretShares(secret: (0..<32).map { _ in UInt8.random(in: 0...255) }, purpose: .backupKey, threshold: 2, custodians: custodians)
        var caDER = DER.Serializer()
        try caDER.serialize(authority.certificate)
        let wrappedKey: [String: String] = [
            "ca": "acme", "role": "manufacturer", "label": "metertrust/ca/acme", "id": "a1b2c3d4", "curve": "P-256",
            "publicPoint": Data(P256.Signing.PublicKey(authority.certificate.publicKey)!.x963Representation).base64EncodedString(),
            "certificate": Data(caDER.serializedBytes).base64EncodedString(),
            "wrapped": Data((0..<152).map { _ in UInt8.random(in: 0...255) }).base64EncodedString(),
        ]
        let withShares: [String: Any] = [
            "format": KeyBackupFile.formatName, "created": "2026-11-20T10:00:00Z", "sourceToken": "metertrust-prod",
            "mechanism": "CKM_AES_KEY_WRAP_PAD", "keys": [wrappedKey],
            "shares": try JSONSerialization.jsonObject(with: JSONEncoder().encode(shares)),
        ]
        try write("FuzzBackupFile", "one-key-2-of-3.json", try KeyBackupFile.parse(Array(JSONSerialization.data(withJSONObject: withShares))).bytes)

        let threeOfThree = try SecretShares(secret: (0..<32).map { _ in UInt8.random(in: 0...255) }, purpose: .backupKey, threshold: 3, custodians: custodians)
        var secondKey = wrappedKey
        secondKey["ca"] = "fuzz-root"
        secondKey["role"] = "root"
        secondKey["label"] = "metertrust/root/fuzz-root"
        secondKey["id"] = "0badc0de"
        var twoKeys = withShares
        twoKeys["keys"] = [wrappedKey, secondKey]
        twoKeys["shares"] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(threeOfThree))
        try write("FuzzBackupFile", "two-keys-3-of-3.json", try KeyBackupFile.parse(Array(JSONSerialization.data(withJSONObject: twoKeys))).bytes)

        // Audit entries and checkpoints, from a log signed with the fixture audit key.
        let log = AuditLog(store: store, signer: SoftwareCheckpointSigner(), origin: FuzzFixture.auditOrigin, checkpointInterval: 2)
        let events = [
            AuditEvent(actor: "alice", action: "ca.create", subject: "admin/a2", details: ["request": requests[0].id, "curve": "P-256"]),
            AuditEvent(actor: "factory", action: "batch.issue", subject: "fuzz-on-device", details: ["issued": "1", "refused": "0"]),
            AuditEvent(actor: "bob", action: "request.approve", subject: requests[1].id, outcome: .refused, details: ["reason": "the approval's signature does not verify"]),
            AuditEvent(actor: "carol", action: "backup.export", subject: "root,acme", outcome: .failed),
            AuditEvent(actor: "ünïcødé operator", action: "custodian.add", subject: "custodian-2", details: [:]),
            AuditEvent(actor: "dave", action: "policy.set", subject: "ca-key-create", details: ["required": "2", "roles": "pki-officer"]),
        ]
        for event in events { _ = try await log.record(event) }
        for row in try await store.auditEntries(after: -1, limit: 100).suffix(6) {
            try write("FuzzAuditEntry", "entry-\(row.position).json", row.entry)
        }
        for row in try await store.auditCheckpoints() {
            try write("FuzzCheckpoint", "size-\(row.size).txt", Array(row.note.utf8))
        }
    }

    // MARK: Helpers

    static func token(_ work: URL) throws -> HSMToken {
        let tokens = work.appendingPathComponent("tokens")
        try FileManager.default.createDirectory(at: tokens, withIntermediateDirectories: true)
        let conf = work.appendingPathComponent("softhsm2.conf")
        try "directories.tokendir = \(tokens.path)\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
            .write(to: conf, atomically: true, encoding: .utf8)
        setenv("SOFTHSM2_CONF", conf.path, 1)
        let pin = UUID().uuidString
        let modulePath = ProcessInfo.processInfo.environment["METERTRUST_HSM_MODULE"] ?? HSMConfiguration.defaultModulePath
        try PKCS11Module.load(path: modulePath).initializeToken(label: "fuzz-seeds", securityOfficerPIN: Array("so-\(pin)".utf8), userPIN: Array(pin.utf8))
        let pinFile = work.appendingPathComponent("pin").path
        _ = FileManager.default.createFile(atPath: pinFile, contents: Data(pin.utf8), attributes: [.posixPermissions: 0o600])
        return try HSMToken.open(HSMConfiguration(modulePath: modulePath, tokenLabel: "fuzz-seeds", pinEnvironmentVariable: nil, pinFile: pinFile, sessionCount: 2))
    }

    /// A batch directory with its manifest (and CSR list); the manifest's path.
    static func manifest(
        _ work: URL, batch: String, meters: [String: Any], keyGeneration: String, csrLines: String?, parameters: [String: String]
    ) throws -> String {
        let directory = work.appendingPathComponent(batch)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var manifest: [String: Any] = [
            "format": "metertrust-batch", "version": 1, "batch": batch, "manufacturer": "acme", "deviceType": FuzzFixture.deviceType,
            "firmware": ["sha256": FuzzFixture.imageSHA256, "name": "fuzz-1.0.0"], "bootstrapServerURI": "coaps+tcp://bootstrap.example.net:5684",
            "meters": meters, "keyGeneration": keyGeneration, "parameters": parameters,
        ]
        if let csrLines {
            try Data(csrLines.utf8).write(to: directory.appendingPathComponent("csrs.txt"))
            manifest["csrs"] = "csrs.txt"
        }
        let path = directory.appendingPathComponent("batch.json")
        try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]).write(to: path)
        return path.path
    }

    /// A CSR signed by `key` with the given subject and requested extensions (as the tests' PKIFixture makes them).
    static func csr(key: P256.Signing.PrivateKey, subject: DistinguishedName = DistinguishedName(), extensions: [Certificate.Extension]) throws -> [UInt8] {
        let attributes: CertificateSigningRequest.Attributes = extensions.isEmpty
            ? CertificateSigningRequest.Attributes()
            : CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: try Certificate.Extensions(extensions)))])
        let request = try CertificateSigningRequest(
            version: .v1, subject: subject, privateKey: Certificate.PrivateKey(key), attributes: attributes, signatureAlgorithm: .ecdsaWithSHA256)
        var serializer = DER.Serializer()
        try serializer.serialize(request)
        return serializer.serializedBytes
    }

    static func hardwareModuleNameSAN(_ eui64: EUI64, type: ASN1ObjectIdentifier) throws -> Certificate.Extension {
        let name = HardwareModuleName(hardwareType: type, serialNumber: eui64.bytes)
        let otherName = GeneralName.OtherName(typeID: HardwareModuleName.otherNameTypeID, value: try ASN1Any(erasing: name))
        return try Certificate.Extension(SubjectAlternativeNames([.otherName(otherName)]), critical: true)
    }

    /// A self-signed certificate for a custodian's key (the seeds need a certificate, not a CA).
    static func selfSigned(name: String, key: P256.Signing.PrivateKey) throws -> Certificate {
        let subject = try DistinguishedName { CommonName(name) }
        let now = Date()
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey), notValidBefore: now,
            notValidAfter: now.addingTimeInterval(86_400 * 365), issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { KeyUsage(digitalSignature: true) }, issuerPrivateKey: .init(key))
    }
}

/// The checkpoint signer with the fixture audit key, in software (the HSM holds the audit key in production).
struct SoftwareCheckpointSigner: CheckpointSigner {
    var keyName: String { FuzzFixture.auditKeyName }
    var publicKey: P256.Signing.PublicKey { FuzzFixture.auditKey.publicKey }
    func sign(_ message: [UInt8]) throws -> [UInt8] { Array(try FuzzFixture.auditKey.signature(for: message).derRepresentation) }
}

struct SeedError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
