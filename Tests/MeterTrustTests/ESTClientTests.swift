import Crypto
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustPKI
import SwiftASN1
import Testing
import X509

/// The meter's EST client against peers no one here wrote: nginx (Debian's package) terminating mutual TLS 1.3 with
/// fixed answers, openssl making the certs-only CMS answers (`openssl crl2pkcs7 -nocrl`) and a rogue CA, and
/// `openssl s_server` for PSK. The meter is a real one: its factory identity issued by the platform's manufacturer
/// CA (HSM) into a bundle its configurator validated and locked.
@Suite("EST client: the meter against nginx and openssl")
struct ESTClientTests {
    /// A provisioned meter, the platform that made it, and what nginx needs to act as its EST server.
    struct World {
        let fixture: PKIFixture
        let eui64: EUI64
        let meter: URL
        let directory: URL
        /// nginx's certificate (tls-server from the platform's Service CA, for 127.0.0.1) then the Service CA; its
        /// key in software, in nginx.
        let serverChainPEM: String
        let serverKeyPEM: String
        let rootPEM: String
        let manufacturerPEM: String
        let operationalPEM: String

        func file(_ name: String, _ text: String) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        /// base64 of the certs-only CMS openssl makes of `pems` (in order).
        func certsOnly(_ pems: [String]) throws -> String {
            var arguments = ["crl2pkcs7", "-nocrl", "-outform", "DER", "-out", directory.appendingPathComponent("p7-\(UUID().uuidString).der").path]
            for (index, pem) in pems.enumerated() { arguments += ["-certfile", try file("p7-in-\(UUID().uuidString)-\(index).pem", pem)] }
            let made = try TestEnvironment.run("openssl", arguments)
            #expect(made.status == 0, "openssl crl2pkcs7: \(made.stderr)")
            let out = arguments[arguments.firstIndex(of: "-out")! + 1]
            return try Data(contentsOf: URL(fileURLWithPath: out)).base64EncodedString()
        }

        /// An operational certificate issued by the platform's Operational CA (HSM) for `key`, as the EST server will.
        func operationalCertificate(for key: P256.Signing.PrivateKey) async throws -> Certificate {
            let csr = try DeviceOperationalRequest.der(eui64: eui64, privateKey: key, hardwareType: PKIFixture.deviceType)
            return try await fixture.issuer.issue(IssuanceRequest(csr: csr, profile: "device-operational", authority: "north")).certificate
        }

        /// The client CA file nginx verifies meters against: what the platform's EST server trusts.
        var platformClientCAs: String { manufacturerPEM + operationalPEM + rootPEM }

        func nginx(_ answers: [String: NginxFixture.Answer], clientCAs: String? = nil, protocols: String = "TLSv1.3") throws -> NginxFixture {
            try NginxFixture.start(
                serverChainPEM: serverChainPEM, serverKeyPEM: serverKeyPEM, clientCAs: clientCAs ?? platformClientCAs, protocols: protocols, answers: answers
            )
        }

        func cacerts() throws -> NginxFixture.Answer { .certsOnly(base64: try certsOnly([operationalPEM, rootPEM])) }
    }

    static func world() async throws -> World {
        let fixture = try await PKIFixture.make()
        let service = try await fixture.hierarchy.createAuthority(role: .service, name: "service", organization: "MeterTrust Test")
        let directory = TestEnvironment.temporaryDirectory()

        // The meter: image, key on the meter, identity from acme, bundle installed, provisioning finalized.
        let eui64 = try EUI64("0024befffe8e5701")
        let meter = directory.appendingPathComponent("meter")
        let image = Data("meter firmware".utf8)
        let pin = hexString(SHA256.hash(data: try fixture.root.certificate.derBytes))
        let configurator = try FactoryConfigurator.injectImage(image, eui64: eui64, trustAnchorSHA256: pin, into: meter)
        let identityCSR = try configurator.generateIdentity(hardwareType: PKIFixture.deviceType)
        let identity = try await fixture.issuer.issue(IssuanceRequest(csr: identityCSR, profile: "device-identity", authority: "acme"))
        let bundle = ProvisioningBundle(
            batch: "est-client-test", eui64: eui64.description, endpointName: eui64.deviceURN, bootstrapServerURI: "coaps+tcp://bootstrap.example.net:5684",
            imageDigest: .init(value: hexString(SHA256.hash(data: image))), parameters: ["meterClass": "residential"],
            deviceCertificate: try identity.certificate.pem, chain: [try fixture.manufacturer.certificate.pem], trustAnchor: try fixture.root.certificate.pem
        )
        _ = try await configurator.install(bundle: try bundle.encoded())
        try configurator.finalize()

        // nginx's identity: a software key, certified for 127.0.0.1 by the Service CA, as `server-cert` would.
        let serverKey = P256.Signing.PrivateKey()
        let signer = try CertificateSigner(authority: service, profile: .tlsServer, settings: fixture.hierarchy.settings)
        let publicKey = try PublicKeyInfo(publicKey: Certificate.PublicKey(serverKey.publicKey))
        let (serverCertificate, _) = try await fixture.token.perform { _ in
            try signer.signNamed(publicKey, commonName: "127.0.0.1", organizationalUnit: nil, ipAddresses: [IPAddress("127.0.0.1")!])
        }
        return World(
            fixture: fixture, eui64: eui64, meter: meter, directory: directory,
            serverChainPEM: try serverCertificate.pem + service.certificate.pem, serverKeyPEM: serverKey.pemRepresentation + "\n",
            rootPEM: try fixture.root.certificate.pem, manufacturerPEM: try fixture.manufacturer.certificate.pem,
            operationalPEM: try fixture.operational.certificate.pem
        )
    }

    /// A CA made by openssl that the platform never heard of, and a server certificate from it for 127.0.0.1.
    static func rogueCA(_ world: World) throws -> (caPEM: String, serverPEM: String, serverKeyPEM: String) {
        let d = world.directory.appendingPathComponent("rogue-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        try "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(toFile: "\(d)/server.ext", atomically: true, encoding: .utf8)
        for arguments in [
            ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "\(d)/ca.key"],
            ["req", "-x509", "-new", "-key", "\(d)/ca.key", "-subj", "/CN=Rogue Root", "-days", "30", "-out", "\(d)/ca.pem"],
            ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "\(d)/server.key"],
            ["req", "-new", "-key", "\(d)/server.key", "-subj", "/CN=127.0.0.1", "-out", "\(d)/server.csr"],
            ["x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca.key", "-CAcreateserial", "-days", "30",
             "-extfile", "\(d)/server.ext", "-out", "\(d)/server.pem"],
        ] {
            let made = try TestEnvironment.run("openssl", arguments)
            guard made.status == 0 else { throw TestEnvironment.TestSetupError("openssl \(arguments[0]): \(made.stderr)") }
        }
        func read(_ name: String) throws -> String { try String(contentsOfFile: "\(d)/\(name)", encoding: .utf8) }
        return (try read("ca.pem"), try read("server.pem"), try read("server.key"))
    }

    static func meterCommand(_ arguments: [String]) throws -> TestEnvironment.ProcessResult {
        try TestEnvironment.run(TestEnvironment.metertrust, ["meter"] + arguments)
    }

    /// The JSON error object `--json` puts on stderr.
    static func errorObject(_ result: TestEnvironment.ProcessResult) throws -> (code: String, message: String) {
        let object = try JSONSerialization.jsonObject(with: Data(result.stderr.utf8)) as? [String: Any]
        let error = object?["error"] as? [String: String]
        return (error?["code"] ?? "", error?["message"] ?? "")
    }

    @Test("enroll then reenroll against nginx: TLS 1.3, the IDevID then the LDevID verified by nginx, full handshakes, the certificate checked and kept")
    func enrollAndReenrollAgainstNginx() async throws {
        let world = try await Self.world()
        let key = P256.Signing.PrivateKey()
        let issued = try await world.operationalCertificate(for: key)
        let renewed = try await world.operationalCertificate(for: key)
        let nginx = try world.nginx([
            "/.well-known/est/north/cacerts": try world.cacerts(),
            "/.well-known/est/north/simpleenroll": .certsOnly(base64: try world.certsOnly([try issued.pem])),
            "/.well-known/est/north/simplereenroll": .certsOnly(base64: try world.certsOnly([try renewed.pem, world.operationalPEM])),
        ])
        defer { nginx.stop() }
        let server = try ESTServerAddress(url: nginx.url, label: "north")
        let enrollment = MeterEnrollment(directory: world.meter)

        let outcome = try await enrollment.enroll(server: server, mode: .pki, key: key)
        #expect(outcome.serial == issued.serialHex)
        #expect(outcome.eui64 == world.eui64.description && outcome.subject.contains(world.eui64.deviceURN))
        #expect(!outcome.crlDistributionPoints.isEmpty && !outcome.ocsp.isEmpty)
        let stored = try #require(try enrollment.operational())
        #expect(stored.certificate == issued && stored.chain.map(\.subject) == [world.fixture.operational.certificate.subject])
        let keyMode = try FileManager.default.attributesOfItem(atPath: world.meter.appendingPathComponent("operational-key.der").path)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        // openssl agrees the kept certificate chains to the root.
        let verified = try TestEnvironment.run("openssl", [
            "verify", "-CAfile", try world.file("root.pem", world.rootPEM), "-untrusted", try world.file("north.pem", world.operationalPEM),
            world.meter.appendingPathComponent("operational-certificate.pem").path,
        ])
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")

        let again = try await enrollment.reenroll(server: server, mode: .pki, rekey: false)
        #expect(again.serial == renewed.serialHex && again.operation == "simplereenroll" && !again.newKey)

        // What nginx saw: the two GETs of cacerts and the two POSTs, each over TLS 1.3, a new session each time, the
        // meter's factory identity first, its operational certificate to re-enroll.
        let logged = nginx.requests()
        #expect(logged.map { String($0.request.split(separator: " ").prefix(2).joined(separator: " ")) } == [
            "GET /.well-known/est/north/cacerts", "POST /.well-known/est/north/simpleenroll",
            "GET /.well-known/est/north/cacerts", "POST /.well-known/est/north/simplereenroll",
        ])
        #expect(logged.allSatisfy { $0.tlsProtocol == "TLSv1.3" && $0.clientVerify == "SUCCESS" && !$0.resumed && $0.status == 200 })
        let identitySerial = try Certificate(pemEncoded: try enrollmentBundle(world).deviceCertificate).serialHex
        #expect(logged.map(\.clientSerial) == [identitySerial, identitySerial, issued.serialHex, issued.serialHex])
    }

    private func enrollmentBundle(_ world: World) throws -> ProvisioningBundle {
        try FactoryConfigurator(directory: world.meter).installedBundle()
    }

    // Attacker: a server, or anyone in the path, answering simpleenroll with a certificate the meter did not ask for
    // (here a valid operational certificate of the platform, for another key).
    @Test("meter enroll (the binary) refuses a certificate that does not carry its new key, and keeps nothing")
    func refusesACertificateForAnotherKey() async throws {
        let world = try await Self.world()
        let other = try await world.operationalCertificate(for: P256.Signing.PrivateKey())
        let nginx = try world.nginx([
            "/.well-known/est/cacerts": try world.cacerts(),
            "/.well-known/est/simpleenroll": .certsOnly(base64: try world.certsOnly([try other.pem])),
        ])
        defer { nginx.stop() }
        let result = try Self.meterCommand(["enroll", "--state", world.meter.path, "--server", nginx.url, "--json"])
        #expect(result.status == 1)
        let error = try Self.errorObject(result)
        #expect(error.code == "meter.est-bad-response")
        #expect(error.message.contains("carries the operational key the meter requested it for"), "\(error.message)")
        #expect(!FileManager.default.fileExists(atPath: world.meter.appendingPathComponent("operational-certificate.pem").path))
        #expect(nginx.requests().count == 2)
    }

    // Attacker: a server impersonating the platform with a certificate from a CA the meter does not trust (made here
    // by openssl), on the address the meter dials.
    @Test("a server whose certificate does not chain to the meter's pinned root is refused in the handshake: no request is sent")
    func refusesAnUntrustedServer() async throws {
        let world = try await Self.world()
        let rogue = try Self.rogueCA(world)
        let nginx = try NginxFixture.start(
            serverChainPEM: rogue.serverPEM, serverKeyPEM: rogue.serverKeyPEM, clientCAs: world.platformClientCAs, answers: ["/.well-known/est/cacerts": try world.cacerts()]
        )
        defer { nginx.stop() }
        let result = try Self.meterCommand(["enroll", "--state", world.meter.path, "--server", nginx.url, "--json"])
        #expect(result.status == 1)
        let error = try Self.errorObject(result)
        #expect(error.code == "input.untrusted-chain", "\(result.stderr)")
        #expect(nginx.requests().isEmpty)
    }

    // Attacker: a meter lying about who it is; here the other way round: a server that does not accept this meter's
    // identity (its client CA is another manufacturer's) must not get the meter to carry on.
    @Test("a server that does not accept the meter's identity: one line with the HTTP status nginx gave (400)")
    func refusedIdentityIsOneLine() async throws {
        let world = try await Self.world()
        let nginx = try world.nginx(["/.well-known/est/cacerts": try world.cacerts()], clientCAs: try Self.rogueCA(world).caPEM)
        defer { nginx.stop() }
        let result = try Self.meterCommand(["enroll", "--state", world.meter.path, "--server", nginx.url])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("error: EST cacerts at \(nginx.url) refused: HTTP 400"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(nginx.requests().map(\.clientVerify).allSatisfy { $0.hasPrefix("FAILED") })
    }

    @Test("a problem document's code and detail reach the meter's error: onboarding.not-claimed stays onboarding.not-claimed")
    func problemDocumentReasonAndCode() async throws {
        let world = try await Self.world()
        let detail = "meter \(world.eui64) is not claimed by account north: the utility must list it first"
        let problem = #"{"type":"urn:metertrust:error:onboarding.not-claimed","title":"onboarding.not-claimed","status":403,"code":"onboarding.not-claimed","detail":"\#(detail)"}"#
        let nginx = try world.nginx([
            "/.well-known/est/north/cacerts": try world.cacerts(),
            "/.well-known/est/north/simpleenroll": .init(status: 403, contentType: "application/problem+json", body: problem),
        ])
        defer { nginx.stop() }
        let result = try Self.meterCommand(["enroll", "--state", world.meter.path, "--server", nginx.url, "--label", "north", "--json"])
        #expect(result.status == 1)
        let error = try Self.errorObject(result)
        #expect(error.code == "onboarding.not-claimed")
        #expect(error.message == "EST simpleenroll at \(nginx.url) (label north) refused: HTTP 403, onboarding.not-claimed: \(detail)")
        let text = try Self.meterCommand(["enroll", "--state", world.meter.path, "--server", nginx.url, "--label", "north"])
        #expect(text.stderr == "error: \(error.message)\n")
    }

    @Test("503 with Retry-After: the meter waits what the server asks, retries as often as it was told, then gives up in one line")
    func retryAfterHonouredAndBounded() async throws {
        let world = try await Self.world()
        let busy = NginxFixture.Answer(status: 503, contentType: "text/plain", body: "busy", headers: ["Retry-After": "1"])
        let nginx = try world.nginx(["/.well-known/est/cacerts": busy])
        defer { nginx.stop() }
        let started = Date()
        let result = try Self.meterCommand(["enroll", "--state", world.meter.path, "--server", nginx.url, "--max-retries", "2", "--json"])
        let elapsed = Date().timeIntervalSince(started)
        #expect(result.status == 3)
        let error = try Self.errorObject(result)
        #expect(error.code == "edge.unreachable" && error.message.contains("still busy after 2 retries"), "\(error.message)")
        #expect(nginx.requests().count == 3)
        #expect(elapsed >= 2.0)
    }

    @Test("a server that speaks only TLS 1.2 is refused: the meter's certificate mode is TLS 1.3 only")
    func refusesTLS12InCertificateMode() async throws {
        let world = try await Self.world()
        let nginx = try world.nginx(["/.well-known/est/cacerts": try world.cacerts()], protocols: "TLSv1.2")
        defer { nginx.stop() }
        let result = try Self.meterCommand(["enroll", "--state", world.meter.path, "--server", nginx.url])
        #expect(result.status != 0)
        #expect(result.stderr.hasPrefix("error: EST cacerts at \(nginx.url)") && result.stderr.contains("TLS"), "\(result.stderr)")
        #expect(nginx.requests().isEmpty)
    }

    @Test("PSK mode against openssl s_server: TLS 1.2 ECDHE-PSK-CHACHA20-POLY1305 with the EUI-64 as identity; a wrong key gets no answer")
    func pskAgainstOpenSSL() async throws {
        let world = try await Self.world()
        let directory = world.directory.appendingPathComponent("s_server")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent(".well-known/est"), withIntermediateDirectories: true)
        let body = try world.certsOnly([world.operationalPEM, world.rootPEM])
        // s_server -HTTP answers GET /PATH with the file ./PATH, which holds the whole HTTP answer.
        let answer = "HTTP/1.0 200 OK\r\nContent-Type: application/pkcs7-mime; smime-type=certs-only\r\nContent-Transfer-Encoding: base64\r\n\r\n\(body)"
        try answer.write(to: directory.appendingPathComponent(".well-known/est/cacerts"), atomically: true, encoding: .utf8)
        let psk = try PresharedKey(bytes: (0..<32).map { _ in UInt8.random(in: 0...255) })
        let port = try FailoverTests.HAPair.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "s_server", "-accept", "127.0.0.1:\(port)", "-nocert", "-psk", hexString(psk.bytes), "-psk_identity", world.eui64.description,
            "-tls1_2", "-cipher", ESTCredential.pskCipherSuite, "-HTTP", "-quiet",
        ]
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = Pipe()
        try process.run()
        // SIGKILL: a child of the test process may start with SIGTERM blocked (s_server then never sees it).
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        let server = try ESTServerAddress(url: "https://127.0.0.1:\(port)")
        var certificates: [Certificate] = []
        for _ in 0..<50 {
            do {
                let client = try ESTClient(server: server, credential: .preSharedKey(identity: world.eui64.description, key: psk), trustAnchors: [])
                certificates = try await client.caCertificates()
                break
            } catch let error as ESTClientError where error.errorCode == .unreachable && error.message.contains("cannot reach") {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(certificates == [world.fixture.operational.certificate, world.fixture.root.certificate])

        let wrong = try ESTClient(server: server, credential: .preSharedKey(identity: world.eui64.description, key: try PresharedKey(bytes: psk.bytes.map { $0 ^ 1 })), trustAnchors: [])
        await #expect(throws: ESTClientError.self) { _ = try await wrong.caCertificates() }
    }
}
