import Crypto
import Dispatch
import Foundation
import MeterTrustCore
@testable import MeterTrustFactory
@testable import MeterTrustPKI
import MeterTrustDevice
import MeterTrustStore
import SwiftASN1
import Synchronization
import Testing
import X509

/// The factory's hot path (octet-level CSR reader, certificate templates, hand-written DER) against the model path
/// it shortcuts (swift-certificates) and against independent verifiers.
@Suite("Issuance hot path agrees with the model path")
struct IssuanceHotPathTests {
    static let meter = EUI64(0x0024_BEFF_FE80_4FF1)

    /// The request shapes a factory line makes, each with what the full check reads from it.
    static func factoryShapes(key: P256.Signing.PrivateKey) throws -> [(name: String, der: [UInt8])] {
        let urn = try DistinguishedName { CommonName(meter.deviceURN) }
        let san = try PKIFixture.hardwareModuleNameSAN(meter)
        return [
            ("empty subject, HardwareModuleName", try PKIFixture.csr(key: key, extensions: [san])),
            ("device URN subject, no extensions", try PKIFixture.csr(key: key, subject: urn, extensions: [])),
            ("device URN subject and HardwareModuleName", try PKIFixture.csr(key: key, subject: urn, extensions: [san])),
            ("keyAgreement", try PKIFixture.csr(key: key, extensions: [san, try .init(KeyUsage(keyAgreement: true), critical: true)])),
            ("digitalSignature", try PKIFixture.csr(key: key, extensions: [san, try .init(KeyUsage(digitalSignature: true), critical: false)])),
            ("basicConstraints cA FALSE", try PKIFixture.csr(key: key, extensions: [try .init(BasicConstraints.notCertificateAuthority, critical: true), san])),
            ("no attributes at all", try PKIFixture.csr(key: key, extensions: [])),
            ("the meter simulator's own CSR", try MeterIdentity(eui64: meter, privateKey: key).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)),
        ]
    }

    /// The fast reader and the full check read the same things from `der`.
    static func expectAgreement(_ fast: DeviceRequest, _ der: [UInt8], _ name: String) throws {
        let full = try CSRCheck.validate(der: der, profile: .deviceIdentity)
        #expect(fast.claimedEUI64 == full.claimedEUI64, "\(name)")
        #expect(fast.subjectKeyIdentifier == full.subjectKeyIdentifier, "\(name)")
        #expect(Array(fast.point) == Array(try #require(P256.Signing.PublicKey(full.publicKey)).x963Representation), "\(name)")
        let fullUsage: DeviceRequest.Usage? = full.requestedKeyUsage.map { $0.keyAgreement ? .keyAgreement : .digitalSignature }
        #expect(fast.requestedKeyUsage == fullUsage, "\(name)")
        var typeDER: [UInt8]? = nil
        if let type = full.claimedHardwareType {
            var serializer = DER.Serializer()
            try serializer.serialize(type)
            typeDER = Array(serializer.serializedBytes.dropFirst(2))
        }
        #expect(fast.claimedHardwareType.map(Array.init) == typeDER, "\(name)")
    }

    @Test("every factory request shape takes the octet-level reader, which reads what the full check reads")
    func factoryShapesTakeTheFastReader() throws {
        for (name, der) in try Self.factoryShapes(key: P256.Signing.PrivateKey()) {
            let fast = try #require(DeviceRequest.read(der, profile: .deviceIdentity), "\(name) should take the fast reader")
            try Self.expectAgreement(fast, der, name)
            #expect(DeviceRequest.verifiesProofOfPossession(der), "\(name)")
        }
    }

    @Test("other shapes and failing requests are left to the full check")
    func otherShapesFallBack() throws {
        let key = P256.Signing.PrivateKey()
        let san = try PKIFixture.hardwareModuleNameSAN(Self.meter)
        let otherMeterSubject = try DistinguishedName { CommonName(EUI64(7).deviceURN) }
        let shapes: [(String, [UInt8])] = [
            ("extendedKeyUsage requested", try PKIFixture.csr(key: key, extensions: [san, try .init(ExtendedKeyUsage([.clientAuth]), critical: false)])),
            ("P-384 key", try {
                let key = P384.Signing.PrivateKey()
                let request = try CertificateSigningRequest(
                    version: .v1, subject: DistinguishedName(), privateKey: .init(key), attributes: .init(), signatureAlgorithm: .ecdsaWithSHA384)
                var serializer = DER.Serializer()
                try serializer.serialize(request)
                return serializer.serializedBytes
            }()),
            ("organisation in the subject", try PKIFixture.csr(key: key, subject: try DistinguishedName { OrganizationName("Acme") }, extensions: [san])),
            ("subject and HardwareModuleName name different meters", try PKIFixture.csr(key: key, subject: otherMeterSubject, extensions: [san])),
            ("both key usages", try PKIFixture.csr(key: key, extensions: [san, try .init(KeyUsage(digitalSignature: true, keyAgreement: true), critical: true)])),
            ("two names in the SAN", try PKIFixture.csr(key: key, extensions: [try PKIFixture.hardwareModuleNameSAN(Self.meter, extra: [.dnsName("m.example")])])),
        ]
        for (name, der) in shapes {
            #expect(DeviceRequest.read(der, profile: .deviceIdentity) == nil, "\(name)")
        }
        // A request whose signature does not verify: both refuse (the full check with its message).
        var forged = try PKIFixture.csr(key: key, extensions: [san])
        forged[forged.count - 5] ^= 0x01
        #expect(DeviceRequest.read(forged, profile: .deviceIdentity) == nil)
        #expect(!DeviceRequest.verifiesProofOfPossession(forged))
        #expect(throws: PKIError.self) { try CSRCheck.validate(der: forged, profile: .deviceIdentity) }
        // Not a device profile: never.
        #expect(DeviceRequest.read(try PKIFixture.csr(key: key, extensions: []), profile: .custodian) == nil)
    }

    @Test("whatever the octet-level reader accepts among 6,000 mutated requests, the full check accepts with the same reading")
    func mutatedRequestsNeverWidenTheFastReader() throws {
        let key = P256.Signing.PrivateKey()
        let bases = try Self.factoryShapes(key: key).map(\.der)
        var acceptedByFast = 0
        for (index, base) in bases.prefix(3).enumerated() {
            for mutated in ParserRobustnessTests.mutations(of: base, count: 2000, seed: 0xFA57 + UInt64(index)) {
                guard let fast = DeviceRequest.read(mutated, profile: .deviceIdentity) else { continue }
                acceptedByFast += 1
                try Self.expectAgreement(fast, mutated, "mutation of shape \(index)")
            }
        }
        // Most mutations break the signature; a few touch nothing signed (e.g. flip a bit the DER ignores nowhere).
        #expect(acceptedByFast < 600)
    }

    @Test("serials: 16 octets, positive without a sign octet, issuance time first, 80 random bits, never repeated")
    func serials() throws {
        let before = UInt64(Date().timeIntervalSince1970 * 1000)
        let serials = (0..<10_000).map { _ in SerialNumbers.randomBytes() }
        let after = UInt64(Date().timeIntervalSince1970 * 1000)
        #expect(Set(serials).count == serials.count)
        #expect(Set(serials.map { $0.suffix(10) }).count == serials.count)
        for serial in serials {
            #expect(serial.count == 16 && (0x01...0x7F).contains(serial[0]))
            let milliseconds = serial.prefix(6).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect((before...after).contains(milliseconds))
        }
        // The random octets look random: every octet value turns up among 100,000 of them.
        #expect(Set(serials.flatMap { $0.suffix(10) }).count == 256)
    }

    @Test("the worker pool runs every index of every job once, and on shutdown drops the jobs not yet started")
    func workerPool() async throws {
        let pool = WorkerPool(threads: 2)
        let first = pool.submit(count: 1000) { $0 * 2 }
        let second = pool.submit(count: 10) { $0 + 1 }
        #expect(await first.values() == (0..<1000).map { $0 * 2 })
        #expect(await second.values() == Array(1...10))
        #expect(await pool.submit(count: 0) { $0 }.values() == [])

        // Both workers held inside a job; the job queued behind it must never start once the pool shuts down.
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let blocking = pool.submit(count: 2) { _ in
            held.signal()
            release.wait()
            return 0
        }
        let ran = Mutex(0)
        _ = pool.submit(count: 100) { _ in ran.withLock { $0 += 1 } }
        held.wait()
        held.wait()
        pool.shutdown()
        release.signal()
        release.signal()
        #expect(await blocking.values() == [0, 0])
        try await Task.sleep(for: .milliseconds(100))
        #expect(ran.withLock { $0 } == 0)
    }

    @Test("the CSR list's base64 and EUI-64 readers agree with Foundation and EUI64(_:)")
    func csrListDecoding() throws {
        var random = ParserRobustnessTests.SplitMix(state: 0xB64)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let encoded = Array(Data(bytes).base64EncodedString().utf8)
            if length == 0 {
                #expect(Base64.decode(encoded[...]) == nil)
            } else {
                #expect(Base64.decode(encoded[...]) == bytes)
            }
        }
        for bad in ["QQ", "QQ=", "Q===", "QQ=A", "QR==", "Q!==", "QUJD\u{0}"] {
            #expect(Base64.decode(Array(bad.utf8)[...]) == nil, "\(bad)")
        }
        #expect(EUI64(asciiHex: Array("0024BEfffe804FF1".utf8)) == Self.meter)
        for bad in ["0024befffe804ff", "0024befffe804ff1a", "0024befffe804ffg", "00:24:be:ff:fe:80:4f:f1"] {
            #expect(EUI64(asciiHex: Array(bad.utf8)) == nil, "\(bad)")
        }
        let path = TestEnvironment.temporaryDirectory().appendingPathComponent("list.txt").path
        let csr = try PKIFixture.csr(extensions: [])
        try (CSRListReader.line(eui64: Self.meter, csr: csr) + "0024BEFFFE804FF2 \(Data(csr).base64EncodedString())\n" + "00:24:be:ff:fe:80:4f:f3 \(Data(csr).base64EncodedString())\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        var reader = try CSRListReader(path: path)
        var meters: [EUI64] = []
        while let line = try reader.next() {
            guard case .request(_, let eui, let der) = line else { Issue.record("refused \(line)"); continue }
            #expect(der == csr)
            meters.append(eui)
        }
        #expect(meters == [Self.meter, EUI64(0x0024_BEFF_FE80_4FF2), EUI64(0x0024_BEFF_FE80_4FF3)])
    }

    static func templates(
        _ authority: CertificateAuthority, _ profile: CertificateProfile, _ fixture: PKIFixture, now: Date
    ) throws -> (CertificateSigner, TemplateIssuer) {
        let signer = try CertificateSigner(authority: authority, profile: profile, settings: fixture.hierarchy.settings, hardwareType: PKIFixture.deviceType)
        return (signer, try #require(try TemplateIssuer.make(signer: signer, now: now)))
    }

    @Test("a template-issued certificate is the model's, octet for octet up to its signature, and passes openssl and pkilint")
    func templateEqualsModel() async throws {
        let fixture = try await PKIFixture.make()
        let now = Date()
        let (signer, templates) = try Self.templates(fixture.manufacturer, .deviceIdentity, fixture, now: now)
        #expect(templates.isCurrent(at: now) && !templates.isCurrent(at: now.addingTimeInterval(1)))
        let directory = TestEnvironment.temporaryDirectory()
        for (name, der) in try Self.factoryShapes(key: P256.Signing.PrivateKey()) {
            let record = try templates.signUnstored(csr: der, for: Self.meter, batch: "b", position: 7)
            let certificate = try Certificate(derEncoded: record.der)
            // The model path with the same request, time and serial builds the same TBSCertificate.
            let (model, _) = try signer.certificate(
                try CSRCheck.validate(der: der, profile: .deviceIdentity), for: Self.meter, now: now, serialNumber: certificate.serialNumber)
            #expect(certificate.tbsCertificateBytes == model.tbsCertificateBytes, "\(name)")
            #expect(certificate.signatureAlgorithm == model.signatureAlgorithm, "\(name)")
            #expect(fixture.manufacturer.certificate.publicKey.isValidSignature(certificate.signature, for: certificate), "\(name)")
            // The record says what the certificate says.
            #expect(record.serial == certificate.serialHex && record.fingerprintSHA256 == hexString(SHA256.hash(data: record.der)))
            #expect(record.subject == certificate.subject.description && record.eui64 == Self.meter.description)
            #expect(record.notBefore == certificate.notValidBefore && record.notAfter == certificate.notValidAfter)
            #expect(record.issuer == "acme" && record.profile == "device-identity" && record.batch == "b" && record.batchPosition == 7)
            #expect(record.serial.count == 32 && SerialNumbers.length == 16)
            // The key's digest, from the request's point on this path, is the one of the key the certificate carries.
            #expect(try record.subjectKeyDigest == SubjectKeyDigest.of(certificate: record.der))

            let path = directory.appendingPathComponent("device.pem").path
            try certificate.pem.write(toFile: path, atomically: true, encoding: .utf8)
            let root = directory.appendingPathComponent("root.pem").path
            let acme = directory.appendingPathComponent("acme.pem").path
            try fixture.root.certificate.pem.write(toFile: root, atomically: true, encoding: .utf8)
            try fixture.manufacturer.certificate.pem.write(toFile: acme, atomically: true, encoding: .utf8)
            let verified = try TestEnvironment.run("openssl", ["verify", "-CAfile", root, "-untrusted", acme, path])
            #expect(verified.status == 0, "\(name): \(verified.stdout) \(verified.stderr)")
            // pkilint is the independent verifier here: without the virtualenv the test fails, it does not skip.
            try #require(
                FileManager.default.isExecutableFile(atPath: TestEnvironment.python),
                "no Python virtualenv at \(TestEnvironment.python): run `make venv` (pkilint checks these certificates)"
            )
            let lint = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("pkilint_run.py"), "lint_pkix_cert", "lint", "-s", "WARNING", path])
            #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(name): \(lint.stdout) \(lint.stderr)")
        }
        // Refusals come from the model path, with its messages.
        let otherMeter = try PKIFixture.csr(extensions: [try PKIFixture.hardwareModuleNameSAN(EUI64(9))])
        #expect {
            try templates.signUnstored(csr: otherMeter, for: Self.meter)
        } throws: { error in
            (error as? PKIError)?.message.contains("claims EUI-64 0000000000000009 but the request is for meter 0024befffe804ff1") == true
        }
        let otherType = try PKIFixture.csr(extensions: [try PKIFixture.hardwareModuleNameSAN(Self.meter, type: [2, 999, 9])])
        #expect {
            try templates.signUnstored(csr: otherType, for: Self.meter)
        } throws: { error in
            (error as? PKIError)?.message.contains("names device type 2.999.9") == true
        }
        // A profile without templates: nil, the engine uses the signer.
        let custodian = try CertificateSigner(authority: fixture.admin, profile: .custodian, settings: fixture.hierarchy.settings)
        #expect(try TemplateIssuer.make(signer: custodian) == nil)
    }

    @Test("operational device certificates name their shard's CRL, so no template lays them out: the signer issues them, with the shard's DP")
    func operationalTemplates() async throws {
        let fixture = try await PKIFixture.make()
        let signer = try CertificateSigner(
            authority: fixture.operational, profile: .deviceOperational, settings: fixture.hierarchy.settings, hardwareType: PKIFixture.deviceType
        )
        #expect(try TemplateIssuer.make(signer: signer) == nil)
        let der = try PKIFixture.csr(extensions: [try PKIFixture.hardwareModuleNameSAN(Self.meter)])
        let (certificate, record) = try signer.signUnstored(try CSRCheck.validate(der: der, profile: .deviceOperational), for: Self.meter)
        #expect(record.subject == "CN=\(Self.meter.deviceURN)")
        let points = try #require(certificate.extensions.first { $0.oid == CRLDistributionPoints.oid })
        let uris = try CRLDistributionPoints(derEncoded: try DER.parse(Array(points.value))).uris
        #expect(uris == ["\(fixture.hierarchy.settings.crlBaseURL)\(fixture.operational.name)/\(record.shard).crl"])
        #expect(fixture.operational.certificate.publicKey.isValidSignature(certificate.signature, for: certificate))
    }
}
