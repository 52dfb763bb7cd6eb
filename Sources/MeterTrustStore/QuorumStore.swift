import Foundation

/// Custodians, quorum policies, requests and approvals, and the backup key's shares. Run-once and one approval
/// per custodian per request are the database's constraints.
public protocol QuorumStore: Sendable {
    /// Registers the first custodians and the policies in one transaction; refused with
    /// ``StoreError/Code/duplicate`` if the quorum was bootstrapped before.
    func bootstrapQuorum(custodians: [CustodianRecord], policies: [QuorumPolicyRecord]) async throws
    func isQuorumBootstrapped() async throws -> Bool
    /// Every custodian ever registered, removed ones included.
    func custodians() async throws -> [CustodianRecord]
    func insertCustodian(_ custodian: CustodianRecord) async throws
    /// Marks a custodian removed (their approvals stop counting) if `check`, run in the same serialised write
    /// transaction on the custodians as they are then, does not throw; notFound if there is no such active one.
    func removeCustodian(named name: String, at date: Date, ifAllowed check: @escaping @Sendable ([CustodianRecord]) throws -> Void) async throws
    func quorumPolicies() async throws -> [QuorumPolicyRecord]
    func setQuorumPolicy(_ policy: QuorumPolicyRecord) async throws
    func insertAdminRequest(_ request: AdminRequestRecord) async throws
    func adminRequest(id: String) async throws -> AdminRequestRecord?
    /// Requests, newest first, optionally only those in `state`.
    func adminRequests(state: AdminRequestRecord.State?, limit: Int) async throws -> [AdminRequestRecord]
    /// Stores an approval; ``StoreError/Code/duplicate`` if this custodian already approved this request,
    /// ``StoreError/Code/foreignKey`` if the store holds no such request or custodian.
    func insertApproval(_ approval: ApprovalRecord) async throws
    func approvals(requestID: String) async throws -> [ApprovalRecord]
    /// Moves a pending request to `executing`; false if it is not pending (already run, running or failed).
    /// This is the run-once guard: of any number of concurrent callers on any number of nodes, one gets true.
    func claimAdminRequest(id: String, by custodian: String, at date: Date) async throws -> Bool
    func finishAdminRequest(id: String, state: AdminRequestRecord.State, outcome: String) async throws
    /// Records the deployment's backup key; ``StoreError/Code/duplicate`` if it has one.
    func setBackupKey(_ record: BackupKeyRecord) async throws
    /// Replaces the backup key labelled `label` (a reshare); notFound if that is not the current one.
    func replaceBackupKey(_ record: BackupKeyRecord, replacing label: String) async throws
    /// Forgets the backup key labelled `label` (a ceremony rolled back before it finished).
    func deleteBackupKey(label: String) async throws
    func backupKey() async throws -> BackupKeyRecord?
}
