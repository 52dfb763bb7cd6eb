import Crypto
import Foundation
import MeterTrustCore
import MeterTrustPKI
import MeterTrustServer
import SwiftASN1
import Testing
import X509

/// Issue 12, item 6: `admin server-cert --host NAME|--ip ADDR` and `admin serve` printing URLs a client can use as
/// they are (an IP address the certificate names as iPAddress, else one of its DNS names).
@Suite("Server addresses that work")
struct ServerAddressTests {
    let deployment: CLITests.Deployment
    let people: URL

    init() throws {
        deployment = try CLITests.Deployment.make()
        people = deployment.dataDirectory.deletingLastPathComponent().appendingPathComponent("people")
        try FileManager.default.createDirectory(at: people, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { people.appendingPathComponent(name).path }

    /// Root, Admin CA, operational CA, the audit log and three custodians registered: what `admin serve` needs,
    /// short of its TLS identity.
    func ceremony() throws {
        let root = try deployment.json(["ca", "create-root", "--name", "root"])
        let rootSerial = try #require((root["certificate"] as? [String: Any])?["serial"] as? String)
        try deployment.run(["cert", "show", rootSerial, "--pem"]).stdout.write(toFile: path("root.pem"), atomically: true, encoding: .utf8)
        _ = try deployment.json(["ca", "create-admin", "--name", "admin"])
        _ = try deployment.json(["ca", "create-operational", "--name", "north"])
        _ = try deployment.json(["ca", "create-service", "--name", "platform"])
        for name in ["alice", "bob", "carol"] {
            let keygen = try TestEnvironment.run(TestEnvironment.metertrust, ["admin", "keygen", "--name", name, "--out", people.path])
            try #require(keygen.status == 0, "\(keygen.stderr)")
            _ = try deployment.json(["admin", "certify", "--csr", path("\(name).csr"), "--name", name, "--role", "security-officer", "--out", path("\(name).pem")])
        }
        _ = try deployment.json(["audit", "init"])
        _ = try deployment.json(["admin", "bootstrap", "--custodian", path("alice.pem"), "--custodian", path("bob.pem"), "--custodian", path("carol.pem")])
    }

    /// Starts `admin serve` and returns it with the URLs it printed.
    func serve(listen: String) throws -> (Process, [String]) {
        let output = people.appendingPathComponent("serve-\(UUID().uuidString.prefix(6)).out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.metertrust)
        process.arguments = ["admin", "serve", "--listen", listen, "--operations-listen", "127.0.0.1:0", "--data-dir", deployment.dataDirectory.path]
        process.environment = ProcessInfo.processInfo.environment.merging(deployment.environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<300 {
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            let urls = text.split(separator: "\n").compactMap { line -> String? in
                guard let range = line.range(of: "listening on ") else { return nil }
                return line[range.upperBound...].split(separator: " ").first.map(String.init)
            }
            if !urls.isEmpty, text.hasSuffix("\n") { return (process, urls) }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        process.terminate()
        throw TestSetupError("admin serve printed no URL")
    }

    struct TestSetupError: Error { let message: String; init(_ message: String) { self.message = message } }

    /// The CLI's admin client at `url` exactly as printed (no METERTRUST_ADMIN_URL), as alice.
    func adminList(_ url: String) throws -> TestEnvironment.ProcessResult {
        try TestEnvironment.run(
            TestEnvironment.metertrust, ["admin", "list", "--server", url],
            environment: [
                "METERTRUST_ADMIN_CERT": path("alice.pem"), "METERTRUST_ADMIN_KEY": path("alice.key"), "METERTRUST_ADMIN_TRUST": path("root.pem"),
                "METERTRUST_WITNESS_DIR": path("alice.witness"),
            ]
        )
    }

    /// curl, which no one here wrote, at `url`/healthz: it checks the host against the SAN as it was dialled.
    func curl(_ url: String) throws -> TestEnvironment.ProcessResult {
        try TestEnvironment.run("curl", [
            "--silent", "--show-error", "--fail", "--cacert", path("root.pem"), "--cert", path("alice.pem"), "--key", path("alice.key"),
            "\(url)/healthz",
        ])
    }

    @Test("server-cert --ip 127.0.0.1: admin serve prints https://127.0.0.1:PORT, and that URL works as it is with the CLI and curl")
    func ipAddressURL() throws {
        try ceremony()
        let made = try deployment.json(["admin", "server-cert", "--ip", "127.0.0.1"])
        #expect(made["names"] as? [String] == ["127.0.0.1"] && made["listen"] as? String == "127.0.0.1:8443", "\(made)")
        let (server, urls) = try serve(listen: "127.0.0.1:0")
        defer { server.terminate(); server.waitUntilExit() }
        let url = try #require(urls.first)
        #expect(urls.count == 1 && url.hasPrefix("https://127.0.0.1:") && !url.hasSuffix(":0"), "\(urls)")
        let listed = try adminList(url)
        #expect(listed.status == 0, "admin list --server \(url): \(listed.stderr)")
        #expect(!listed.stderr.contains("failedToValidateHostname"))
        let fetched = try curl(url)
        #expect(fetched.status == 0, "curl \(url): \(fetched.stderr)")
    }

    @Test("server-cert --host localhost: admin serve on 127.0.0.1 prints https://localhost:PORT (the certificate names no address), which works as it is")
    func hostNameURL() throws {
        try ceremony()
        _ = try deployment.json(["admin", "server-cert", "--host", "localhost"])
        let (server, urls) = try serve(listen: "127.0.0.1:0")
        defer { server.terminate(); server.waitUntilExit() }
        let url = try #require(urls.first)
        #expect(urls.count == 1 && url.hasPrefix("https://localhost:"), "\(urls)")
        let listed = try adminList(url)
        #expect(listed.status == 0, "admin list --server \(url): \(listed.stderr)")
        let fetched = try curl(url)
        #expect(fetched.status == 0, "curl \(url): \(fetched.stderr)")
        // The address itself is not in this certificate: a client dialling it is refused, which is why it is not printed.
        let byAddress = try adminList(url.replacingOccurrences(of: "localhost", with: "127.0.0.1"))
        #expect(byAddress.status != 0)
    }

    @Test("a tls-server certificate for names and IPv4/IPv6 addresses: openssl reads them, pkilint finds nothing; bad names are refused before anything is made")
    func namesAndAddressesInTheCertificate() throws {
        try ceremony()
        let made = try deployment.json(["admin", "server-cert", "--host", "Admin.Example.NET", "--ip", "192.0.2.7", "--ip", "[2001:DB8::7]", "--host", "meters.example.org"])
        #expect(made["names"] as? [String] == ["admin.example.net", "meters.example.org", "192.0.2.7", "2001:db8::7"], "\(made)")
        #expect(made["listen"] as? String == "192.0.2.7:8443")
        let serial = try #require(made["serial"] as? String)
        let pem = try deployment.run(["cert", "show", serial, "--ca", "platform", "--pem"])
        try #require(pem.status == 0, "\(pem.stderr)")
        try pem.stdout.write(toFile: path("server.pem"), atomically: true, encoding: .utf8)
        let san = try TestEnvironment.run("openssl", ["x509", "-in", path("server.pem"), "-noout", "-ext", "subjectAltName"])
        #expect(san.stdout.contains("DNS:admin.example.net, DNS:meters.example.org, IP Address:192.0.2.7, IP Address:2001:DB8:0:0:0:0:0:7"), "\(san.stdout)")
        let lint = try CLITests.python([TestEnvironment.tool("pkilint_run.py"), "lint_pkix_cert", "lint", "-s", "WARNING", path("server.pem")])
        #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(lint.stdout) \(lint.stderr)")

        // (pkilint holds a single-label name such as localhost to be bad syntax, so this certificate names none.)
        // What a listener on every address prints: one URL per name, IPv6 in brackets.
        let certificate = try Certificate(pemEncoded: pem.stdout)
        #expect(ServerURLs.urls(certificate: certificate, bindHost: "0.0.0.0", port: 8443) == [
            "https://admin.example.net:8443", "https://meters.example.org:8443", "https://192.0.2.7:8443", "https://[2001:db8::7]:8443",
        ])
        #expect(ServerURLs.urls(certificate: certificate, bindHost: "2001:db8:0::7", port: 1) == ["https://[2001:db8::7]:1"])
        #expect(ServerURLs.urls(certificate: certificate, bindHost: "10.1.1.1", port: 1) == ["https://admin.example.net:1"])
        #expect(ServerURLs.urls(certificate: certificate, bindHost: "Meters.example.org", port: 1) == ["https://meters.example.org:1"])

        // Refused with one line, before any key is made.
        for (arguments, mentions) in [
            (["--ip", "192.0.2.300"], "is not an IPv4 or IPv6 address"), (["--host", "10.0.0.1"], "give it with --ip"),
            (["--host", "bad_name.example"], "is not a host name"), (["--ip", "0.0.0.0"], "names no server"),
        ] {
            let refused = try deployment.run(["admin", "server-cert"] + arguments)
            #expect(refused.status == 1 && refused.stderr.hasPrefix("error: ") && refused.stderr.contains(mentions), "\(arguments): \(refused.stderr)")
            #expect(refused.stderr.split(separator: "\n").count == 1)
        }
        let authorities = try #require(try JSONSerialization.jsonObject(with: Data(try deployment.run(["ca", "list", "--json"]).stdout.utf8)) as? [[String: Any]])
        #expect(authorities.first { $0["name"] as? String == "platform" }?["issuedCertificates"] as? Int == 1)
    }
}
