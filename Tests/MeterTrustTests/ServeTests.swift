import Crypto
import Foundation
import MeterTrustCore
import MeterTrustHSM
@testable import MeterTrustPKI
import MeterTrustStoreSQLite
import Testing
import X509

/// Issue 14, items 1 and 2: `metertrust serve` (roles on their own listeners, the operations listener with metrics and
/// health, one log line per request, graceful shutdown) and the Service CA that certifies the platform's servers.
/// Real binary, real TLS on loopback, curl and openssl as the peers.
@Suite("serve: roles, operations listener, lifecycle; the Service CA")
struct ServeTests {
    /// A running `metertrust serve`, its ports and where its stdout and stderr go.
    struct Server {
        let process: Process
        let ports: [String: Int]
        let stdout: URL
        let stderr: URL

        var admin: Int { ports["admin"] ?? 0 }
        var operations: Int { ports["operations"] ?? 0 }
        var errorText: String { (try? String(contentsOf: stderr, encoding: .utf8)) ?? "" }
        var outputText: String { (try? String(contentsOf: stdout, encoding: .utf8)) ?? "" }

        /// SIGTERM, then the exit status and how long the process took to exit (nil: still running after `limit`).
        func terminate(within limit: TimeInterval = 10) -> (status: Int32, seconds: TimeInterval)? {
            let start = Date()
            process.terminate()
            while process.isRunning && Date().timeIntervalSince(start) < limit { usleep(20_000) }
            guard !process.isRunning else { return nil }
            return (process.terminationStatus, Date().timeIntervalSince(start))
        }
    }

    static func start(_ deployment: CLITests.Deployment, _ arguments: [String] = ["serve", "--roles", "admin"], in directory: URL) throws -> Server {
        let tag = UUID().uuidString.prefix(6)
        let portsFile = directory.appendingPathComponent("ports-\(tag).json")
        let stdout = directory.appendingPathComponent("serve-\(tag).out")
        let stderr = directory.appendingPathComponent("serve-\(tag).err")
        for file in [stdout, stderr] { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.metertrust)
        process.arguments = arguments + [
            "--listen", "127.0.0.1:0", "--operations-listen", "127.0.0.1:0", "--ports-file", portsFile.path, "--data-dir", deployment.dataDirectory.path,
        ]
        var environment = ProcessInfo.processInfo.environment.merging(deployment.environment) { $1 }
        environment.removeValue(forKey: "METERTRUST_LOG_LEVEL")
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: stdout)
        process.standardError = try FileHandle(forWritingTo: stderr)
        try process.run()
        for _ in 0..<300 {
            if let data = FileManager.default.contents(atPath: portsFile.path), let ports = try? JSONDecoder().decode([String: Int].self, from: data) {
                return Server(process: process, ports: ports, stdout: stdout, stderr: stderr)
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        process.terminate()
        throw AdminAPITests.CLIError("serve did not start: \((try? String(contentsOf: stderr, encoding: .utf8)) ?? "")")
    }

    /// curl as a custodian over mutual TLS (localhost pinned to 127.0.0.1): status code and body.
    static func curl(_ api: AdminAPITests, as custodian: String, port: Int, path: String) throws -> (code: Int, body: String) {
        let result = try TestEnvironment.run("curl", [
            "-s", "--resolve", "localhost:\(port):127.0.0.1", "--cacert", api.path("root.pem"), "--cert", api.path("\(custodian).pem"),
            "--key", api.path("\(custodian).key"), "-w", "\n%{http_code}", "https://localhost:\(port)\(path)",
        ])
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    /// Plain HTTP GET on the operations listener: status code and body.
    static func operations(_ port: Int, _ path: String) throws -> (code: Int, body: String) {
        let result = try TestEnvironment.run("curl", ["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"])
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Prometheus text exposition: each sample's value by `name{label="value",...}` with labels sorted.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = String(line[..<space])
            guard let open = series.firstIndex(of: "{") else {
                samples[series] = value
                continue
            }
            let name = series[..<open]
            let labels = series[series.index(after: open)..<series.index(before: series.endIndex)]
                .split(separator: ",").map(String.init).sorted().joined(separator: ",")
            samples["\(name){\(labels)}"] = value
        }
        return samples
    }

    static func sample(_ samples: [String: Double], _ name: String, _ labels: [String: String]) -> Double {
        let key = "\(name){\(labels.map { "\($0.key)=\"\($0.value)\"" }.sorted().joined(separator: ","))}"
        return samples[key] ?? 0
    }

    // MARK: The Service CA

    @Test("service-ca: pkilint and openssl find a root-issued CA (pathLen 0, keyCertSign+cRLSign); server-cert issues from it and refuses a utility's operational CA")
    func serviceCAProfileAndServerCertificates() throws {
        // The attacker: a utility that holds an Operational CA and would have it certify a platform server.
        let deployment = try CLITests.Deployment.make()
        let root = try deployment.json(["ca", "create-root", "--name", "root", "--organization", "Test Operator"])
        let rootSerial = try #require((root["certificate"] as? [String: Any])?["serial"] as? String)
        _ = try deployment.json(["ca", "create-operational", "--name", "north"])
        let none = try deployment.run(["server-cert", "--role", "admin", "--host", "localhost"])
        #expect(none.status == 1 && none.stderr.contains("no Service CA") && none.stderr.contains("ca create-service"), "\(none.stderr)")
        #expect(none.stderr.split(separator: "\n").count == 1)
        let service = try deployment.json(["ca", "create-service", "--name", "platform", "--organization", "Test Operator"])
        #expect(service["role"] as? String == "service", "\(service)")
        let operational = try deployment.run(["server-cert", "--role", "admin", "--host", "localhost", "--ca", "north"])
        #expect(
            operational.status == 1 && operational.stderr.contains("north is an operational CA") && operational.stderr.contains("Service CA"),
            "\(operational.stderr)"
        )
        #expect(operational.stderr.split(separator: "\n").count == 1)
        let unknownRole = try deployment.run(["server-cert", "--role", "bootstrap"])
        #expect(unknownRole.status == 2 && unknownRole.stderr.contains("known roles are admin"), "\(unknownRole.stderr)")
        let made = try deployment.json(["server-cert", "--role", "admin", "--host", "admin.example.net", "--ip", "127.0.0.1"])
        #expect(made["issuer"] as? String == "platform")
        let serverSerial = try #require(made["serial"] as? String)
        // The alias still works and also takes the Service CA.
        let alias = try deployment.json(["admin", "server-cert", "--host", "localhost"])
        #expect(alias["issuer"] as? String == "platform" && alias["role"] as? String == "admin")

        let directory = deployment.dataDirectory.deletingLastPathComponent()
        func pem(_ arguments: [String], _ name: String) throws -> String {
            let shown = try deployment.run(arguments)
            try #require(shown.status == 0, "\(shown.stderr)")
            let path = directory.appendingPathComponent(name).path
            try shown.stdout.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let rootPEM = try pem(["cert", "show", rootSerial, "--pem"], "root.pem")
        let servicePEM = try pem(["ca", "show", "platform", "--pem"], "platform.pem")
        let northPEM = try pem(["ca", "show", "north", "--pem"], "north.pem")
        let serverPEM = try pem(["cert", "show", serverSerial, "--pem"], "server.pem")

        let text = try TestEnvironment.run("openssl", ["x509", "-in", servicePEM, "-noout", "-text"])
        #expect(text.stdout.contains("Subject: O = Test Operator, CN = platform Service CA"), "\(text.stdout)")
        #expect(text.stdout.contains("X509v3 Basic Constraints: critical") && text.stdout.contains("CA:TRUE, pathlen:0"))
        #expect(text.stdout.contains("Certificate Sign, CRL Sign"))
        let server = try TestEnvironment.run("openssl", ["x509", "-in", serverPEM, "-noout", "-text"])
        #expect(server.stdout.contains("Issuer: O = Test Operator, CN = platform Service CA") && server.stdout.contains("TLS Web Server Authentication"))
        #expect(server.stdout.contains("DNS:admin.example.net") && server.stdout.contains("IP Address:127.0.0.1"))
        for path in [servicePEM, serverPEM] {
            let lint = try CLITests.python([TestEnvironment.tool("pkilint_run.py"), "lint_pkix_cert", "lint", "-s", "WARNING", path])
            #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(path): \(lint.stdout) \(lint.stderr)")
        }
        for (issuer, subject) in [(rootPEM, servicePEM), (servicePEM, serverPEM)] {
            let lint = try CLITests.python([TestEnvironment.tool("pkilint_run.py"), "lint_pkix_signer_signee_cert_chain", "lint", "-s", "WARNING", issuer, subject])
            #expect(lint.status == 0, "\(subject): \(lint.stdout) \(lint.stderr)")
        }
        let verified = try TestEnvironment.run("openssl", ["verify", "-CAfile", rootPEM, "-untrusted", servicePEM, serverPEM])
        #expect(verified.status == 0 && verified.stdout.contains(": OK"), "\(verified.stdout) \(verified.stderr)")
        let throughNorth = try TestEnvironment.run("openssl", ["verify", "-CAfile", rootPEM, "-untrusted", northPEM, serverPEM])
        #expect(throughNorth.status != 0)
    }

    @Test("serve --roles with an unknown role is one usage line naming the known roles (exit status 2); nothing is opened")
    func unknownRole() throws {
        // The peer: an operator's typo, or a script written for roles this version does not have.
        let deployment = try CLITests.Deployment.make()
        let refused = try deployment.run(["serve", "--roles", "admin,telemetry"])
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains("unknown role \"telemetry\"") && refused.stderr.contains("est") && refused.stderr.contains("admin"), "\(refused.stderr)")
        let listen = try deployment.run(["serve", "--roles", "admin", "--listen", "account=127.0.0.1:0"])
        #expect(listen.status == 2 && listen.stderr.contains("not served"), "\(listen.stderr)")
        // A plain-HTTP operations listener on a public address only when named on the command line.
        let directory = deployment.dataDirectory
        let configuration = directory.appendingPathComponent("metertrust.json")
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configuration)) as? [String: Any])
        json["serve"] = ["operations": ["host": "0.0.0.0", "port": 9090]]
        try JSONSerialization.data(withJSONObject: json).write(to: configuration)
        let public_ = try deployment.run(["serve", "--roles", "admin"])
        #expect(public_.status == 1 && public_.stderr.contains("--operations-listen"), "\(public_.stderr)")
    }

    // MARK: Serving

    @Test("serve --roles admin: the admin API through it, /metrics counts requests by route pattern with latency and HSM signature histograms, /healthz, /readyz, one log line per request without secrets")
    func metricsHealthAndRequestLog() throws {
        // The peers: custodians alice and bob over mutual TLS, and the platform's monitoring on the operations listener.
        let api = try AdminAPITests()
        try api.ceremony()
        let server = try Self.start(api.deployment, ["serve", "--roles", "admin", "--json"], in: api.people)
        defer { _ = server.terminate() }
        let document = try #require(try JSONSerialization.jsonObject(with: Data(server.outputText.utf8)) as? [String: Any], "\(server.outputText)")
        #expect(document["operations"] as? String == "http://127.0.0.1:\(server.operations)")
        #expect((document["roles"] as? [String: Any])?["admin"] != nil && document["port"] as? Int == server.admin)

        #expect(try Self.operations(server.operations, "/healthz") == (200, "ok"))
        let ready = try Self.operations(server.operations, "/readyz")
        #expect(ready.code == 200 && ready.body.contains("\"ready\":true"), "\(ready)")
        let before = Self.samples(try Self.operations(server.operations, "/metrics").body)

        for custodian in ["alice", "bob", "alice"] {
            let answer = try Self.curl(api, as: custodian, port: server.admin, path: "/v1/custodians")
            #expect(answer.code == 200 && answer.body.contains("carol"), "\(answer)")
        }
        let id = String(repeating: "ab", count: 32)
        let missing = try Self.curl(api, as: "alice", port: server.admin, path: "/v1/requests/\(id)")
        #expect(missing.code == 404, "\(missing)")
        // The existing admin client works through serve as well.
        let policies = try api.client(["admin", "policies"], as: "bob", port: server.admin)
        #expect(policies.status == 0, "\(policies.stderr)")

        let metrics = try Self.operations(server.operations, "/metrics")
        #expect(metrics.code == 200)
        let after = Self.samples(metrics.body)
        let ok = ["role": "admin", "endpoint": "/v1/custodians", "method": "GET", "status": "200", "outcome": "success"]
        #expect(Self.sample(after, "metertrust_http_requests_total", ok) - Self.sample(before, "metertrust_http_requests_total", ok) == 3, "\(metrics.body)")
        let route = ["role": "admin", "endpoint": "/v1/custodians", "method": "GET"]
        #expect(Self.sample(after, "metertrust_http_request_duration_seconds_count", route) - Self.sample(before, "metertrust_http_request_duration_seconds_count", route) == 3)
        #expect(Self.sample(after, "metertrust_http_request_duration_seconds_sum", route) > 0)
        #expect(metrics.body.contains("metertrust_http_request_duration_seconds_bucket{"), "no latency histogram")
        // The route pattern, never the raw path: the id is in no label.
        #expect(!metrics.body.contains(id))
        let notFound = after.filter { $0.key.hasPrefix("metertrust_http_requests_total{") && $0.key.contains("status=\"404\"") && $0.key.contains("outcome=\"client_error\"") }
        #expect(notFound.contains { $0.key.contains("requests") }, "\(metrics.body)")
        // Every TLS handshake signed with the server key in the HSM.
        #expect(Self.sample(after, "metertrust_hsm_signature_seconds_count", ["curve": "P-256"]) >= 4, "\(metrics.body)")
        #expect(metrics.body.contains("metertrust_hsm_session_waiters"))

        // One line per request: role, identity, route, status, duration; no PIN, no key.
        let log = server.errorText
        let lines = log.split(separator: "\n").filter { $0.contains("role=admin") && $0.contains("route=/v1/custodians") }
        #expect(lines.count == 3, "\(log)")
        #expect(lines.contains { $0.contains("identity=bob") && $0.contains("status=200") && $0.contains("outcome=success") && $0.contains("duration_ms=") }, "\(log)")
        #expect(log.contains("identity=alice") && log.contains("status=404"))
        let pin = try #require(api.deployment.environment["METERTRUST_HSM_PIN"])
        #expect(!log.contains(pin))
        let key = try String(contentsOfFile: api.path("alice.key"), encoding: .utf8).split(separator: "\n")[1]
        #expect(!log.contains(key))
    }

    @Test("graceful shutdown under load: SIGTERM while 12 custodian clients send requests; every request sent gets its whole response; exit 0 within seconds, HSM sessions and store closed last")
    func gracefulShutdownUnderLoad() throws {
        // The peers: twelve curl clients holding alice's certificate, one request per connection, as fast as they can.
        let api = try AdminAPITests()
        try api.ceremony()
        let server = try Self.start(api.deployment, in: api.people)
        let stop = api.people.appendingPathComponent("stop")
        let port = server.admin
        var clients: [Process] = []
        for index in 0..<12 {
            let script = """
                while [ ! -e '\(stop.path)' ]; do
                  curl -s -o /dev/null --max-time 20 --resolve localhost:\(port):127.0.0.1 --cacert '\(api.path("root.pem"))' \
                    --cert '\(api.path("alice.pem"))' --key '\(api.path("alice.key"))' \
                    -w '%{http_code} %{exitcode} %{size_request} %{size_download}\\n' https://localhost:\(port)/v1/custodians
                done > '\(api.path("client-\(index).out"))'
                """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", script]
            try process.run()
            clients.append(process)
        }
        Thread.sleep(forTimeInterval: 3)
        let ended = server.terminate(within: 15)
        FileManager.default.createFile(atPath: stop.path, contents: nil)
        for client in clients { client.waitUntilExit() }
        let exit = try #require(ended, "serve did not exit after SIGTERM: \(server.errorText)")
        #expect(exit.status == 0, "\(server.errorText)")
        #expect(exit.seconds < 10)

        var completed = 0
        var lost: [String] = []
        for index in 0..<12 {
            for line in try String(contentsOfFile: api.path("client-\(index).out"), encoding: .utf8).split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count == 4, let code = Int(fields[0]), let exitCode = Int(fields[1]), let sent = Int(fields[2]) else { continue }
                if code == 200 && exitCode == 0 {
                    completed += 1
                } else if sent > 0 {
                    // The request went out on an accepted connection: it must have had its whole response.
                    lost.append(String(line))
                }
            }
        }
        #expect(completed >= 12, "too few requests completed to test anything: \(completed)")
        #expect(lost.isEmpty, "requests sent but not answered: \(lost)")
        // Listeners first, then the HSM sessions and the store: the last line.
        let last = server.errorText.split(separator: "\n").last ?? ""
        #expect(last.contains("stopped: every listener closed, then the HSM sessions and the store"), "\(server.errorText.suffix(2000))")
    }

    @Test("/readyz is 503 with a JSON reason while the PostgreSQL store refuses connections, /healthz stays 200, and ready again once it is back")
    func readinessFollowsTheStore() throws {
        // The peer: the load balancer's readiness probe. The fault: the database stops taking this node's connections.
        let api = try AdminAPITests(deployment: try CLITests.Deployment.make(postgres: true))
        try api.ceremony()
        let server = try Self.start(api.deployment, in: api.people)
        defer { _ = server.terminate() }
        #expect(try Self.operations(server.operations, "/readyz").code == 200)
        let database = try TestPostgres.locationOf(api.deployment).database
        let maintenance = TestPostgres.cluster.location.database("postgres")
        #expect(try TestPostgres.psql(maintenance, "ALTER DATABASE \"\(database)\" ALLOW_CONNECTIONS false").status == 0)
        #expect(try TestPostgres.psql(maintenance, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '\(database)'").status == 0)
        let down = try Self.operations(server.operations, "/readyz")
        #expect(down.code == 503, "\(down)")
        let reason = try #require(try JSONSerialization.jsonObject(with: Data(down.body.utf8)) as? [String: Any], "\(down.body)")
        #expect(reason["ready"] as? Bool == false && reason["hsm"] as? String == "ok" && (reason["reason"] as? String)?.hasPrefix("store: ") == true, "\(reason)")
        #expect(try Self.operations(server.operations, "/healthz").code == 200)
        #expect(try TestPostgres.psql(maintenance, "ALTER DATABASE \"\(database)\" ALLOW_CONNECTIONS true").status == 0)
        var back = 0
        for _ in 0..<60 where back != 200 {
            back = try Self.operations(server.operations, "/readyz").code
            if back != 200 { Thread.sleep(forTimeInterval: 0.5) }
        }
        #expect(back == 200)
    }

    // MARK: Migration to the Service CA

    /// The tls-server profile as it was before the Service CA: issued by an operational CA.
    static let legacyTLSServer = CertificateProfile(
        name: "tls-server", issuerRole: .operational, validity: .years(1), subject: .named, certificateAuthority: nil,
        keyUsage: .fixed(KeyUsage(digitalSignature: true)), extendedKeyUsage: [.serverAuth], hardwareModuleName: false,
        crlDistributionPoint: false, ocspAccess: false, dnsNameSAN: true, ipAddressSAN: true, allowedCurves: [.p256]
    )

    /// A deployment as the code before the Service CA left it: root, Admin CA, operational CA north, and the admin
    /// API's certificate issued by north (createTLSServerIdentity from an operational CA), written into the
    /// configuration. Made in this process on a token of the shared directory, then that token is copied into a
    /// directory of the deployment's own for the binary.
    static func legacyDeployment() async throws -> CLITests.Deployment {
        let hsm = try TestEnvironment.makeToken()
        let pin = try String(contentsOfFile: try #require(hsm.pinFile), encoding: .utf8)
        let base = TestEnvironment.temporaryDirectory()
        let data = base.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let token = try HSMToken.open(hsm)
        let store = try SQLiteStore(path: data.appendingPathComponent("metertrust.sqlite").path)
        try await store.migrate()
        let hierarchy = CAHierarchy(token: token, store: store, settings: PKISettings())
        let root = try await hierarchy.createRoot(name: "root", organization: "Test Operator")
        _ = try await hierarchy.createAuthority(role: .admin, name: "admin")
        let north = try await hierarchy.createAuthority(role: .operational, name: "north", organization: "North Utility")
        let signer = try CertificateSigner(authority: north, profile: legacyTLSServer, settings: hierarchy.settings)
        let key = try await token.perform { try $0.generateKeyPair(curve: .p256, label: KeyLabel.unique("tls", "localhost")) }
        let publicKey = HSMSigningKey(token: token, key: key).publicKey
        let (certificate, record) = try await token.perform { _ in
            try signer.signNamed(try PublicKeyInfo(publicKey: publicKey), commonName: "localhost", organizationalUnit: nil, dnsNames: ["localhost"])
        }
        try await store.insertCertificate(record)
        token.close()
        try store.close()

        // The token's directory (its token.object names the label), copied into the deployment's own.
        let tokens = TestEnvironment.runDirectory.appendingPathComponent("tokens")
        let directory = try #require(try FileManager.default.contentsOfDirectory(atPath: tokens.path).first { name in
            let object = FileManager.default.contents(atPath: tokens.appendingPathComponent(name).appendingPathComponent("token.object").path) ?? Data()
            return object.range(of: Data(hsm.tokenLabel.utf8)) != nil
        })
        let own = base.appendingPathComponent("softhsm")
        try FileManager.default.createDirectory(at: own.appendingPathComponent("tokens"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: tokens.appendingPathComponent(directory), to: own.appendingPathComponent("tokens").appendingPathComponent(directory))
        let conf = own.appendingPathComponent("softhsm2.conf")
        try "directories.tokendir = \(own.appendingPathComponent("tokens").path)\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
            .write(to: conf, atomically: true, encoding: .utf8)

        let encoder = JSONEncoder()
        let configuration: [String: Any] = [
            "version": 1,
            "hsm": try JSONSerialization.jsonObject(with: try encoder.encode(
                HSMConfiguration(modulePath: TestEnvironment.modulePath, tokenLabel: hsm.tokenLabel, pinEnvironmentVariable: "METERTRUST_HSM_PIN", pinFile: nil, sessionCount: 2)
            )),
            "pki": try JSONSerialization.jsonObject(with: try encoder.encode(PKISettings())),
            "sqlitePath": "metertrust.sqlite",
            "rootFingerprint": hexString(SHA256.hash(data: try root.certificate.derBytes)),
            "adminServer": ["keyLabel": key.label, "issuer": "north", "certificateSerial": certificate.serialHex, "host": "127.0.0.1", "port": 8443],
        ]
        try JSONSerialization.data(withJSONObject: configuration).write(to: data.appendingPathComponent("metertrust.json"))
        return CLITests.Deployment(
            dataDirectory: data, environment: ["SOFTHSM2_CONF": conf.path, "METERTRUST_HSM_PIN": pin], tokenLabel: hsm.tokenLabel,
            securityOfficerPIN: "so-\(pin)"
        )
    }

    @Test("migration: a deployment whose admin certificate an operational CA issued serves with a one-line warning; Service CA under quorum, server-cert, restart: the new certificate chains to the Service CA and curl is served")
    func legacyDeploymentMigratesToServiceCA() async throws {
        // The risk retired: a utility's Operational CA (north) vouching for the platform's own admin API.
        let deployment = try await Self.legacyDeployment()
        let api = try AdminAPITests(deployment: deployment)
        for name in ["alice", "bob", "carol"] {
            let keygen = try TestEnvironment.run(TestEnvironment.metertrust, ["admin", "keygen", "--name", name, "--out", api.people.path])
            try #require(keygen.status == 0, "\(keygen.stderr)")
            _ = try deployment.json(["admin", "certify", "--csr", api.path("\(name).csr"), "--name", name, "--role", "security-officer", "--out", api.path("\(name).pem")])
        }
        _ = try deployment.json(["audit", "init"])
        _ = try deployment.json(["admin", "bootstrap", "--custodian", api.path("alice.pem"), "--custodian", api.path("bob.pem"), "--custodian", api.path("carol.pem")])
        try deployment.run(["ca", "show", "root", "--pem"]).stdout.write(toFile: api.path("root.pem"), atomically: true, encoding: .utf8)

        let old = try Self.start(deployment, in: api.people)
        let warnings = old.errorText.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
        #expect(warnings.count == 1, "\(old.errorText)")
        #expect(warnings.first.map { $0.contains("operational CA north") && $0.contains("ca.create kind=service") && $0.contains("server-cert --role admin") } == true)
        #expect(try Self.curl(api, as: "alice", port: old.admin, path: "/healthz").code == 200)
        // The Service CA, created under quorum through the admin API the old certificate still serves.
        let request = try api.clientJSON(["admin", "request", "ca.create", "kind=service", "name=platform", "organization=Test Operator"], as: "alice", port: old.admin)
        let id = try #require(request["id"] as? String)
        _ = try api.clientJSON(["admin", "approve", id, "--yes"], as: "bob", port: old.admin)
        _ = try api.clientJSON(["admin", "approve", id, "--yes"], as: "carol", port: old.admin)
        let executed = try api.clientJSON(["admin", "execute", id], as: "alice", port: old.admin)
        #expect(executed["state"] as? String == "executed", "\(executed)")
        #expect(old.terminate()?.status == 0)

        let made = try deployment.json(["server-cert", "--role", "admin", "--host", "localhost"])
        #expect(made["issuer"] as? String == "platform")
        let serial = try #require(made["serial"] as? String)
        try deployment.run(["cert", "show", serial, "--pem"]).stdout.write(toFile: api.path("server.pem"), atomically: true, encoding: .utf8)
        try deployment.run(["ca", "show", "platform", "--pem"]).stdout.write(toFile: api.path("platform.pem"), atomically: true, encoding: .utf8)
        try deployment.run(["ca", "show", "north", "--pem"]).stdout.write(toFile: api.path("north.pem"), atomically: true, encoding: .utf8)
        let verified = try TestEnvironment.run("openssl", ["verify", "-CAfile", api.path("root.pem"), "-untrusted", api.path("platform.pem"), api.path("server.pem")])
        #expect(verified.status == 0 && verified.stdout.contains(": OK"), "\(verified.stdout) \(verified.stderr)")
        #expect(try TestEnvironment.run("openssl", ["verify", "-CAfile", api.path("root.pem"), "-untrusted", api.path("north.pem"), api.path("server.pem")]).status != 0)

        let new = try Self.start(deployment, in: api.people)
        defer { _ = new.terminate() }
        #expect(!new.errorText.contains("warning: "), "\(new.errorText)")
        #expect(try Self.curl(api, as: "alice", port: new.admin, path: "/healthz").code == 200)
        // What the server presents now is the Service CA's certificate.
        let presented = try TestEnvironment.run("/bin/sh", [
            "-c", "openssl s_client -connect 127.0.0.1:\(new.admin) -servername localhost -cert '\(api.path("alice.pem"))' -key '\(api.path("alice.key"))' </dev/null 2>/dev/null | openssl x509 -noout -issuer",
        ])
        #expect(presented.stdout.contains("CN = platform Service CA"), "\(presented.stdout)")
    }
}
