import Crypto
import Foundation
import MeterTrustCore
import MeterTrustFactory
import Testing

/// What the platform holds, seen through the real binary on a real token: `ca show`, `cert list`, `batch list|show`,
/// `meter show`, and the read-only `admin custodians|policies|requests` on the HSM host.
@Suite("Inventory: what the platform holds")
struct InventoryTests {
    typealias Deployment = CLITests.Deployment

    static func parse(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    /// The JSON document a successful command prints.
    static func document(_ deployment: Deployment, _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> Any {
        let result = try deployment.run(arguments + ["--json"])
        try #require(result.status == 0, "metertrust \(arguments.joined(separator: " ")): \(result.stderr)", sourceLocation: sourceLocation)
        return try parse(result.stdout)
    }

    /// `cert list --json`: the certificates of one page and the next cursor.
    static func page(_ deployment: Deployment, _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> (certificates: [[String: Any]], next: String?) {
        let object = try #require(try document(deployment, ["cert", "list"] + arguments, sourceLocation: sourceLocation) as? [String: Any], sourceLocation: sourceLocation)
        #expect(object.keys.contains("next"), "the next cursor is always present (null on the last page)", sourceLocation: sourceLocation)
        return (try #require(object["certificates"] as? [[String: Any]], sourceLocation: sourceLocation), object["next"] as? String)
    }

    static func keys(_ certificates: [[String: Any]]) -> [String] {
        certificates.map { "\($0["issuerCA"] as? String ?? "?")/\($0["serial"] as? String ?? "?")" }
    }

    /// A refusal: the exit status, and one `error:` line naming `fragment`.
    static func expectRefused(
        _ result: TestEnvironment.ProcessResult, status: Int32, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(result.status == status, "exit \(result.status), expected \(status): \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("error: ") && result.stderr.contains(fragment), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.split(separator: "\n").count == 1, "not one line: \(result.stderr)", sourceLocation: sourceLocation)
    }

    /// The PEM blocks of a text, in order.
    static func pemBlocks(_ text: String) -> [String] {
        text.components(separatedBy: "-----END CERTIFICATE-----").dropLast().map {
            String($0[$0.range(of: "-----BEGIN CERTIFICATE-----")!.lowerBound...]) + "-----END CERTIFICATE-----\n"
        }
    }

    @Test("ca show, cert list, batch list|show and meter show: text and JSON, filters, paging, PEM and chains checked by openssl and Python cryptography, unknown names refused")
    func inventory() throws {
        try #require(FileManager.default.isExecutableFile(atPath: TestEnvironment.metertrust), "build metertrust first (make test does)")
        let deployment = try Deployment.make()
        _ = try deployment.json(["ca", "create-root", "--name", "root", "--organization", "Test Operator"])
        _ = try deployment.json(["audit", "init"])
        _ = try deployment.json(["ca", "create-manufacturer", "--name", "acme", "--organization", "Acme Meters"])
        _ = try deployment.json(["ca", "create-operational", "--name", "north", "--organization", "North Utility"])
        let hardwareType = PKIFixture.deviceType

        // Three meters issued one by one, and an operational certificate for the first.
        let singles = (1...3).map { EUI64(0x0024_BEFF_FE80_0000 + UInt64($0)) }
        var singleSerials: [String] = []
        for eui in singles {
            let csr = deployment.file("\(eui).csr")
            try Data(try DeviceIdentityRequest.der(eui64: eui, privateKey: P256.Signing.PrivateKey(), hardwareType: hardwareType)).write(to: URL(fileURLWithPath: csr))
            let issued = try deployment.json(["issue", "--csr", csr, "--profile", "device-identity", "--ca", "acme"])
            singleSerials.append(try #require((issued["certificate"] as? [String: Any])?["serial"] as? String))
        }
        let operational = try deployment.json(["issue", "--csr", deployment.file("\(singles[0]).csr"), "--profile", "device-operational", "--ca", "north"])
        let operationalSerial = try #require((operational["certificate"] as? [String: Any])?["serial"] as? String)

        // A factory batch of six meters, five with a CSR: the sixth is refused by name.
        let batchMeters = (0..<6).map { EUI64(0x0024_BEFF_FE00_0000 + UInt64($0)) }
        let csrLines = try batchMeters.prefix(5).map {
            CSRListReader.line(eui64: $0, csr: try DeviceIdentityRequest.der(eui64: $0, privateKey: P256.Signing.PrivateKey(), hardwareType: hardwareType))
        }
        try Data(csrLines.joined().utf8).write(to: URL(fileURLWithPath: deployment.file("csrs.txt")))
        let manifest: [String: Any] = [
            "format": "metertrust-batch", "version": 1, "batch": "acme-line1", "manufacturer": "acme",
            "firmware": ["sha256": String(repeating: "ab", count: 32)], "bootstrapServerURI": "coaps+tcp://bootstrap.example.net",
            "meters": ["eui64s": batchMeters.map(\.description)], "csrs": "csrs.txt",
        ]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: deployment.file("batch.json")))
        let out = URL(fileURLWithPath: deployment.file("batch-out")).standardizedFileURL.path
        // (Its exit status for a partly refused batch is another part of issue 12; here only what it stored matters.)
        let batchRun = try deployment.run(["factory", "run", "--manifest", deployment.file("batch.json"), "--out", out, "--quiet"])
        #expect(FileManager.default.fileExists(atPath: out + "/report.json"), "\(batchRun.stderr)")

        // MARK: ca show
        let acme = try #require(try Self.document(deployment, ["ca", "show", "acme"]) as? [String: Any])
        #expect(acme["name"] as? String == "acme" && acme["role"] as? String == "manufacturer" && acme["parent"] as? String == "root")
        #expect(acme["status"] as? String == "active" && acme["statusJudgedBy"] as? [String] == ["store", "audit-log"])
        #expect(acme["issuedCertificates"] as? Int == 8)  // three singles, five from the batch
        #expect((acme["keyLabel"] as? String)?.isEmpty == false && acme["curve"] as? String == "P-256")
        let acmeSerial = try #require((acme["certificate"] as? [String: Any])?["serial"] as? String)
        let root = try #require(try Self.document(deployment, ["ca", "show", "root"]) as? [String: Any])
        #expect(root["parent"] == nil && (root["children"] as? [String]) == ["acme", "north"])
        #expect(root["issuedCertificates"] as? Int == 3)  // acme, north, the audit signer
        let text = try deployment.run(["ca", "show", "acme"])
        #expect(text.status == 0 && text.stdout.contains("CA acme  [manufacturer]  issued by root") && text.stdout.contains("status:         active"))
        #expect(text.stdout.contains("issued:         8 certificates") && text.stdout.contains(acmeSerial))

        // --pem: Python cryptography reads the same certificate; --chain: acme first, the root last, openssl verifies it.
        let acmePEM = try deployment.run(["ca", "show", "acme", "--pem"])
        try #require(acmePEM.status == 0 && Self.pemBlocks(acmePEM.stdout).count == 1, "\(acmePEM.stderr)")
        try acmePEM.stdout.write(toFile: deployment.file("acme.pem"), atomically: true, encoding: .utf8)
        let read = try CLITests.python([
            "-c", "import sys; from cryptography import x509; c = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read()); print(format(c.serial_number, 'x'), c.subject.rfc4514_string())",
            deployment.file("acme.pem"),
        ])
        try #require(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.hasPrefix(acmeSerial.drop { $0 == "0" } + " ") && read.stdout.contains("Acme Meters"), "\(read.stdout)")
        let chain = try deployment.run(["ca", "show", "acme", "--chain"])
        let blocks = Self.pemBlocks(chain.stdout)
        try #require(chain.status == 0 && blocks.count == 2, "\(chain.stderr)")
        #expect(blocks[0] == acmePEM.stdout)
        let rootPEM = try deployment.run(["ca", "show", "root", "--pem"]).stdout
        let rootChain = try deployment.run(["ca", "show", "root", "--chain"]).stdout
        #expect(blocks[1] == rootPEM && Self.pemBlocks(rootChain) == [rootPEM])
        try rootPEM.write(toFile: deployment.file("root.pem"), atomically: true, encoding: .utf8)
        try chain.stdout.write(toFile: deployment.file("acme-chain.pem"), atomically: true, encoding: .utf8)
        let device = try deployment.run(["cert", "show", singleSerials[0], "--pem"])
        try device.stdout.write(toFile: deployment.file("device.pem"), atomically: true, encoding: .utf8)
        for leaf in ["acme.pem", "device.pem"] {
            let verified = try TestEnvironment.run("openssl", [
                "verify", "-CAfile", deployment.file("root.pem"), "-untrusted", deployment.file("acme-chain.pem"), deployment.file(leaf),
            ])
            #expect(verified.status == 0 && verified.stdout.contains(": OK"), "\(leaf): \(verified.stdout) \(verified.stderr)")
        }
        let chainJSON = try #require(try Self.document(deployment, ["ca", "show", "acme", "--chain"]) as? [String: Any])
        #expect(chainJSON["chain"] as? [String] == blocks)
        Self.expectRefused(try deployment.run(["ca", "show", "nobody"]), status: 1, "there is no CA named \"nobody\"")
        Self.expectRefused(try deployment.run(["ca", "show", "acme", "--pem", "--chain"]), status: 2, "--pem and --chain")

        // MARK: cert list: filters
        let everything = try Self.page(deployment, ["--limit", "1000"])
        #expect(everything.next == nil)
        #expect(everything.certificates.count == 13)  // 3 CAs, the audit signer, 3 singles, 1 operational, 5 from the batch
        let allKeys = Self.keys(everything.certificates)
        #expect(Set(allKeys).count == allKeys.count)
        #expect(allKeys == allKeys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }, "not in issuer-then-serial order")
        let byAcme = try Self.page(deployment, ["--ca", "acme"]).certificates
        #expect(byAcme.count == 8 && byAcme.allSatisfy { $0["issuerCA"] as? String == "acme" && $0["profile"] as? String == "device-identity" })
        #expect(try Self.page(deployment, ["--profile", "device-identity"]).certificates.count == 8)
        let meter = try Self.page(deployment, ["--eui64", singles[0].description.uppercased()]).certificates
        #expect(Set(Self.keys(meter)) == ["acme/\(singleSerials[0])", "north/\(operationalSerial)"])
        let batch = try Self.page(deployment, ["--batch", "acme-line1"]).certificates
        #expect(Set(batch.compactMap { $0["eui64"] as? String }) == Set(batchMeters.prefix(5).map(\.description)))
        #expect(batch.allSatisfy { $0["batch"] as? String == "acme-line1" && ($0["batchPosition"] as? Int) != nil })
        #expect(try Self.page(deployment, ["--since", "2000-01-01"]).certificates.count == 13)
        #expect(try Self.page(deployment, ["--since", "2999-01-01T00:00:00Z"]).certificates.isEmpty)
        #expect(try Self.page(deployment, ["--ca", "north", "--profile", "device-operational"]).certificates.count == 1)

        // Paging: pages of 5 cover everything once, in the same order; the last page has no next cursor.
        var paged: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try Self.page(deployment, ["--limit", "5"] + (cursor.map { ["--after", $0] } ?? []))
            #expect(page.certificates.count == (page.next == nil ? 3 : 5))
            paged += Self.keys(page.certificates)
            cursor = page.next
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 3 && paged == allKeys)
        let limitedText = try deployment.run(["cert", "list", "--limit", "2"])
        #expect(limitedText.status == 0 && limitedText.stdout.split(separator: "\n").count == 3 && limitedText.stdout.contains("more: add --after \(allKeys[1])"))
        let northText = try deployment.run(["cert", "list", "--ca", "north"])
        #expect(northText.stdout.contains(operationalSerial) && northText.stdout.contains("device-operational") && !northText.stdout.contains("more:"))

        // --jsonl: one object per line, every match without --limit; with it, a last {"next"} line to go on from.
        let streamed = try deployment.run(["cert", "list", "--jsonl"])
        let lines = streamed.stdout.split(separator: "\n").map(String.init)
        #expect(streamed.status == 0 && lines.count == 13)
        #expect(Self.keys(try lines.map { try #require(try Self.parse($0) as? [String: Any]) }) == allKeys)
        let first = try deployment.run(["cert", "list", "--jsonl", "--limit", "4"]).stdout.split(separator: "\n").map(String.init)
        try #require(first.count == 5)
        let next = try #require((try Self.parse(first[4]) as? [String: String])?["next"])
        let rest = try deployment.run(["cert", "list", "--jsonl", "--after", next]).stdout.split(separator: "\n").map(String.init)
        #expect(Self.keys(try (first.prefix(4) + rest).map { try #require(try Self.parse($0) as? [String: Any]) }) == allKeys)

        Self.expectRefused(try deployment.run(["cert", "list", "--ca", "nobody"]), status: 1, "there is no CA named \"nobody\"")
        Self.expectRefused(try deployment.run(["cert", "list", "--batch", "nothing"]), status: 1, "there is no batch nothing")
        Self.expectRefused(try deployment.run(["cert", "list", "--after", "garbage"]), status: 2, "--after garbage")
        for cursor in ["a/b/c", "acme/NOTHEX", "acme/" + String(repeating: "0", count: 41), "/01"] {
            Self.expectRefused(try deployment.run(["cert", "list", "--after", cursor]), status: 2, "--after \(cursor)")
        }
        Self.expectRefused(try deployment.run(["cert", "list", "--since", "yesterday"]), status: 2, "--since yesterday")
        // With --json (or --jsonl, for a stream's reader) an error is one JSON object on stderr.
        for (arguments, status, code) in [(["--json", "--jsonl"], Int32(2), "edge.usage"), (["--jsonl", "--ca", "nobody"], 1, "pki.unknown-authority")] {
            let refused = try deployment.run(["cert", "list"] + arguments)
            let error = (try? Self.parse(refused.stderr) as? [String: [String: String]])?["error"]
            #expect(refused.status == status && error?["code"] == code && refused.stdout.isEmpty, "\(arguments): \(refused.stderr)")
        }
        Self.expectRefused(try deployment.run(["cert", "list", "--limit", "0"]), status: 2, "--limit")

        // MARK: batch list, batch show
        let batches = try #require(try Self.document(deployment, ["batch", "list"]) as? [String: Any])
        let listed = try #require(batches["batches"] as? [[String: Any]])
        #expect(listed.count == 1 && batches["next"] is NSNull)
        #expect(listed.first?["id"] as? String == "acme-line1" && listed.first?["manufacturer"] as? String == "acme")
        #expect(listed.first?["meterCount"] as? Int == 6 && listed.first?["provisioned"] as? Int == 5 && listed.first?["startedAt"] is String)
        #expect(try deployment.run(["batch", "list"]).stdout.contains("acme-line1  manufacturer acme  5/6 provisioned"))
        let shown = try #require(try Self.document(deployment, ["batch", "show", "acme-line1"]) as? [String: Any])
        #expect(shown["provisioned"] as? Int == 5 && shown["refused"] as? Int == 1 && shown["outputDirectory"] as? String == out)
        #expect((shown["runs"] as? [[String: Any]])?.count == 1)
        let shownText = try deployment.run(["batch", "show", "acme-line1"])
        #expect(shownText.stdout.contains("refused (last run):  1") && shownText.stdout.contains("outputs:             \(out)"))
        Self.expectRefused(try deployment.run(["batch", "show", "nothing"]), status: 1, "there is no batch nothing")

        // MARK: meter show
        let single = try #require(try Self.document(deployment, ["meter", "show", singles[0].description]) as? [String: Any])
        let identity = try #require((single["deviceIdentity"] as? [String: Any])?["certificate"] as? [String: Any])
        #expect(identity["serial"] as? String == singleSerials[0] && identity["issuerCA"] as? String == "acme")
        #expect((single["operational"] as? [[String: Any]])?.compactMap { ($0["certificate"] as? [String: Any])?["serial"] as? String } == [operationalSerial])
        #expect(single["batch"] is NSNull)
        let batched = try #require(try Self.document(deployment, ["meter", "show", batchMeters[2].description]) as? [String: Any])
        let meterBatch = try #require(batched["batch"] as? [String: Any])
        #expect(meterBatch["id"] as? String == "acme-line1" && meterBatch["manufacturer"] as? String == "acme")
        #expect((batched["operational"] as? [Any])?.isEmpty == true)
        let meterText = try deployment.run(["meter", "show", singles[0].description])
        #expect(meterText.stdout.contains("factory identity:\n  device-identity  serial \(singleSerials[0]) from CA acme"))
        #expect(meterText.stdout.contains("device-operational  serial \(operationalSerial) from CA north"))
        // The refused sixth meter has nothing on the platform.
        Self.expectRefused(try deployment.run(["meter", "show", batchMeters[5].description]), status: 1, "no certificate for meter \(batchMeters[5])")
        Self.expectRefused(try deployment.run(["meter", "show", "not-an-eui"]), status: 1, "not-an-eui")
    }

    @Test("admin custodians, policies and requests on the HSM host without a custodian certificate: the verified state, as the admin API gives it; a row changed in the database is refused")
    func adminReadOnlyOnTheHost() throws {
        let api = try AdminAPITests()
        try api.ceremony()
        let (server, port) = try api.startServer()
        let created = try api.clientJSON(["admin", "request", "manufacturer.register", "name=south", "organization=South Meters"], as: "alice", port: port)
        let id = try #require(created["id"] as? String)
        _ = try api.clientJSON(["admin", "approve", id, "--yes"], as: "bob", port: port)
        let remoteCustodians = try api.client(["admin", "custodians", "--json"], as: "alice", port: port)
        let remotePolicies = try api.client(["admin", "policies", "--json"], as: "alice", port: port)
        try #require(remoteCustodians.status == 0 && remotePolicies.status == 0, "\(remoteCustodians.stderr) \(remotePolicies.stderr)")
        server.terminate()
        server.waitUntilExit()

        // On the host: no --server, no certificate, only the data directory and the token's PIN.
        let deployment = api.deployment
        let entriesBefore = try deployment.run(["audit", "log", "--json"]).stdout
        let custodians = try #require(try Self.document(deployment, ["admin", "custodians"]) as? NSArray)
        #expect(custodians == (try Self.parse(remoteCustodians.stdout) as? NSArray), "local and remote custodians differ")
        #expect(Set(custodians.compactMap { ($0 as? [String: Any])?["name"] as? String }) == ["alice", "bob", "carol"])
        let policies = try #require(try Self.document(deployment, ["admin", "policies"]) as? NSArray)
        #expect(policies == (try Self.parse(remotePolicies.stdout) as? NSArray), "local and remote policies differ")
        #expect(try deployment.run(["admin", "policies"]).stdout.contains("manufacturer-register"))

        let requests = try #require(try Self.document(deployment, ["admin", "requests"]) as? [[String: Any]])
        try #require(requests.count == 1)
        let request = requests[0]
        #expect(request["id"] as? String == id && request["state"] as? String == "pending" && request["operation"] as? String == "manufacturer.register")
        #expect(request["requester"] as? String == "alice" && request["required"] as? Int == 2 && request["quorumMet"] as? Bool == false)
        #expect((request["policy"] as? [String: Any])?["operationClass"] as? String == "manufacturer-register")
        let approvals = try #require(request["approvals"] as? [[String: Any]])
        #expect(approvals.count == 1 && approvals.first?["custodian"] as? String == "bob" && approvals.first?["counted"] as? Bool == true)
        #expect(approvals.first?["approvedAt"] is String)
        #expect((request["parameters"] as? [String: String]) == ["name": "south", "organization": "South Meters"])
        #expect(request["outcome"] == nil || request["outcome"] is NSNull)
        #expect((try Self.document(deployment, ["admin", "requests", "--state", "executed"]) as? [Any])?.isEmpty == true)
        let text = try deployment.run(["admin", "requests", "--state", "pending"])
        #expect(text.status == 0 && text.stdout.contains(id) && text.stdout.contains("approvals: 1/2") && text.stdout.contains(": bob"))
        #expect(text.stdout.contains("organization = South Meters"), "\(text.stdout)")
        Self.expectRefused(try deployment.run(["admin", "requests", "--state", "bogus"]), status: 2, "--state")
        // Read-only: nothing was written to the audit log.
        #expect(try deployment.run(["audit", "log", "--json"]).stdout == entriesBefore)

        // Attacker: someone with write access to the database but not the HSM lowers a policy with sqlite3. The host's
        // view is the verified log's: the changed row is refused, not shown as the policy.
        let store = deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path
        let changed = try TestEnvironment.run("sqlite3", [store, "UPDATE quorum_policies SET required = 1 WHERE operation_class = 'manufacturer-register';"])
        try #require(changed.status == 0, "\(changed.stderr)")
        Self.expectRefused(try deployment.run(["admin", "policies"]), status: 5, "not the one the audit log set")
    }
}
