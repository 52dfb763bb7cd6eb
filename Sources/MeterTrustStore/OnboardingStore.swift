import Foundation

/// Utility accounts, their operators, enrollment uploads, claims, conflicts and change of supplier.
///
/// One open claim per meter is the database's constraint (a unique index over open claims), never a look-up: two
/// nodes committing overlapping uploads at once give each meter to exactly one account and a conflict to the other.
/// Every listing is bounded (`limit`) and served by an index. Times are whole seconds, as everywhere in the store.
public protocol OnboardingStore: Sendable {
    // MARK: Accounts and operators

    /// ``StoreError/Code/duplicate`` if the id is taken; ``StoreError/Code/foreignKey`` if the operational CA or a
    /// manufacturer is no CA of the store.
    func createAccount(_ account: AccountRecord) async throws
    func account(id: String) async throws -> AccountRecord?
    /// Accounts in id order after `id` (from the first if nil), at most `limit`.
    func accounts(after id: String?, limit: Int) async throws -> [AccountRecord]

    /// ``StoreError/Code/duplicate`` if the certificate fingerprint is already an operator's;
    /// ``StoreError/Code/foreignKey`` for an unknown account.
    func addOperator(_ record: OperatorRecord) async throws
    /// The account's operators, removed ones included, in the order added, at most `limit`.
    func operators(account: String, limit: Int) async throws -> [OperatorRecord]
    func operatorRecord(fingerprintSHA256: String) async throws -> OperatorRecord?
    /// Marks the account's operator removed: ``StoreError/Code/notFound`` if the account has no such live operator.
    func removeOperator(account: String, fingerprintSHA256: String, at date: Date, by actor: String) async throws

    // MARK: Enrollment uploads

    /// Records a new upload in state staging: ``StoreError/Code/duplicate`` for a used id.
    func beginUpload(_ upload: EnrollmentUploadRecord) async throws
    func upload(id: String) async throws -> EnrollmentUploadRecord?
    /// Appends a chunk of entries to the upload's staging area in one transaction (bulk). A meter staged before in
    /// the same upload is kept aside as listed twice. ``StoreError/Code/notFound`` if the upload is not staging.
    func stage(upload: String, entries: [EnrollmentEntry]) async throws
    /// Up to `limit` problems of the staged entries, in position order, found by the database over the staged rows.
    func check(upload: String, limit: Int) async throws -> [EnrollmentProblem]
    /// Claims the staged meters for the upload's account in one transaction, first to claim wins: a meter held by
    /// another account becomes an open conflict (one per meter and claimant), one the account holds is counted. The
    /// staged rows go. ``StoreError/Code/notFound`` if the upload is not staging.
    func commit(upload: String, at date: Date) async throws -> EnrollmentCommitCounts
    /// Discards the staged rows and marks the upload refused: no claim. ``StoreError/Code/notFound`` if not staging.
    func discard(upload: String, at date: Date) async throws

    // MARK: Claims, conflicts, change of supplier

    /// The meter's open claim, if any.
    func claim(eui64: String) async throws -> ClaimRecord?
    /// The account's open claims in EUI-64 order after `eui64`, at most `limit` (keyset paging).
    func claims(account: String, after eui64: String?, limit: Int) async throws -> [ClaimRecord]
    func claimCount(account: String) async throws -> Int
    /// Conflicts in which the account is holder or claimant, by id after `id`, at most `limit`; only open ones if
    /// `openOnly`.
    func conflicts(account: String, openOnly: Bool, after id: Int64?, limit: Int) async throws -> [ConflictRecord]
    /// The open conflicts over one meter.
    func openConflicts(eui64: String) async throws -> [ConflictRecord]
    /// Closes the open conflict of `claimant` over the meter. In favour of the claimant: the holder's claim is closed,
    /// the claimant's opened, the `revocationCandidates` (the holder's operational certificates) recorded for
    /// revocation, the meter's other open conflicts now name the claimant as holder; in favour of the holder: only the
    /// conflict closes. One transaction. ``StoreError/Code/notFound`` if there is no such open conflict.
    func resolveConflict(
        eui64: String, claimant: String, inFavourOf resolution: ConflictResolution, at date: Date, actor: String,
        revocationCandidates: [RevocationCandidate]
    ) async throws -> ConflictRecord
    /// Change of supplier: closes `account`'s open claim of the meter, closes the open conflicts it held over it
    /// (resolution ``ConflictResolution/released``: the claimants may upload the meter again, and the first to do so
    /// claims it), and records `revocationCandidates` for revocation (reason 4, superseded), in one transaction.
    /// ``StoreError/Code/notFound`` if the account does not hold the meter (nothing changes).
    func release(eui64: String, account: String, at date: Date, actor: String, revocationCandidates: [RevocationCandidate]) async throws
    /// Certificates recorded for revocation, in (issuer, serial) order after `position`, at most `limit`.
    func pendingRevocations(after position: CertificateListPosition?, limit: Int) async throws -> [PendingRevocationRecord]
    /// The meter's history, oldest first, at most `limit` events after event `id`.
    func history(eui64: String, after id: Int64?, limit: Int) async throws -> [MeterHistoryEvent]

    // MARK: Copy

    func onboardingCounts() async throws -> OnboardingCounts
    /// Up to `limit` rows of every onboarding table after the given cursors (for ``StoreCopy``): operators by
    /// fingerprint, uploads by id, claims, conflicts and history by id, pending revocations by (issuer, serial).
    func uploads(after id: String?, limit: Int) async throws -> [EnrollmentUploadRecord]
    func allOperators(afterFingerprint fingerprint: String?, limit: Int) async throws -> [OperatorRecord]
    func allClaims(after id: Int64, limit: Int) async throws -> [ClaimRecord]
    func allConflicts(after id: Int64, limit: Int) async throws -> [ConflictRecord]
    func allHistory(after id: Int64, limit: Int) async throws -> [MeterHistoryEvent]
    /// Writes rows as they are, in one transaction (accounts, operators, uploads, claims, conflicts, revocations,
    /// history, in that order): for ``StoreCopy`` only.
    func insertOnboardingRows(_ rows: OnboardingRows) async throws
}
