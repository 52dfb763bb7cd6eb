import Crypto
import Foundation
import MeterTrustAdmin
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustPKI
import MeterTrustStore
import MeterTrustStoreSQLite
import Testing
import X509

/// Certificate shards (issue 13, item 4): a CA's shard count fixed at creation, each certificate's shard fixed at
/// issuance from the random low octets of its serial, on every issuance path, in the store and on the command line.
@Suite("Certificate shards")
struct ShardTests {
    /// The rule written out again, independently of ``ShardCount``: the last 8 octets of the serial (as the
    /// certificate's DER carries it) as a big-endian integer, modulo the count.
    static func expectedShard(_ serial: some Collection<UInt8>, count: Int) -> Int {
        let low = Array(serial.suffix(8))
        var value: UInt64 = 0
        for (index, octet) in low.reversed().enumerated() { value |= UInt64(octet) << (8 * UInt64(index)) }
        return Int(value % UInt64(count))
    }

    // MARK: The rule

    @Test("known vectors: the last 8 serial octets big-endian, modulo the count; a short serial is read whole")
    func knownVectors() throws {
        let serial: [UInt8] = Array(1...16)  // low 8 octets 0x090a0b0c0d0e0f10
        let vectors: [(Int, Int)] = [(256, 16), (16, 0), (4096, 3856), (1000, 240), (7, 2), (1, 0)]
        for (count, shard) in vectors {
            #expect(try #require(ShardCount(count)).shard(ofSerial: serial) == shard, "count \(count)")
        }
        let ones = [UInt8](repeating: 0xFF, count: 16)  // 2^64 - 1 in the low octets
        #expect(try #require(ShardCount(256)).shard(ofSerial: ones) == 255)
        #expect(try #require(ShardCount(4095)).shard(ofSerial: ones) == 15)
        #expect(try #require(ShardCount(1000)).shard(ofSerial: ones) == 615)
        #expect(ShardCount.default.shard(ofSerial: [0x01]) == 1)
        #expect(ShardCount.default.shard(ofSerial: [0x01, 0x02]) == 2)
        #expect(try #require(ShardCount(1000)).shard(ofSerial: [0x01, 0x02]) == 258)
        #expect(ShardCount.default.shard(ofSerialHex: "0102030405060708090a0b0c0d0e0f10") == 16)
        #expect(ShardCount.default.shard(ofSerialHex: "ca-acme") == nil)
    }

    @Test("only the random low octets count: the time prefix and a forced leading octet do not move a serial's shard")
    func highOctetsDoNotMatter() throws {
        let shards = try #require(ShardCount(4096))
        let random: [UInt8] = [0x9c, 0x11, 0x42, 0x07, 0xee, 0x31, 0x5a, 0x80]
        let a = [0x01, 0x93, 0x00, 0x00, 0x00, 0x01, 0x77, 0x10] + random
        let b = [0x7f, 0x00, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34] + random
        let padded = [0x00] + b  // a sign octet in front
        #expect(shards.shard(ofSerial: a) == shards.shard(ofSerial: b))
        #expect(shards.shard(ofSerial: padded) == shards.shard(ofSerial: b))
        #expect(shards.shard(ofSerial: a) == Self.expectedShard(random, count: 4096))
    }

    @Test("shard counts: 1 to 4096, default 256; others refused with a one-line message naming the option")
    func shardCountRange() {
        #expect(ShardCount.default.value == 256)
        for valid in [1, 2, 16, 256, 1000, 4096] { #expect(ShardCount(valid)?.value == valid) }
        for invalid in [-1, 0, 4097, 5000, Int.max] { #expect(ShardCount(invalid) == nil, "\(invalid)") }
        let message = ShardCount.refusal(of: "5000", option: "--shards")
        #expect(message.hasPrefix("--shards must be") && message.contains("1 to 4096") && message.contains("5000") && !message.contains("\n"))
    }

    // MARK: Issuance

    /// A hierarchy whose CAs have different shard counts: root 8, acme 16, north 32, admin the default.
    static let counts = ["root": 8, "acme": 16, "north": 32, "admin": 256, "platform": 64]

    @Test("every issuance path stores each certificate's shard as the rule gives it for the serial in its DER, under its issuing CA's count")
    func everyIssuancePath() async throws {
        let token = try TestEnvironment.openToken()
        let store = try await TestEnvironment.makeStore()
        let hierarchy = CAHierarchy(token: token, store: store, settings: PKISettings())
        let root = try await hierarchy.createRoot(name: "root", organization: "Shard Test", shards: try #require(ShardCount(8)))
        let acme = try await hierarchy.createAuthority(role: .manufacturer, name: "acme", shards: try #require(ShardCount(16)))
        let north = try await hierarchy.createAuthority(role: .operational, name: "north", shards: try #require(ShardCount(32)))
        let admin = try await hierarchy.createAuthority(role: .admin, name: "admin")
        _ = try await hierarchy.createAuthority(role: .service, name: "platform", shards: try #require(ShardCount(64)))
        #expect(root.shardCount.value == 8 && acme.shardCount.value == 16 && north.shardCount.value == 32 && admin.shardCount == .default)
        // Read back from the store, and loaded again from it.
        for (name, count) in Self.counts {
            #expect(try await store.certificateAuthority(named: name)?.shardCount == count, "\(name)")
            #expect(try await hierarchy.authority(named: name).shardCount.value == count, "\(name)")
        }

        let issuer = CertificateIssuer(hierarchy: hierarchy)
        // Device identities on the model path (single issuance) and on the factory's template path.
        for index in 1...8 {
            let meter = MeterIdentity(eui64: EUI64(UInt64(0x0024_BEFF_FE90_0000) + UInt64(index)))
            _ = try await issuer.issue(
                IssuanceRequest(csr: try meter.certificateSigningRequestDER(hardwareType: PKIFixture.deviceType), profile: "device-identity", authority: "acme")
            )
            _ = try await issuer.issue(
                IssuanceRequest(csr: try meter.certificateSigningRequestDER(hardwareType: PKIFixture.deviceType), profile: "device-operational", authority: "north")
            )
        }
        let signer = try CertificateSigner(authority: acme, profile: .deviceIdentity, settings: hierarchy.settings, hardwareType: PKIFixture.deviceType)
        let templates = try #require(try TemplateIssuer.make(signer: signer))
        var batch: [CertificateRecord] = []
        for index in 1...24 {
            let eui = EUI64(UInt64(0x0024_BEFF_FE91_0000) + UInt64(index))
            batch.append(try templates.signUnstored(csr: try MeterIdentity(eui64: eui).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType), for: eui))
        }
        #expect(try await store.insertDeviceIdentities(batch) == Array(repeating: .stored, count: batch.count))
        // Service certificates: a TLS server (from the Service CA), a custodian (from admin), the audit signer (from the root).
        _ = try await hierarchy.createTLSServerIdentity(names: [.dns("admin.example.net")], authority: "platform")
        let custodianKey = P256.Signing.PrivateKey()
        let csr = try CSRCheck.validate(der: try PKIFixture.csr(key: custodianKey, extensions: []), profile: .custodian)
        _ = try await issuer.issueNamed(csr, profile: .custodian, authority: admin, commonName: "alice", organizationalUnit: "security-officer")
        _ = try await hierarchy.createAuditSigner(name: "audit")

        // Every stored certificate, whatever path stored it: the serial read from its DER, not the store's column.
        var checked = 0
        var kinds = Set<CertificateRecord.Kind>()
        var position: CertificateListPosition?
        repeat {
            let page = try await store.certificates(matching: CertificateFilter(), after: position, limit: 50)
            for record in page.certificates {
                let serial = try Certificate(derEncoded: record.der).serialNumber.bytes
                let count = try #require(Self.counts[record.issuer])
                #expect(record.shard == Self.expectedShard(serial, count: count), "\(record.issuer) \(record.serial) \(record.profile)")
                #expect((0..<count).contains(record.shard))
                kinds.insert(record.kind)
                checked += 1
            }
            position = page.next
        } while position != nil
        // 5 CAs, 8 + 8 single issuances, 24 from templates, the TLS server, the custodian, the audit signer.
        #expect(checked == 5 + 16 + 24 + 3)
        #expect(kinds == Set(CertificateRecord.Kind.allCases))
    }

    @Test("under quorum: ca.create with shards=32 makes a CA of 32 shards, and its certificates land in them; the direct command's refusal names shards=N")
    func quorumCreatesShardedAuthority() async throws {
        let deployment = try await QuorumTests.Deployment.make()
        let status = try await deployment.request(.caCreate, ["kind": "operational", "name": "south", "shards": "32"])
        _ = try await deployment.approve(status, by: "bob")
        _ = try await deployment.approve(status, by: "carol")
        #expect(await deployment.executionOutcome(status.id, by: "alice") == "executed")
        let fixture = deployment.fixture
        #expect(try await fixture.store.certificateAuthority(named: "south")?.shardCount == 32)
        let issuer = CertificateIssuer(hierarchy: fixture.hierarchy)
        for index in 1...6 {
            let meter = MeterIdentity(eui64: EUI64(UInt64(0x0024_BEFF_FE92_0000) + UInt64(index)))
            let issued = try await issuer.issue(
                IssuanceRequest(csr: try meter.certificateSigningRequestDER(hardwareType: PKIFixture.deviceType), profile: "device-operational", authority: "south")
            )
            #expect(issued.record.shard == Self.expectedShard(issued.certificate.serialNumber.bytes, count: 32))
        }
        #expect(
            DirectAuthorityCreation.requestCommand(role: .operational, name: "west", organization: "West", shards: try #require(ShardCount(64)))
                == "metertrust admin request ca.create kind=operational name=west organization=West shards=64"
        )
    }

    // MARK: The command line

    @Test("ca create --shards 0 and --shards 5000 are usage errors (exit status 2, one error line) and create nothing")
    func shardOptionRefused() throws {
        let deployment = try CLITests.Deployment.make()
        for command in [["ca", "create-root", "--name", "root"], ["ca", "create-manufacturer", "--name", "acme"]] {
            for value in ["0", "5000"] {
                let refused = try deployment.run(command + ["--shards", value])
                #expect(refused.status == 2, "\(command) --shards \(value): \(refused.status) \(refused.stderr)")
                let lines = refused.stderr.split(separator: "\n")
                #expect(lines.count == 1 && lines[0].hasPrefix("error: --shards must be") && lines[0].contains(value), "\(refused.stderr)")
                #expect(refused.stdout.isEmpty)
            }
        }
        let listed = try deployment.run(["ca", "list", "--json"])
        let authorities = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]
        #expect(authorities?.isEmpty == true, "\(listed.stdout)")
        // The JSON error form too: one object on stderr with the usage code.
        let json = try deployment.run(["ca", "create-root", "--name", "root", "--shards", "0", "--json"])
        #expect(json.status == 2)
        let error = try JSONSerialization.jsonObject(with: Data(json.stderr.utf8)) as? [String: Any]
        #expect((error?["error"] as? [String: Any])?["code"] as? String == "edge.usage", "\(json.stderr)")
    }

    @Test("a manufacturer CA created with --shards 16: ca show and ca list say so; a factory batch of 320 meters lands in shards < 16, the DER's serial deciding, across most shards")
    func factoryBatchSpreadsOverShards() async throws {
        let count = 320
        let deployment = try CLITests.Deployment.make()
        _ = try deployment.json(["ca", "create-root", "--name", "root"])
        let created = try deployment.json(["ca", "create-manufacturer", "--name", "acme", "--shards", "16"])
        #expect(created["shardCount"] as? Int == 16)
        #expect(try deployment.json(["ca", "show", "acme"])["shardCount"] as? Int == 16)
        #expect(try deployment.json(["ca", "show", "root"])["shardCount"] as? Int == 256)
        let listed = try deployment.run(["ca", "list", "--json"])
        let authorities = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        #expect(Dictionary(uniqueKeysWithValues: authorities.map { ($0["name"] as! String, $0["shardCount"] as? Int) }) == ["root": 256, "acme": 16])

        let directory = deployment.dataDirectory.deletingLastPathComponent()
        let manifestPath = try await FactoryFixture.generatedBatch("sharded", count: count, in: directory)
        let run = try deployment.run(["factory", "run", "--manifest", manifestPath.path, "--out", directory.appendingPathComponent("out").path, "--quiet"])
        try #require(run.status == 0, "\(run.stderr)")

        // Python's cryptography reads each stored certificate's DER and applies the rule to its serial.
        let script = """
            import json, sqlite3, sys
            from cryptography import x509
            db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)
            rows = db.execute("SELECT c.issuer, c.shard, c.der, a.shard_count FROM certificates c JOIN certificate_authorities a ON a.name = c.issuer").fetchall()
            out = []
            for issuer, shard, der, count in rows:
                serial = x509.load_der_x509_certificate(der).serial_number
                out.append({"issuer": issuer, "stored": shard, "expected": (serial % 2**64) % count, "count": count})
            print(json.dumps(out))
            """
        let read = try TestEnvironment.run(TestEnvironment.python, ["-c", script, deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path])
        try #require(read.status == 0, "\(read.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == count + 2)
        for row in rows { #expect(row["stored"] as? Int == row["expected"] as? Int, "\(row)") }
        let meterShards = rows.filter { $0["issuer"] as? String == "acme" }.compactMap { $0["stored"] as? Int }
        #expect(meterShards.count == count)
        #expect(meterShards.allSatisfy { (0..<16).contains($0) })
        // 320 uniform draws over 16 shards leave a shard empty with probability about 16 · (15/16)^320 < 1e-7.
        #expect(Set(meterShards).count == 16, "shards hit: \(Set(meterShards).sorted())")
        #expect((Dictionary(grouping: meterShards, by: { $0 }).values.map(\.count).max() ?? 0) < count / 4)

        // cert list --json and cert show --json carry the shard, as stored.
        let page = try deployment.json(["cert", "list", "--ca", "acme", "--limit", "5"])
        let listedCertificates = try #require(page["certificates"] as? [[String: Any]])
        #expect(listedCertificates.count == 5)
        for certificate in listedCertificates {
            let shard = try #require(certificate["shard"] as? Int)
            #expect((0..<16).contains(shard))
            let shown = try deployment.json(["cert", "show", certificate["serial"] as! String, "--ca", "acme"])
            #expect(shown["shard"] as? Int == shard)
            let serial = try #require(hexBytes(certificate["serial"] as! String))
            #expect(shard == Self.expectedShard(serial, count: 16))
        }
    }
}
