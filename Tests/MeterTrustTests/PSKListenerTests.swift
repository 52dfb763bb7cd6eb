import Crypto
import Foundation
import MeterTrustCore
import MeterTrustOnboarding
import Testing

/// The PSK listener (`serve --roles est-psk`) through the real binary, with `openssl s_client` as the meter and
/// `sqlite3` as the database attacker; and `psk onboarding-key` / `psk import` with swift-crypto's HPKE sender as
/// the OEM.
@Suite("PSK listener and import through the binary")
struct PSKListenerTests {
    /// A deployment with a root and a manufacturer, and a factory-key `keyMode: psk` batch of `meters` run through
    /// `factory run`; returns the bundles' PSKs by meter.
    static func pskBatch(_ deployment: CLITests.Deployment, batch: String, start: String, count: Int, in directory: URL) throws -> [String: String] {
        try pskBatchWithLabel(deployment, batch: batch, start: start, count: count, in: directory).psks
    }

    static func pskBatchWithLabel(_ deployment: CLITests.Deployment, batch: String, start: String, count: Int, in directory: URL) throws -> (psks: [String: String], label: String) {
        let manifest: [String: Any] = [
            "format": "metertrust-batch", "version": 1, "batch": batch, "manufacturer": "acme", "firmware": ["sha256": String(repeating: "ab", count: 32)],
            "bootstrapServerURI": "coaps+tcp://bootstrap.example.net", "meters": ["start": start, "count": count], "keyGeneration": "factory",
            "keyMode": "psk",
        ]
        let manifestURL = directory.appendingPathComponent("\(batch).json")
        try JSONSerialization.data(withJSONObject: manifest).write(to: manifestURL)
        let out = directory.appendingPathComponent("\(batch)-out")
        let report = try deployment.json(["factory", "run", "--manifest", manifestURL.path, "--out", out.path, "--quiet"])
        #expect(report["keyMode"] as? String == "psk")
        let label = try #require(report["pskMasterKeyLabel"] as? String)
        #expect(label.hasPrefix("metertrust/psk-master/\(batch)/"))
        var psks: [String: String] = [:]
        for line in try String(contentsOf: out.appendingPathComponent("bundles.jsonl"), encoding: .utf8).split(separator: "\n") {
            let bundle = try JSONDecoder().decode(ProvisioningBundle.self, from: Data(line.utf8))
            psks[bundle.eui64] = try #require(bundle.presharedKey)
        }
        return (psks, label)
    }

    /// The OEM's side: a PSK per meter, each sealed with swift-crypto's HPKE to `recipient` (info = the batch, aad =
    /// the EUI-64), in the import format; the file's lines and the PSKs.
    static func sealedFile(
        batch: String, meters: [EUI64], recipient: P256.KeyAgreement.PublicKey, fingerprint: String, in directory: URL
    ) throws -> (file: URL, lines: [String], psks: [EUI64: [UInt8]]) {
        var psks: [EUI64: [UInt8]] = [:]
        var lines = [String(decoding: try JSONEncoder().encode(PSKImportFile.Header(batch: batch, recipient: fingerprint)), as: UTF8.self)]
        let suite = HPKE.Ciphersuite(kem: .P256_HKDF_SHA256, kdf: .HKDF_SHA256, aead: .AES_GCM_128)
        for eui in meters {
            let psk = (0..<32).map { _ in UInt8.random(in: 0...255) }
            psks[eui] = psk
            var sender = try HPKE.Sender(recipientKey: recipient, ciphersuite: suite, info: Data(PSKImportFile.info(batch: batch)))
            let ciphertext = try sender.seal(psk, authenticating: eui.bytes)
            lines.append(String(decoding: try JSONEncoder().encode(PSKImportFile.EntryLine(eui64: eui, enc: Array(sender.encapsulatedKey), ciphertext: Array(ciphertext))), as: UTF8.self))
        }
        let file = directory.appendingPathComponent("\(batch).jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: file)
        return (file, lines, psks)
    }

    static func platform() throws -> (CLITests.Deployment, URL) {
        let deployment = try CLITests.Deployment.make()
        _ = try deployment.json(["ca", "create-root", "--name", "root", "--organization", "Example"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme", "--organization", "Acme Meters"])
        return (deployment, TestEnvironment.temporaryDirectory())
    }

    /// One HTTP GET over TLS 1.2 PSK with openssl s_client, as a PSK meter would connect: status 0 and the response
    /// if the handshake completed.
    static func opensslGET(port: Int, identity: String, psk: String, path: String = "/v1/psk/identity") throws -> (status: Int32, output: String, errors: String) {
        try opensslPSK(port: port, identity: identity, psk: psk, request: Data("GET \(path) HTTP/1.1\r\nHost: meter\r\nConnection: close\r\n\r\n".utf8))
    }

    /// `request` (raw HTTP/1.1) over TLS 1.2 PSK with openssl s_client (ECDHE-PSK-CHACHA20-POLY1305): its exit
    /// status, what it printed (the response, if the handshake completed) and its diagnostics.
    static func opensslPSK(port: Int, identity: String, psk: String, request: Data) throws -> (status: Int32, output: String, errors: String) {
        let directory = TestEnvironment.temporaryDirectory()
        let requestFile = directory.appendingPathComponent("request")
        try request.write(to: requestFile)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "s_client", "-connect", "127.0.0.1:\(port)", "-psk_identity", identity, "-psk", psk, "-tls1_2", "-cipher", "ECDHE-PSK-CHACHA20-POLY1305",
            "-quiet", "-ign_eof",
        ]
        let stdout = directory.appendingPathComponent("out"), stderr = directory.appendingPathComponent("err")
        for file in [stdout, stderr] { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        process.standardInput = try FileHandle(forReadingFrom: requestFile)
        process.standardOutput = try FileHandle(forWritingTo: stdout)
        process.standardError = try FileHandle(forWritingTo: stderr)
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOf: stdout, encoding: .utf8)) ?? "", (try? String(contentsOf: stderr, encoding: .utf8)) ?? "")
    }

    static func sqlite(_ deployment: CLITests.Deployment, _ sql: String) throws {
        let result = try TestEnvironment.run("sqlite3", [deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path, sql])
        try #require(result.status == 0, "sqlite3: \(result.stderr)")
    }

    @Test("openssl s_client -psk_identity EUI -psk HEX -tls1_2 completes a handshake with the bundle's PSK and the handler sees that meter; a wrong PSK, an unknown or uppercase identity and TLS 1.3 fail; a meter pointed at another batch with sqlite3 fails; latency in /metrics and the log, no PSK anywhere")
    func listener() throws {
        let (deployment, directory) = try Self.platform()
        let first = try Self.pskBatch(deployment, batch: "psk-one", start: "0024befffe100000", count: 3, in: directory)
        let second = try Self.pskBatch(deployment, batch: "psk-two", start: "0024befffe200000", count: 1, in: directory)
        let server = try ServeTests.start(deployment, ["serve", "--roles", "est-psk"], in: directory)
        defer { _ = server.terminate() }
        let port = try #require(server.ports["est-psk"])

        // The meter, with the PSK from its bundle.
        for (eui, psk) in first {
            let result = try Self.opensslGET(port: port, identity: eui, psk: psk)
            #expect(result.status == 0, "\(eui): \(result.errors)")
            #expect(result.output.hasPrefix("HTTP/1.1 200"), "\(result.output)")
            #expect(result.output.contains("\"eui64\":\"\(eui)\""), "the handler saw another meter: \(result.output)")
        }
        let (meter, psk) = try #require(first.sorted { $0.key < $1.key }.first)
        // The attacker: a meter lying about who it is, with its own (valid) PSK under another meter's identity.
        let (otherMeter, _) = try #require(second.first)
        for (identity, key, why) in [
            (meter, String(repeating: "00", count: 32), "a wrong PSK"),
            (otherMeter, psk, "another meter's identity with this meter's PSK"),
            ("0024befffe999999", psk, "an identity the platform holds no PSK for"),
            (meter.uppercased(), psk, "the identity in upper case (not the canonical form)"),
        ] {
            let refused = try Self.opensslGET(port: port, identity: identity, psk: key)
            #expect(refused.status != 0 && !refused.output.contains("HTTP/1.1"), "\(why) got through: \(refused.output)")
        }
        // TLS 1.3 is not offered on this listener.
        let tls13 = try TestEnvironment.run("openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-psk_identity", meter, "-psk", psk, "-tls1_3"])
        #expect(tls13.status != 0)

        // The database attacker: points the meter's device identity at the other psk batch. The HSM then derives the
        // PSK of that batch's master key for this meter, which nobody holds: the meter's handshake fails (and the
        // attacker learns nothing it can use).
        try Self.sqlite(deployment, "UPDATE certificates SET batch = 'psk-two' WHERE eui64 = '\(meter)' AND kind = 'device-identity'")
        let moved = try Self.opensslGET(port: port, identity: meter, psk: psk)
        #expect(moved.status != 0 && !moved.output.contains("HTTP/1.1"), "a meter moved to another batch still got through: \(moved.output)")
        // And pointing the batch at another master key label does the same.
        try Self.sqlite(deployment, "UPDATE certificates SET batch = 'psk-one' WHERE eui64 = '\(meter)' AND kind = 'device-identity'")
        #expect(try Self.opensslGET(port: port, identity: meter, psk: psk).status == 0)
        try Self.sqlite(deployment, "UPDATE batches SET psk_master_key_label = (SELECT psk_master_key_label FROM batches WHERE id = 'psk-two') WHERE id = 'psk-one'")
        #expect(try Self.opensslGET(port: port, identity: meter, psk: psk).status != 0)

        // The derivation latency: a histogram in /metrics, a log line per handshake; no PSK in the log.
        let metrics = try ServeTests.operations(server.operations, "/metrics")
        #expect(metrics.body.contains("metertrust_psk_handshake_key_seconds_bucket"), "\(metrics.body.prefix(400))")
        #expect(metrics.body.contains("metertrust_hsm_psk_derivation_seconds_bucket"))
        let samples = ServeTests.samples(metrics.body)
        // Resolved: the three meters, the wrong PSK and the other meter's identity (their keys are found; the
        // handshake then fails on the Finished message), the moved meter, twice more; refused: the unknown and the
        // upper-case identity.
        #expect(ServeTests.sample(samples, "metertrust_psk_handshake_key_seconds_count", ["outcome": "resolved"]) >= 8)
        #expect(ServeTests.sample(samples, "metertrust_psk_handshake_key_seconds_count", ["outcome": "refused"]) == 2)
        _ = server.terminate()
        let log = server.errorText + server.outputText
        #expect(log.contains("psk key") && log.contains("duration_ms"), "\(log.suffix(2000))")
        #expect(log.contains("psk handshake refused"))
        for key in Array(first.values) + Array(second.values) { #expect(!log.contains(key), "a PSK in serve's output") }
    }

    @Test("psk onboarding-key and psk import: the OEM seals each PSK with swift-crypto's HPKE to the printed key; the store holds only sealed values (sqlite3), no PSK in any output; the listener accepts the imported PSK; a sealed row moved to another meter does not open; a tampered file imports nothing")
    func importThroughTheBinary() throws {
        let (deployment, directory) = try Self.platform()
        let shown = try deployment.json(["psk", "onboarding-key"])
        #expect(shown["created"] as? Bool == true)
        let again = try deployment.json(["psk", "onboarding-key"])
        #expect(again["created"] as? Bool == false && again["spkiSHA256"] as? String == shown["spkiSHA256"] as? String)
        let recipient = try P256.KeyAgreement.PublicKey(pemRepresentation: try #require(shown["publicKeyPEM"] as? String))
        let fingerprint = try #require(shown["spkiSHA256"] as? String)

        // The OEM: generates each meter's PSK and seals it to the platform's key (HPKE base, info = batch, aad = EUI-64).
        let meters = (1...3).map { EUI64(0x0024_BEFF_FE30_0000 + UInt64($0)) }
        let (file, lines, psks) = try Self.sealedFile(batch: "oem-1", meters: meters, recipient: recipient, fingerprint: fingerprint, in: directory)

        // A file whose lines were swapped between two meters (each ciphertext is bound to its own meter) imports nothing.
        var tamperedLines = lines
        tamperedLines[1] = lines[1].replacingOccurrences(of: meters[0].description, with: meters[1].description)
        tamperedLines[2] = lines[2].replacingOccurrences(of: meters[1].description, with: meters[0].description)
        let tamperedFile = directory.appendingPathComponent("tampered.jsonl")
        try Data(tamperedLines.joined(separator: "\n").utf8).write(to: tamperedFile)
        let tampered = try deployment.run(["psk", "import", "--batch", "oem-1", tamperedFile.path, "--json"])
        #expect(tampered.status == 1 && tampered.stderr.contains("psk.cannot-open"), "\(tampered.stderr)")
        let wrongBatch = try deployment.run(["psk", "import", "--batch", "oem-2", file.path, "--json"])
        #expect(wrongBatch.status == 1 && wrongBatch.stderr.contains("psk.malformed-import"), "\(wrongBatch.stderr)")

        let imported = try deployment.run(["psk", "import", "--batch", "oem-1", file.path, "--json"])
        try #require(imported.status == 0, "\(imported.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(imported.stdout.utf8)) as? [String: Any])
        #expect(report["imported"] as? Int == 3)
        // Again: every meter already has one, nothing changes.
        #expect(try deployment.run(["psk", "import", "--batch", "oem-1", file.path]).status == 1)

        // The database attacker reads the table: sealed values only (no PSK, in any position).
        let dump = try TestEnvironment.run("sqlite3", [deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path, "SELECT eui64, hex(sealed) FROM sealed_psks ORDER BY eui64"])
        #expect(dump.stdout.split(separator: "\n").count == 3)
        for psk in psks.values { #expect(!dump.stdout.lowercased().contains(hexString(psk)), "a PSK in clear in the store") }
        let storeBytes = try Data(contentsOf: deployment.dataDirectory.appendingPathComponent("metertrust.sqlite"))
        for psk in psks.values { #expect(storeBytes.range(of: Data(psk)) == nil) }
        // No PSK in any output of the commands (stdout, stderr), nor in the audit log.
        let audit = try deployment.run(["audit", "log", "--json"])
        for psk in psks.values.map(hexString) {
            for text in [imported.stdout, imported.stderr, tampered.stderr, audit.stdout] { #expect(!text.contains(psk)) }
        }

        let server = try ServeTests.start(deployment, ["serve", "--roles", "est-psk"], in: directory)
        defer { _ = server.terminate() }
        let port = try #require(server.ports["est-psk"])
        for eui in meters {
            let result = try Self.opensslGET(port: port, identity: eui.description, psk: hexString(psks[eui]!))
            #expect(result.status == 0 && result.output.contains("\"eui64\":\"\(eui)\""), "\(eui): \(result.errors) \(result.output)")
        }
        // The database attacker copies meter 1's sealed PSK onto meter 2: it is bound to meter 1 and does not open.
        try Self.sqlite(deployment, "UPDATE sealed_psks SET sealed = (SELECT sealed FROM sealed_psks WHERE eui64 = '\(meters[0])') WHERE eui64 = '\(meters[1])'")
        for psk in [psks[meters[0]]!, psks[meters[1]]!] {
            let moved = try Self.opensslGET(port: port, identity: meters[1].description, psk: hexString(psk))
            #expect(moved.status != 0 && !moved.output.contains("HTTP/1.1"))
        }
        _ = server.terminate()
        for psk in psks.values.map(hexString) { #expect(!server.errorText.contains(psk)) }
        #expect(server.errorText.contains("psk handshake refused"))
    }

    @Test("key custody with PyKCS11 on a deployment's token: without a PIN none of the PSK keys (a batch's master key, the onboarding key, the sealing key) can be found; with the user PIN each can be used, never read, wrapped, copied, weakened or derived from")
    func custodyAgainstPyKCS11() throws {
        let (deployment, directory) = try Self.platform()
        let (_, master) = try Self.pskBatchWithLabel(deployment, batch: "custody", start: "0024befffe400000", count: 1, in: directory)
        let shown = try deployment.json(["psk", "onboarding-key"])
        let onboarding = try #require(shown["label"] as? String)
        let recipient = try P256.KeyAgreement.PublicKey(pemRepresentation: try #require(shown["publicKeyPEM"] as? String))
        let (file, _, _) = try Self.sealedFile(batch: "oem-c", meters: [EUI64(0x0024_BEFF_FE40_1000)], recipient: recipient, fingerprint: try #require(shown["spkiSHA256"] as? String), in: directory)
        let imported = try deployment.json(["psk", "import", "--batch", "oem-c", file.path])
        let sealing = try #require(imported["sealingKey"] as? String)

        func attack(_ attacker: String) throws -> [String: [String: Any]] {
            let result = try TestEnvironment.run(
                TestEnvironment.python,
                [TestEnvironment.tool("pkcs11_psk_attack.py"), "--module", TestEnvironment.modulePath, "--token", deployment.tokenLabel, "--as", attacker,
                 "--master-label", master, "--onboarding-label", onboarding, "--sealing-label", sealing],
                environment: deployment.environment.merging(["ATTACK_USER_PIN": deployment.environment["METERTRUST_HSM_PIN"] ?? ""]) { $1 }
            )
            try #require(result.status == 0, "pkcs11_psk_attack.py --as \(attacker): \(result.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Any]])
        }
        // The attacker: someone who opens the token without any PIN.
        let pinless = try attack("pinless")
        for name in ["master", "onboarding", "sealing"] {
            #expect(pinless["\(name): find without a PIN"]?["found"] as? Int == 0, "\(name) visible without a PIN: \(pinless)")
        }
        let visible = pinless["pinless: visible labels"]?["labels"] as? [String] ?? ["?"]
        #expect(!visible.contains { $0.contains("psk") }, "PSK objects visible without a PIN: \(visible)")
        // The attacker: the holder of the user PIN, who may use the keys but must not get them out.
        let user = try attack("user")
        #expect(user["master: used (HMAC-SHA256)"]?["length"] as? Int == 32)
        let attacks = user.filter { $0.key != "master: used (HMAC-SHA256)" }
        #expect(attacks.count >= 20, "\(user.keys.sorted())")
        for (name, result) in attacks {
            #expect(result["outcome"] as? String == "refused", "the token let \(name) through: \(result)")
        }
        #expect(attacks["master: read CKA_VALUE"]?["ckr"] as? String == "CKR_ATTRIBUTE_SENSITIVE")
        #expect(attacks["onboarding: read CKA_VALUE"]?["ckr"] as? String == "CKR_ATTRIBUTE_SENSITIVE")
        #expect(["CKR_KEY_UNEXTRACTABLE", "CKR_KEY_NOT_WRAPPABLE"].contains(attacks["master: wrap under a home-made key (AES key wrap pad)"]?["ckr"] as? String ?? ""))
        #expect(attacks["master: derive a readable key from it"]?["ckr"] as? String == "CKR_KEY_FUNCTION_NOT_PERMITTED")
        #expect(attacks["sealing: derive a readable key from it"]?["ckr"] as? String == "CKR_KEY_FUNCTION_NOT_PERMITTED")
        #expect(attacks["onboarding: sign with it (ECDSA)"]?["ckr"] as? String == "CKR_KEY_FUNCTION_NOT_PERMITTED")
        // After the attacks the keys still work as before: the HSM derives, opens and agrees (the import's meter).
        #expect(try deployment.run(["psk", "import", "--batch", "oem-c", file.path]).stderr.contains("already has an imported PSK"))
    }
}
