import Crypto
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore
import SwiftASN1
import Testing
import X509

@Suite("PKI building blocks")
struct PKIBuildingBlockTests {
    @Test("key identifier by RFC 5280 method 2 matches an independent computation")
    func keyIdentifierMethod2() throws {
        // Vector: the P-256 base point G, uncompressed (SEC 2 v2 §2.4.2, FIPS 186-4 §D.1.2.3); expected value computed
        // with Python hashlib, sha1(G)[-8:] with the top four bits replaced by 0100 (RFC 5280 §4.2.1.2 method 2):
        //   python3 -c 'import hashlib;g=bytes.fromhex("046b17d1…37bf51f5");d=bytearray(hashlib.sha1(g).digest()[-8:]);d[0]=0x40|d[0]&15;print(d.hex())'
        let g = hexBytes(
            "04" + "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
                + "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
        )!
        #expect(hexString(KeyIdentifier.method2(subjectPublicKey: g)) == "408a9c9e5efda0e1")
    }

    @Test("EUI-64 parses 16 hex digits, with or without separators, and prints lowercase")
    func eui64() throws {
        #expect(try EUI64("0024BEFFFE804FF1").description == "0024befffe804ff1")
        #expect(try EUI64("00-24-be-ff-fe-80-4f-f1") == EUI64(0x0024_BEFF_FE80_4FF1))
        #expect(EUI64(0x0024_BEFF_FE80_4FF1).deviceURN == "urn:dev:mac:0024befffe804ff1")
    }

    @Test("malformed EUI-64s are refused as invalid arguments", arguments: ["", "0024befffe804ff", "0024befffe804ff1aa", "0024befffe804fg1", "0024befffe804ff1 "])
    func rejectMalformedEUI64(_ bad: String) throws {
        let error = #expect(throws: CoreError.self) { try EUI64(bad) }
        #expect(error?.errorCode == .invalidArgument, "\(error?.errorCode.rawValue ?? "no error"): \(error?.message ?? "")")
    }

    @Test("HardwareModuleName round-trips through DER")
    func hardwareModuleNameRoundTrip() throws {
        let name = HardwareModuleName(hardwareType: [2, 999, 2, 1], serialNumber: EUI64(0x0024_BEFF_FE80_4FF1).bytes)
        var serializer = DER.Serializer()
        try serializer.serialize(name)
        // SEQUENCE { OID 2.999.2.1 (06 04 8837 02 01), OCTET STRING 0024befffe804ff1 } (RFC 4108 §5 HardwareModuleName),
        // encoded by hand (X.690 §8.19: 2.999 → 2*40+999 = 1079 = 0x8837 base 128); decoded independently with
        //   echo 301006048837020104080024befffe804ff1 | xxd -r -p | openssl asn1parse -inform DER -i
        // → SEQUENCE { OBJECT :2.999.2.1, OCTET STRING [HEX DUMP]:0024BEFFFE804FF1 }
        #expect(hexString(serializer.serializedBytes) == "3010" + "060488370201" + "0408" + "0024befffe804ff1")
        #expect(try HardwareModuleName(derEncoded: serializer.serializedBytes) == name)
    }

    @Test("OIDs under 2 with a large second arc print correctly")
    func dottedOID() {
        let oid: ASN1ObjectIdentifier = [2, 999, 1, 2]
        #expect(oid.dotted == "2.999.1.2")
        #expect(ASN1ObjectIdentifier.AlgorithmIdentifier.idEcPublicKey.dotted == "1.2.840.10045.2.1")
    }

    @Test("certificatePolicies round-trips through DER")
    func certificatePoliciesRoundTrip() throws {
        var serializer = DER.Serializer()
        try serializer.serialize(CertificatePolicies([[2, 999, 1, 1]]))
        #expect(try CertificatePolicies(derEncoded: serializer.serializedBytes).policies == [[2, 999, 1, 1]])
    }
}


@Suite("CA hierarchy and issuance on SoftHSM2 and SQLite")
struct IssuanceTests {
    @Test("CA certificates follow PROFILES.md")
    func authorityProfiles() async throws {
        let pki = try await PKIFixture.make()
        let root = pki.root.certificate
        #expect(root.issuer == root.subject)
        #expect(try root.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: nil))
        #expect(root.extensions[oid: .X509ExtensionID.basicConstraints]?.critical == true)
        #expect(try root.extensions.keyUsage == KeyUsage(keyCertSign: true, cRLSign: true))
        #expect(root.extensions[oid: .X509ExtensionID.keyUsage]?.critical == true)
        #expect(root.extensions[oid: .X509ExtensionID.authorityKeyIdentifier] == nil)
        #expect(try root.extensions.subjectKeyIdentifier?.keyIdentifier.count == 8)
        #expect(root.extensions[oid: CertificatePolicies.oid]?.critical == true)
        #expect(years(root) == 25)
        #expect(root.serialNumber.bytes.count == 16 && root.serialNumber.bytes.first! < 0x80)

        for (authority, profileYears) in [(pki.manufacturer, 15), (pki.operational, 10), (pki.admin, 10)] {
            let certificate = authority.certificate
            #expect(certificate.issuer == root.subject)
            #expect(try certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
            #expect(try certificate.extensions.authorityKeyIdentifier?.keyIdentifier == root.extensions.subjectKeyIdentifier?.keyIdentifier)
            #expect(years(certificate) == profileYears)
            #expect(pki.root.certificate.publicKey.isValidSignature(certificate.signature, for: certificate))
        }
        #expect(pki.operational.certificate.extensions[oid: CRLDistributionPoints.oid] != nil)
        #expect(pki.manufacturer.certificate.extensions[oid: CRLDistributionPoints.oid] == nil)
        #expect(pki.manufacturer.certificate.subject.description == "CN=acme Device CA,O=Acme Meters")
        #expect(pki.manufacturer.chain == [pki.manufacturer.certificate, root])
        // The CA's key is the HSM's, unreadable.
        #expect(throws: HSMError.self) { try pki.token.readPrivateValue(of: pki.manufacturer.signingKey.key) }
    }

    @Test("a second root and a duplicate CA name are refused")
    func rejectSecondRootAndDuplicateName() async throws {
        let pki = try await PKIFixture.make()
        let secondRoot = await #expect(throws: PKIError.self) { try await pki.hierarchy.createRoot(name: "other", organization: "X") }
        #expect(secondRoot?.code == .authorityExists)
        let duplicate = await #expect(throws: PKIError.self) {
            try await pki.hierarchy.createAuthority(role: .operational, name: "acme")
        }
        #expect(duplicate?.code == .authorityExists)
        let badName = await #expect(throws: PKIError.self) {
            try await pki.hierarchy.createAuthority(role: .manufacturer, name: "bad name/with slash")
        }
        #expect(badName?.code == .invalidArgument)
    }

    @Test("CAs load back from store and HSM after a restart")
    func reloadAuthority() async throws {
        let pki = try await PKIFixture.make()
        let reloaded = try await CAHierarchy(token: pki.token, store: pki.store, settings: PKISettings()).authority(named: "acme")
        #expect(reloaded.certificate == pki.manufacturer.certificate)
        #expect(reloaded.signingKey.key == pki.manufacturer.signingKey.key)
        #expect(reloaded.chain.count == 2)
    }

    @Test("a device identity certificate follows the GB SMKI-style profile and is stored before it is returned")
    func deviceIdentity() async throws {
        let pki = try await PKIFixture.make()
        let meter = MeterIdentity(eui64: EUI64(0x0024_BEFF_FE80_4FF1))
        let issued = try await pki.issuer.issue(
            IssuanceRequest(csr: try meter.certificateSigningRequestDER(hardwareType: PKIFixture.deviceType), profile: "device-identity")
        )
        let certificate = issued.certificate
        #expect(certificate.subject == DistinguishedName())
        #expect(certificate.publicKey == Certificate.PublicKey(meter.privateKey.publicKey))
        let san = try #require(certificate.extensions[oid: .X509ExtensionID.subjectAlternativeName])
        #expect(san.critical)
        #expect(try Array(#require(try certificate.extensions.subjectAlternativeNames)).count == 1)
        let name = try #require(try certificate.hardwareModuleName)
        #expect(name.serialNumber == meter.eui64.bytes)
        #expect(name.hardwareType == PKIFixture.deviceType)
        #expect(try certificate.extensions.keyUsage == KeyUsage(digitalSignature: true))
        #expect(certificate.extensions[oid: .X509ExtensionID.keyUsage]?.critical == true)
        #expect(certificate.extensions[oid: .X509ExtensionID.basicConstraints] == nil)
        #expect(certificate.notValidAfter == Date(timeIntervalSince1970: 253_402_300_799))
        #expect(try certificate.extensions.subjectKeyIdentifier?.keyIdentifier.count == 8)
        #expect(try certificate.extensions.authorityKeyIdentifier?.keyIdentifier == pki.manufacturer.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        #expect(certificate.serialNumber.bytes.count == 16 && certificate.serialNumber.bytes[0] < 0x80)
        #expect(pki.manufacturer.certificate.publicKey.isValidSignature(certificate.signature, for: certificate))
        let stored = try #require(try await pki.store.certificate(issuer: "acme", serial: issued.record.serial))
        #expect(stored.der == (try certificate.derBytes))
        #expect(stored.eui64 == "0024befffe804ff1")
    }

    @Test("a meter may ask for keyAgreement instead of digitalSignature, and never both")
    func keyAgreementDevice() async throws {
        let pki = try await PKIFixture.make()
        let meter = MeterIdentity(eui64: EUI64(0x0024_BEFF_FE80_0002))
        let issued = try await pki.issuer.issue(
            IssuanceRequest(csr: try meter.certificateSigningRequestDER(hardwareType: PKIFixture.deviceType, keyAgreement: true), profile: "device-identity")
        )
        #expect(try issued.certificate.extensions.keyUsage == KeyUsage(keyAgreement: true))
    }

    @Test("an openssl-made CSR with an empty subject is issued for the EUI-64 given on the request")
    func opensslCSR() async throws {
        let pki = try await PKIFixture.make()
        let directory = TestEnvironment.temporaryDirectory()
        let key = directory.appendingPathComponent("key.pem").path
        let csr = directory.appendingPathComponent("csr.pem").path
        try #require(try TestEnvironment.run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]).status == 0)
        try #require(try TestEnvironment.run("openssl", ["req", "-new", "-key", key, "-subj", "/", "-out", csr]).status == 0)
        let issued = try await pki.issuer.issue(
            IssuanceRequest(csr: Array(try Data(contentsOf: URL(fileURLWithPath: csr))), profile: "device-identity", eui64: EUI64(7))
        )
        #expect(try issued.certificate.hardwareModuleName?.serialNumber == EUI64(7).bytes)
    }

    @Test("a device operational certificate carries the device URN, clientAuth, its shard's CRL DP and OCSP; the CA's certificate its issuer's whole CRL")
    func deviceOperational() async throws {
        let pki = try await PKIFixture.make()
        let meter = MeterIdentity(eui64: EUI64(0x0024_BEFF_FE80_0003))
        let issued = try await pki.issuer.issue(
            IssuanceRequest(csr: try meter.certificateSigningRequestDER(hardwareType: PKIFixture.deviceType), profile: "device-operational", authority: "north")
        )
        #expect(issued.certificate.subject.description == "CN=urn:dev:mac:0024befffe800003")
        #expect(try issued.certificate.extensions.extendedKeyUsage == ExtendedKeyUsage([.clientAuth]))
        func distributionPoints(_ certificate: Certificate) throws -> [String] {
            try CRLDistributionPoints(derEncoded: try #require(certificate.extensions[oid: CRLDistributionPoints.oid]).value).uris
        }
        // The shard the store filed it under, which is the one its serial gives under north's count.
        let shard = pki.operational.shardCount.shard(ofSerial: issued.certificate.serialNumber.bytes)
        #expect(issued.record.shard == shard)
        #expect(try distributionPoints(issued.certificate) == ["http://crl.metertrust.example/north/\(shard).crl"])
        #expect(try distributionPoints(pki.operational.certificate) == ["http://crl.metertrust.example/test-root.crl"])
        let access = try #require(try issued.certificate.extensions.authorityInformationAccess)
        #expect(access.map { "\($0.location)" }.contains { $0.contains("http://ocsp.metertrust.example/") }, "\(access)")
        #expect(years(issued.certificate) == 2)
    }

    /// Each refusal: a name, the request, the error code expected.
    static let refusals: [(String, @Sendable () throws -> IssuanceRequest, PKIError.Code)] = [
        ("bad signature", {
            var der = try MeterIdentity(eui64: EUI64(1)).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)
            der[der.count - 1] ^= 0x01
            return IssuanceRequest(csr: der, profile: "device-identity")
        }, .badSignature),
        ("CA certificate", {
            let csr = try PKIFixture.csr(extensions: [
                try PKIFixture.hardwareModuleNameSAN(EUI64(1)),
                try Certificate.Extension(.isCertificateAuthority(maxPathLength: nil), critical: true),
            ])
            return IssuanceRequest(csr: csr, profile: "device-identity")
        }, .requestExceedsProfile),
        ("extra SAN", {
            let csr = try PKIFixture.csr(extensions: [try PKIFixture.hardwareModuleNameSAN(EUI64(1), extra: [.dnsName("meter.example")])])
            return IssuanceRequest(csr: csr, profile: "device-identity")
        }, .requestExceedsProfile),
        ("SAN without HardwareModuleName", {
            let csr = try PKIFixture.csr(extensions: [try Certificate.Extension(SubjectAlternativeNames([.dnsName("x.example")]), critical: false)])
            return IssuanceRequest(csr: csr, profile: "device-identity", eui64: EUI64(1))
        }, .requestExceedsProfile),
        ("both key usages", {
            let csr = try PKIFixture.csr(extensions: [
                try PKIFixture.hardwareModuleNameSAN(EUI64(1)),
                try Certificate.Extension(KeyUsage(digitalSignature: true, keyAgreement: true), critical: true),
            ])
            return IssuanceRequest(csr: csr, profile: "device-identity")
        }, .requestExceedsProfile),
        ("keyCertSign", {
            let csr = try PKIFixture.csr(extensions: [try Certificate.Extension(KeyUsage(keyCertSign: true), critical: true)])
            return IssuanceRequest(csr: csr, profile: "device-identity", eui64: EUI64(1))
        }, .requestExceedsProfile),
        ("extended key usage", {
            let csr = try PKIFixture.csr(extensions: [try Certificate.Extension(try ExtendedKeyUsage([.serverAuth]), critical: false)])
            return IssuanceRequest(csr: csr, profile: "device-identity", eui64: EUI64(1))
        }, .requestExceedsProfile),
        ("other extension", {
            let csr = try PKIFixture.csr(extensions: [
                Certificate.Extension(oid: [1, 3, 6, 1, 4, 1, 11129, 2, 4, 3], critical: false, value: [0x05, 0x00]),
            ])
            return IssuanceRequest(csr: csr, profile: "device-identity", eui64: EUI64(1))
        }, .requestExceedsProfile),
        ("subject naming something else", {
            let csr = try PKIFixture.csr(subject: try DistinguishedName { CommonName("www.example.com") }, extensions: [])
            return IssuanceRequest(csr: csr, profile: "device-identity", eui64: EUI64(1))
        }, .requestExceedsProfile),
        ("HardwareModuleName naming another meter", {
            let csr = try MeterIdentity(eui64: EUI64(2)).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)
            return IssuanceRequest(csr: csr, profile: "device-identity", eui64: EUI64(1))
        }, .requestExceedsProfile),
        ("subject naming another meter than the SAN", {
            let csr = try PKIFixture.csr(
                subject: try DistinguishedName { CommonName("urn:dev:mac:0000000000000002") },
                extensions: [try PKIFixture.hardwareModuleNameSAN(EUI64(1))]
            )
            return IssuanceRequest(csr: csr, profile: "device-identity")
        }, .requestExceedsProfile),
        ("another device type", {
            let csr = try PKIFixture.csr(extensions: [try PKIFixture.hardwareModuleNameSAN(EUI64(1), type: [2, 999, 2, 99])])
            return IssuanceRequest(csr: csr, profile: "device-identity")
        }, .requestExceedsProfile),
        ("no EUI-64 anywhere", {
            IssuanceRequest(csr: try PKIFixture.csr(extensions: []), profile: "device-identity")
        }, .invalidArgument),
        ("RSA-1024 key", { IssuanceRequest(csr: try opensslCSR(keyArguments: ["-newkey", "rsa:1024"]), profile: "device-identity", eui64: EUI64(1)) }, .keyNotAllowed),
        ("P-192 key", { IssuanceRequest(csr: try opensslCSR(curve: "prime192v1"), profile: "device-identity", eui64: EUI64(1)) }, .keyNotAllowed),
        ("P-384 key for a device", { IssuanceRequest(csr: try opensslCSR(curve: "secp384r1"), profile: "device-identity", eui64: EUI64(1)) }, .keyNotAllowed),
        ("random bytes", { IssuanceRequest(csr: (0..<300).map { _ in UInt8.random(in: 0...255) }, profile: "device-identity", eui64: EUI64(1)) }, .malformedRequest),
        ("truncated CSR", {
            let der = try MeterIdentity(eui64: EUI64(1)).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType)
            return IssuanceRequest(csr: Array(der.prefix(der.count / 2)), profile: "device-identity")
        }, .malformedRequest),
        ("PEM of a certificate, not a request", {
            IssuanceRequest(csr: Array("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n".utf8), profile: "device-identity")
        }, .malformedRequest),
        ("oversized input", { IssuanceRequest(csr: [UInt8](repeating: 0x30, count: 100_000), profile: "device-identity") }, .malformedRequest),
        ("unknown profile", {
            IssuanceRequest(csr: try MeterIdentity(eui64: EUI64(1)).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType), profile: "super-ca")
        }, .unknownProfile),
        ("wrong CA role for the profile", {
            IssuanceRequest(
                csr: try MeterIdentity(eui64: EUI64(1)).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType),
                profile: "device-identity", authority: "north"
            )
        }, .invalidArgument),
    ]

    /// One row of ``refusals``, named in the test report.
    struct RefusedRequest: Sendable, CustomTestStringConvertible {
        let testDescription: String
        let makeRequest: @Sendable () throws -> IssuanceRequest
        let code: PKIError.Code
    }

    static let refusedRequests = refusals.map { RefusedRequest(testDescription: $0.0, makeRequest: $0.1, code: $0.2) }

    @Test("requests for more than the profile allows, bad keys and bad input are refused with their code and nothing is stored", arguments: IssuanceTests.refusedRequests)
    func rejectBadRequest(_ refused: RefusedRequest) async throws {
        let pki = try await PKIFixture.make()
        let before = try await pki.store.certificateCount(issuer: nil)
        let request = try refused.makeRequest()
        let error = await #expect(throws: PKIError.self) { try await pki.issuer.issue(request) }
        #expect(error?.code == refused.code, "\(error?.code.description ?? "no error"): \(error?.message ?? "")")
        // The message is shown to an operator on one line.
        #expect(error.map { !$0.message.isEmpty && !$0.message.contains("\n") } == true)
        #expect(try await pki.store.certificateCount(issuer: nil) == before)
    }

    @Test("refusals name what was offered: RSA-1024 and P-192")
    func rejectWeakKeysByName() async throws {
        let pki = try await PKIFixture.make()
        let rsa = await #expect(throws: PKIError.self) {
            try await pki.issuer.issue(IssuanceRequest(csr: try Self.opensslCSR(keyArguments: ["-newkey", "rsa:1024"]), profile: "device-identity", eui64: EUI64(1)))
        }
        #expect(rsa?.message.contains("RSA-1024") == true)
        let p192 = await #expect(throws: PKIError.self) {
            try await pki.issuer.issue(IssuanceRequest(csr: try Self.opensslCSR(curve: "prime192v1"), profile: "device-identity", eui64: EUI64(1)))
        }
        #expect(p192?.message.contains("P-192") == true)
    }

    /// A CSR made by openssl with an empty subject.
    static func opensslCSR(curve: String? = nil, keyArguments: [String] = []) throws -> [UInt8] {
        let directory = TestEnvironment.temporaryDirectory()
        let key = directory.appendingPathComponent("key.pem").path
        let csr = directory.appendingPathComponent("csr.der").path
        var arguments = ["req", "-new", "-subj", "/", "-outform", "DER", "-out", csr]
        if let curve {
            let made = try TestEnvironment.run("openssl", ["ecparam", "-name", curve, "-genkey", "-noout", "-out", key])
            guard made.status == 0 else { throw PKIError(.invalidArgument, made.stderr) }
            arguments += ["-key", key]
        } else {
            arguments += keyArguments + ["-nodes", "-keyout", key]
        }
        let result = try TestEnvironment.run("openssl", arguments)
        guard result.status == 0 else { throw PKIError(.invalidArgument, "openssl req failed: \(result.stderr)") }
        return Array(try Data(contentsOf: URL(fileURLWithPath: csr)))
    }
}

func years(_ certificate: Certificate) -> Int {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar.dateComponents([.year], from: certificate.notValidBefore, to: certificate.notValidAfter).year ?? -1
}
