import Foundation
import MeterTrustCore

/// Copies everything one store holds into another, empty one, through the store protocols alone (so any backend to
/// any backend): for an operator who outgrows the embedded SQLite store and moves to PostgreSQL.
///
/// Rows keep what they were (times, states, positions, the audit log's bytes), so the copied audit log verifies
/// against the same signed checkpoints; every constraint of the target applies to the copy as to any write (a key
/// shared by two meters in old data is refused here as it would be anywhere). Afterwards the two stores are counted
/// table by table and must agree.
public struct StoreCopy: Sendable {
    public let source: any MeterTrustStore
    public let target: any MeterTrustStore
    /// Rows per page read from the source and per bulk write.
    public var pageSize = 2000

    public init(source: any MeterTrustStore, target: any MeterTrustStore) {
        self.source = source
        self.target = target
    }

    /// What a store holds, counted.
    public struct Counts: Sendable, Hashable, Codable {
        public var certificateAuthorities = 0
        public var certificates = 0
        public var certificatesByIssuer: [String: Int] = [:]
        public var batches = 0
        public var auditEntries: Int64 = 0
        public var auditCheckpoints = 0
        public var custodians = 0
        public var quorumPolicies = 0
        public var adminRequests = 0
        public var approvals = 0
        public var revocations = 0
        public var backupKey = false
        public var quorumBootstrapped = false
        /// Accounts, operators, uploads, claims, conflicts, pending revocations and meter history.
        public var onboarding = OnboardingCounts()
        /// Imported PSKs (sealed).
        public var sealedPSKs = 0

        public var isEmpty: Bool {
            certificateAuthorities == 0 && certificates == 0 && batches == 0 && auditEntries == 0 && auditCheckpoints == 0 && custodians == 0
                && quorumPolicies == 0 && adminRequests == 0 && revocations == 0 && !backupKey && !quorumBootstrapped && onboarding.isEmpty
                && sealedPSKs == 0
        }
    }

    /// Progress: what is being copied and how many of it so far.
    public typealias Progress = @Sendable (_ stage: String, _ done: Int) -> Void

    /// Copies, then counts both stores; throws if the target was not empty or the counts differ afterwards.
    @discardableResult
    public func run(progress: Progress = { _, _ in }) async throws -> Counts {
        let before = try await Self.count(target)
        guard before.isEmpty else {
            throw StoreError(
                .duplicate,
                "the target store is not empty (\(before.certificates) certificates, \(before.auditEntries) audit entries, \(before.certificateAuthorities) CAs): copy only into a new, empty database"
            )
        }
        let expected = try await Self.count(source)
        try await copyAuthorities(progress)
        try await copyBatches(progress)
        try await copyCertificates(progress)
        try await copyAudit(progress)
        try await copyQuorum(progress)
        try await copyRevocations(progress)
        try await copyOnboarding(progress)
        try await copySealedPSKs(progress)
        let copied = try await Self.count(target)
        guard copied == expected else {
            throw StoreError(.corrupt, "the copy does not match its source: source \(expected), target \(copied)")
        }
        return copied
    }

    public static func count(_ store: any MeterTrustStore) async throws -> Counts {
        var counts = Counts()
        let authorities = try await store.certificateAuthorities()
        counts.certificateAuthorities = authorities.count
        counts.certificates = try await store.certificateCount(issuer: nil)
        for authority in authorities { counts.certificatesByIssuer[authority.name] = try await store.certificateCount(issuer: authority.name) }
        var batch: String?
        while true {
            let page = try await store.batches(after: batch, limit: 1000)
            counts.batches += page.count
            guard let last = page.last, page.count == 1000 else { break }
            batch = last.id
        }
        counts.auditEntries = try await store.auditEntryCount()
        counts.auditCheckpoints = try await store.auditCheckpoints().count
        counts.custodians = try await store.custodians().count
        counts.quorumPolicies = try await store.quorumPolicies().count
        let requests = try await store.adminRequests(state: nil, limit: Int(Int32.max))
        counts.adminRequests = requests.count
        for request in requests { counts.approvals += try await store.approvals(requestID: request.id).count }
        var position: CertificateListPosition?
        while true {
            let page = try await store.revocations(after: position, limit: 5000)
            counts.revocations += page.count
            guard let last = page.last, page.count == 5000 else { break }
            position = CertificateListPosition(issuer: last.issuer, serial: last.serial)
        }
        counts.backupKey = try await store.backupKey() != nil
        counts.quorumBootstrapped = try await store.isQuorumBootstrapped()
        counts.onboarding = try await store.onboardingCounts()
        var meter: String?
        while true {
            let page = try await store.sealedPSKs(after: meter, limit: 5000)
            counts.sealedPSKs += page.count
            guard let last = page.last, page.count == 5000 else { break }
            meter = last.eui64
        }
        return counts
    }

    /// CAs parents first, each with its own certificate; destroyed ones marked so at the end.
    private func copyAuthorities(_ progress: Progress) async throws {
        var remaining = try await source.certificateAuthorities()
        var copied: Set<String> = []
        while !remaining.isEmpty {
            guard let index = remaining.firstIndex(where: { $0.parent.map(copied.contains) ?? true }) else {
                throw StoreError(.corrupt, "CA \(remaining[0].name) names a parent the store does not hold")
            }
            let authority = remaining.remove(at: index)
            guard var certificate = try await source.certificate(issuer: authority.parent ?? authority.name, serial: authority.certificateSerial) else {
                throw StoreError(.corrupt, "the certificate of CA \(authority.name) is missing from the source store")
            }
            certificate.subjectKeyDigest = Self.keyDigest(certificate)
            var live = authority
            live.destroyedAt = nil
            try await target.insertCertificateAuthority(live, certificate: certificate)
            copied.insert(authority.name)
            progress("certificate authorities", copied.count)
        }
    }

    private func copyBatches(_ progress: Progress) async throws {
        var after: String?
        var done = 0
        while true {
            let page = try await source.batches(after: after, limit: pageSize)
            for batch in page {
                _ = try await target.beginBatch(batch)
                if let completed = batch.completedAt { try await target.completeBatch(id: batch.id, at: completed) }
            }
            done += page.count
            progress("batches", done)
            guard let last = page.last, page.count == pageSize else { return }
            after = last.id
        }
    }

    /// Every certificate but the CAs' own (copied with their CA): device identities through the bulk path, the rest
    /// as single inserts in one transaction per page; device keys claimed again from each certificate's DER.
    private func copyCertificates(_ progress: Progress) async throws {
        let authorityCertificates = Set(try await source.certificateAuthorities().map { CertificateListPosition(issuer: $0.parent ?? $0.name, serial: $0.certificateSerial) })
        var position: CertificateListPosition?
        var done = 0
        while true {
            let page = try await source.certificates(matching: CertificateFilter(), after: position, limit: pageSize)
            var identities: [CertificateRecord] = []
            var others: [CertificateRecord] = []
            for var record in page.certificates where !authorityCertificates.contains(CertificateListPosition(record)) {
                record.subjectKeyDigest = Self.keyDigest(record)
                if record.kind == .deviceIdentity { identities.append(record) } else { others.append(record) }
            }
            if !identities.isEmpty {
                let outcomes = try await target.insertDeviceIdentities(identities)
                if let refused = zip(identities, outcomes).first(where: { $0.1 != .stored }) {
                    throw StoreError(.corrupt, "device identity \(refused.0.serial) of \(refused.0.issuer) could not be copied: \(refused.1)")
                }
            }
            if !others.isEmpty { try await target.insertCertificates(others) }
            done += page.certificates.count
            progress("certificates", done)
            guard let next = page.next else { return }
            position = next
        }
    }

    /// The audit log entry by entry, at the same positions and with the same bytes, then its checkpoints.
    private func copyAudit(_ progress: Progress) async throws {
        var after: Int64 = -1
        while true {
            let page = try await source.auditEntries(after: after, limit: pageSize)
            for row in page {
                let entry = row.entry
                let position = try await target.appendAuditEntry { _ in entry }
                guard position == row.position else {
                    throw StoreError(.corrupt, "audit entry \(row.position) landed at position \(position) in the target")
                }
            }
            guard let last = page.last else { break }
            after = last.position
            progress("audit entries", Int(after + 1))
        }
        for checkpoint in try await source.auditCheckpoints() {
            try await target.insertAuditCheckpoint(size: checkpoint.size, note: checkpoint.note)
        }
    }

    /// Custodians (removed ones removed again, at the same time), policies, requests with their approvals and their
    /// state, the backup key.
    private func copyQuorum(_ progress: Progress) async throws {
        let custodians = try await source.custodians()
        let policies = try await source.quorumPolicies()
        let active = custodians.map { custodian -> CustodianRecord in
            var copy = custodian
            copy.removedAt = nil
            return copy
        }
        if try await source.isQuorumBootstrapped() {
            try await target.bootstrapQuorum(custodians: active, policies: policies)
        } else {
            for custodian in active { try await target.insertCustodian(custodian) }
            for policy in policies { try await target.setQuorumPolicy(policy) }
        }
        for custodian in custodians {
            if let removed = custodian.removedAt { try await target.removeCustodian(named: custodian.name, at: removed) { _ in } }
        }
        let requests = try await source.adminRequests(state: nil, limit: Int(Int32.max))
        for (index, request) in requests.enumerated() {
            var pending = request
            pending.state = .pending
            pending.executedAt = nil
            pending.executedBy = nil
            pending.outcome = nil
            try await target.insertAdminRequest(pending)
            for approval in try await source.approvals(requestID: request.id) { try await target.insertApproval(approval) }
            if request.state != .pending {
                _ = try await target.claimAdminRequest(id: request.id, by: request.executedBy ?? "", at: request.executedAt ?? request.createdAt)
                if request.state != .executing {
                    try await target.finishAdminRequest(id: request.id, state: request.state, outcome: request.outcome ?? "")
                }
            }
            progress("admin requests", index + 1)
        }
        if let backup = try await source.backupKey() { try await target.setBackupKey(backup) }
    }

    private func copyRevocations(_ progress: Progress) async throws {
        var position: CertificateListPosition?
        var done = 0
        while true {
            let page = try await source.revocations(after: position, limit: pageSize)
            for revocation in page {
                try await target.revokeCertificate(issuer: revocation.issuer, serial: revocation.serial, reason: revocation.reason, at: revocation.revokedAt)
            }
            done += page.count
            if !page.isEmpty { progress("revocations", done) }
            guard let last = page.last, page.count == pageSize else { break }
            position = CertificateListPosition(issuer: last.issuer, serial: last.serial)
        }
        for authority in try await source.certificateAuthorities() {
            if let destroyed = authority.destroyedAt { try await target.markCertificateAuthorityDestroyed(named: authority.name, at: destroyed) }
        }
    }

    /// Accounts (with their operators and uploads), then claims, conflicts, pending revocations and history, each
    /// in its source order so sequence numbers keep their order. An upload still staging is copied as it is, without
    /// its staged entries: it can only be discarded in the target.
    private func copyOnboarding(_ progress: Progress) async throws {
        var rows = OnboardingRows()
        let source = self.source
        try await forEachPage(from: String?.none, source.accounts(after:limit:), cursor: { $0.id }) { rows.accounts += $0 }
        try await forEachPage(from: String?.none, source.allOperators(afterFingerprint:limit:), cursor: { $0.fingerprintSHA256 }) { rows.operators += $0 }
        try await forEachPage(from: String?.none, source.uploads(after:limit:), cursor: { $0.id }) { rows.uploads += $0 }
        try await target.insertOnboardingRows(rows)
        progress("accounts", rows.accounts.count)
        var done = 0
        try await forEachPage(from: Int64(0), source.allClaims(after:limit:), cursor: \.id) { page in
            var rows = OnboardingRows()
            rows.claims = page
            try await target.insertOnboardingRows(rows)
            done += page.count
            progress("claims", done)
        }
        try await forEachPage(from: Int64(0), source.allConflicts(after:limit:), cursor: \.id) { page in
            var rows = OnboardingRows()
            rows.conflicts = page
            try await target.insertOnboardingRows(rows)
        }
        try await forEachPage(
            from: CertificateListPosition?.none, source.pendingRevocations(after:limit:), cursor: { CertificateListPosition(issuer: $0.issuer, serial: $0.serial) }
        ) { page in
            var rows = OnboardingRows()
            rows.pendingRevocations = page
            try await target.insertOnboardingRows(rows)
        }
        done = 0
        try await forEachPage(from: Int64(0), source.allHistory(after:limit:), cursor: \.id) { page in
            var rows = OnboardingRows()
            rows.history = page
            try await target.insertOnboardingRows(rows)
            done += page.count
            progress("meter history", done)
        }
    }

    /// Imported PSKs as they are sealed (the copy never opens them: the target uses the same HSM keys).
    private func copySealedPSKs(_ progress: Progress) async throws {
        var done = 0
        let source = self.source
        try await forEachPage(from: String?.none, source.sealedPSKs(after:limit:), cursor: { $0.eui64 }) { page in
            try await target.insertSealedPSKs(page)
            done += page.count
            progress("imported PSKs", done)
        }
    }

    /// Every row of a keyset-paged listing of the source, ``pageSize`` at a time, handed to `body` page by page.
    private func forEachPage<Row, Cursor>(
        from start: Cursor, _ fetch: (Cursor, Int) async throws -> [Row], cursor: (Row) -> Cursor, _ body: ([Row]) async throws -> Void
    ) async throws {
        var position = start
        while true {
            let page = try await fetch(position, pageSize)
            guard let last = page.last else { return }
            try await body(page)
            guard page.count == pageSize else { return }
            position = cursor(last)
        }
    }

    /// The subject-key digest the issuer set on a device certificate (the store does not read it back).
    static func keyDigest(_ record: CertificateRecord) -> [UInt8]? {
        guard record.eui64 != nil, record.kind == .deviceIdentity || record.kind == .deviceOperational else { return nil }
        return try? SubjectKeyDigest.of(certificate: record.der)
    }
}
