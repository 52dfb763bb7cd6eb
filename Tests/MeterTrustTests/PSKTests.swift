import CPKCS11
import Crypto
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
@testable import MeterTrustHSM
@testable import MeterTrustOnboarding
import MeterTrustStore
import MeterTrustStoreSQLite
import Testing

/// Issue 15 item 2 (and the PSK parts of items 3 and 4): PSK meters without any list of secrets. Real SoftHSM2
/// tokens, real SQLite stores, the real binary, PyKCS11 on the token, openssl s_client as the meter, sqlite3 as the
/// database attacker.
@Suite("PSK: derived in the HSM, imported sealed, TLS 1.2 PSK listener")
struct PSKTests {
    // MARK: Derivation in the HSM

    @Test("a PSK is HMAC-SHA256(master, \"MeterTrust PSK v1\" || 0x00 || EUI-64), computed by the token (a master key of known value checked in software)")
    func derivationIsTheDocumentedHMAC() throws {
        let token = try TestEnvironment.openToken()
        // A test key of known value (only a test can know one: generatePSKMasterKey never lets a value out), with the
        // attributes a master key has but its value given, so software can compute the same HMAC.
        let value = (0..<32).map { UInt8($0 * 7 & 0xFF) }
        let label = "metertrust/psk-master/known-\(UUID().uuidString.prefix(8))"
        var template = KeyTemplates.pskMasterKey(label: label)
        template.insert(.bytes(CK_ATTRIBUTE_TYPE(CKA_VALUE), value), at: 2)
        template.removeAll { $0.type == CK_ATTRIBUTE_TYPE(CKA_VALUE_LEN) }
        try token.createObject(template, context: "a known test key")
        let known = try token.findSecretKey(label: label)
        for eui in [EUI64(0x0024_BEFF_FE80_4FF1), EUI64(0)] {
            let expected = HMAC<SHA256>.authenticationCode(
                for: Array("MeterTrust PSK v1".utf8) + [0x00] + eui.bytes, using: SymmetricKey(data: value)
            )
            #expect(try token.derivePSK(for: eui, master: known).bytes == Array(expected))
        }
        // A generated master key: the same meter gets the same PSK every time (no state), and its value is unreadable.
        let master = try token.generatePSKMasterKey(label: KeyLabel.unique(KeyLabel.pskMaster, "t"))
        let eui = EUI64(0x0024_BEFF_FE00_0001)
        #expect(try token.derivePSK(for: eui, master: master) == (try token.derivePSK(for: eui, master: master)))
        #expect(throws: HSMError.self) { _ = try token.attribute(CK_ATTRIBUTE_TYPE(CKA_VALUE), of: master.handle) }
        // The description never shows the value.
        let psk = try token.derivePSK(for: eui, master: master)
        #expect(!"\(psk)".contains(psk.hex) && !String(reflecting: psk).contains(psk.hex))
    }

    // MARK: Factory

    @Test("a keyMode psk batch: a master key made and recorded with the batch, each meter's PSK only in its bundle (bundles.jsonl 0600), installed by the configurator (psk.key 0600); a resumed run keeps the key")
    func pskBatch() async throws {
        let line = try await FactoryFixture.make()
        let meters = (1...3).map { EUI64(0x0024_BEFF_FE91_0000 + UInt64($0)) }
        let (configurators, csrLines) = try line.keyedMeters(meters)
        let manifestPath = try line.manifest(batch: "psk-batch", meters: meters.map(\.description), csrLines: csrLines, keyMode: "psk")
        let report = try await line.run(manifestPath)
        #expect(report.keyMode == "psk" && report.counts.issued == 3)
        let label = try #require(report.pskMasterKeyLabel)
        #expect(label.hasPrefix("metertrust/psk-master/psk-batch/"))
        #expect(try await line.pki.store.batch(id: "psk-batch")?.pskMasterKeyLabel == label)
        let master = try line.pki.token.findSecretKey(label: label)

        let out = line.output(of: manifestPath)
        let bundlesPath = out.appendingPathComponent("bundles.jsonl").path
        #expect((try FileManager.default.attributesOfItem(atPath: bundlesPath)[.posixPermissions] as? Int) == 0o600)
        var psks: [String] = []
        for (data, bundle) in try line.bundles(of: manifestPath) {
            let eui = try EUI64(bundle.eui64)
            let expected = try line.pki.token.derivePSK(for: eui, master: master)
            #expect(bundle.presharedKey == expected.hex)
            psks.append(expected.hex)
            let configurator = try #require(configurators[eui])
            _ = try await configurator.install(bundle: data)
            #expect(try configurator.presharedKey() == expected)
            let stored = line.meterDirectory(eui).appendingPathComponent("psk.key").path
            #expect((try FileManager.default.attributesOfItem(atPath: stored)[.posixPermissions] as? Int) == 0o600)
        }
        #expect(Set(psks).count == 3)
        // No PSK in any other output file, nor in the store.
        for file in try FileManager.default.contentsOfDirectory(atPath: out.path) where file != "bundles.jsonl" {
            let text = (try? String(contentsOfFile: out.appendingPathComponent(file).path, encoding: .utf8)) ?? ""
            for psk in psks { #expect(!text.contains(psk), "a PSK in \(file)") }
        }
        let storeBytes = try Data(contentsOf: URL(fileURLWithPath: line.pki.store.path))
        for psk in psks { #expect(storeBytes.range(of: Data(hexBytes(psk)!)) == nil, "a PSK in the store file") }

        // Resumed: the same master key, the same PSKs.
        let again = try await line.run(manifestPath)
        #expect(again.pskMasterKeyLabel == label && again.counts.alreadyIssued == 3)
        #expect(try line.bundles(of: manifestPath).map { $0.bundle.presharedKey } == psks)
    }

    @Test("manifests: keyMode absent is certificate (existing manifests stay valid), psk and certificate accepted, anything else refused")
    func manifestKeyMode() throws {
        func manifest(_ keyMode: String?) -> Data {
            var object: [String: Any] = [
                "format": "metertrust-batch", "version": 1, "batch": "b", "manufacturer": "acme", "firmware": ["sha256": String(repeating: "ab", count: 32)],
                "bootstrapServerURI": "coaps+tcp://bootstrap.example.net", "meters": ["start": "0024befffe000000", "count": 2], "keyGeneration": "factory",
            ]
            if let keyMode { object["keyMode"] = keyMode }
            return try! JSONSerialization.data(withJSONObject: object)
        }
        #expect(try BatchManifest.load(from: manifest(nil)).credentialMode == .certificate)
        #expect(try BatchManifest.load(from: manifest("certificate")).credentialMode == .certificate)
        #expect(try BatchManifest.load(from: manifest("psk")).credentialMode == .psk)
        #expect(throws: FactoryError.self) { _ = try BatchManifest.load(from: manifest("lwm2m-psk")) }
    }

    // MARK: HPKE receiver

    static func vector() throws -> [String: Any] {
        let url = TestEnvironment.packageRoot.appendingPathComponent("Tests/vectors/rfc9180-a3-1-base-p256-sha256-aes128gcm.json")
        return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    @Test("HPKE receiver: RFC 9180 A.3.1 (DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base): shared secret, key, nonce and the first ciphertexts")
    func hpkeVector() throws {
        let vector = try Self.vector()
        func hex(_ name: String) -> [UInt8] { hexBytes(vector[name] as? String ?? "") ?? [] }
        let recipient = try P256.KeyAgreement.PrivateKey(rawRepresentation: hex("skRm"))
        #expect(Array(recipient.publicKey.x963Representation) == hex("pkRm"))
        let receiver = HPKEBaseReceiver(recipientPublicKey: hex("pkRm")) { enc in
            let shared = try recipient.sharedSecretFromKeyAgreement(with: try P256.KeyAgreement.PublicKey(x963Representation: enc))
            return shared.withUnsafeBytes { Array($0) }
        }
        #expect(try receiver.sharedSecret(enc: hex("enc")) == hex("shared_secret"))
        let schedule = HPKEBaseReceiver.keySchedule(sharedSecret: hex("shared_secret"), info: hex("info"))
        #expect(schedule.key == hex("key") && schedule.baseNonce == hex("base_nonce"))
        let first = try #require((vector["encryptions"] as? [[String: String]])?.first)
        #expect(try receiver.open(enc: hex("enc"), info: hex("info"), aad: hexBytes(first["aad"]!)!, ciphertext: hexBytes(first["ct"]!)!) == hexBytes(first["pt"]!)!)
    }

    @Test("HPKE receiver with the DH in the HSM (CKM_ECDH1_DERIVE) opens what swift-crypto's HPKE.Sender sealed; another info, aad, recipient or a flipped bit does not open")
    func hpkeAgainstSwiftCrypto() async throws {
        let token = try TestEnvironment.openToken()
        let key = try #require(try await PSKKeys(token: token).onboardingKey(create: true)).key
        let receiver = HPKEBaseReceiver(recipientPublicKey: key.publicPoint) { enc in try token.keyAgreement(key, peerPoint: enc) }
        let suite = HPKE.Ciphersuite(kem: .P256_HKDF_SHA256, kdf: .HKDF_SHA256, aead: .AES_GCM_128)
        let recipient = try P256.KeyAgreement.PublicKey(x963Representation: key.publicPoint)
        let info = PSKImportFile.info(batch: "b1")
        let eui = EUI64(0x0024_BEFF_FE00_0042)
        let psk = (0..<32).map { _ in UInt8.random(in: 0...255) }
        var sender = try HPKE.Sender(recipientKey: recipient, ciphersuite: suite, info: Data(info))
        let ciphertext = Array(try sender.seal(psk, authenticating: eui.bytes))
        let enc = Array(sender.encapsulatedKey)
        #expect(try receiver.open(enc: enc, info: info, aad: eui.bytes, ciphertext: ciphertext) == psk)
        #expect(throws: HPKEBaseReceiver.OpenFailure.self) { _ = try receiver.open(enc: enc, info: PSKImportFile.info(batch: "b2"), aad: eui.bytes, ciphertext: ciphertext) }
        #expect(throws: HPKEBaseReceiver.OpenFailure.self) { _ = try receiver.open(enc: enc, info: info, aad: EUI64(1).bytes, ciphertext: ciphertext) }
        var flipped = ciphertext
        flipped[3] ^= 1
        #expect(throws: HPKEBaseReceiver.OpenFailure.self) { _ = try receiver.open(enc: enc, info: info, aad: eui.bytes, ciphertext: flipped) }
        // Sealed to another recipient.
        var other = try HPKE.Sender(recipientKey: P256.KeyAgreement.PrivateKey().publicKey, ciphersuite: suite, info: Data(info))
        let otherCiphertext = Array(try other.seal(psk, authenticating: eui.bytes))
        #expect(throws: HPKEBaseReceiver.OpenFailure.self) { _ = try receiver.open(enc: Array(other.encapsulatedKey), info: info, aad: eui.bytes, ciphertext: otherCiphertext) }
        // An enc that is not a point of P-256 never reaches the token.
        var offCurve = enc
        offCurve[64] ^= 1
        #expect(throws: HPKEBaseReceiver.OpenFailure.self) { _ = try receiver.open(enc: offCurve, info: info, aad: eui.bytes, ciphertext: ciphertext) }
    }

    // MARK: The import file

    static func header(batch: String = "oem-1", recipient: String = String(repeating: "ab", count: 32)) -> String {
        String(decoding: try! JSONEncoder().encode(PSKImportFile.Header(batch: batch, recipient: recipient)), as: UTF8.self)
    }

    static func entry(_ eui: String, enc: Int = 65, ciphertext: Int = 48) -> String {
        "{\"eui64\":\"\(eui)\",\"enc\":\"\(Data(repeating: 4, count: enc).base64EncodedString())\",\"ciphertext\":\"\(Data(repeating: 1, count: ciphertext).base64EncodedString())\"}"
    }

    @Test("the import parser reads a file fed in 3-byte pieces and refuses, naming the line: no header, another format or suite, a bad EUI-64, a short enc or ciphertext, a meter twice, an overlong line")
    func importParser() throws {
        func parse(_ text: String, piece: Int = 3) throws -> [PSKImportParser.Item] {
            var parser = PSKImportParser()
            var items: [PSKImportParser.Item] = []
            let bytes = Array(text.utf8)
            for start in stride(from: 0, to: bytes.count, by: piece) { items += try parser.feed(bytes[start..<min(start + piece, bytes.count)]) }
            return items + (try parser.finish())
        }
        let good = [Self.header(), Self.entry("0024befffe000001"), "", Self.entry("0024BEFFFE000002")].joined(separator: "\r\n")
        let items = try parse(good)
        #expect(items.count == 3)
        if case .entry(let second) = items[2] { #expect(second.eui64 == EUI64(0x0024_BEFF_FE00_0002) && second.line == 4) } else { Issue.record("no entry") }

        func refusal(_ text: String) -> String? {
            do { _ = try parse(text); return nil } catch let error as OnboardingError { return error.errorCode == .pskMalformedImport ? error.message : "code \(error.errorCode)" } catch { return "\(error)" }
        }
        #expect(refusal("") == "the PSK import file is empty: its first line must be the metertrust-psk-import header")
        #expect(refusal(Self.entry("0024befffe000001"))?.hasPrefix("line 1 of the PSK import file is not the header") == true)
        #expect(refusal(Self.header().replacingOccurrences(of: "metertrust-psk-import", with: "other"))?.contains("names format other") == true)
        #expect(refusal(Self.header().replacingOccurrences(of: "AES-128-GCM", with: "AES-256-GCM"))?.contains("HPKE suite") == true)
        #expect(refusal(Self.header() + "\n" + Self.entry("0024befffe00001"))?.hasPrefix("line 2 ") == true)
        #expect(refusal(Self.header() + "\n" + Self.entry("0024befffe000001", enc: 33))?.contains("enc is not 65 octets") == true)
        #expect(refusal(Self.header() + "\n" + Self.entry("0024befffe000001", ciphertext: 47))?.contains("ciphertext is not 48 octets") == true)
        #expect(refusal([Self.header(), Self.entry("0024befffe000001"), Self.entry("00:24:be:ff:fe:00:00:01")].joined(separator: "\n")) == "line 3 of the PSK import file lists meter 0024befffe000001 a second time")
        #expect(refusal(Self.header() + "\n" + String(repeating: " ", count: 5000) + "x")?.contains("longer than 4096 bytes") == true)
    }
}

extension FactoryFixture {
    /// A manifest with `keyMode`.
    func manifest(batch: String, meters: [String], csrLines: [String]?, keyMode: String) throws -> String {
        let path = try manifest(batch: batch, meters: meters, csrLines: csrLines)
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        object["keyMode"] = keyMode
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        return path
    }
}
