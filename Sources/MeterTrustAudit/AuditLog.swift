import Crypto
import Foundation
import MeterTrustCore
import MeterTrustStore

/// The tamper-evident audit log: append-only entries in an RFC 6962 Merkle tree, with C2SP checkpoints signed by the
/// audit key every `checkpointInterval` entries.
public struct AuditLog: Sendable {
    public let store: any AuditStore
    /// nil until the audit key exists: entries are still appended and chained, and the first checkpoint covers them.
    public let signer: (any CheckpointSigner)?
    /// Checkpoint origin line, e.g. `metertrust.example/audit`.
    public let origin: String
    public let checkpointInterval: Int
    /// Where the latest checkpoint is kept outside the store (the HSM), so truncating or rewriting the log in the
    /// database is detected by the process itself, not only by witnesses.
    public let anchor: (any AuditAnchor)?
    /// The leaves ``checkpoint()`` has read, checked and signed over: the next one reads only the rows appended since.
    private let signedLeaves = SignedLeaves()

    public init(
        store: any AuditStore, signer: (any CheckpointSigner)?, origin: String, checkpointInterval: Int = 1, anchor: (any AuditAnchor)? = nil
    ) {
        self.store = store
        self.signer = signer
        self.origin = origin
        self.checkpointInterval = max(1, checkpointInterval)
        self.anchor = anchor
    }

    /// Appends `event`; signs a checkpoint when the interval is reached, and always after an event that changes the
    /// security state (``SecurityState/Change``), so a decision never waits on an unsigned entry. Returns the index.
    @discardableResult
    public func record(_ event: AuditEvent) async throws -> Int64 {
        let signer = self.signer
        let index = try await store.appendAuditEntry { last in
            let previous = last.map { hexString(MerkleTree.leafHash($0.entry)) } ?? ""
            var entry = AuditEntry(index: (last?.position ?? -1) + 1, time: Date(), event: event, previous: previous)
            if let signer { entry.seal = Data(try signer.sign(try entry.sealedBytes)).base64EncodedString() }
            return try entry.encoded()
        }
        let changesState = event.details.keys.contains { $0.hasPrefix(SecurityState.Change.prefix) }
        if signer != nil, changesState || (index + 1) % Int64(checkpointInterval) == 0 { _ = try await checkpoint() }
        return index
    }

    /// Signs a checkpoint over every entry now in the log, stores it and advances the anchor. A size already signed
    /// is not signed again: the stored note is returned (one signature per size, whatever node reaches it first; one
    /// that signs in the same instant gets the note stored first, not its own).
    ///
    /// Only a tree that extends what was signed before is signed: its first entries must hash to the head kept in the
    /// HSM (or, without an anchor, to the latest checkpoint the audit key signed). Otherwise signing would launder a
    /// rewritten or truncated log into a genuine checkpoint.
    public func checkpoint() async throws -> SignedCheckpoint {
        guard let signer else { throw AuditError(.notInitialised, "there is no audit key yet: run metertrust audit init") }
        // What was signed before is read before the entries: another writer may sign and advance the head meanwhile,
        // and a head read after the entries could cover entries this read did not see (a false "truncated").
        let previous: SignedCheckpoint?
        if let anchor {
            previous = try anchor.latest()
        } else {
            previous = try await store.auditCheckpoints().sorted { $0.size > $1.size }.lazy
                .compactMap { try? SignedCheckpoint(text: $0.note) }.first { $0.isValid(for: signer.publicKey, keyName: signer.keyName) }
        }
        // Only the rows appended since the last checkpoint this process signed are read and checked: the leaves
        // before them were read, chained and covered by a checkpoint then (a row changed in the database since is no
        // part of what is signed; the new rows must chain onto the leaves as they were, or nothing is signed).
        let known = signedLeaves.leaves
        if !known.isEmpty, try await store.auditEntryCount() < Int64(known.count) {
            throw AuditError(.tampered, "entries were removed from the store: \(known.count) entries were signed before, fewer are there now")
        }
        let rows = try await Self.rows(in: store, after: Int64(known.count) - 1)
        let leaves = known + (try Self.chain(rows, onto: known.count, after: known.last, knownAs: "signed")).leaves
        if let previous {
            let size = previous.checkpoint.size
            guard previous.isValid(for: signer.publicKey, keyName: signer.keyName), size <= leaves.count,
                MerkleTree.root(leaves[..<size]) == previous.checkpoint.rootHash
            else {
                throw AuditError(
                    .tampered,
                    "the log does not extend the last signed checkpoint (\(size) entries): it was truncated or rewritten; nothing more is signed until it is restored"
                )
            }
            // Only entries the audit key sealed are signed into the tree after the head: an entry inserted into the
            // database (well chained, but unsealed) stops the log instead of becoming part of it. (The leaves known
            // before were checked so when they were new, or were covered by a checkpoint already.)
            for row in rows.dropFirst(max(0, size - known.count)) {
                guard let entry = AuditEntry.decode(row.entry), entry.isSealed(by: signer.publicKey) else {
                    throw AuditError(.tampered, "entry \(row.position) was not written by MeterTrust (it carries no valid seal of the audit key): it was inserted into the store")
                }
            }
        }
        if let stored = try await store.auditCheckpoints().last(where: { $0.size == Int64(leaves.count) }),
            let existing = try? SignedCheckpoint(text: stored.note), existing.isValid(for: signer.publicKey, keyName: signer.keyName),
            existing.checkpoint.rootHash == MerkleTree.root(leaves[...])
        {
            try anchor?.advance(to: existing)
            signedLeaves.keep(leaves)
            return existing
        }
        let root = MerkleTree.root(leaves[...])
        let signed = try signer.sign(Checkpoint(origin: origin, size: leaves.count, rootHash: root))
        // Another writer (a node, a concurrent command) may have signed this size since the look-up above: the store
        // keeps the first note, and that one is the checkpoint for the size; this signature is dropped, never shown.
        let stored = try await store.insertAuditCheckpoint(size: Int64(leaves.count), note: signed.text)
        let checkpoint: SignedCheckpoint
        if stored == signed.text {
            checkpoint = signed
        } else {
            guard let first = try? SignedCheckpoint(text: stored), first.isValid(for: signer.publicKey, keyName: signer.keyName),
                first.checkpoint.size == leaves.count, first.checkpoint.rootHash == root
            else {
                throw AuditError(
                    .tampered,
                    "the store holds a checkpoint for \(leaves.count) entries that the audit key did not sign over these entries: stop and investigate (metertrust audit verify)"
                )
            }
            checkpoint = first
        }
        try anchor?.advance(to: checkpoint)
        signedLeaves.keep(leaves)
        return checkpoint
    }

    /// The security state the log records, from the entries its latest checkpoint covers, after checking that
    /// checkpoint is signed by the audit key (held in the HSM), covers exactly those entries, and is consistent with
    /// the head kept in the HSM (``AuditAnchor``). Throws ``AuditError`` `.tampered` naming what was changed.
    public func verifiedState() async throws -> SecurityState {
        try await verifiedPrefix(extending: .empty).state
    }

    /// ``verifiedState()`` as a ``VerifiedLogPrefix`` that a later call extends: given `prior` (a prefix this log
    /// returned), only the entries appended since are read, chained onto it and replayed, and the Merkle roots are
    /// computed again only when the latest checkpoint or the HSM's head changed. From ``VerifiedLogPrefix/empty``
    /// everything is read and checked, as `audit verify` does.
    ///
    /// Reads in this order, so that concurrent writers (this node's or another's) never look like tampering:
    /// the HSM's head, then the checkpoints, then the entries. ``checkpoint()`` stores a checkpoint before it
    /// advances the head, and entries exist before a checkpoint covers them; so every checkpoint the head names is
    /// among those read after it, and every entry they cover among those read after them.
    ///
    /// `prior` is consumed: its arrays are extended in place (a caller that keeps a copy makes every call copy them).
    public func verifiedPrefix(extending prior: consuming VerifiedLogPrefix) async throws -> VerifiedLogPrefix {
        guard let signer else {
            throw AuditError(.notInitialised, "there is no audit key yet: run metertrust audit init (security decisions rest on the signed audit log)")
        }
        let head = try anchor?.latest()
        let latestRow = try await store.auditCheckpoints().max(by: { $0.size < $1.size })
        let known = prior.leaves.count
        let (priorCovered, priorCheckpoint, priorHead) = (prior.covered, prior.checkpointNote, prior.headNote)
        let lastLeaf = prior.leaves.last
        if known > 0, try await store.auditEntryCount() < Int64(known) {
            throw AuditError(.tampered, "entries were removed from the store: \(known) entries were verified, fewer are there now")
        }
        let rows = try await Self.rows(in: store, after: Int64(known) - 1)
        let (appended, leaves) = try Self.chain(rows, onto: known, after: lastLeaf, knownAs: "verified")
        var prefix = consume prior
        prefix.leaves += leaves
        prefix.pending += appended

        var latest: SignedCheckpoint?
        if let row = latestRow {
            guard let signed = try? SignedCheckpoint(text: row.note), signed.isValid(for: signer.publicKey, keyName: signer.keyName),
                signed.checkpoint.size == Int(row.size)
            else {
                throw AuditError(.tampered, "the latest checkpoint in the store (size \(row.size)) is not signed by the audit key \(signer.keyName)")
            }
            if row.note != priorCheckpoint {
                guard signed.checkpoint.size <= prefix.leaves.count, MerkleTree.root(prefix.leaves[..<signed.checkpoint.size]) == signed.checkpoint.rootHash else {
                    throw AuditError(.tampered, "the log no longer matches its signed checkpoint for size \(signed.checkpoint.size): entries were altered or removed")
                }
            }
            latest = signed
        }
        guard (latest?.checkpoint.size ?? 0) >= priorCovered else {
            throw AuditError(.tampered, "checkpoints were removed from the store: \(priorCovered) entries were covered by a verified checkpoint, the store's latest covers \(latest?.checkpoint.size ?? 0)")
        }
        if let head {
            if head.text != priorHead {
                guard head.isValid(for: signer.publicKey, keyName: signer.keyName) else {
                    throw AuditError(.tampered, "the log head kept in the HSM is not signed by the audit key")
                }
                let size = head.checkpoint.size
                guard size <= prefix.leaves.count, MerkleTree.root(prefix.leaves[..<size]) == head.checkpoint.rootHash else {
                    throw AuditError(
                        .tampered,
                        "the log was truncated or rewritten: the HSM holds a signed checkpoint for \(size) entries that the store's \(prefix.leaves.count) entries do not match"
                    )
                }
            }
            guard let latest, latest.checkpoint.size >= head.checkpoint.size else {
                throw AuditError(
                    .tampered, "checkpoints were removed from the store: the HSM's head is at \(head.checkpoint.size) entries, the store's latest checkpoint at \(latest?.checkpoint.size ?? 0)"
                )
            }
        }
        // State comes only from entries the audit key sealed when they were written, and a checkpoint covers.
        let newlyCovered = (latest?.checkpoint.size ?? 0) - priorCovered
        prefix.state = SecurityState.replay(prefix.pending.prefix(newlyCovered), sealedBy: signer.publicKey, onto: prefix.state)
        prefix.pending.removeFirst(newlyCovered)
        prefix.covered += newlyCovered
        prefix.checkpointNote = latestRow?.note
        prefix.headNote = head?.text
        return prefix
    }

    /// What a witness needs to move from the checkpoint it saved (`since` entries) to the latest one: the latest
    /// signed checkpoint note in the store and the RFC 9162 consistency proof between the two (empty when `since` is 0
    /// or not smaller). Served as the store holds it; the witness, not this process, judges it.
    public func consistencyEvidence(since: Int) async throws -> (checkpoint: String, proof: [MerkleTree.Hash]) {
        guard let latest = try await store.auditCheckpoints().max(by: { $0.size < $1.size }) else {
            throw AuditError(.notFound, "the audit log has no checkpoint yet")
        }
        let size = Int(latest.size)
        guard since > 0, since < size else { return (latest.note, []) }
        let leaves = try await Self.leafHashes(in: store)
        guard size <= leaves.count else { return (latest.note, []) }
        return (latest.note, MerkleTree.consistencyProof(from: since, leaves[..<size]))
    }

    /// An inclusion proof of entry `index` against the latest checkpoint that covers it.
    public func inclusionProof(index: Int64) async throws -> InclusionProof {
        let rows = try await Self.rows(in: store)
        guard index >= 0, index < rows.count else {
            throw AuditError(.notFound, "there is no audit entry \(index): the log holds \(rows.count) entries (0 to \(rows.count - 1))")
        }
        let checkpoints = try await store.auditCheckpoints()
        guard let covering = checkpoints.last(where: { $0.size > index }) else {
            throw AuditError(.notFound, "no checkpoint covers entry \(index) yet: run metertrust audit checkpoint")
        }
        let leaves = rows.map { MerkleTree.leafHash($0.entry) }
        let size = Int(covering.size)
        return InclusionProof(
            index: index, treeSize: covering.size, entry: String(decoding: rows[Int(index)].entry, as: UTF8.self),
            leafHash: Data(leaves[Int(index)]).base64EncodedString(),
            proof: MerkleTree.inclusionProof(index: Int(index), leaves[..<size]).map { Data($0).base64EncodedString() },
            checkpoint: covering.note
        )
    }

    /// `rows`, read after the first `known` entries (the last of which hashes to `lastLeaf`), checked as their
    /// continuation: with nothing known, the whole structure (``AuditVerifier/checkStructure(_:leaves:)``); otherwise
    /// each row must decode, carry its position as its index and the previous leaf's hash. `knownAs` says how the
    /// known entries were established ("verified", "signed") in the refusal. Returns the entries and their leaves.
    static func chain(
        _ rows: [AuditRow], onto known: Int, after lastLeaf: MerkleTree.Hash?, knownAs: String
    ) throws -> (entries: [AuditEntry], leaves: [MerkleTree.Hash]) {
        let leaves = rows.map { MerkleTree.leafHash($0.entry) }
        var entries: [AuditEntry] = []
        entries.reserveCapacity(rows.count)
        guard known > 0, let lastLeaf else {
            try AuditVerifier.checkStructure(rows, leaves: leaves)
            for row in rows {
                guard let entry = AuditEntry.decode(row.entry) else { throw AuditError(.tampered, "entry \(row.position) is not a valid audit entry") }
                entries.append(entry)
            }
            return (entries, leaves)
        }
        var previous = hexString(lastLeaf)
        for (offset, row) in rows.enumerated() {
            let position = known + offset
            guard let entry = AuditEntry.decode(row.entry), entry.index == Int64(position), entry.previous == previous else {
                throw AuditError(
                    .tampered, "entry \(position) does not extend the \(known) entries \(knownAs) before: the log was rewritten (run metertrust audit verify)"
                )
            }
            entries.append(entry)
            previous = hexString(leaves[offset])
        }
        return (entries, leaves)
    }

    static func rows(in store: any AuditStore, after start: Int64 = -1) async throws -> [AuditRow] {
        var rows: [AuditRow] = []
        var position: Int64 = start
        while true {
            let page = try await store.auditEntries(after: position, limit: 10_000)
            guard let last = page.last else { return rows }
            rows += page
            position = last.position
        }
    }

    static func leafHashes(in store: any AuditStore) async throws -> [MerkleTree.Hash] {
        try await rows(in: store).map { MerkleTree.leafHash($0.entry) }
    }
}

/// The leaf hashes of the entries a checkpoint this process signed (or found signed) covers, so that the next
/// ``AuditLog/checkpoint()`` reads and hashes only the entries appended since: a `revoke --list` of a million writes a
/// thousand entries of ~80 KB and signs a checkpoint after each, which otherwise re-read the whole log every time.
final class SignedLeaves: @unchecked Sendable {
    private let lock = NSLock()
    private var kept: [MerkleTree.Hash] = []

    var leaves: [MerkleTree.Hash] { lock.withLock { kept } }

    /// Keeps `leaves` if they extend what is kept (concurrent checkpoints: the longer one wins).
    func keep(_ leaves: [MerkleTree.Hash]) {
        lock.withLock { if leaves.count > kept.count { kept = leaves } }
    }
}

/// What ``AuditLog/verifiedPrefix(extending:)`` verified: the state, and what a later call needs to check only what
/// was appended since (every leaf hash, 32 octets an entry; the entries not yet covered by a checkpoint; the notes
/// whose roots were checked). Held in memory only (``VerifiedStateCache``): rows changed in the database after they
/// were verified change nothing here, and a full verification (`audit verify`, a new process) still finds them.
public struct VerifiedLogPrefix: Sendable {
    public internal(set) var state = SecurityState()
    var leaves: [MerkleTree.Hash] = []
    var pending: [AuditEntry] = []
    var covered = 0
    var checkpointNote: String?
    var headNote: String?

    /// Nothing verified yet: the next verification reads the whole log.
    public static let empty = VerifiedLogPrefix()
    /// Entries read and chained (covered by a checkpoint or not yet).
    public var entryCount: Int { leaves.count }
}

/// What `metertrust audit prove N` prints: enough for a separate verifier holding the audit public key.
public struct InclusionProof: Codable, Sendable {
    public var index: Int64
    public var treeSize: Int64
    /// The entry's exact bytes (canonical JSON).
    public var entry: String
    /// SHA-256(0x00 || entry), base64.
    public var leafHash: String
    /// The audit path, base64 hashes, leaf to root (RFC 6962 §2.1.1).
    public var proof: [String]
    /// The signed checkpoint note the proof is against.
    public var checkpoint: String
}
