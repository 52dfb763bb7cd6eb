import Foundation
import MeterTrustStore
import MeterTrustStoreSQLite
import Testing

/// The onboarding view of the store conformance suite (accounts, operators, uploads, claims, conflicts, change of
/// supplier), on every backend of ``StoreBackend/all``.
extension StoreConformanceTests {
    static let t0 = Date(timeIntervalSince1970: 1_900_000_000)

    static func meter(_ n: Int) -> String { String(format: "0024befffe%06x", n) }
    static func fingerprint(_ n: Int) -> String { String(format: "%064x", n) }

    /// CAs acme and globex (manufacturers), north (operational); meters 1...count with device identities from acme
    /// (fingerprint `fingerprint(n)`), meter 900 from globex; accounts `a` and `b` accepting acme.
    static func onboardingStore(_ backend: StoreBackend, meters count: Int = 8) async throws -> any MeterTrustStore {
        let store = try await backend.make()
        try await register("acme", in: store)
        try await register("globex", in: store)
        try await register("north", role: "operational", in: store)
        var records = (1...count).map { n in
            var record = certificate(issuer: "acme", serial: String(format: "%06x", n), eui64: meter(n))
            record.fingerprintSHA256 = fingerprint(n)
            return record
        }
        records.append(certificate(issuer: "globex", serial: "0900", eui64: meter(900)))
        #expect(try await store.insertDeviceIdentities(records).allSatisfy { $0 == .stored })
        for id in ["a", "b"] {
            try await store.createAccount(AccountRecord(id: id, displayName: "Utility \(id)", operationalCA: "north", manufacturers: ["acme"], createdAt: t0, createdBy: "admin"))
        }
        return store
    }

    /// Stages `meters` (plain list) for `account` in chunks of 3 and commits.
    static func upload(
        _ id: String, account: String, meters: [Int], to store: any MeterTrustStore, at date: Date = t0
    ) async throws -> EnrollmentCommitCounts {
        try await store.beginUpload(EnrollmentUploadRecord(id: id, account: account, manufacturer: "acme", format: .list, createdAt: date, actor: "op-\(account)"))
        let entries = meters.enumerated().map { EnrollmentEntry(eui64: meter($0.element), position: Int64($0.offset)) }
        for start in stride(from: 0, to: entries.count, by: 3) {
            try await store.stage(upload: id, entries: Array(entries[start..<min(start + 3, entries.count)]))
        }
        #expect(try await store.check(upload: id, limit: 10) == [])
        return try await store.commit(upload: id, at: date)
    }

    @Test("accounts: unique ids, known CAs only, manufacturers kept; operators added, found by fingerprint, removed once", arguments: StoreBackend.all)
    func accountsAndOperators(_ backend: StoreBackend) async throws {
        let store = try await Self.onboardingStore(backend, meters: 1)
        let a = try #require(try await store.account(id: "a"))
        #expect(a.operationalCA == "north" && a.manufacturers == ["acme"] && a.createdAt == Self.t0 && a.createdBy == "admin")
        #expect(try await store.accounts(after: nil, limit: 10).map(\.id) == ["a", "b"])
        #expect(try await store.accounts(after: "a", limit: 10).map(\.id) == ["b"])
        #expect(await Self.code { try await store.createAccount(AccountRecord(id: "a", displayName: "again", operationalCA: "north", manufacturers: [], createdBy: "x")) } == .duplicate)
        #expect(await Self.code { try await store.createAccount(AccountRecord(id: "c", displayName: "c", operationalCA: "nowhere", manufacturers: [], createdBy: "x")) } == .foreignKey)
        #expect(await Self.code { try await store.createAccount(AccountRecord(id: "d", displayName: "d", operationalCA: "north", manufacturers: ["nobody"], createdBy: "x")) } == .foreignKey)
        #expect(await Self.code { try await store.createAccount(AccountRecord(id: "Bad Id", displayName: "e", operationalCA: "north", manufacturers: [], createdBy: "x")) } == .checkViolation)
        #expect(try await store.account(id: "c") == nil)
        #expect(try await store.account(id: "d") == nil)

        let op = OperatorRecord(account: "a", name: "olga", certificateIssuer: "operators", certificateSerial: "01", fingerprintSHA256: Self.fingerprint(77), addedAt: Self.t0, addedBy: "admin")
        try await store.addOperator(op)
        #expect(await Self.code { try await store.addOperator(op) } == .duplicate)
        #expect(await Self.code { var other = op; other.account = "zzz"; other.fingerprintSHA256 = Self.fingerprint(78); try await store.addOperator(other) } == .foreignKey)
        #expect(try await store.operatorRecord(fingerprintSHA256: Self.fingerprint(77)) == op)
        #expect(try await store.operators(account: "a", limit: 10) == [op])
        #expect(try await store.operators(account: "b", limit: 10) == [])
        // Another account cannot remove a's operator.
        #expect(await Self.code { try await store.removeOperator(account: "b", fingerprintSHA256: Self.fingerprint(77), at: Self.t0, by: "op-b") } == .notFound)
        try await store.removeOperator(account: "a", fingerprintSHA256: Self.fingerprint(77), at: Self.t0.addingTimeInterval(5), by: "admin")
        #expect(try await store.operatorRecord(fingerprintSHA256: Self.fingerprint(77))?.removedAt == Self.t0.addingTimeInterval(5))
        #expect(await Self.code { try await store.removeOperator(account: "a", fingerprintSHA256: Self.fingerprint(77), at: Self.t0, by: "admin") } == .notFound)
    }

    @Test("an upload's check finds, by SQL over the staged rows, unknown meters, another manufacturer's, wrong fingerprints and meters listed twice; a discarded upload claims nothing", arguments: StoreBackend.all)
    func uploadChecks(_ backend: StoreBackend) async throws {
        let store = try await Self.onboardingStore(backend, meters: 4)
        try await store.beginUpload(EnrollmentUploadRecord(id: "u1", account: "a", manufacturer: "acme", format: .manifest, batch: "b1", createdAt: Self.t0, actor: "op"))
        let entries = [
            EnrollmentEntry(eui64: Self.meter(1), certificateSHA256: Self.fingerprint(1), position: 0),  // fine
            EnrollmentEntry(eui64: Self.meter(2), certificateSHA256: Self.fingerprint(99), position: 1),  // wrong fingerprint
            EnrollmentEntry(eui64: Self.meter(500), certificateSHA256: Self.fingerprint(500), position: 2),  // no device identity
            EnrollmentEntry(eui64: Self.meter(900), certificateSHA256: String(repeating: "ab", count: 32), position: 3),  // globex's
        ]
        try await store.stage(upload: "u1", entries: entries)
        // 4: meter 1 again, in a later chunk; 5: meter 3, fine.
        try await store.stage(upload: "u1", entries: [
            EnrollmentEntry(eui64: Self.meter(1), certificateSHA256: Self.fingerprint(1), position: 4),
            EnrollmentEntry(eui64: Self.meter(3), certificateSHA256: Self.fingerprint(3), position: 5),
        ])
        let problems = try await store.check(upload: "u1", limit: 10)
        #expect(problems.map(\.kind) == [.fingerprintMismatch, .unknownMeter, .otherManufacturer, .listedTwice])
        #expect(problems.map(\.position) == [1, 2, 3, 4])
        #expect(problems.map(\.eui64) == [Self.meter(2), Self.meter(500), Self.meter(900), Self.meter(1)])
        #expect(problems[2].detail == "globex")
        #expect(try await store.check(upload: "u1", limit: 2).map(\.position) == [1, 2])
        #expect(try await store.upload(id: "u1")?.entryCount == 6)
        try await store.discard(upload: "u1", at: Self.t0)
        #expect(try await store.upload(id: "u1")?.state == .refused)
        #expect(try await store.claim(eui64: Self.meter(1)) == nil)
        #expect(try await store.claimCount(account: "a") == 0)
        #expect(try await store.history(eui64: Self.meter(1), after: nil, limit: 10) == [])
        // Nothing more happens to a refused upload.
        #expect(await Self.code { try await store.stage(upload: "u1", entries: [EnrollmentEntry(eui64: Self.meter(4), position: 6)]) } == .notFound)
        #expect(await Self.code { _ = try await store.commit(upload: "u1", at: Self.t0) } == .notFound)
        #expect(await Self.code { try await store.beginUpload(EnrollmentUploadRecord(id: "u1", account: "a", manufacturer: "acme", format: .list, actor: "op")) } == .duplicate)
    }

    @Test("first to claim wins; a second account's listing is a conflict both accounts see; the holder's re-upload counts as held; claims page by EUI-64", arguments: StoreBackend.all)
    func firstToClaim(_ backend: StoreBackend) async throws {
        let store = try await Self.onboardingStore(backend)
        #expect(try await Self.upload("a1", account: "a", meters: [1, 2, 3, 4], to: store) == EnrollmentCommitCounts(claimed: 4, alreadyHeld: 0, conflicts: 0))
        #expect(try await Self.upload("b1", account: "b", meters: [4, 5, 3], to: store, at: Self.t0.addingTimeInterval(10)) == EnrollmentCommitCounts(claimed: 1, alreadyHeld: 0, conflicts: 2))
        #expect(try await Self.upload("a2", account: "a", meters: [1], to: store) == EnrollmentCommitCounts(claimed: 0, alreadyHeld: 1, conflicts: 0))
        // b listing the same meters again reports no new conflict (one open per meter and claimant).
        #expect(try await Self.upload("b2", account: "b", meters: [3], to: store) == EnrollmentCommitCounts(claimed: 0, alreadyHeld: 0, conflicts: 1))
        #expect(try await store.claim(eui64: Self.meter(3))?.account == "a")
        #expect(try await store.claim(eui64: Self.meter(5))?.account == "b")
        let upload = try #require(try await store.upload(id: "b1"))
        #expect(upload.state == .committed && upload.claimed == 1 && upload.conflicts == 2 && upload.entryCount == 3)
        for account in ["a", "b"] {
            let conflicts = try await store.conflicts(account: account, openOnly: true, after: nil, limit: 10)
            #expect(conflicts.map(\.eui64) == [Self.meter(3), Self.meter(4)], "\(account)")
            #expect(conflicts.allSatisfy { $0.holder == "a" && $0.claimant == "b" && $0.upload == "b1" })
        }
        let first = try await store.claims(account: "a", after: nil, limit: 3)
        #expect(first.map(\.eui64) == [1, 2, 3].map(Self.meter))
        #expect(try await store.claims(account: "a", after: first.last?.eui64, limit: 3).map(\.eui64) == [Self.meter(4)])
        #expect(try await store.claimCount(account: "a") == 4)
        #expect(try await store.claimCount(account: "b") == 1)
        #expect(try await store.history(eui64: Self.meter(3), after: nil, limit: 10).map(\.kind) == [.claimed, .conflict])
    }

    @Test("change of supplier: only the holder releases (a non-holder changes nothing), its certificates are recorded for revocation, open conflicts close, another account claims, history in order", arguments: StoreBackend.all)
    func changeOfSupplier(_ backend: StoreBackend) async throws {
        let store = try await Self.onboardingStore(backend)
        _ = try await Self.upload("a1", account: "a", meters: [1, 2], to: store)
        _ = try await Self.upload("b1", account: "b", meters: [2], to: store)
        // A utility operator reaching into another account: b releases a's meter. Refused, nothing changed.
        #expect(await Self.code { try await store.release(eui64: Self.meter(2), account: "b", at: Self.t0, actor: "op-b", revocationCandidates: [RevocationCandidate(issuer: "north", serial: "77")]) } == .notFound)
        #expect(try await store.claim(eui64: Self.meter(2))?.account == "a")
        #expect(try await store.pendingRevocations(after: nil, limit: 10) == [])
        try await store.release(eui64: Self.meter(2), account: "a", at: Self.t0.addingTimeInterval(60), actor: "op-a", revocationCandidates: [RevocationCandidate(issuer: "north", serial: "0a01")])
        #expect(try await store.claim(eui64: Self.meter(2)) == nil)
        #expect(try await store.pendingRevocations(after: nil, limit: 10) == [PendingRevocationRecord(issuer: "north", serial: "0a01", eui64: Self.meter(2), account: "a", reason: 4, recordedAt: Self.t0.addingTimeInterval(60))])
        #expect(try await store.conflicts(account: "b", openOnly: true, after: nil, limit: 10) == [])
        #expect(try await store.conflicts(account: "b", openOnly: false, after: nil, limit: 10).map(\.resolution) == [.released])
        #expect(await Self.code { try await store.release(eui64: Self.meter(2), account: "a", at: Self.t0, actor: "op-a", revocationCandidates: []) } == .notFound)
        #expect(try await Self.upload("b2", account: "b", meters: [2], to: store, at: Self.t0.addingTimeInterval(60)) == EnrollmentCommitCounts(claimed: 1, alreadyHeld: 0, conflicts: 0))
        let history = try await store.history(eui64: Self.meter(2), after: nil, limit: 10)
        #expect(history.map(\.kind) == [.claimed, .conflict, .released, .conflictClosed, .claimed])
        #expect(history.map(\.account) == ["a", "b", "a", "a", "b"])
        #expect(history.map(\.upload) == ["a1", "b1", nil, "b1", "b2"])
        #expect(history.map(\.actor) == ["op-a", "op-b", "op-a", "op-a", "op-b"])
        #expect(try await store.history(eui64: Self.meter(2), after: history[1].id, limit: 2).map(\.kind) == [.released, .conflictClosed])
    }

    @Test("resolving a conflict: for the claimant transfers the claim and records the holder's certificates; for the holder only closes it; once", arguments: StoreBackend.all)
    func resolveConflicts(_ backend: StoreBackend) async throws {
        let store = try await Self.onboardingStore(backend)
        _ = try await Self.upload("a1", account: "a", meters: [1, 2], to: store)
        _ = try await Self.upload("b1", account: "b", meters: [1, 2], to: store)
        let won = try await store.resolveConflict(eui64: Self.meter(1), claimant: "b", inFavourOf: .claimant, at: Self.t0.addingTimeInterval(5), actor: "quorum-r1", revocationCandidates: [RevocationCandidate(issuer: "north", serial: "01")])
        #expect(won.resolution == .claimant && won.resolvedBy == "quorum-r1")
        #expect(try await store.claim(eui64: Self.meter(1))?.account == "b")
        #expect(try await store.pendingRevocations(after: nil, limit: 10).map(\.account) == ["a"])
        _ = try await store.resolveConflict(eui64: Self.meter(2), claimant: "b", inFavourOf: .holder, at: Self.t0.addingTimeInterval(6), actor: "op-a", revocationCandidates: [])
        #expect(try await store.claim(eui64: Self.meter(2))?.account == "a")
        #expect(await Self.code { _ = try await store.resolveConflict(eui64: Self.meter(2), claimant: "b", inFavourOf: .claimant, at: Self.t0, actor: "x", revocationCandidates: []) } == .notFound)
        #expect(try await store.conflicts(account: "a", openOnly: true, after: nil, limit: 10) == [])
        #expect(try await store.history(eui64: Self.meter(1), after: nil, limit: 10).map(\.kind) == [.claimed, .conflict, .resolvedForClaimant, .released, .claimed])
        #expect(try await store.history(eui64: Self.meter(2), after: nil, limit: 10).map(\.kind) == [.claimed, .conflict, .resolvedForHolder])
    }

    @Test("concurrent overlapping uploads committed on two nodes: each meter goes to exactly one account, the other gets a conflict", arguments: StoreBackend.all)
    func concurrentCommits(_ backend: StoreBackend) async throws {
        let first = try await Self.onboardingStore(backend, meters: 64)
        let nodes = [first, try await backend.reopen(first)]
        for round in 0..<6 {
            // Both accounts list 16 meters of which 8 overlap; each commits on its own node, at once.
            let base = round * 10 % 40
            let lists = [Array((base + 1)...(base + 16)), Array((base + 9)...(base + 24))]
            let counts = try await withThrowingTaskGroup(of: (Int, EnrollmentCommitCounts).self) { group in
                for (index, account) in ["a", "b"].enumerated() {
                    let store = nodes[index]
                    let id = "r\(round)-\(account)"
                    try await store.beginUpload(EnrollmentUploadRecord(id: id, account: account, manufacturer: "acme", format: .list, actor: account))
                    try await store.stage(upload: id, entries: lists[index].enumerated().map { EnrollmentEntry(eui64: Self.meter($0.element), position: Int64($0.offset)) })
                    group.addTask { (index, try await store.commit(upload: id, at: Self.t0)) }
                }
                return try await group.reduce(into: [Int: EnrollmentCommitCounts]()) { $0[$1.0] = $1.1 }
            }
            let union = Set(lists[0] + lists[1])
            var holders: [String: Int] = [:]
            for n in union {
                let claim = try #require(try await first.claim(eui64: Self.meter(n)), "meter \(n) unclaimed")
                holders[claim.account, default: 0] += 1
            }
            let a = try #require(counts[0]), b = try #require(counts[1])
            // Every meter of either list is claimed once, held, or in conflict for exactly one of the two.
            #expect(a.claimed + a.alreadyHeld + a.conflicts == 16 && b.claimed + b.alreadyHeld + b.conflicts == 16, "round \(round)")
            #expect(holders["a", default: 0] + holders["b", default: 0] == union.count)
            let open = try await first.conflicts(account: "a", openOnly: true, after: nil, limit: 1000)
            // No meter is in conflict while the "claimant" holds it.
            for conflict in open { #expect(try await first.claim(eui64: conflict.eui64)?.account == conflict.holder) }
        }
        // Per meter, one open claim: the history of every meter starts with exactly one claimed event per period.
        for n in 1...64 {
            let history = try await first.history(eui64: Self.meter(n), after: nil, limit: 100)
            #expect(history.filter { $0.kind == .claimed }.count <= 1, "meter \(n)")
        }
    }

    @Test("the onboarding tables are copied to another store with the rest, sequence order kept", arguments: StoreBackend.all)
    func onboardingCopy(_ backend: StoreBackend) async throws {
        let store = try await Self.onboardingStore(backend)
        _ = try await Self.upload("a1", account: "a", meters: [1, 2, 3], to: store)
        _ = try await Self.upload("b1", account: "b", meters: [3, 4], to: store)
        try await store.release(eui64: Self.meter(1), account: "a", at: Self.t0, actor: "op-a", revocationCandidates: [RevocationCandidate(issuer: "north", serial: "05")])
        try await store.addOperator(OperatorRecord(account: "a", name: "olga", certificateIssuer: "operators", certificateSerial: "01", fingerprintSHA256: Self.fingerprint(5), addedBy: "admin"))
        let target = try await StoreBackend.sqlite.make()
        let counts = try await StoreCopy(source: store, target: target).run()
        #expect(counts.onboarding.accounts == 2 && counts.onboarding.claims == 4 && counts.onboarding.conflicts == 1 && counts.onboarding.pendingRevocations == 1)
        #expect(try await target.history(eui64: Self.meter(3), after: nil, limit: 10).map(\.kind) == [.claimed, .conflict])
        #expect(try await target.claims(account: "a", after: nil, limit: 10).map(\.eui64) == [2, 3].map(Self.meter))
        #expect(try await target.account(id: "a") == store.account(id: "a"))
    }
}
