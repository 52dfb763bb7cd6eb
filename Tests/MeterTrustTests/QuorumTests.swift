import Crypto
import Foundation
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
@testable import MeterTrustQuorum
import MeterTrustStore
import Testing
import X509

/// M-of-N approvals on a real SoftHSM2 token and SQLite store, driven through `AdminService` (the admin API's core).
@Suite("Quorum: requests, approvals, execution")
struct QuorumTests {
    /// A deployment with custodians alice, bob, carol, erin (security officers) and dave (pki officer), bootstrapped
    /// at the default 2-of-n.
    struct Deployment {
        let fixture: PKIFixture
        let service: AdminService
        let keys: [String: P256.Signing.PrivateKey]
        let custodians: [String: Custodian]

        /// `clock` is what the service's rules read the time from (expiry, validity).
        static func make(names: [(String, CustodianRole)] = [
            ("alice", .securityOfficer), ("bob", .securityOfficer), ("carol", .securityOfficer), ("erin", .securityOfficer), ("dave", .pkiOfficer),
        ], operations: QuorumOperationRegistry = .standard, clock: any WallClock = SystemClock()) async throws -> Deployment {
            let fixture = try await PKIFixture.make()
            let service = AdminService(hierarchy: fixture.hierarchy, store: fixture.store, audit: try await fixture.auditLog(), operations: operations, clock: clock)
            var keys: [String: P256.Signing.PrivateKey] = [:]
            var certificates: [[UInt8]] = []
            for (name, role) in names {
                let (key, der) = try await Self.custodianCertificate(fixture, name: name, role: role)
                keys[name] = key
                certificates.append(der)
            }
            _ = try await service.bootstrap(custodianCertificates: certificates, actor: "test")
            let registry = try await service.registry()
            return Deployment(
                fixture: fixture, service: service, keys: keys,
                custodians: Dictionary(uniqueKeysWithValues: registry.custodians.map { ($0.name, $0) })
            )
        }

        static func custodianCertificate(_ fixture: PKIFixture, name: String, role: CustodianRole) async throws -> (P256.Signing.PrivateKey, [UInt8]) {
            let key = P256.Signing.PrivateKey()
            let signer = try CertificateSigner(authority: fixture.admin, profile: .custodian, settings: PKISettings())
            let (certificate, record) = try signer.signNamed(
                try PublicKeyInfo(publicKey: Certificate.PublicKey(key.publicKey)), commonName: name, organizationalUnit: role.rawValue
            )
            try await fixture.store.insertCertificate(record)
            return (key, try certificate.derBytes)
        }

        func request(_ operation: AdminOperation, _ parameters: [String: String], by requester: String = "alice", lifetime: TimeInterval = 600) async throws -> RequestStatus {
            try await service.submit(operation: operation, parameters: parameters, requester: custodians[requester]!, lifetime: lifetime)
        }

        func approval(of status: RequestStatus, by name: String, key: P256.Signing.PrivateKey? = nil) throws -> [UInt8] {
            try Approval(
                approving: status.request, custodian: name, certificateFingerprint: custodians[name]!.record.fingerprintSHA256, key: key ?? keys[name]!
            ).bytes
        }

        /// Executes request `id` as `name`: "executed", or the refusal's code, or the other error's text.
        func executionOutcome(_ id: String, by name: String) async -> String {
            do {
                _ = try await service.execute(id: id, by: custodians[name]!)
                return "executed"
            } catch let error as QuorumError {
                return error.code.description
            } catch {
                return "\(error)"
            }
        }

        func approve(_ status: RequestStatus, by name: String) async throws -> RequestStatus {
            try await service.approve(try approval(of: status, by: name), uploader: name)
        }

        func lastAuditEvent() async throws -> AuditEntry {
            let count = try await fixture.store.auditEntryCount()
            let rows = try await fixture.store.auditEntries(after: count - 2, limit: 1)
            return try #require(AuditEntry.decode(rows[0].entry))
        }
    }

    /// Runs `body`, expecting a QuorumError with `code`; returns its message.
    @discardableResult
    static func refusal(_ code: QuorumError.Code, _ body: () async throws -> Void) async -> String {
        do {
            try await body()
            Issue.record("expected a \(code) refusal, got success")
        } catch let error as QuorumError {
            #expect(error.code == code, "\(error)")
            return error.message
        } catch {
            Issue.record("expected a \(code) refusal, got \(error)")
        }
        return ""
    }

    @Test("forged, expired, replayed, duplicate-custodian, removed-custodian, wrong-role, wrong-request and self approvals are refused with a reason and not stored")
    func refusedApprovals() async throws {
        let clock = ManualClock()
        let deployment = try await Deployment.make(clock: clock)
        clock.set(Date())  // now that every certificate is issued
        let status = try await deployment.request(.caCreate, ["kind": "operational", "name": "south"])

        // Forged: carol's name and certificate, bob's key; and a valid signature with one byte changed.
        let forged = try deployment.approval(of: status, by: "carol", key: deployment.keys["bob"]!)
        var message = await Self.refusal(.forgedApproval) { _ = try await deployment.service.approve(forged, uploader: "bob") }
        #expect(message.contains("does not verify with carol"))
        var flipped = try JSONSerialization.jsonObject(with: Data(try deployment.approval(of: status, by: "bob"))) as! [String: String]
        var signature = Array(Data(base64Encoded: flipped["signature"]!)!)
        signature[signature.count - 3] ^= 0x01
        flipped["signature"] = Data(signature).base64EncodedString()
        await Self.refusal(.forgedApproval) {
            _ = try await deployment.service.approve(try JSONSerialization.data(withJSONObject: flipped).map { $0 }, uploader: "bob")
        }

        // Wrong role: dave is a pki officer; ca-key-create takes security officers only.
        message = await Self.refusal(.wrongRole) { _ = try await deployment.approve(status, by: "dave") }
        #expect(message.contains("dave is a pki-officer"))

        // Self-approval: alice asked.
        await Self.refusal(.selfApproval) { _ = try await deployment.approve(status, by: "alice") }

        // Duplicate custodian: bob counts once.
        let afterBob = try await deployment.approve(status, by: "bob")
        #expect(afterBob.tally.counted == ["bob"])
        message = await Self.refusal(.duplicateApproval) { _ = try await deployment.approve(status, by: "bob") }
        #expect(message.contains("bob already approved"))

        // Wrong request: the same operation asked again is another request (new nonce); bob's approval of the first
        // does not count for it, whether it names the first request or claims the second.
        let twin = try await deployment.request(.caCreate, ["kind": "operational", "name": "south"])
        #expect(twin.id != status.id)
        let record = try #require(try await deployment.fixture.store.adminRequest(id: twin.id))
        let policy = try await deployment.service.policy(for: .caKeyCreate)
        let registry = try await deployment.service.registry()
        let bobsFirst = try Approval.parse(try deployment.approval(of: status, by: "bob"))
        #expect(throws: QuorumError.self) { try QuorumRules.check(bobsFirst, for: record, policy: policy, registry: registry, now: Date()) }
        message = await Self.refusal(.wrongRequest) {
            _ = try QuorumRules.check(bobsFirst, for: record, policy: policy, registry: registry, now: Date())
        }
        #expect(message.contains("never counts for another request"))
        var relabelled = try JSONSerialization.jsonObject(with: Data(bobsFirst.bytes)) as! [String: String]
        relabelled["request"] = twin.id
        await Self.refusal(.forgedApproval) {
            _ = try await deployment.service.approve(try JSONSerialization.data(withJSONObject: relabelled).map { $0 }, uploader: "bob")
        }

        // Unknown custodian: a certificate from the Admin CA that was never registered.
        let (strangerKey, _) = try await Deployment.custodianCertificate(deployment.fixture, name: "mallory", role: .securityOfficer)
        let stranger = try Approval(approving: status.request, custodian: "mallory", certificateFingerprint: String(repeating: "0", count: 64), key: strangerKey)
        await Self.refusal(.unknownCustodian) { _ = try await deployment.service.approve(stranger.bytes, uploader: "bob") }

        // Expired: a request that lived one second, two seconds later on the service's clock (no sleep).
        let shortLived = try await deployment.request(.caCreate, ["kind": "operational", "name": "west"], lifetime: 1)
        clock.advance(by: 2.1)
        message = await Self.refusal(.expiredRequest) { _ = try await deployment.approve(shortLived, by: "bob") }
        #expect(message.contains("expired"))
        await Self.refusal(.expiredRequest) { _ = try await deployment.service.execute(id: shortLived.id, by: deployment.custodians["bob"]!) }

        // Replayed: once the request ran, its approvals cannot be used again, not even by a new approver.
        _ = try await deployment.approve(status, by: "carol")
        let executed = try await deployment.service.execute(id: status.id, by: deployment.custodians["carol"]!)
        #expect(executed.state == .executed)
        await Self.refusal(.alreadyExecuted) { _ = try await deployment.approve(status, by: "erin") }
        await Self.refusal(.alreadyExecuted) { _ = try await deployment.service.execute(id: status.id, by: deployment.custodians["bob"]!) }

        // None of the refused approvals was stored: only bob's and carol's.
        #expect(try await deployment.fixture.store.approvals(requestID: status.id).map(\.custodian).sorted() == ["bob", "carol"])
        #expect(try await deployment.fixture.store.approvals(requestID: twin.id).isEmpty)
        #expect(try await deployment.fixture.store.certificateAuthority(named: "south") != nil)
    }

    @Test("a removed custodian's approvals stop counting, and new ones are refused")
    func removedCustodian() async throws {
        let deployment = try await Deployment.make()
        let pending = try await deployment.request(.caCreate, ["kind": "operational", "name": "east2"])
        _ = try await deployment.approve(pending, by: "carol")
        _ = try await deployment.approve(pending, by: "bob")

        let removal = try await deployment.request(.custodianRemove, ["name": "carol"], by: "erin")
        _ = try await deployment.approve(removal, by: "alice")
        _ = try await deployment.approve(removal, by: "bob")
        _ = try await deployment.service.execute(id: removal.id, by: deployment.custodians["bob"]!)

        let message = await Self.refusal(.removedCustodian) { _ = try await deployment.approve(removal, by: "carol") }
        #expect(message.contains("carol was removed"))
        // carol approved before her removal: it no longer counts, so the request is now below quorum.
        let status = try await deployment.service.status(id: pending.id)
        #expect(status.tally.counted == ["bob"])
        #expect(status.tally.notCounted["carol"]?.contains("removed") == true)
        await Self.refusal(.belowQuorum) { _ = try await deployment.service.execute(id: pending.id, by: deployment.custodians["bob"]!) }
        // A removed custodian cannot authenticate to the admin API either.
        await Self.refusal(.unknownCustodian) {
            _ = try await deployment.service.authenticate(certificateDER: deployment.custodians["carol"]!.record.certificateDER)
        }
    }

    @Test("below quorum nothing runs: no CA, no key in the HSM, only the refused request in the audit log")
    func belowQuorumLeavesNoTrace() async throws {
        let deployment = try await Deployment.make()
        let caCount = try await deployment.fixture.store.certificateAuthorities().count
        let keysBefore = try await deployment.fixture.token.perform { try $0.privateKeyLabels() }
        let status = try await deployment.request(.manufacturerRegister, ["name": "globex"])
        _ = try await deployment.approve(status, by: "dave")
        let message = await Self.refusal(.belowQuorum) {
            _ = try await deployment.service.execute(id: status.id, by: deployment.custodians["dave"]!)
        }
        #expect(message.contains("1 of the 2 approvals") && message.contains("nothing was run"))
        #expect(try await deployment.fixture.store.certificateAuthorities().count == caCount)
        #expect(try await deployment.fixture.store.certificateAuthority(named: "globex") == nil)
        #expect(try await deployment.fixture.token.perform { try $0.privateKeyLabels() } == keysBefore)
        #expect(try await deployment.fixture.store.adminRequest(id: status.id)?.state == .pending)
        let entry = try await deployment.lastAuditEvent()
        #expect(entry.action == "admin.execute" && entry.outcome == .refused && entry.subject == status.id)
        #expect(entry.details["reason"]?.contains("approvals") == true)

        // With a second approval (security officer), it runs: the manufacturer's CA exists.
        _ = try await deployment.approve(status, by: "bob")
        let executed = try await deployment.service.execute(id: status.id, by: deployment.custodians["dave"]!)
        #expect(executed.state == .executed && executed.tally.counted.sorted() == ["bob", "dave"])
        #expect(try await deployment.fixture.store.certificateAuthority(named: "globex")?.role == .manufacturer)
        #expect(try await deployment.fixture.token.perform { try $0.privateKeyLabels() }.contains { $0.hasPrefix("metertrust/manufacturer/globex/") })
    }

    @Test("a request runs at most once, even when executed concurrently")
    func runsOnce() async throws {
        let deployment = try await Deployment.make()
        let status = try await deployment.request(.caCreate, ["kind": "operational", "name": "east"])
        _ = try await deployment.approve(status, by: "bob")
        _ = try await deployment.approve(status, by: "carol")
        let outcomes = await withTaskGroup(of: String.self) { group in
            for name in ["alice", "bob", "carol", "erin"] {
                group.addTask {
                    await deployment.executionOutcome(status.id, by: name)
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        // Exactly one runs; every other is refused as already executed (not failed in some other way).
        #expect(outcomes.sorted() == ["executed", "quorum.already-executed", "quorum.already-executed", "quorum.already-executed"], "\(outcomes)")
        #expect(try await deployment.fixture.store.certificateAuthorities().filter { $0.name == "east" }.count == 1)
    }

    @Test("policies change only under the current quorum, never to an unreachable one; the requester counts if the policy says so")
    func policyChanges() async throws {
        let deployment = try await Deployment.make()
        await Self.refusal(.invalidRequest) {
            _ = try await deployment.request(.policySet, ["class": "ca-key-create", "required": "5"])
        }
        let change = try await deployment.request(.policySet, ["class": "ca-key-create", "required": "3", "requester-may-approve": "true"])
        _ = try await deployment.approve(change, by: "bob")
        _ = try await deployment.approve(change, by: "carol")
        _ = try await deployment.service.execute(id: change.id, by: deployment.custodians["bob"]!)
        let policy = try await deployment.service.policy(for: .caKeyCreate)
        #expect(policy.required == 3 && policy.requesterMayApprove)

        let status = try await deployment.request(.caCreate, ["kind": "operational", "name": "central"])
        _ = try await deployment.approve(status, by: "alice")
        _ = try await deployment.approve(status, by: "bob")
        await Self.refusal(.belowQuorum) { _ = try await deployment.service.execute(id: status.id, by: deployment.custodians["alice"]!) }
        _ = try await deployment.approve(status, by: "erin")
        #expect(try await deployment.service.execute(id: status.id, by: deployment.custodians["alice"]!).state == .executed)
    }

    @Test("custodian.add, ca.destroy and ca.revoke run under quorum and take effect; unrunnable requests are refused up front")
    func operationsUnderQuorum() async throws {
        let deployment = try await Deployment.make(names: [("alice", .securityOfficer), ("bob", .securityOfficer), ("carol", .securityOfficer)])
        func run(_ operation: AdminOperation, _ parameters: [String: String]) async throws -> RequestStatus {
            let status = try await deployment.request(operation, parameters)
            _ = try await deployment.approve(status, by: "bob")
            _ = try await deployment.approve(status, by: "carol")
            return try await deployment.service.execute(id: status.id, by: deployment.custodians["bob"]!)
        }
        // custodian.add: the new custodian counts from then on.
        let (frankKey, frankCertificate) = try await Deployment.custodianCertificate(deployment.fixture, name: "frank", role: .securityOfficer)
        _ = try await run(.custodianAdd, ["certificate": Data(frankCertificate).base64EncodedString()])
        let frank = try await deployment.service.authenticate(certificateDER: frankCertificate)
        #expect(frank.name == "frank" && frank.role == .securityOfficer)
        let next = try await deployment.request(.caRevoke, ["name": "north", "reason": "4"])
        _ = try await deployment.service.approve(
            try Approval(approving: next.request, custodian: "frank", certificateFingerprint: frank.record.fingerprintSHA256, key: frankKey).bytes, uploader: "frank"
        )
        _ = try await deployment.approve(next, by: "bob")
        _ = try await deployment.service.execute(id: next.id, by: frank)
        let revocation = try await deployment.fixture.store.revocation(issuer: "test-root", serial: deployment.fixture.operational.certificate.serialHex)
        #expect(revocation?.reason == 4)

        // ca.destroy: the key leaves the HSM and the CA issues nothing more.
        let label = deployment.fixture.manufacturer.signingKey.key.label
        _ = try await run(.caDestroy, ["name": "acme"])
        #expect(try await !deployment.fixture.token.perform { try $0.privateKeyLabels() }.contains(label))
        await #expect(throws: PKIError.self) { _ = try await deployment.fixture.hierarchy.authority(named: "acme") }

        // Refused before any approval is collected.
        await Self.refusal(.invalidRequest) { _ = try await deployment.request(.caCreate, ["kind": "root", "name": "r2"]) }
        await Self.refusal(.invalidCertificate) { _ = try await deployment.request(.custodianAdd, ["certificate": "garbage"]) }
        await Self.refusal(.backup) { _ = try await deployment.request(.backupExport, [:]) }
        await #expect(throws: PKIError.self) { _ = try await deployment.request(.caDestroy, ["name": "acme"]) }
    }

    /// An operation as another module would register it: it takes over `ca.revoke` and only reports that it ran.
    struct ReportingRevoke: QuorumOperation {
        struct Parameters: Sendable { let name: String }
        static let operation = AdminOperation.caRevoke
        let parameters: Parameters
        init(_ parameters: Parameters) { self.parameters = parameters }
        static func parse(_ raw: [String: String]) throws -> Parameters { Parameters(name: try QuorumParameters(raw, for: operation).required("name")) }
        func preflight(in context: QuorumOperationContext) async throws {}
        func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
            QuorumOperationResult(outcome: ["reported": parameters.name])
        }
    }

    @Test("the service runs what its registry holds: a registered operation replaces the standard one, an unregistered one is refused up front")
    func registryDispatch() async throws {
        var operations = QuorumOperationRegistry()
        operations.registerAuthorityOperations()
        operations.register(ReportingRevoke.self)
        #expect(!operations.operations.contains(.backupExport) && operations.operations.contains(.caRevoke))
        let deployment = try await Deployment.make(operations: operations)
        let status = try await deployment.request(.caRevoke, ["name": "north"])
        _ = try await deployment.approve(status, by: "bob")
        _ = try await deployment.approve(status, by: "carol")
        let executed = try await deployment.service.execute(id: status.id, by: deployment.custodians["bob"]!)
        #expect(executed.state == .executed)
        let outcome = try JSONDecoder().decode([String: String].self, from: Data(try #require(executed.outcome).utf8))
        #expect(outcome == ["reported": "north"])
        // The standard ca.revoke did not run: north is not revoked.
        #expect(try await deployment.fixture.store.revocation(issuer: "test-root", serial: deployment.fixture.operational.certificate.serialHex) == nil)

        let message = await Self.refusal(.invalidRequest) { _ = try await deployment.request(.backupExport, [:]) }
        #expect(message.contains("no module of this deployment runs backup.export"))
        #expect(try await deployment.fixture.store.adminRequests(state: nil, limit: 100).count == 1)
    }

    /// An operation of a module added after the bootstrap ceremony, with a policy class of its own.
    struct LateModuleOperation: QuorumOperation {
        static let lateClass = OperationClass("late-module", defaultApproverRoles: [.pkiOfficer])
        static let operation = AdminOperation("late.run", class: lateClass, required: ["name"])
        let parameters: String
        init(_ parameters: String) { self.parameters = parameters }
        static func parse(_ raw: [String: String]) throws -> String { try QuorumParameters(raw, for: operation).required("name") }
        func preflight(in context: QuorumOperationContext) async throws {}
        func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
            QuorumOperationResult(outcome: ["ran": parameters])
        }
    }

    @Test("attacker with write access to the database: an operation class declared after the bootstrap gets its module's default roles and the strictest count the log set; a policy row forged for it is refused")
    func classDeclaredAfterBootstrap() async throws {
        let bootstrapped = try await Deployment.make()
        var operations = QuorumOperationRegistry.standard
        operations.register(LateModuleOperation.self)
        #expect(operations.operationClasses.last == LateModuleOperation.lateClass)
        // The same deployment, its service now running the new module's operation too.
        let service = AdminService(
            hierarchy: bootstrapped.fixture.hierarchy, store: bootstrapped.fixture.store, audit: bootstrapped.service.audit, operations: operations
        )
        let deployment = Deployment(fixture: bootstrapped.fixture, service: service, keys: bootstrapped.keys, custodians: bootstrapped.custodians)
        let policy = try await service.policy(for: LateModuleOperation.lateClass)
        #expect(policy.required == 2 && policy.approverRoles == [.pkiOfficer])

        let status = try await deployment.request(LateModuleOperation.operation, ["name": "x"])
        // A security officer's approval is refused for this class; the pki officer's counts, but one is not two.
        await Self.refusal(.wrongRole) { _ = try await deployment.approve(status, by: "bob") }
        _ = try await deployment.approve(status, by: "dave")
        await Self.refusal(.belowQuorum) { _ = try await service.execute(id: status.id, by: deployment.custodians["bob"]!) }

        // The attacker writes a 1-of-[security-officer] policy row for the class: no policy.set in the log backs it.
        try await bootstrapped.fixture.store.setQuorumPolicy(
            QuorumPolicy(operationClass: LateModuleOperation.lateClass, required: 1, approverRoles: [.securityOfficer]).record(updatedBy: nil)
        )
        await Self.refusal(.untrustedState) { _ = try await service.execute(id: status.id, by: deployment.custodians["bob"]!) }
        #expect(try await bootstrapped.fixture.store.adminRequest(id: status.id)?.state == .pending)
    }

    @Test("since the bootstrap, the domain refuses direct creation of every CA but the root, whoever calls it; nothing is made")
    func directCreationUnderQuorum() async throws {
        let deployment = try await Deployment.make()
        let keysBefore = try await deployment.fixture.token.perform { try $0.privateKeyLabels() }
        for role in [CertificateAuthorityRole.operational, .manufacturer, .admin] {
            let message = await Self.refusal(.underQuorumControl) {
                _ = try await DirectAuthorityCreation.create(
                    role: role, name: "side-\(role.rawValue)", organization: nil, curve: .p256, backup: false, hierarchy: deployment.fixture.hierarchy,
                    quorum: deployment.fixture.store, audit: deployment.service.audit, actor: "test"
                )
            }
            #expect(message.contains(role == .manufacturer ? "manufacturer.register" : "ca.create kind=\(role.rawValue)"), "\(message)")
            #expect(try await deployment.fixture.store.certificateAuthority(named: "side-\(role.rawValue)") == nil)
        }
        #expect(try await deployment.fixture.token.perform { try $0.privateKeyLabels() } == keysBefore)
    }

    @Test("typed parameters: each operation refuses values it cannot run before any request is stored", arguments: [
        (AdminOperation.caCreate, ["kind": "manufacturer", "name": "x"]),
        (.caCreate, ["kind": "operational", "name": "x", "curve": "P-521"]),
        (.caCreate, ["kind": "operational", "name": "x", "backup": "yes"]),
        (.manufacturerRegister, ["name": "x", "curve": "secp256k1"]),
        (.caCreate, ["kind": "operational", "name": "x", "shards": "0"]),
        (.manufacturerRegister, ["name": "x", "shards": "5000"]),
        (.manufacturerRegister, ["name": "x", "shards": "sixteen"]),
        (.caRevoke, ["name": "north", "reason": "keyCompromise"]),
        (.policySet, ["class": "ca-key-create", "required": "two"]),
        (.policySet, ["class": "ca-key-create", "required": "0"]),
        (.policySet, ["class": "ca-key-create", "required": "2", "roles": "auditor"]),
        (.custodianAdd, ["certificate": "not a certificate %%%"]),
    ])
    func typedParameters(operation: AdminOperation, parameters: [String: String]) throws {
        let error = #expect(throws: QuorumError.self) { try QuorumOperationRegistry.standard.operation(operation, parameters: parameters) }
        #expect(error?.code == .invalidRequest || error?.code == .invalidCertificate, "\(String(describing: error))")
    }

    @Test("request documents are canonical and content-addressed: the id is the SHA-256 of the stored document, and an approval of a document one byte off is refused; altered or malformed ones are refused")
    func canonicalRequests() async throws {
        let deployment = try await Deployment.make(names: [("alice", .securityOfficer), ("bob", .securityOfficer), ("carol", .securityOfficer)])
        let status = try await deployment.request(.caRevoke, ["name": "north", "reason": "4"])
        let request = status.request
        let bytes = request.canonicalBytes
        #expect(try AdminRequest.parse(bytes) == request)
        // The id is the SHA-256 of the document the store holds, computed by openssl (not by our code).
        let stored = try #require(try await deployment.fixture.store.adminRequest(id: status.id))
        #expect(stored.document == bytes)
        let file = TestEnvironment.temporaryDirectory().appendingPathComponent("request.json")
        try Data(stored.document).write(to: file)
        let digest = try TestEnvironment.run("openssl", ["dgst", "-sha256", "-r", file.path])
        try #require(digest.status == 0, "\(digest.stderr)")
        #expect(digest.stdout.split(separator: " ").first.map(String.init) == status.id, "openssl: \(digest.stdout), id \(status.id)")
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("{\"created\":"))
        // Same content, other layout: refused (one request, one id).
        let spaced = Array(String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: ",\"", with: ", \"").utf8)
        await Self.refusal(.invalidRequest) { _ = try AdminRequest.parse(spaced) }
        // One byte changed ("north" → "nortx"): still a well-formed canonical request, but another one, and nothing
        // signed over it counts for the stored request. bob approves the altered document: that is an approval of
        // a request that does not exist here; bob's signature over it, relabelled with the stored id, does not verify.
        let index = try #require(bytes.firstRange(of: Array("north".utf8))).upperBound - 1
        var altered = bytes
        altered[index] = UInt8(ascii: "x")
        let alteredRequest = try AdminRequest.parse(altered)
        #expect(alteredRequest.parameters["name"] == "nortx" && alteredRequest.canonicalBytes == altered)
        try Data(altered).write(to: file)
        let alteredDigest = try TestEnvironment.run("openssl", ["dgst", "-sha256", "-r", file.path])
        #expect(alteredDigest.stdout.split(separator: " ").first.map(String.init) == alteredRequest.id)
        #expect(alteredRequest.id != status.id)
        let ofAltered = try Approval(
            approving: alteredRequest, custodian: "bob", certificateFingerprint: deployment.custodians["bob"]!.record.fingerprintSHA256, key: deployment.keys["bob"]!
        )
        await Self.refusal(.wrongRequest) { _ = try await deployment.service.approve(ofAltered.bytes, uploader: "bob") }
        var relabelled = try #require(try JSONSerialization.jsonObject(with: Data(ofAltered.bytes)) as? [String: String])
        relabelled["request"] = status.id
        await Self.refusal(.forgedApproval) {
            _ = try await deployment.service.approve(Array(try JSONSerialization.data(withJSONObject: relabelled)), uploader: "bob")
        }
        #expect(try await deployment.fixture.store.approvals(requestID: status.id).isEmpty)
        // bob's approval of the real document counts.
        #expect(try await deployment.approve(status, by: "bob").tally.counted == ["bob"])
    }

    /// A request that must not be made or parsed, and the code it is refused with.
    struct MalformedRequest: Sendable, CustomTestStringConvertible {
        let testDescription: String
        let code: QuorumError.Code
        let attempt: @Sendable () throws -> Void
    }

    static let malformedRequests: [MalformedRequest] = [
        .init(testDescription: "a missing parameter", code: .invalidRequest) {
            _ = try AdminRequest(operation: .caDestroy, parameters: [:], requester: "a", lifetime: 60)
        },
        .init(testDescription: "an unknown parameter", code: .invalidRequest) {
            _ = try AdminRequest(operation: .caDestroy, parameters: ["name": "x", "force": "1"], requester: "a", lifetime: 60)
        },
        .init(testDescription: "a lifetime over 7 days", code: .invalidRequest) {
            _ = try AdminRequest(operation: .caDestroy, parameters: ["name": "x"], requester: "a", lifetime: 30 * 86_400)
        },
        .init(testDescription: "an oversized document", code: .invalidRequest) {
            _ = try AdminRequest.parse(Array(repeating: UInt8(ascii: " "), count: AdminRequest.maximumSize + 1))
        },
        .init(testDescription: "another format", code: .invalidRequest) {
            _ = try AdminRequest.parse(Array("{\"format\":\"other\"}".utf8))
        },
        .init(testDescription: "not JSON", code: .invalidRequest) { _ = try AdminRequest.parse(Array("request".utf8)) },
    ]

    @Test("malformed requests are refused with their code", arguments: QuorumTests.malformedRequests)
    func malformedRequestRefused(_ malformed: MalformedRequest) async {
        await Self.refusal(malformed.code) { try malformed.attempt() }
    }

    @Test("bootstrap runs once, takes only Admin CA custodian certificates, and needs a quorum that survives losing a custodian")
    func bootstrapCeremony() async throws {
        let deployment = try await Deployment.make()
        let (_, extra) = try await Deployment.custodianCertificate(deployment.fixture, name: "frank", role: .securityOfficer)
        await Self.refusal(.underQuorumControl) { _ = try await deployment.service.bootstrap(custodianCertificates: [extra], actor: "test") }

        let fresh = try await PKIFixture.make()
        let service = AdminService(hierarchy: fresh.hierarchy, store: fresh.store, audit: try await fresh.auditLog())
        let (_, one) = try await Deployment.custodianCertificate(fresh, name: "solo", role: .securityOfficer)
        let (_, two) = try await Deployment.custodianCertificate(fresh, name: "duo", role: .securityOfficer)
        await Self.refusal(.invalidRequest) { _ = try await service.bootstrap(custodianCertificates: [one, two], actor: "test") }
        // A certificate from another CA (the Service CA) is not an admin certificate.
        let serviceCA = try await fresh.hierarchy.createAuthority(role: .service, name: "platform")
        let signer = try CertificateSigner(authority: serviceCA, profile: .tlsServer, settings: PKISettings())
        let (server, _) = try signer.signNamed(
            try PublicKeyInfo(publicKey: Certificate.PublicKey(P256.Signing.PrivateKey().publicKey)), commonName: "host", organizationalUnit: nil, dnsNames: ["host"]
        )
        await Self.refusal(.invalidCertificate) { _ = try await service.bootstrap(custodianCertificates: [one, two, try server.derBytes], actor: "test") }
        #expect(try await !fresh.store.isQuorumBootstrapped())
    }

    @Test("Shamir k-of-n: every k shares recover the secret, k-1 do not; shares decrypt only with their custodian's key")
    func shamirAndShareEncryption() async throws {
        let secret = (0..<32).map { _ in UInt8.random(in: 0...255) }
        for (k, n) in [(2, 3), (3, 5), (5, 7)] {
            let shares = try Shamir.split(secret, threshold: k, count: n)
            #expect(Set(shares.map(\.value)).count == n && !shares.contains { $0.value == secret })
            for subset in combinations(shares, k) { #expect(try Shamir.combine(subset) == secret) }
            for subset in combinations(shares, k - 1) { #expect(try Shamir.combine(subset) != secret) }
        }
        // GF(2^8) sanity against the AES field (FIPS 197 §4.2: {57} • {83} = {c1}).
        #expect(Shamir.multiply(0x57, 0x83) == 0xc1)
        #expect(throws: QuorumError.self) { try Shamir.split(secret, threshold: 1, count: 3) }
        #expect(throws: QuorumError.self) { try Shamir.split(secret, threshold: 4, count: 3) }

        let deployment = try await Deployment.make(names: [("alice", .securityOfficer), ("bob", .securityOfficer), ("carol", .securityOfficer)])
        let holders = ["alice", "bob", "carol"].map { deployment.custodians[$0]! }
        let shares = try SecretShares(secret: secret, purpose: .backupKey, threshold: 2, custodians: holders)
        #expect(try shares.recover(with: ["alice": deployment.keys["alice"]!, "carol": deployment.keys["carol"]!]) == secret)
        #expect(throws: QuorumError.self) { try shares.recover(with: ["alice": deployment.keys["alice"]!]) }
        // bob's key cannot open alice's share (a share passed off as another's).
        #expect(throws: QuorumError.self) {
            try shares.shares[0].decrypt(with: deployment.keys["bob"]!, purpose: .backupKey, keyCheckValue: shares.keyCheckValue)
        }
        // A share of the SO PIN cannot be passed off as a share of the backup key (the HPKE info names the purpose),
        // and a stored document of one kind is not accepted as the other.
        let pinShares = try SecretShares(secret: secret, purpose: .securityOfficerPIN, threshold: 2, custodians: holders)
        #expect(try pinShares.shares[0].decrypt(with: deployment.keys["alice"]!, purpose: .securityOfficerPIN, keyCheckValue: pinShares.keyCheckValue).index == 1)
        #expect(throws: QuorumError.self) {
            try pinShares.shares[0].decrypt(with: deployment.keys["alice"]!, purpose: .backupKey, keyCheckValue: pinShares.keyCheckValue)
        }
        #expect(throws: QuorumError.self) { try SecretShares.decode(pinShares.encoded, purpose: .backupKey) }
        #expect(try SecretShares.decode(pinShares.encoded, purpose: .securityOfficerPIN) == pinShares)
    }

    @Test("attacker: custodians reaching quorum for an operation that would lock the deployment out — a second Admin CA, destroying or revoking the Admin CA or the root, removing a needed custodian — are refused before approvals are collected and again at execution")
    func lockOutRefused() async throws {
        let deployment = try await Deployment.make()
        let store = deployment.fixture.store
        let before = try await store.adminRequests(state: nil, limit: 100).count
        let secondAdmin = await Self.refusal(.lockOut) { _ = try await deployment.request(.caCreate, ["kind": "admin", "name": "admin2"]) }
        #expect(secondAdmin.contains("Admin CA admin exists"))
        for operation in [AdminOperation.caDestroy, .caRevoke] {
            let admin = await Self.refusal(.lockOut) { _ = try await deployment.request(operation, ["name": "admin"]) }
            #expect(admin.contains("certifies every custodian"))
            let root = await Self.refusal(.lockOut) { _ = try await deployment.request(operation, ["name": "test-root"]) }
            #expect(root.contains("every custodian certificate"))
        }
        // Nothing to approve was recorded for any of them.
        #expect(try await store.adminRequests(state: nil, limit: 100).count == before)

        // Two removals, each harmless when requested (4 security officers, every policy needs 2), approved together:
        // after erin's, carol's and bob's each still leave 2; after carol's runs, bob's would leave 1 and is refused
        // at execution, before it is claimed (it stays pending; nothing changes).
        func approvedRemoval(_ name: String, by approvers: [String]) async throws -> RequestStatus {
            let removal = try await deployment.request(.custodianRemove, ["name": name], by: "dave")
            for approver in approvers { _ = try await deployment.approve(removal, by: approver) }
            return removal
        }
        let erin = try await approvedRemoval("erin", by: ["alice", "bob"])
        _ = try await deployment.service.execute(id: erin.id, by: deployment.custodians["alice"]!)
        let carol = try await approvedRemoval("carol", by: ["alice", "bob"])
        let bob = try await approvedRemoval("bob", by: ["alice", "bob"])
        _ = try await deployment.service.execute(id: carol.id, by: deployment.custodians["alice"]!)
        let atExecution = await Self.refusal(.lockOut) { _ = try await deployment.service.execute(id: bob.id, by: deployment.custodians["alice"]!) }
        #expect(atExecution.contains("removing bob would leave 1"))
        #expect(try await store.adminRequest(id: bob.id)?.state == .pending)
        #expect(try await deployment.service.registry().custodian(named: "bob")?.isActive == true)
        let asked = await Self.refusal(.lockOut) { _ = try await deployment.request(.custodianRemove, ["name": "bob"]) }
        #expect(asked.contains("add a custodian first"))
    }

    @Test("two removals executed at once, each harmless alone but together leaving one security officer: exactly one runs, the other is refused as a lock-out")
    func concurrentRemovalsKeepTheQuorum() async throws {
        let deployment = try await Deployment.make(names: [("alice", .securityOfficer), ("bob", .securityOfficer), ("carol", .securityOfficer), ("dave", .pkiOfficer)])
        var removals: [RequestStatus] = []
        for name in ["bob", "carol"] {
            let removal = try await deployment.request(.custodianRemove, ["name": name], by: "dave")
            _ = try await deployment.approve(removal, by: "alice")
            _ = try await deployment.approve(removal, by: name)
            removals.append(removal)
        }
        let service = deployment.service
        let outcomes = await withTaskGroup(of: String.self) { group in
            for removal in removals {
                group.addTask {
                    await deployment.executionOutcome(removal.id, by: "alice")
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(outcomes.sorted() == ["executed", "quorum.lock-out"], "\(outcomes)")
        let officers = try await service.registry().active.filter { $0.role == .securityOfficer }.map(\.name)
        #expect(officers.count == 2 && officers.contains("alice"), "\(officers)")
    }

    private func combinations<T>(_ items: [T], _ k: Int) -> [[T]] {
        guard k > 0 else { return [[]] }
        guard items.count >= k else { return [] }
        let head = items[0]
        let tail = Array(items.dropFirst())
        return combinations(tail, k - 1).map { [head] + $0 } + combinations(tail, k)
    }
}
