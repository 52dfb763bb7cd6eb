import Crypto
import Foundation
import MeterTrustCore
import MeterTrustStore

/// `metertrust audit verify`: recomputes the tree, checks every checkpoint's signature and the consistency between
/// successive checkpoints, and names the first altered, removed, inserted or reordered entry.
public struct AuditVerifier: Sendable {
    public let publicKey: P256.Signing.PublicKey
    public let keyName: String

    public init(publicKey: P256.Signing.PublicKey, keyName: String) {
        self.publicKey = publicKey
        self.keyName = keyName
    }

    public struct Result: Codable, Sendable {
        public var entries: Int
        public var checkpoints: Int
        public var latestCheckpointSize: Int
        /// Entries after the latest checkpoint: present and chained, not yet signed.
        public var uncheckpointedEntries: Int
    }

    /// Throws ``AuditError`` (`.tampered`, `.signature`) naming the first problem found.
    public func verify(_ store: any AuditStore) async throws -> Result {
        let rows = try await AuditLog.rows(in: store)
        let leaves = rows.map { MerkleTree.leafHash($0.entry) }
        try Self.checkStructure(rows, leaves: leaves)

        var previous: SignedCheckpoint?
        var checked = 0
        for row in try await store.auditCheckpoints() {
            let signed: SignedCheckpoint
            do {
                signed = try SignedCheckpoint(text: row.note)
            } catch {
                throw AuditError(.tampered, "the checkpoint stored for size \(row.size) is not a valid signed checkpoint")
            }
            guard signed.isValid(for: publicKey, keyName: keyName) else {
                throw AuditError(.signature, "the checkpoint for size \(signed.checkpoint.size) is not signed by the audit key \(keyName)")
            }
            let size = signed.checkpoint.size
            guard size == row.size else {
                throw AuditError(.tampered, "the checkpoint stored under size \(row.size) is for size \(size)")
            }
            guard size <= leaves.count else {
                throw AuditError(
                    .tampered,
                    "entry \(leaves.count) was removed: the checkpoint for size \(size) covers entries the log no longer holds (it holds \(leaves.count))"
                )
            }
            guard MerkleTree.root(leaves[..<size]) == signed.checkpoint.rootHash else {
                let from = previous?.checkpoint.size ?? 0
                let located = from == size - 1
                    ? "entry \(size - 1) was altered"
                    : "an entry between \(from) and \(size - 1) was altered (the hash chain is intact, so entry \(size - 1) or a rewritten run ending there)"
                throw AuditError(.tampered, "\(located): the log no longer matches the signed checkpoint for size \(size)")
            }
            if let previous {
                let m = previous.checkpoint.size
                if m > 0 {
                    let proof = MerkleTree.consistencyProof(from: m, leaves[..<size])
                    guard MerkleTree.verifyConsistency(size1: m, size2: size, root1: previous.checkpoint.rootHash, root2: signed.checkpoint.rootHash, proof: proof) else {
                        throw AuditError(.tampered, "the checkpoints for sizes \(m) and \(size) are not consistent: the log was rewritten between them")
                    }
                }
            }
            previous = signed
            checked += 1
        }
        let latest = previous?.checkpoint.size ?? 0
        return Result(entries: rows.count, checkpoints: checked, latestCheckpointSize: latest, uncheckpointedEntries: rows.count - latest)
    }

    /// Checks that the log is consistent with `earlier`, a checkpoint someone saved before (a witness): it must be
    /// signed by this key, and an RFC 9162 §2.1.4 consistency proof must lead from it to the latest checkpoint now in
    /// the store. Returns the earlier checkpoint's size. Throws `.tampered` if the log was truncated or rewritten since.
    public func verifyConsistency(from earlier: SignedCheckpoint, store: any AuditStore) async throws -> Int {
        guard earlier.isValid(for: publicKey, keyName: keyName) else {
            throw AuditError(.signature, "the saved checkpoint is not signed by the audit key \(keyName)")
        }
        let leaves = try await AuditLog.leafHashes(in: store)
        guard let row = try await store.auditCheckpoints().max(by: { $0.size < $1.size }), let latest = try? SignedCheckpoint(text: row.note),
            latest.isValid(for: publicKey, keyName: keyName)
        else {
            throw AuditError(.tampered, "the store holds no checkpoint signed by the audit key")
        }
        let m = earlier.checkpoint.size, n = latest.checkpoint.size
        guard m <= n, n <= leaves.count else {
            throw AuditError(.tampered, "the log was truncated: you saved a checkpoint for \(m) entries, the store's latest covers \(n)")
        }
        if m == n {
            guard earlier.checkpoint.rootHash == latest.checkpoint.rootHash else {
                throw AuditError(.tampered, "the log was rewritten: two different signed trees of \(m) entries")
            }
            return m
        }
        let proof = m == 0 ? [] : MerkleTree.consistencyProof(from: m, leaves[..<n])
        guard m == 0 || MerkleTree.verifyConsistency(size1: m, size2: n, root1: earlier.checkpoint.rootHash, root2: latest.checkpoint.rootHash, proof: proof) else {
            throw AuditError(.tampered, "the log is not consistent with the checkpoint you saved for \(m) entries: it was rewritten")
        }
        return m
    }

    /// Entries in storage order must carry indices 0, 1, 2, ... and each the leaf hash of the one before.
    static func checkStructure(_ rows: [AuditRow], leaves: [MerkleTree.Hash]) throws {
        var entries: [AuditEntry] = []
        for (position, row) in rows.enumerated() {
            guard let entry = AuditEntry.decode(row.entry) else {
                throw AuditError(.tampered, "entry \(position) was altered: it is no longer a valid audit entry")
            }
            entries.append(entry)
        }
        let indices = entries.map(\.index)
        if let p = indices.indices.first(where: { indices[$0] != Int64($0) }) {
            let found = indices[p]
            if let q = indices[..<p].firstIndex(of: found) {
                // The genuine one of the two is the one its successor's chain hash names.
                let laterIsGenuine = p + 1 < entries.count && entries[p + 1].previous == hexString(leaves[p])
                throw AuditError(.tampered, "an entry was inserted at position \(laterIsGenuine ? q : p): index \(found) appears twice")
            }
            if indices[(p + 1)...].contains(found), found < Int64(p) {
                throw AuditError(.tampered, "an entry was inserted at position \(p): index \(found) appears twice")
            }
            if found > Int64(p), indices[(p + 1)...].contains(Int64(p)) {
                throw AuditError(.tampered, "entries were reordered at position \(p): entry \(found) stands where entry \(p) belongs")
            }
            if found > Int64(p) {
                let removed = found - 1 == Int64(p) ? "entry \(p) was removed" : "entries \(p) to \(found - 1) were removed"
                throw AuditError(.tampered, "\(removed): the log goes from entry \(p - 1) to entry \(found)")
            }
            throw AuditError(.tampered, "an entry was inserted at position \(p): it claims index \(found)")
        }
        for p in entries.indices.dropFirst() where entries[p].previous != hexString(leaves[p - 1]) {
            throw AuditError(.tampered, "entry \(p - 1) was altered: entry \(p) records a different hash for it")
        }
        if let first = entries.first, !first.previous.isEmpty {
            throw AuditError(.tampered, "entry 0 was altered or entries before it were removed: it names a predecessor")
        }
    }
}
