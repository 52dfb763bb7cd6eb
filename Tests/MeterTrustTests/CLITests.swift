import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustHSM
import MeterTrustPKI
import Testing

/// The `metertrust` binary end to end, checked by tools no one here wrote: openssl, Python cryptography, pkilint.
@Suite("metertrust CLI with independent verifiers")
struct CLITests {
    /// A data directory initialised on a fresh token, and the environment that carries its PIN.
    /// A deployment driven through the binary, on a token in a SoftHSM2 directory of its own.
    struct Deployment {
        let dataDirectory: URL
        /// SOFTHSM2_CONF and METERTRUST_HSM_PIN: every process of this deployment (binary, PyKCS11) runs with them.
        let environment: [String: String]
        let tokenLabel: String
        let securityOfficerPIN: String

        /// A new deployment: its own token; the store in its data directory (SQLite), or with `postgres` a new
        /// database of its own on the PostgreSQL test cluster.
        static func make(postgres: Bool = false) throws -> Deployment {
            let hsm = try TestEnvironment.makeIsolatedToken()
            let deployment = Deployment(
                dataDirectory: TestEnvironment.temporaryDirectory().appendingPathComponent("data"),
                environment: hsm.environment, tokenLabel: hsm.label, securityOfficerPIN: hsm.securityOfficerPIN
            )
            var arguments = ["init", "--token-label", hsm.label, "--module", TestEnvironment.modulePath, "--json"]
            if postgres {
                arguments += ["--store", try TestPostgres.makeDatabaseNow().description, "--store-password-file", TestPostgres.cluster.passwordFile]
            }
            let initialised = try deployment.run(arguments)
            try #require(initialised.status == 0, "\(initialised.stderr)")
            let result = try JSONSerialization.jsonObject(with: Data(initialised.stdout.utf8)) as? [String: Any]
            #expect(result?["journalMode"] as? String == (postgres ? nil : "wal"))
            #expect(result?["backend"] as? String == (postgres ? "PostgreSQL" : "SQLite"))
            return deployment
        }

        /// Another MeterTrust node of this deployment: a data directory of its own with the same configuration (so
        /// the same PostgreSQL store), and a copy of the token made now (the same keys; SoftHSM2 processes must not
        /// share a token directory, a network HSM would be shared).
        func secondNode() throws -> Deployment {
            let base = TestEnvironment.temporaryDirectory()
            let hsm = URL(fileURLWithPath: environment["SOFTHSM2_CONF"]!).deletingLastPathComponent()
            let copiedHSM = base.appendingPathComponent("softhsm")
            try FileManager.default.copyItem(at: hsm, to: copiedHSM)
            let configuration = copiedHSM.appendingPathComponent("softhsm2.conf")
            let text = try String(contentsOf: configuration, encoding: .utf8).replacingOccurrences(of: hsm.path, with: copiedHSM.path)
            try text.write(to: configuration, atomically: true, encoding: .utf8)
            let data = base.appendingPathComponent("data")
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            try FileManager.default.copyItem(
                at: dataDirectory.appendingPathComponent("metertrust.json"), to: data.appendingPathComponent("metertrust.json")
            )
            return Deployment(
                dataDirectory: data, environment: environment.merging(["SOFTHSM2_CONF": configuration.path]) { $1 }, tokenLabel: tokenLabel,
                securityOfficerPIN: securityOfficerPIN
            )
        }

        func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> TestEnvironment.ProcessResult {
            try TestEnvironment.run(
                TestEnvironment.metertrust, arguments + ["--data-dir", dataDirectory.path],
                environment: environment.merging(extra) { $1 }
            )
        }

        func json(_ arguments: [String]) throws -> [String: Any] {
            let result = try run(arguments + ["--json"])
            try #require(result.status == 0, "metertrust \(arguments.joined(separator: " ")): \(result.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }

        func file(_ name: String) -> String { dataDirectory.deletingLastPathComponent().appendingPathComponent(name).path }
    }

    static func python(_ arguments: [String]) throws -> TestEnvironment.ProcessResult {
        try TestEnvironment.run(TestEnvironment.python, arguments)
    }

    @Test("a hierarchy and a device certificate made by the CLI pass openssl verify, Python cryptography and pkilint")
    func independentVerifiers() throws {
        try #require(FileManager.default.isExecutableFile(atPath: TestEnvironment.metertrust), "build metertrust first (make test does)")
        try #require(FileManager.default.isExecutableFile(atPath: TestEnvironment.python), "no Python virtualenv at \(TestEnvironment.python): run `make venv` (make test does)")
        let deployment = try Deployment.make()
        let root = try deployment.json(["ca", "create-root", "--name", "root", "--organization", "Test Operator"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme", "--organization", "Acme Meters"])
        _ = try deployment.json(["ca", "create-operational", "--name", "north", "--organization", "North Utility"])
        _ = try deployment.json(["ca", "create-admin", "--name", "admin"])
        let operatorCA = try deployment.json(["ca", "create-operator", "--name", "operators", "--organization", "Test Operator"])
        #expect((operatorCA["certificate"] as? [String: Any])?["subject"] as? String == "CN=operators Operator CA,O=Test Operator")

        // The meter makes its key and CSR; the CLI issues from the CSR file.
        let meter = MeterIdentity(eui64: try EUI64("0024befffe804ff1"))
        let csrPath = deployment.file("meter.csr")
        let csr = try meter.certificateSigningRequest(hardwareType: [2, 999, 2, 1])
        try csr.serializeAsPEM().pemString.write(toFile: csrPath, atomically: true, encoding: .utf8)
        let devicePath = deployment.file("device.pem")
        let chainPath = deployment.file("chain.pem")
        let issued = try deployment.json([
            "issue", "--csr", csrPath, "--profile", "device-identity", "--ca", "acme", "--out", devicePath, "--chain-out", chainPath,
        ])
        let certificate = try #require(issued["certificate"] as? [String: Any])
        #expect(certificate["eui64"] as? String == "0024befffe804ff1")

        // PEM files of every CA, fetched back by serial.
        let authorities = try #require(try JSONSerialization.jsonObject(with: Data(try deployment.run(["ca", "list", "--json"]).stdout.utf8)) as? [[String: Any]])
        #expect(authorities.count == 5)
        var pemPaths: [String: String] = [:]
        for authority in authorities {
            let name = authority["name"] as! String
            let serial = (authority["certificate"] as! [String: Any])["serial"] as! String
            let shown = try deployment.run(["cert", "show", serial, "--ca", authority["parent"] as? String ?? name, "--pem"])
            try #require(shown.status == 0, "\(shown.stderr)")
            pemPaths[name] = deployment.file("\(name).pem")
            try shown.stdout.write(toFile: pemPaths[name]!, atomically: true, encoding: .utf8)
            if name == "acme" { #expect(authority["issuedCertificates"] as? Int == 1) }
        }
        #expect((root["certificate"] as? [String: Any])?["serial"] as? String == (authorities.first { $0["name"] as? String == "root" }?["certificate"] as? [String: Any])?["serial"] as? String)

        // openssl verify: the device chain verifies to the root; not through another CA.
        let verified = try TestEnvironment.run("openssl", ["verify", "-CAfile", pemPaths["root"]!, "-untrusted", pemPaths["acme"]!, devicePath])
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
        #expect(verified.stdout.contains(": OK"))
        let chained = try TestEnvironment.run("openssl", ["verify", "-CAfile", pemPaths["root"]!, "-untrusted", chainPath, devicePath])
        #expect(chained.status == 0, "\(chained.stderr)")
        let wrongIssuer = try TestEnvironment.run("openssl", ["verify", "-CAfile", pemPaths["root"]!, "-untrusted", pemPaths["north"]!, devicePath])
        #expect(wrongIssuer.status != 0)

        // Python cryptography reads the EUI-64 back from the HardwareModuleName.
        let read = try Self.python([TestEnvironment.tool("read_device_certificate.py"), devicePath])
        try #require(read.status == 0, "\(read.stderr)")
        let fields = try #require(try JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [String: Any])
        #expect(fields["eui64"] as? String == "0024befffe804ff1")
        #expect(fields["hwType"] as? String == "2.999.2.1")
        #expect(fields["sanNames"] as? Int == 1)
        #expect(fields["sanCritical"] as? Bool == true)
        #expect(fields["subjectEmpty"] as? Bool == true)
        #expect(fields["keyUsageCritical"] as? Bool == true)
        #expect(fields["digitalSignature"] as? Bool == true && fields["keyAgreement"] as? Bool == false)
        #expect(fields["policiesCritical"] as? Bool == true)
        #expect(fields["skiLength"] as? Int == 8 && fields["akiLength"] as? Int == 8)
        #expect(fields["notAfter"] as? String == "99991231235959Z")

        // pkilint: no finding of WARNING or worse on any certificate, and SKIs recognised as method 2.
        for path in Array(pemPaths.values) + [devicePath] {
            let lint = try Self.python([TestEnvironment.tool("pkilint_run.py"), "lint_pkix_cert", "lint", "-s", "WARNING", path])
            #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(path): \(lint.stdout) \(lint.stderr)")
            let info = try Self.python([TestEnvironment.tool("pkilint_run.py"), "lint_pkix_cert", "lint", "-s", "INFO", path])
            #expect(info.stdout.contains("subject_key_identifier_method_2_identified"), "\(path): \(info.stdout)")
        }
        for (issuer, subject) in [(pemPaths["root"]!, pemPaths["acme"]!), (pemPaths["acme"]!, devicePath), (pemPaths["root"]!, pemPaths["north"]!), (pemPaths["root"]!, pemPaths["operators"]!)] {
            let lint = try Self.python([TestEnvironment.tool("pkilint_run.py"), "lint_pkix_signer_signee_cert_chain", "lint", "-s", "WARNING", issuer, subject])
            #expect(lint.status == 0, "\(subject): \(lint.stdout) \(lint.stderr)")
        }

        // cert show finds the device by serial.
        let shown = try deployment.json(["cert", "show", certificate["serial"] as! String])
        #expect((shown["certificate"] as? [String: Any])?["eui64"] as? String == "0024befffe804ff1")
        #expect(shown["issuerCA"] as? String == "acme")
    }

    @Test("CLI errors are one line on stderr with a non-zero exit, and change nothing")
    func rejectWithOneLineErrors() throws {
        let deployment = try Deployment.make()
        _ = try deployment.json(["ca", "create-root", "--name", "root"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme"])
        let csrPath = deployment.file("meter.csr")
        try MeterIdentity(eui64: EUI64(5)).certificateSigningRequest(hardwareType: [2, 999, 2, 1])
            .serializeAsPEM().pemString.write(toFile: csrPath, atomically: true, encoding: .utf8)
        let garbagePath = deployment.file("garbage.csr")
        try "this is not a CSR".write(toFile: garbagePath, atomically: true, encoding: .utf8)

        // The exit status is the one the error's code maps to (README, "Errors and exit statuses").
        let cases: [(arguments: [String], environment: [String: String], mentions: String, status: Int32)] = [
            (["issue", "--csr", csrPath, "--profile", "super-ca"], [:], "unknown profile", 1),
            (["issue", "--csr", garbagePath, "--profile", "device-identity", "--eui64", "0000000000000001"], [:], "not a DER PKCS#10", 1),
            (["issue", "--csr", deployment.file("missing.csr"), "--profile", "device-identity"], [:], "cannot read the CSR file", 1),
            (["issue", "--csr", csrPath, "--profile", "device-identity", "--eui64", "12345"], [:], "is not an EUI-64", 1),
            (["issue", "--csr", csrPath, "--profile", "device-identity", "--ca", "nobody"], [:], "no CA named", 1),
            (["ca", "create-manufacturer", "--name", "acme"], [:], "already exists", 1),
            (["ca", "create-operational", "--name", "north"], ["METERTRUST_HSM_PIN": ""], "METERTRUST_HSM_PIN", 3),
            (["cert", "show", "zz"], [:], "not a hex serial", 1),
            (["cert", "show", "0123"], [:], "no certificate with serial", 1),
            (["cert", "show"], [:], "Missing expected argument", 2),
        ]
        for (arguments, environment, mentions, status) in cases {
            let result = try deployment.run(arguments, environment: environment)
            let label = arguments.joined(separator: " ")
            #expect(result.status == status, "\(label): exit \(result.status)")
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("error: "), "\(label): \(result.stderr)")
            #expect(result.stderr.contains(mentions), "\(label): \(result.stderr)")
            #expect(!result.stderr.contains("Fatal error") && !result.stderr.contains("Stack dump"), "\(label)")
        }
        // Nothing was stored by any refusal: root and acme certificates only.
        let list = try deployment.run(["ca", "list", "--json"])
        let authorities = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(authorities.count == 2)
        #expect(authorities.compactMap { $0["issuedCertificates"] as? Int }.reduce(0, +) == 1)

        // No data directory; and no way to pass a PIN on the command line.
        let missing = try TestEnvironment.run(TestEnvironment.metertrust, ["ca", "list", "--data-dir", deployment.file("nowhere")])
        #expect(missing.status == 1 && missing.stderr.contains("metertrust init"))
        let pinOption = try deployment.run(["ca", "create-operational", "--name", "north", "--pin", "1234"])
        #expect(pinOption.status != 0 && pinOption.stderr.contains("Unknown option"))
    }

    @Test("metertrust demo runs at a small size: hierarchy, meters, a sample certificate with its EUI-64, accounts, meters enrolling over EST")
    func demo() throws {
        let hsm = try TestEnvironment.makeIsolatedToken()
        let directory = TestEnvironment.temporaryDirectory().appendingPathComponent("demo")
        let environment = hsm.environment
        let arguments = ["demo", "--data-dir", directory.path, "--meters", "4", "--token-label", hsm.label, "--module", TestEnvironment.modulePath]
        let json = try TestEnvironment.run(TestEnvironment.metertrust, arguments + ["--json"], environment: environment)
        try #require(json.status == 0, "\(json.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        // root, manufacturer, two operational, admin, service and operator CAs.
        #expect((result["authorities"] as? [[String: Any]])?.count == 7)
        #expect((result["devices"] as? [[String: Any]])?.count == 4)
        // Onboarding: two accounts under quorum, north's manifest claims the batch, south collides on the first meter,
        // the second changes supplier.
        let onboarding = try #require(result["onboarding"] as? [String: Any])
        let accounts = try #require(onboarding["accounts"] as? [[String: Any]])
        #expect(accounts.compactMap { $0["id"] as? String } == ["north", "south"])
        #expect(accounts.allSatisfy { ($0["approvers"] as? [String])?.count == 2 })
        #expect(accounts.compactMap { $0["claims"] as? Int } == [3, 1])
        #expect((onboarding["upload"] as? [String: Any])?["claimed"] as? Int == 4)
        let conflicts = try #require(onboarding["conflicts"] as? [[String: Any]])
        #expect(conflicts.count == 1 && conflicts[0]["eui64"] as? String == "0024befffe800001" && conflicts[0]["claimant"] as? String == "south")
        #expect(onboarding["changedSupplier"] as? String == "0024befffe800002")
        let history = try #require(onboarding["history"] as? [[String: Any]]).compactMap { $0["kind"] as? String }
        #expect(history.first == "claimed" && history.contains("released") && history.last == "claimed", "\(history)")
        #expect((result["sample"] as? [String: Any])?["eui64"] as? String == "0024befffe800001")
        let batch = try #require(result["batch"] as? [String: Any])
        #expect((batch["counts"] as? [String: Int])?["issued"] == 4)
        // In the field, over EST against serve --roles est: south's meter and north's third enroll from their accounts'
        // Operational CAs; the meter in conflict and the one north released are refused with the server's reason.
        let est = try #require(result["est"] as? [String: Any])
        let enrolled = try #require(est["enrolled"] as? [[String: Any]])
        #expect(enrolled.compactMap { $0["eui64"] as? String } == ["0024befffe800002", "0024befffe800003"])
        #expect(enrolled.compactMap { $0["account"] as? String } == ["south", "north"])
        #expect(enrolled.allSatisfy { ($0["issuer"] as? String)?.contains("\($0["account"] as? String ?? "")-utility Operational CA") == true }, "\(enrolled)")
        let refused = try #require(est["refused"] as? [[String: Any]])
        #expect(refused.compactMap { $0["eui64"] as? String } == ["0024befffe800001", "0024befffe800004"])
        #expect(refused.compactMap { $0["code"] as? String } == ["est.meter-in-conflict", "est.not-claimed"], "\(refused)")
        #expect(est["released"] as? String == "0024befffe800004")
        #expect(batch["refusalsTotal"] as? Int == 1)
        #expect((result["devices"] as? [[String: Any]])?.allSatisfy { $0["stage"] as? String == "locked" } == true)
        #expect((result["lockedConfigurator"] as? String)?.contains("cannot be used again") == true)

        let again = try TestEnvironment.run(TestEnvironment.metertrust, arguments, environment: environment)
        #expect(again.status == 1 && again.stderr.contains("--reset"))
        let text = try TestEnvironment.run(TestEnvironment.metertrust, arguments + ["--reset"], environment: environment)
        try #require(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("CA hierarchy"))
        #expect(text.stdout.contains("batch demo-batch-1 for manufacturer acme-meters"))
        #expect(text.stdout.contains("claims EUI-64 0024befffe800001"))
        #expect(text.stdout.contains("EUI-64:         0024befffe800001"))
        #expect(text.stdout.contains("-----BEGIN CERTIFICATE-----"))
        #expect(text.stdout.contains("conflict: 0024befffe800001 held by north, also listed by south"))
        #expect(text.stdout.contains("change of supplier: 0024befffe800002 released by north, claimed by south"))
        #expect(text.stdout.contains("0024befffe800004  refused: EST simpleenroll at https://127.0.0.1:"), "\(text.stdout)")
        #expect(text.stdout.contains("refused: HTTP 403, est.not-claimed"))
        // The meters keep what they were issued; openssl agrees it chains to the root they pinned.
        let meter = directory.appendingPathComponent("meters/0024befffe800003")
        let operational = try TestEnvironment.run("openssl", [
            "verify", "-CAfile", directory.appendingPathComponent("pem/root.pem").path, "-untrusted", meter.appendingPathComponent("operational-chain.pem").path,
            meter.appendingPathComponent("operational-certificate.pem").path,
        ])
        #expect(operational.status == 0, "\(operational.stdout) \(operational.stderr)")
        let pem = directory.appendingPathComponent("pem")
        let verified = try TestEnvironment.run("openssl", [
            "verify", "-CAfile", pem.appendingPathComponent("root.pem").path, "-untrusted", pem.appendingPathComponent("acme-meters.pem").path,
            pem.appendingPathComponent("devices/0024befffe800001.pem").path,
        ])
        #expect(verified.status == 0, "\(verified.stderr)")
    }
}
