import Crypto
import Foundation
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustCore
import MeterTrustOnboarding
import MeterTrustPKI
import MeterTrustQuorum
import MeterTrustStore
import X509

/// The demo's second half, after the factory: three custodians (played here, their keys in memory) bootstrap the
/// quorum and create two utility accounts under it; north's operator uploads the batch's signed enrollment
/// manifest; south's list collides on one meter (a conflict both see); one meter changes supplier from north to south.
struct DemoOnboarding {
    struct Summary: Encodable {
        struct Account: Encodable {
            var id: String
            var operationalCA: String
            var operatorName: String
            var operatorCertificate: String
            var request: String
            var approvers: [String]
            var claims: Int
        }
        var custodians: [String]
        var accounts: [Account]
        var upload: EnrollmentUploadResult
        var collidingUpload: EnrollmentUploadResult
        var conflicts: [ConflictRecord]
        var changedSupplier: String
        var release: Onboarding.Release
        var reclaim: EnrollmentUploadResult
        var history: [MeterHistoryEvent]
    }

    let context: Context
    let hierarchy: CAHierarchy
    let store: any MeterTrustStore
    let manufacturer: String
    let progress: (String) -> Void

    func run(manifest: URL, meters: [String]) async throws -> Summary {
        // The Operator CA and a second utility's Operational CA, made directly, before the quorum exists.
        _ = try await hierarchy.createAuthority(role: .operator, name: "metertrust-operators", organization: "MeterTrust Demo")
        _ = try await hierarchy.createAuthority(role: .operational, name: "south-utility", organization: "South Utility plc")
        _ = try await AuditCommand.Init.initialize(
            data: DataDirectoryOptions(dataDirectory: context.dataDirectory.path), name: "metertrust-demo",
            // A log of its own each run: the HSM keeps the head of every log it anchored, and --reset reuses the token.
            keyName: "demo.metertrust.example/audit-\(UUID().uuidString.prefix(8).lowercased())", interval: 1
        )
        let context = try Context(DataDirectoryOptions(dataDirectory: self.context.dataDirectory.path))
        let audit = try context.auditLog(store: store, token: hierarchy.token)
        let service = AdminService(hierarchy: hierarchy, store: store, audit: audit, operations: .platform)

        // Three custodians: their keys would be on their own machines; the Admin CA certifies them.
        var keys: [String: P256.Signing.PrivateKey] = [:]
        var certificates: [[UInt8]] = []
        for name in ["alice", "bob", "carol"] {
            let key = P256.Signing.PrivateKey()
            let csr = try CertificateSigningRequest(
                version: .v1, subject: try DistinguishedName { CommonName(name) }, privateKey: Certificate.PrivateKey(key),
                attributes: CertificateSigningRequest.Attributes()
            )
            let issued = try await CustodianCertification.issue(
                csr: try csr.serializeAsPEM().derBytes, name: name, role: .securityOfficer, service: service, actor: context.actor
            )
            keys[name] = key
            certificates.append(issued.record.der)
        }
        _ = try await service.bootstrap(custodianCertificates: certificates, actor: context.actor)
        let registry = try await service.registry()
        progress("quorum bootstrapped: alice, bob, carol (2 of 3)")

        // Each account under quorum: alice asks, bob and carol approve, bob executes.
        var accounts: [Summary.Account] = []
        for (id, operational, operatorName) in [("north", "north-utility", "olive"), ("south", "south-utility", "sam")] {
            let operatorKey = P256.Signing.PrivateKey()
            let operatorCSR = try CertificateSigningRequest(
                version: .v1, subject: try DistinguishedName { CommonName(operatorName) }, privateKey: Certificate.PrivateKey(operatorKey),
                attributes: CertificateSigningRequest.Attributes()
            )
            let requested = try await service.submit(
                operation: .accountCreate,
                parameters: [
                    "id": id, "name": "\(id.capitalized) Utility", "operational-ca": operational, "manufacturers": manufacturer,
                    "operator": operatorName, "operator-csr": try operatorCSR.serializeAsPEM().pemString,
                ],
                requester: registry.custodian(named: "alice")!
            )
            for approver in ["bob", "carol"] {
                let custodian = registry.custodian(named: approver)!
                let approval = try Approval(
                    approving: requested.request, custodian: approver, certificateFingerprint: custodian.record.fingerprintSHA256, key: keys[approver]!
                )
                _ = try await service.approve(approval.bytes, uploader: approver)
            }
            let executed = try await service.execute(id: requested.id, by: registry.custodian(named: "bob")!)
            let outcome = try JSONDecoder().decode([String: String].self, from: Data((executed.outcome ?? "{}").utf8))
            accounts.append(
                Summary.Account(
                    id: id, operationalCA: operational, operatorName: operatorName, operatorCertificate: outcome["operatorSerial"] ?? "",
                    request: requested.id, approvers: executed.tally.counted, claims: 0
                )
            )
            progress("account \(id) created under quorum (request \(requested.id.prefix(12))…, approved by \(executed.tally.counted.joined(separator: ", ")))")
        }

        let onboarding = Onboarding(store: store, audit: audit)
        // north's operator uploads the factory's signed manifest.
        let signature = try Data(contentsOf: manifest.appendingPathExtension("sig"))
        let session = try await onboarding.beginUpload(
            account: "north", format: .manifest, manufacturer: manufacturer, signature: Array(signature), actor: "operator:north/olive"
        )
        try await session.append(contentsOf: try Data(contentsOf: manifest))
        let upload = try await session.finish()
        progress("north uploaded the enrollment manifest: \(upload.claimed) meters claimed")

        // south bought meter 0 too, it says: a conflict, reported to both, never resolved silently.
        let colliding = try await uploadList(onboarding, account: "south", meters: [meters[0]])
        let conflicts = try await onboarding.conflicts(account: "north")
        progress("south's list collides on \(meters[0]): \(colliding.conflicts) conflict, reported to north and south")

        // Change of supplier: the customer of meter 1 moves from north to south.
        let switching = meters[1]
        let release = try await onboarding.release(eui64: switching, account: "north", actor: "operator:north/olive")
        let reclaim = try await uploadList(onboarding, account: "south", meters: [switching])
        let history = try await onboarding.history(eui64: switching)
        progress("meter \(switching) changed supplier: released by north, claimed by south")

        for index in accounts.indices { accounts[index].claims = try await store.claimCount(account: accounts[index].id) }
        return Summary(
            custodians: ["alice", "bob", "carol"], accounts: accounts, upload: upload, collidingUpload: colliding, conflicts: conflicts,
            changedSupplier: switching, release: release, reclaim: reclaim, history: history
        )
    }

    private func uploadList(_ onboarding: Onboarding, account: String, meters: [String]) async throws -> EnrollmentUploadResult {
        let session = try await onboarding.beginUpload(account: account, format: .list, manufacturer: manufacturer, actor: "operator:\(account)")
        try await session.append(Array(meters.map { $0 + "\n" }.joined().utf8))
        return try await session.finish()
    }
}
