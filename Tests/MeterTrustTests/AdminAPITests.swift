import Crypto
import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import Testing
import X509

/// The admin API over real TLS on loopback, driven by the `metertrust` CLI and by openssl s_client; key backup
/// exported under quorum and restored into a second SoftHSM2 token, the restored key checked with openssl.
@Suite("Admin API over mutual TLS, and key backup")
struct AdminAPITests {
    let deployment: CLITests.Deployment
    let people: URL

    init() throws {
        try self.init(deployment: try CLITests.Deployment.make())
    }

    /// The harness over a given deployment (the PostgreSQL one of the scale-out tests).
    init(deployment: CLITests.Deployment) throws {
        try #require(FileManager.default.isExecutableFile(atPath: TestEnvironment.metertrust), "build metertrust first (make test does)")
        self.deployment = deployment
        people = deployment.dataDirectory.deletingLastPathComponent().appendingPathComponent("people")
        try FileManager.default.createDirectory(at: people, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { people.appendingPathComponent(name).path }

    /// Runs metertrust without --data-dir (the custodian's client commands, the restore ceremony).
    func client(_ arguments: [String], as custodian: String, port: Int, environment extra: [String: String] = [:]) throws -> TestEnvironment.ProcessResult {
        try TestEnvironment.run(
            TestEnvironment.metertrust, arguments,
            environment: [
                "METERTRUST_ADMIN_URL": "https://localhost:\(port)", "METERTRUST_ADMIN_CERT": path("\(custodian).pem"),
                "METERTRUST_ADMIN_KEY": path("\(custodian).key"), "METERTRUST_ADMIN_TRUST": path("root.pem"),
                "METERTRUST_WITNESS_DIR": path("\(custodian).witness"),
            ].merging(extra) { $1 }
        )
    }

    func clientJSON(_ arguments: [String], as custodian: String, port: Int) throws -> [String: Any] {
        let result = try client(arguments + ["--json"], as: custodian, port: port)
        try #require(result.status == 0, "metertrust \(arguments.joined(separator: " ")) as \(custodian): \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    /// A key restored into `target`, examined with PyKCS11 as the holder of its user PIN
    /// (`Tests/tools/pkcs11_restored_key.py`): its protection attributes, whether its value could be read, and a
    /// signature over `message` that openssl verifies with `certificate` (the CA certificate the backup carried).
    /// Returns the attributes and whether openssl said "Verified OK".
    func examineRestoredKey(
        label: String, in target: TestEnvironment.IsolatedToken, message: String, certificate: Certificate
    ) throws -> (protection: [String: Any], verified: Bool) {
        try Data(message.utf8).write(to: URL(fileURLWithPath: path("message")))
        let examined = try TestEnvironment.run(
            TestEnvironment.python,
            [TestEnvironment.tool("pkcs11_restored_key.py"), "--module", TestEnvironment.modulePath, "--token", target.label, "--label", label,
             "--message", path("message"), "--signature", path("signature")],
            environment: ["SOFTHSM2_CONF": target.configuration, "ATTACK_USER_PIN": target.pin]
        )
        try #require(examined.status == 0, "pkcs11_restored_key.py: \(examined.stderr)")
        let protection = try #require(try JSONSerialization.jsonObject(with: Data(examined.stdout.utf8)) as? [String: Any])
        try certificate.pem.write(toFile: path("restored-ca.pem"), atomically: true, encoding: .utf8)
        let verified = try TestEnvironment.run("/bin/sh", [
            "-c", "openssl x509 -in '\(path("restored-ca.pem"))' -pubkey -noout > '\(path("restored-ca.pub"))' && openssl dgst -sha256 -verify '\(path("restored-ca.pub"))' -signature '\(path("signature"))' '\(path("message"))'",
        ])
        return (protection, verified.stdout.contains("Verified OK"))
    }

    /// GET /healthz through openssl s_client; true if the server answered.
    func handshake(_ extra: [String], port: Int) throws -> Bool {
        try handshakeTranscript(extra, port: port).answered
    }

    /// GET /healthz through openssl s_client: whether the server answered 200, and openssl's whole output (its
    /// stderr holds the TLS alert of a refused handshake).
    func handshakeTranscript(_ extra: [String], port: Int) throws -> (answered: Bool, transcript: String) {
        let request = people.appendingPathComponent("healthz-\(UUID().uuidString.prefix(6)).http")
        try "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".write(to: request, atomically: true, encoding: .utf8)
        let result = try TestEnvironment.run(
            "/bin/sh",
            ["-c", "openssl s_client -quiet -connect 127.0.0.1:\(port) -servername localhost -CAfile '\(path("root.pem"))' -verify_return_error \(extra.joined(separator: " ")) < '\(request.path)'"]
        )
        return (result.stdout.contains("HTTP/1.1 200") && result.stdout.contains("ok"), result.stdout + result.stderr)
    }

    /// Expects the handshake with `extra` to be refused by the server with a TLS alert whose openssl text contains
    /// one of `alerts` (not a closed port, not a reset), then proves the server alive and serving: alice, a
    /// registered custodian, gets her answer on the next connection.
    func expectRefusedHandshake(
        _ extra: [String], port: Int, alerts: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let refused = try handshakeTranscript(extra, port: port)
        #expect(!refused.answered, "the server answered \(extra): \(refused.transcript)", sourceLocation: sourceLocation)
        #expect(
            alerts.contains { refused.transcript.contains($0) },
            "no TLS alert \(alerts) in openssl's output for \(extra): \(refused.transcript)", sourceLocation: sourceLocation
        )
        #expect(!refused.transcript.contains("Connection refused"), "the server is not listening: \(refused.transcript)", sourceLocation: sourceLocation)
        let legitimate = try handshakeTranscript(["-cert", path("alice.pem"), "-key", path("alice.key")], port: port)
        #expect(legitimate.answered, "after refusing \(extra) the server no longer serves alice: \(legitimate.transcript)", sourceLocation: sourceLocation)
    }

    /// Sets up root, admin CA, operational CA (key for backup), four custodian certificates (dave's never
    /// registered), the bootstrap, the server identity and the backup key.
    func ceremony() throws {
        let root = try deployment.json(["ca", "create-root", "--name", "root", "--organization", "Test Operator"])
        let rootSerial = try #require((root["certificate"] as? [String: Any])?["serial"] as? String)
        let pem = try deployment.run(["cert", "show", rootSerial, "--pem"])
        try pem.stdout.write(toFile: path("root.pem"), atomically: true, encoding: .utf8)
        _ = try deployment.json(["ca", "create-admin", "--name", "admin"])
        _ = try deployment.json(["ca", "create-operational", "--name", "north", "--backup"])
        _ = try deployment.json(["ca", "create-service", "--name", "platform"])
        for (name, role) in [("alice", "security-officer"), ("bob", "security-officer"), ("carol", "security-officer"), ("dave", "pki-officer")] {
            let keygen = try TestEnvironment.run(TestEnvironment.metertrust, ["admin", "keygen", "--name", name, "--out", people.path])
            try #require(keygen.status == 0, "\(keygen.stderr)")
            _ = try deployment.json(["admin", "certify", "--csr", path("\(name).csr"), "--name", name, "--role", role, "--out", path("\(name).pem")])
        }
        let mode = try FileManager.default.attributesOfItem(atPath: path("alice.key"))[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        // The quorum's state is bound to the audit log: it exists before the bootstrap.
        let early = try deployment.run(["admin", "bootstrap", "--custodian", path("alice.pem"), "--custodian", path("bob.pem"), "--custodian", path("carol.pem")])
        #expect(early.status == 1 && early.stderr.contains("audit init"), "\(early.stderr)")
        _ = try deployment.json(["audit", "init"])
        _ = try deployment.json(["admin", "bootstrap", "--custodian", path("alice.pem"), "--custodian", path("bob.pem"), "--custodian", path("carol.pem")])
        // From now on a CA is created only under quorum.
        let direct = try deployment.run(["ca", "create-manufacturer", "--name", "acme"])
        #expect(direct.status == 4 && direct.stderr.contains("under quorum control") && direct.stderr.contains("manufacturer.register"))
        _ = try deployment.json(["admin", "server-cert", "--host", "localhost"])
        let soPIN = deployment.securityOfficerPIN
        let backupKey = try deployment.run(["backup", "init-key", "--json"], environment: ["METERTRUST_HSM_SO_PIN": soPIN])
        try #require(backupKey.status == 0, "\(backupKey.stderr)")
        let split = try JSONSerialization.jsonObject(with: Data(backupKey.stdout.utf8)) as? [String: String]
        #expect(split?["threshold"] == "2" && split?["holders"] == "alice,bob,carol")
    }

    /// Starts `serve --roles admin` on a free port (the operations listener on another); returns the process and the port.
    func startServer(extra: [String] = [], node: CLITests.Deployment? = nil) throws -> (Process, Int) {
        let node = node ?? deployment
        let portFile = node.dataDirectory.deletingLastPathComponent().appendingPathComponent("port").path
        try? FileManager.default.removeItem(atPath: portFile)  // a port from an earlier server must not be read
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.metertrust)
        process.arguments = ["serve", "--roles", "admin", "--listen", "127.0.0.1:0", "--operations-listen", "127.0.0.1:0", "--port-file", portFile, "--data-dir", node.dataDirectory.path] + extra
        var environment = ProcessInfo.processInfo.environment
        environment.merge(node.environment) { $1 }
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return (process, port)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        process.terminate()
        throw CLIError("the admin server did not start")
    }

    struct CLIError: Error { let message: String; init(_ message: String) { self.message = message } }

    // The TLS alerts a refusal shows (RFC 8446 §6.2), as OpenSSL 3 prints them on the client side (`openssl
    // s_client`) and as BoringSSL (swift-nio-ssl, the metertrust client) names them; observed against `admin serve`.
    /// TLS 1.3 without a client certificate: certificate_required (116).
    static let noCertificateAlerts = ["tlsv13 alert certificate required"]
    /// A client certificate the server does not accept (unregistered, self-signed, removed custodian): the verify
    /// callback fails, certificate_unknown (46).
    static let badCertificateAlerts = ["alert certificate unknown"]
    /// TLS 1.2 offered to a TLS 1.3-only server: protocol_version (70).
    static let protocolVersionAlerts = ["alert protocol version"]
    static let clientSideAlerts = ["SSLV3_ALERT_CERTIFICATE_UNKNOWN"]

    @Test("only registered custodians complete the TLS 1.3 handshake; requests, online and offline approvals and execution work over it")
    func mutualTLSAndQuorum() throws {
        try ceremony()
        let (server, port) = try startServer()
        defer { server.terminate(); server.waitUntilExit() }

        // The handshake, seen by openssl: a registered custodian gets through; no certificate, an Admin CA
        // certificate that was never registered, a certificate from elsewhere, and TLS 1.2 do not.
        #expect(try handshake(["-cert", path("alice.pem"), "-key", path("alice.key")], port: port))
        try expectRefusedHandshake([], port: port, alerts: Self.noCertificateAlerts)
        try expectRefusedHandshake(["-cert", path("dave.pem"), "-key", path("dave.key")], port: port, alerts: Self.badCertificateAlerts)
        _ = try TestEnvironment.run("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=alice/OU=security-officer",
            "-days", "1", "-keyout", path("forged.key"), "-out", path("forged.pem"),
        ])
        try expectRefusedHandshake(["-cert", path("forged.pem"), "-key", path("forged.key")], port: port, alerts: Self.badCertificateAlerts)
        try expectRefusedHandshake(["-tls1_2", "-cert", path("alice.pem"), "-key", path("alice.key")], port: port, alerts: Self.protocolVersionAlerts)
        let refusedClient = try client(["admin", "list"], as: "dave", port: port)
        #expect(refusedClient.status == 3 && refusedClient.stderr.hasPrefix("error: cannot reach the admin API"), "\(refusedClient.stderr)")
        #expect(Self.clientSideAlerts.contains { refusedClient.stderr.contains($0) }, "dave's client saw no TLS alert: \(refusedClient.stderr)")
        let servedClient = try client(["admin", "list"], as: "alice", port: port)
        #expect(servedClient.status == 0, "the server refused dave, then alice too: \(servedClient.stderr)")

        // alice asks; bob approves offline from the request file; carol online; alice uploads bob's file.
        let requestFile = path("south.request.json")
        let created = try clientJSON(
            ["admin", "request", "manufacturer.register", "name=south", "organization=South Meters", "--out", requestFile], as: "alice", port: port
        )
        let id = try #require(created["id"] as? String)
        let document = try Data(contentsOf: URL(fileURLWithPath: requestFile))
        #expect(SHA256.hash(data: document).map { String(format: "%02x", $0) }.joined() == id)
        let offline = try client(["admin", "approve", "--offline", "--request", requestFile, "--out", path("bob.approval")], as: "bob", port: 1)
        try #require(offline.status == 0, "\(offline.stderr)")
        let early = try client(["admin", "execute", id], as: "alice", port: port)
        #expect(early.status == 4 && early.stderr.contains("below-quorum") && early.stderr.contains("nothing was run"))
        let selfApproval = try client(["admin", "approve", id], as: "alice", port: port)
        #expect(selfApproval.status == 4 && selfApproval.stderr.contains("self-approval"))
        _ = try clientJSON(["admin", "approve", id], as: "carol", port: port)
        let uploaded = try clientJSON(["admin", "approve", "--upload", path("bob.approval")], as: "alice", port: port)
        let counted = (uploaded["approvals"] as? [[String: Any]])?.filter { $0["counted"] as? Bool == true }.compactMap { $0["custodian"] as? String }
        #expect(counted?.sorted() == ["bob", "carol"])
        let again = try client(["admin", "approve", "--upload", path("bob.approval")], as: "carol", port: port)
        #expect(again.status == 4 && again.stderr.contains("duplicate-approval"))
        let executed = try clientJSON(["admin", "execute", id], as: "alice", port: port)
        #expect(executed["state"] as? String == "executed")
        // The outcome is an object in the document, never a string of JSON inside it.
        #expect((executed["outcome"] as? [String: Any])?["role"] as? String == "manufacturer")
        let twice = try client(["admin", "execute", id], as: "bob", port: port)
        #expect(twice.status == 4 && twice.stderr.contains("already-executed") && twice.stderr.split(separator: "\n").count == 1)
        let listed = try client(["admin", "list", "--state", "executed"], as: "bob", port: port)
        #expect(listed.stdout.contains(id) && listed.stdout.contains("manufacturer.register"))

        // Every step is in the audit log, the refused execution included.
        let audit = try deployment.run(["audit", "log", "--json"])
        for action in ["quorum.bootstrap", "admin.request", "admin.approve", "admin.execute", "backup.init-key"] {
            #expect(audit.stdout.contains("\"\(action)\""), "audit log lacks \(action)")
        }
        #expect(audit.stdout.contains("below-quorum") || audit.stdout.contains("nothing was run"))
    }

    /// GET /healthz through openssl s_client with `extra` options; the whole transcript (stdout and stderr).
    func transcript(_ extra: [String], port: Int) throws -> String {
        let request = people.appendingPathComponent("healthz-\(UUID().uuidString.prefix(6)).http")
        try "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".write(to: request, atomically: true, encoding: .utf8)
        let result = try TestEnvironment.run(
            "/bin/sh",
            ["-c", "openssl s_client -ign_eof -connect 127.0.0.1:\(port) -servername localhost -CAfile '\(path("root.pem"))' \(extra.joined(separator: " ")) < '\(request.path)' 2>&1"]
        )
        return result.stdout
    }

    @Test("attacker: a removed custodian resuming a saved TLS session without a certificate gets 403, not an answer; the CertificateRequest names the Admin CA and offers only ECDSA P-256 SHA-256")
    func resumedSessionRecheckedPerRequest() throws {
        try ceremony()
        let (server, port) = try startServer()
        defer { server.terminate(); server.waitUntilExit() }

        // What the server asks for: the acceptable CA by name, and only ecdsa_secp256r1_sha256.
        let first = try transcript(["-cert", path("bob.pem"), "-key", path("bob.key"), "-sess_out", path("bob.session")], port: port)
        #expect(first.contains("HTTP/1.1 200"), "\(first)")
        let names = first.components(separatedBy: "Acceptable client certificate CA names").dropFirst().first ?? ""
        #expect(names.contains("Admin CA"), "the CertificateRequest names no CA: \(first)")
        let requested = first.split(separator: "\n").first { $0.contains("Requested Signature Algorithms") } ?? ""
        #expect(requested.contains("ECDSA+SHA256") && !requested.contains("RSA") && !requested.contains("SHA1"), "\(requested)")

        // Resumption works while bob is a custodian (and skips the handshake's verify callback)...
        let resumed = try transcript(["-sess_in", path("bob.session")], port: port)
        #expect(resumed.contains("Reused, TLSv1.3"), "the server did not resume: \(resumed)")
        #expect(resumed.contains("HTTP/1.1 200"))

        // ...then bob is removed under quorum, and his saved session no longer gets an answer.
        let removal = try clientJSON(["admin", "request", "custodian.remove", "name=bob"], as: "alice", port: port)
        let id = try #require(removal["id"] as? String)
        _ = try clientJSON(["admin", "approve", id], as: "carol", port: port)
        _ = try clientJSON(["admin", "approve", id], as: "bob", port: port)
        _ = try clientJSON(["admin", "execute", id], as: "alice", port: port)
        let afterRemoval = try transcript(["-sess_in", path("bob.session")], port: port)
        #expect(afterRemoval.contains("Reused, TLSv1.3"), "the saved session was resumed (no verify callback ran): \(afterRemoval)")
        #expect(afterRemoval.contains("HTTP/1.1 403") && !afterRemoval.contains("HTTP/1.1 200"), "\(afterRemoval)")
        // The refused handshake of a fresh connection with his certificate is audited.
        try expectRefusedHandshake(["-cert", path("bob.pem"), "-key", path("bob.key")], port: port, alerts: Self.badCertificateAlerts)
        let audit = try deployment.run(["audit", "log", "--json"])
        #expect(audit.stdout.contains("\"admin.handshake\""), "refused handshakes are audited")
    }

    @Test("attacker: a client that opens TCP connections and never finishes the handshake (or never sends a request) is cut off by the handshake and idle timeouts")
    func handshakeAndIdleTimeouts() throws {
        try ceremony()
        let (server, port) = try startServer(extra: ["--handshake-timeout", "1", "--idle-timeout", "2"])
        defer { server.terminate(); server.waitUntilExit() }
        // A silent TCP client, and one that completes TLS as a custodian and then sends nothing: Python measures when
        // the server closes each (bounded waits; both must close well before 10 s).
        let script = """
            import socket, ssl, sys, time
            def wait_closed(sock):
                start = time.monotonic()
                sock.settimeout(10)
                try:
                    while sock.recv(1024):
                        pass
                except (socket.timeout, ssl.SSLError, ConnectionResetError):
                    return 99
                return time.monotonic() - start
            silent = socket.create_connection(("127.0.0.1", \(port)))
            print("handshake", round(wait_closed(silent), 1))
            context = ssl.create_default_context(cafile=sys.argv[1])
            context.load_cert_chain(sys.argv[2], sys.argv[3])
            idle = context.wrap_socket(socket.create_connection(("127.0.0.1", \(port))), server_hostname="localhost")
            print("idle", round(wait_closed(idle), 1))
            """
        let result = try TestEnvironment.run(TestEnvironment.python, ["-c", script, path("root.pem"), path("alice.pem"), path("alice.key")])
        try #require(result.status == 0, "\(result.stderr)")
        let times = Dictionary(uniqueKeysWithValues: result.stdout.split(separator: "\n").compactMap { line -> (String, Double)? in
            let fields = line.split(separator: " ")
            return fields.count == 2 ? (String(fields[0]), Double(fields[1]) ?? 99) : nil
        })
        #expect((times["handshake"] ?? 99) < 5, "a silent client was not cut off: \(result.stdout)")
        #expect((times["idle"] ?? 99) < 6, "an idle connection was not closed: \(result.stdout)")
    }

    @Test("attacker: a requester hiding what approvers sign behind ANSI escapes, U+202E and a long value — admin show and approve print it from the signed document, in full, escaped; a certificate parameter by subject, role, issuer and SHA-256")
    func approversSeeWhatTheySign() throws {
        try ceremony()
        let (server, port) = try startServer()
        defer { server.terminate(); server.waitUntilExit() }
        let long = String(repeating: "x", count: 300) + "END"
        let hostile = "Acme\u{1B}[2J\u{1B}[1A\u{202E}sretem\u{200B}"
        let created = try clientJSON(
            ["admin", "request", "manufacturer.register", "name=evil", "organization=\(hostile)", "curve=P-256", "backup=false"], as: "alice", port: port
        )
        let id = try #require(created["id"] as? String)
        let shown = try client(["admin", "show", id], as: "bob", port: port)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(!shown.stdout.unicodeScalars.contains("\u{1B}") && !shown.stdout.unicodeScalars.contains("\u{202E}") && !shown.stdout.unicodeScalars.contains("\u{200B}"))
        #expect(shown.stdout.contains(#"Acme\u{1b}[2J\u{1b}[1A\u{202e}sretem\u{200b}"#), "\(shown.stdout)")
        let approved = try client(["admin", "approve", id], as: "bob", port: port)
        #expect(approved.status == 0 && approved.stderr.contains(#"\u{202e}"#) && !approved.stderr.unicodeScalars.contains("\u{202E}"), "\(approved.stderr)")

        // Every parameter in full: no 57-character cut.
        let policy = try clientJSON(["admin", "request", "ca.create", "kind=operational", "name=long", "organization=\(long)"], as: "alice", port: port)
        let longShown = try client(["admin", "show", try #require(policy["id"] as? String)], as: "carol", port: port)
        #expect(longShown.stdout.contains(long), "\(longShown.stdout)")

        // A certificate parameter is shown for what it is.
        let add = try clientJSON(["admin", "request", "custodian.add", "certificate=@\(path("dave.pem"))"], as: "alice", port: port)
        let addShown = try client(["admin", "show", try #require(add["id"] as? String)], as: "bob", port: port)
        let daveDER = try #require(try Certificate(pemEncoded: String(contentsOfFile: path("dave.pem"), encoding: .utf8)).derBytes as [UInt8]?)
        let fingerprint = SHA256.hash(data: daveDER).map { String(format: "%02x", $0) }.joined()
        #expect(addShown.stdout.contains("CN=dave") && addShown.stdout.contains("role:     pki-officer"), "\(addShown.stdout)")
        #expect(addShown.stdout.contains("issuer:") && addShown.stdout.contains(fingerprint), "\(addShown.stdout)")
    }

    @Test("attacker with the database and the user PIN truncates the audit log and rolls the HSM-held head back: a custodian's CLI, a witness of the checkpoint it verified last, refuses to go on")
    func custodiansWitnessTheLog() throws {
        try ceremony()
        let (server, port) = try startServer()
        defer { server.terminate(); server.waitUntilExit() }
        let first = try client(["admin", "policies"], as: "alice", port: port)
        try #require(first.status == 0, "\(first.stderr)")
        let saved = try FileManager.default.contentsOfDirectory(atPath: path("alice.witness"))
        #expect(saved.count == 1 && saved[0].hasSuffix(".checkpoint"), "\(saved)")
        // The log grows; alice's next command checks a consistency proof from her checkpoint and moves on.
        _ = try clientJSON(["admin", "request", "ca.create", "kind=operational", "name=east"], as: "bob", port: port)
        let grown = try client(["admin", "custodians"], as: "alice", port: port)
        #expect(grown.status == 0, "a grown log is consistent: \(grown.stderr)")

        // Delete the newest entries and the checkpoints above what remains, with sqlite3 on the live store.
        let store = deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path
        let count = Int(try TestEnvironment.run("sqlite3", [store, "SELECT count(*) FROM audit_entries"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        try #require(count > 4)
        let truncated = try TestEnvironment.run("sqlite3", [store, "DELETE FROM audit_entries WHERE position >= \(count - 3); DELETE FROM audit_checkpoints WHERE size > \(count - 3);"])
        try #require(truncated.status == 0, "\(truncated.stderr)")
        // The server alone would now refuse (its head in the HSM is ahead of the store); the holder of the user PIN
        // puts an older, genuinely signed checkpoint back as the head (PyKCS11), and the server accepts the log.
        let older = try TestEnvironment.run("sqlite3", [store, "SELECT note FROM audit_checkpoints WHERE size = \(count - 3)"]).stdout
        try #require(!older.isEmpty)
        let notePath = path("older.note")
        try older.trimmingCharacters(in: .newlines).appending("\n").write(toFile: notePath, atomically: true, encoding: .utf8)
        let rollback = """
            import os, sys, PyKCS11
            lib = PyKCS11.PyKCS11Lib(); lib.load(sys.argv[1])
            slot = [s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == sys.argv[2]][0]
            session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
            session.login(os.environ["ATTACK_USER_PIN"])
            heads = [h for h in session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_DATA)]) if "audit/head" in session.getAttributeValue(h, [PyKCS11.CKA_LABEL])[0]]
            label = session.getAttributeValue(heads[0], [PyKCS11.CKA_LABEL])[0]
            for h in heads: session.destroyObject(h)
            value = open(sys.argv[3], "rb").read()
            session.createObject([(PyKCS11.CKA_CLASS, PyKCS11.CKO_DATA), (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_LABEL, label), (PyKCS11.CKA_VALUE, value)])
            print("rolled back")
            """
        let rolled = try TestEnvironment.run(
            TestEnvironment.python, ["-c", rollback, TestEnvironment.modulePath, deployment.tokenLabel, notePath],
            environment: ["SOFTHSM2_CONF": deployment.environment["SOFTHSM2_CONF"] ?? "", "ATTACK_USER_PIN": deployment.environment["METERTRUST_HSM_PIN"] ?? ""]
        )
        try #require(rolled.status == 0, "\(rolled.stderr)")
        // The server now serves the shortened log: carol, who never ran a command (no saved checkpoint), is shown it
        // and cannot tell. alice and bob, who witnessed the longer log, can.
        let carol = try client(["admin", "list"], as: "carol", port: port)
        #expect(carol.status == 0, "the rolled-back log is served: \(carol.stderr)")
        for custodian in ["alice", "bob"] {
            let refused = try client(["admin", "list"], as: custodian, port: port)
            #expect(refused.status == 5 && refused.stderr.contains("not consistent with the checkpoint you verified before"), "\(custodian): \(refused.stderr)")
            #expect(refused.stderr.contains("Do not approve anything"))
        }
    }

    @Test("a backup exported under quorum restores into a second, empty token with k custodians; the restored key signs and openssl verifies against the original CA certificate; keys not marked for backup stay unextractable")
    func backupAndRestore() throws {
        try ceremony()
        let (server, port) = try startServer()
        let created = try clientJSON(["admin", "request", "backup.export"], as: "alice", port: port)
        let id = try #require(created["id"] as? String)
        _ = try clientJSON(["admin", "approve", id], as: "bob", port: port)
        _ = try clientJSON(["admin", "approve", id], as: "carol", port: port)
        let backupFile = path("backup.json")
        _ = try clientJSON(["admin", "execute", id, "--backup-out", backupFile], as: "alice", port: port)
        server.terminate()
        server.waitUntilExit()

        let backup = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: backupFile))) as? [String: Any])
        let keys = try #require(backup["keys"] as? [[String: Any]])
        #expect(keys.map { $0["ca"] as? String } == ["north"], "only the key created with --backup is exported")
        #expect(backup["mechanism"] as? String == "CKM_AES_KEY_WRAP_PAD")

        // A fresh, empty token in a SoftHSM2 directory of its own (a process writing into a token directory this
        // test process has loaded can crash it); one custodian is not enough, two are.
        let target = try TestEnvironment.makeIsolatedToken(label: "restore-target")
        let targetPIN = path("restore-target.pin")
        _ = FileManager.default.createFile(atPath: targetPIN, contents: Data(target.pin.utf8), attributes: [.posixPermissions: 0o600])
        let targetEnvironment = ["SOFTHSM2_CONF": target.configuration]
        let restore = ["backup", "restore", "--file", backupFile, "--token", target.label, "--module", TestEnvironment.modulePath, "--pin-file", targetPIN]
        let alone = try client(restore + ["--custodian", "alice=\(path("alice.key"))"], as: "alice", port: 1, environment: targetEnvironment)
        #expect(alone.status == 1 && alone.stderr.contains("2 are needed"), "\(alone.stderr)")
        let wrongKey = try client(
            restore + ["--custodian", "alice=\(path("bob.key"))", "--custodian", "carol=\(path("carol.key"))"], as: "alice", port: 1, environment: targetEnvironment
        )
        #expect(wrongKey.status == 1 && wrongKey.stderr.contains("does not decrypt"), "\(wrongKey.stderr)")
        let restored = try client(
            restore + ["--custodian", "alice=\(path("alice.key"))", "--custodian", "carol=\(path("carol.key"))"], as: "alice", port: 1, environment: targetEnvironment
        )
        try #require(restored.status == 0, "\(restored.stderr)")

        // The restored key, examined with PyKCS11 on the second token as the holder of its user PIN: sensitive,
        // wrap-with-trusted (wrapped only under a trusted key), its value unreadable; it signs, and openssl verifies
        // with the original CA certificate.
        let label = try #require(keys[0]["label"] as? String)
        let certificate = try Certificate(derEncoded: Array(Data(base64Encoded: keys[0]["certificate"] as! String)!))
        let (protection, verified) = try examineRestoredKey(label: label, in: target, message: "restored into a second token", certificate: certificate)
        #expect(protection["sensitive"] as? Bool == true && protection["wrapWithTrusted"] as? Bool == true, "\(protection)")
        #expect((protection["valueRead"] as? String)?.hasPrefix("refused:") == true, "\(protection)")
        #expect(verified, "openssl did not verify the restored key's signature with the CA certificate")

        // On the source token, the admin CA's key (not created for backup) cannot be wrapped, not even under the
        // trusted backup key: the token refuses (PyKCS11 as the holder of the user PIN, in the deployment's own
        // token directory).
        let authorities = try JSONSerialization.jsonObject(with: Data(try deployment.run(["ca", "list", "--json"]).stdout.utf8)) as? [[String: Any]]
        let adminKey = try #require(authorities?.first { $0["name"] as? String == "admin" }?["keyLabel"] as? String)
        let attack = try TestEnvironment.run(
            TestEnvironment.python,
            [TestEnvironment.tool("pkcs11_attack.py"), "--module", TestEnvironment.modulePath, "--token", deployment.tokenLabel, "--as", "user",
             "--backup-label", "metertrust/backup-key", "--ca", adminKey],
            environment: ["SOFTHSM2_CONF": deployment.environment["SOFTHSM2_CONF"] ?? "", "ATTACK_USER_PIN": deployment.environment["METERTRUST_HSM_PIN"] ?? ""]
        )
        try #require(attack.status == 0, "\(attack.stderr)")
        let results = try #require(try JSONSerialization.jsonObject(with: Data(attack.stdout.utf8)) as? [String: [String: Any]])
        #expect(results["user-wrap-under-backup-key:\(adminKey)"]?["ckr"] as? String == "CKR_KEY_UNEXTRACTABLE", "\(results)")
    }
}
