import Crypto
import Foundation
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import Testing
import X509

/// Attacker: someone with write access to the database but no HSM. Each attack is made with sqlite3 on the live store
/// file (or Python on it), then the real decision path runs: the binary, or the admin service the API uses. Each one
/// succeeded on main before issue 10; here each is refused or detected, and gains nothing but denial of service.
@Suite("State you can trust: the database alone decides nothing")
struct TrustworthyStateTests {
    static func sqlite(_ store: String, _ sql: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try TestEnvironment.run("sqlite3", [store, sql])
        #expect(result.status == 0, "sqlite3: \(result.stderr)", sourceLocation: sourceLocation)
    }

    // MARK: The audit log (through the binary)

    struct LogDeployment {
        let hsm: TestEnvironment.IsolatedToken
        let data: URL
        var store: String { data.appendingPathComponent("metertrust.sqlite").path }

        static func make() throws -> LogDeployment {
            let deployment = LogDeployment(hsm: try TestEnvironment.makeIsolatedToken(), data: TestEnvironment.temporaryDirectory().appendingPathComponent("data"))
            try #require(try deployment.run(["init", "--token-label", deployment.hsm.label, "--module", TestEnvironment.modulePath]).status == 0)
            try #require(try deployment.run(["ca", "create-root", "--name", "root"]).status == 0)
            try #require(try deployment.run(["audit", "init"]).status == 0)
            for name in ["acme", "bolt", "core"] {
                try #require(try deployment.run(["ca", "create-manufacturer", "--name", name]).status == 0)
            }
            return deployment
        }

        func run(_ arguments: [String], environment: [String: String] = [:]) throws -> TestEnvironment.ProcessResult {
            try TestEnvironment.run(TestEnvironment.metertrust, arguments + ["--data-dir", data.path], environment: hsm.environment.merging(environment) { $1 })
        }

        func configuration() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: data.appendingPathComponent("metertrust.json"))) as? [String: Any])
        }
    }

    @Test("attacker: entries and the checkpoints above them deleted together — the HSM-held head and a saved checkpoint (--since) both detect it")
    func truncationDetected() throws {
        let deployment = try LogDeployment.make()
        let saved = deployment.data.appendingPathComponent("../saved.checkpoint").path
        let clean = try deployment.run(["audit", "verify", "--json", "--save", saved])
        try #require(clean.status == 0, "\(clean.stderr)")
        let before = try #require(try JSONSerialization.jsonObject(with: Data(clean.stdout.utf8)) as? [String: Any])
        #expect(before["headChecked"] as? Bool == true)
        let entries = try #require(before["entries"] as? Int)

        // Delete the last two entries and every checkpoint above what remains.
        try Self.sqlite(deployment.store, """
            DELETE FROM audit_entries WHERE position >= \(entries - 2);
            DELETE FROM audit_checkpoints WHERE size > \(entries - 2);
            """)
        let withHSM = try deployment.run(["audit", "verify"])
        #expect(withHSM.status == 5 && withHSM.stderr.contains("truncated or rewritten"), "\(withHSM.stderr)")
        let auditor = try deployment.run(["audit", "verify", "--offline", "--since", saved])
        #expect(auditor.status == 5 && auditor.stderr.contains("truncated"), "\(auditor.stderr)")
        // And nothing that rests on the log runs on it: no CA loads to issue.
        let decision = try deployment.run(["ca", "create-manufacturer", "--name", "delta"])
        #expect(decision.status == 5 && decision.stderr.contains("truncated or rewritten"), "\(decision.stderr)")
    }

    @Test("attacker: the audit-signer certificate row swapped for a self-signed one, an entry rewritten and every checkpoint re-signed — audit verify refuses: the signer does not chain to the pinned root")
    func signerSwapDetected() throws {
        let deployment = try LogDeployment.make()
        let configuration = try deployment.configuration()
        let audit = try #require(configuration["audit"] as? [String: Any])
        let serial = try #require(audit["certificateSerial"] as? String)
        let keyName = try #require(audit["keyName"] as? String)
        #expect((configuration["rootFingerprint"] as? String)?.count == 64, "create-root pins the root")
        // The root as an outside auditor keeps it.
        let list = try deployment.run(["ca", "list", "--json"])
        let authorities = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        let rootSerial = try #require((authorities.first { $0["role"] as? String == "root" }?["certificate"] as? [String: Any])?["serial"] as? String)
        let rootPEM = deployment.data.appendingPathComponent("../root.pem").path
        try deployment.run(["cert", "show", rootSerial, "--pem"]).stdout.write(toFile: rootPEM, atomically: true, encoding: .utf8)

        let forged = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("forge_audit_log.py"), deployment.store, serial, keyName, "1", "mallory"])
        try #require(forged.status == 0, "\(forged.stderr)")
        let log = try deployment.run(["audit", "log", "--json"])
        #expect(log.stdout.contains("mallory"), "the forgery is in the store")

        for arguments in [["audit", "verify", "--offline"], ["audit", "verify", "--offline", "--root", rootPEM], ["audit", "verify"]] {
            let verified = try deployment.run(arguments)
            #expect(verified.status == 5, "\(arguments.joined(separator: " ")) accepted a forged log")
            #expect(verified.stderr.contains("does not chain") || verified.stderr.contains("not issued by the pinned root"), "\(verified.stderr)")
        }
        // The process itself holds the audit key in the HSM and refuses to decide on the forged log.
        let decision = try deployment.run(["ca", "create-manufacturer", "--name", "delta"])
        #expect(decision.status == 5 && (decision.stderr.contains("truncated or rewritten") || decision.stderr.contains("not signed by the audit key")), "\(decision.stderr)")
    }

    @Test("audit completeness: an operation whose intent cannot be recorded does not happen; the actor is the kernel's account, not $USER; handing out a bundle is recorded")
    func auditCompleteness() throws {
        let deployment = try LogDeployment.make()
        // $USER is anyone's to set; the actor comes from geteuid.
        let made = try deployment.run(["ca", "create-manufacturer", "--name", "echo"], environment: ["USER": "mallory"])
        try #require(made.status == 0, "\(made.stderr)")
        let log = try deployment.run(["audit", "log", "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(log.stdout.utf8)) as? [[String: Any]])
        let creation = entries.filter { $0["action"] as? String == "ca.create" && $0["subject"] as? String == "echo" }
        #expect(creation.map { $0["outcome"] as? String } == ["started", "success"], "the intent precedes the outcome: \(creation)")
        #expect(creation.allSatisfy { ($0["actor"] as? String)?.contains("(uid \(geteuid()))") == true && ($0["actor"] as? String)?.contains("mallory") == false })

        // Attacker with the database (or a full disk): the log refuses new entries. Then nothing is created at all.
        try Self.sqlite(deployment.store, "CREATE TRIGGER no_audit BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'refused'); END;")
        let unaudited = try deployment.run(["ca", "create-manufacturer", "--name", "foxtrot"])
        #expect(unaudited.status == 1, "an operation ran without its audit entry")
        let list = try deployment.run(["ca", "list", "--json"])
        #expect(!list.stdout.contains("foxtrot"))
        let inventory = try deployment.run(["hsm", "harden", "--dry-run", "--json"])
        #expect(inventory.status == 0 && !inventory.stdout.contains("manufacturer/foxtrot"), "a key was made in the HSM: \(inventory.stdout)")
        try Self.sqlite(deployment.store, "DROP TRIGGER no_audit")

        // factory bundle hands out what may be a meter's private key: recorded.
        let batch = deployment.data.appendingPathComponent("../batch")
        try FileManager.default.createDirectory(at: batch, withIntermediateDirectories: true)
        try Data(#"{"eui64":"0024befffe000001","privateKey":"-----BEGIN PRIVATE KEY-----"}"#.utf8 + [10]).write(to: batch.appendingPathComponent("bundles.jsonl"))
        let bundle = try deployment.run(["factory", "bundle", "--batch-dir", batch.path, "--eui64", "0024befffe000001"])
        #expect(bundle.status == 0, "\(bundle.stderr)")
        let after = try deployment.run(["audit", "log", "--json"])
        #expect(after.stdout.contains("\"factory.bundle\"") && after.stdout.contains("0024befffe000001"))
    }

    @Test("attacker: the quorum_bootstrap row deleted — direct CA creation stays under quorum control (the log says the quorum exists)")
    func deletedBootstrapRowRefused() throws {
        let api = try AdminAPITests()
        try api.ceremony()
        try Self.sqlite(api.deployment.dataDirectory.appendingPathComponent("metertrust.sqlite").path, "DELETE FROM quorum_bootstrap")
        let direct = try api.deployment.run(["ca", "create-manufacturer", "--name", "rogue"])
        #expect(direct.status == 4 && direct.stderr.contains("under quorum control"), "\(direct.stderr)")
    }

    // MARK: Quorum, roles, expiry, revocation (sqlite3 on the store, then the admin service the API uses)

    @Test("attacker: quorum lowered with UPDATE quorum_policies (required 1, requester may approve) — one custodian alone still cannot run anything")
    func loweredPolicyRefused() async throws {
        let deployment = try await QuorumTests.Deployment.make()
        try Self.sqlite(deployment.fixture.store.path, "UPDATE quorum_policies SET required = 1, requester_may_approve = 1")
        let alone = await QuorumTests.refusal(.untrustedState) {
            let request = try await deployment.request(.manufacturerRegister, ["name": "rogue"])
            _ = try await deployment.approve(request, by: "alice")
            _ = try await deployment.service.execute(id: request.id, by: deployment.custodians["alice"]!)
        }
        #expect(alone.contains("not the one the audit log set"))
        #expect(try await deployment.fixture.store.certificateAuthority(named: "rogue") == nil)
    }

    @Test("attacker: an executed request set back to pending — it does not run again on its old approvals")
    func resurrectedRequestRefused() async throws {
        let deployment = try await QuorumTests.Deployment.make()
        let request = try await deployment.request(.caCreate, ["kind": "operational", "name": "east"])
        _ = try await deployment.approve(request, by: "bob")
        _ = try await deployment.approve(request, by: "carol")
        _ = try await deployment.service.execute(id: request.id, by: deployment.custodians["bob"]!)
        try Self.sqlite(
            deployment.fixture.store.path,
            "UPDATE admin_requests SET state = 'pending', executed_at = NULL, executed_by = NULL, outcome = NULL WHERE id = '\(request.id)'"
        )
        try Self.sqlite(deployment.fixture.store.path, "DELETE FROM certificate_authorities WHERE name = 'east'")
        let again = await QuorumTests.refusal(.alreadyExecuted) { _ = try await deployment.service.execute(id: request.id, by: deployment.custodians["bob"]!) }
        #expect(again.contains("in the audit log"))
    }

    @Test("attacker: expires_at extended in the store — the expiry the approvers signed decides")
    func extendedExpiryRefused() async throws {
        let deployment = try await QuorumTests.Deployment.make()
        let request = try await deployment.request(.caCreate, ["kind": "operational", "name": "west"], lifetime: 60)
        _ = try await deployment.approve(request, by: "bob")
        _ = try await deployment.approve(request, by: "carol")
        try Self.sqlite(deployment.fixture.store.path, "UPDATE admin_requests SET expires_at = 4102444800 WHERE id = '\(request.id)'")
        // Two hours on, by an injected clock: the signed document expired an hour and fifty-nine minutes ago.
        let later = Date().addingTimeInterval(7200)
        let gate = try await deployment.service.gate()
        await QuorumTests.refusal(.expiredRequest) { _ = try await gate.approved(id: request.id, now: later) }
        let approval = try Approval.parse(try deployment.approval(of: request, by: "erin"))
        let record = try #require(try await deployment.fixture.store.adminRequest(id: request.id))
        await QuorumTests.refusal(.expiredRequest) {
            _ = try QuorumRules.check(approval, for: record, policy: try await gate.policy(for: .caKeyCreate), registry: try await gate.registry(now: later), now: later)
        }
    }

    @Test("attacker: a pki officer made a security officer with UPDATE custodians — their row no longer counts at all")
    func changedRoleRefused() async throws {
        let deployment = try await QuorumTests.Deployment.make()
        try Self.sqlite(deployment.fixture.store.path, "UPDATE custodians SET role = 'security-officer' WHERE name = 'dave'")
        let request = try await deployment.request(.caCreate, ["kind": "operational", "name": "south"])
        let refused = await QuorumTests.refusal(.unknownCustodian) { _ = try await deployment.approve(request, by: "dave") }
        #expect(refused.contains("dave"))
        let registry = try await deployment.service.registry()
        #expect(registry.disregarded["dave"]?.contains("differs from what the audit log registered") == true)
        await QuorumTests.refusal(.unknownCustodian) {
            _ = try await deployment.service.authenticate(certificateDER: deployment.custodians["dave"]!.record.certificateDER)
        }
    }

    @Test("attacker: a removed custodian's removed_at cleared — they stay removed, their certificate revoked")
    func unremovedCustodianRefused() async throws {
        let deployment = try await QuorumTests.Deployment.make()
        let removal = try await deployment.request(.custodianRemove, ["name": "carol"], by: "erin")
        _ = try await deployment.approve(removal, by: "alice")
        _ = try await deployment.approve(removal, by: "bob")
        let executed = try await deployment.service.execute(id: removal.id, by: deployment.custodians["bob"]!)
        #expect(executed.outcome?.contains("certificateRevoked") == true)
        let serial = deployment.custodians["carol"]!.certificate.serialHex
        #expect(try await deployment.fixture.store.revocation(issuer: "admin", serial: serial)?.reason == 3)
        try Self.sqlite(deployment.fixture.store.path, "UPDATE custodians SET removed_at = NULL WHERE name = 'carol'; DELETE FROM revocations")
        let request = try await deployment.request(.caCreate, ["kind": "operational", "name": "north2"])
        await QuorumTests.refusal(.removedCustodian) { _ = try await deployment.approve(request, by: "carol") }
        await QuorumTests.refusal(.unknownCustodian) {
            _ = try await deployment.service.authenticate(certificateDER: deployment.custodians["carol"]!.record.certificateDER)
        }
    }

    @Test("attacker: a well-chained audit entry inserted with sqlite3 (lowering a policy) and the policy row changed to match — the entry carries no seal of the audit key, so it is never signed into the log and never counts")
    func insertedEntryRefused() async throws {
        let deployment = try await QuorumTests.Deployment.make()
        let store = deployment.fixture.store.path
        let insert = """
            import hashlib, json, sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            position, blob = db.execute("SELECT position, entry FROM audit_entries ORDER BY position DESC LIMIT 1").fetchone()
            last = json.loads(bytes(blob))
            entry = {"action": "admin.execute", "actor": "custodian:alice", "details": {"state.policy.manufacturer-register": "required=1 roles=security-officer,pki-officer requester-may-approve=true"},
                     "index": last["index"] + 1, "outcome": "success", "previous": hashlib.sha256(b"\\x00" + bytes(blob)).hexdigest(), "subject": "forged", "time": last["time"]}
            db.execute("INSERT INTO audit_entries (position, entry, created_at) VALUES (?, ?, 0)", (position + 1, json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()))
            db.execute("UPDATE quorum_policies SET required = 1, requester_may_approve = 1 WHERE operation_class = 'manufacturer-register'")
            db.commit()
            """
        let inserted = try TestEnvironment.run(TestEnvironment.python, ["-c", insert, store])
        try #require(inserted.status == 0, "\(inserted.stderr)")
        await #expect(throws: (any Error).self) {
            let request = try await deployment.request(.manufacturerRegister, ["name": "rogue"])
            _ = try await deployment.approve(request, by: "alice")
            _ = try await deployment.service.execute(id: request.id, by: deployment.custodians["alice"]!)
        }
        let error = await #expect(throws: AuditError.self) { _ = try await deployment.service.audit.checkpoint() }
        #expect(error?.message.contains("not written by MeterTrust") == true, "\(String(describing: error))")
        #expect(try await deployment.fixture.store.certificateAuthority(named: "rogue") == nil)
    }

    @Test("attacker: a custodian's certificate column replaced by a certificate for the attacker's key, the fingerprint column left as it was — the row no longer counts")
    func swappedCertificateRefused() async throws {
        let deployment = try await QuorumTests.Deployment.make()
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("alice"); OrganizationalUnitName("security-officer") }
        let forged = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: Date().addingTimeInterval(-60),
            notValidAfter: Date().addingTimeInterval(3600), issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: Certificate.Extensions(), issuerPrivateKey: .init(key)
        )
        let hex = try forged.derBytes.map { String(format: "%02x", $0) }.joined()
        try Self.sqlite(deployment.fixture.store.path, "UPDATE custodians SET certificate = X'\(hex)' WHERE name = 'alice'")
        let registry = try await deployment.service.registry()
        #expect(registry.custodian(named: "alice") == nil && registry.disregarded["alice"] != nil)
        let request = try await deployment.request(.caCreate, ["kind": "operational", "name": "swap"], by: "bob")
        let approval = try Approval(
            approving: request.request, custodian: "alice", certificateFingerprint: deployment.custodians["alice"]!.record.fingerprintSHA256, key: key
        )
        await QuorumTests.refusal(.unknownCustodian) { _ = try await deployment.service.approve(approval.bytes, uploader: "bob") }
    }

    @Test("attacker: the requester column changed — the requester the signed document names still cannot approve their own request")
    func changedRequesterRefused() async throws {
        let deployment = try await QuorumTests.Deployment.make()
        let request = try await deployment.request(.caCreate, ["kind": "operational", "name": "self"], by: "alice")
        try Self.sqlite(deployment.fixture.store.path, "UPDATE admin_requests SET requester = 'erin' WHERE id = '\(request.id)'")
        await QuorumTests.refusal(.selfApproval) { _ = try await deployment.approve(request, by: "alice") }
    }

    @Test("attacker: a revoked CA's record re-pointed at a copy of its certificate filed under another serial — the record no longer matches its certificate and the CA does not load")
    func repointedAuthorityRefused() async throws {
        let fixture = try await PKIFixture.make()
        let acme = fixture.manufacturer
        try await fixture.store.revokeCertificate(issuer: "test-root", serial: acme.certificate.serialHex, reason: 1, at: Date())
        let hex = try acme.certificate.derBytes.map { String(format: "%02x", $0) }.joined()
        try Self.sqlite(fixture.store.path, """
            INSERT INTO certificates (issuer, serial, profile, subject, not_before, not_after, fingerprint_sha256, der, created_at, shard)
                SELECT issuer, 'feed', profile, subject, not_before, not_after, fingerprint_sha256, X'\(hex)', created_at, shard FROM certificates WHERE serial = '\(acme.certificate.serialHex)';
            UPDATE certificate_authorities SET certificate_serial = 'feed' WHERE name = 'acme';
            """)
        let refused = await #expect(throws: PKIError.self) { _ = try await fixture.hierarchy.authority(named: "acme") }
        #expect(refused?.message.contains("does not match its certificate") == true, "\(String(describing: refused))")
        try Self.sqlite(fixture.store.path, "UPDATE certificate_authorities SET certificate_serial = '\(acme.certificate.serialHex)', parent = NULL WHERE name = 'acme'")
        await #expect(throws: PKIError.self) { _ = try await fixture.hierarchy.authority(named: "acme") }
    }

    @Test("attacker: the revocation row of a revoked manufacturer CA deleted — neither issue nor a factory batch signs under it")
    func deletedRevocationRefused() async throws {
        let line = try await FactoryFixture.make()
        let fixture = line.pki
        let audit = try await fixture.auditLog()
        let service = AdminService(hierarchy: fixture.hierarchy, store: fixture.store, audit: audit)
        var keys: [String: P256.Signing.PrivateKey] = [:]
        var certificates: [[UInt8]] = []
        for name in ["alice", "bob", "carol"] {
            let (key, der) = try await QuorumTests.Deployment.custodianCertificate(fixture, name: name, role: .securityOfficer)
            keys[name] = key
            certificates.append(der)
        }
        _ = try await service.bootstrap(custodianCertificates: certificates, actor: "test")
        let registry = try await service.registry()
        func custodian(_ name: String) -> Custodian { registry.custodian(named: name)! }
        let revoke = try await service.submit(operation: .caRevoke, parameters: ["name": "acme", "reason": "1"], requester: custodian("alice"))
        for name in ["bob", "carol"] {
            let approval = try Approval(approving: revoke.request, custodian: name, certificateFingerprint: custodian(name).record.fingerprintSHA256, key: keys[name]!)
            _ = try await service.approve(approval.bytes, uploader: name)
        }
        _ = try await service.execute(id: revoke.id, by: custodian("alice"))
        try Self.sqlite(fixture.store.path, "DELETE FROM revocations")
        #expect(try await fixture.store.revocation(issuer: "test-root", serial: fixture.manufacturer.certificate.serialHex) == nil)

        // The hierarchy as the CLI and the servers build it: the log decides which CAs may issue.
        let hierarchy = CAHierarchy(token: fixture.token, store: fixture.store, settings: PKISettings(), statusSource: AuditedAuthorityStatus(audit: audit))
        let single = await #expect(throws: PKIError.self) {
            let meter = MeterIdentity(eui64: EUI64(0x0024_BEFF_FEF0_0001))
            _ = try await CertificateIssuer(hierarchy: hierarchy).issue(
                IssuanceRequest(csr: try meter.certificateSigningRequestDER(hardwareType: PKIFixture.deviceType), profile: "device-identity", authority: "acme")
            )
        }
        #expect(single?.code == .revokedAuthority, "\(String(describing: single))")
        let (_, csr) = try line.keyedMeter(EUI64(0x0024_BEFF_FEF0_0002))
        let manifest = try line.manifest(batch: "after-revocation", meters: ["0024befffef00002"], csrLines: [CSRListReader.line(eui64: EUI64(0x0024_BEFF_FEF0_0002), csr: csr)])
        let batch = await #expect(throws: PKIError.self) {
            _ = try await BatchRunner(hierarchy: hierarchy, store: fixture.store).run(manifestPath: manifest, outputDirectory: line.output(of: manifest))
        }
        #expect(batch?.code == .revokedAuthority)
        #expect(try await fixture.store.certificateCount(issuer: "acme") == 0)
    }
}
