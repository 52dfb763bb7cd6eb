import Crypto
import Foundation
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

    public init(store: any AuditStore, signer: (any CheckpointSigner)?, origin: String, checkpointInterval: Int = 1) {
        self.store = store
        self.signer = signer
        self.origin = origin
        self.checkpointInterval = max(1, checkpointInterval)
    }

    /// Appends `event`; signs a checkpoint when the interval is reached. Returns the entry's index.
    @discardableResult
    public func record(_ event: AuditEvent) async throws -> Int64 {
        let index = try await store.appendAuditEntry { last in
            let previous = last.map { hex(MerkleTree.leafHash($0.entry)) } ?? ""
            return try AuditEntry(index: (last?.position ?? -1) + 1, time: Date(), event: event, previous: previous).encoded()
        }
        if signer != nil, (index + 1) % Int64(checkpointInterval) == 0 { _ = try await checkpoint() }
        return index
    }

    /// Signs a checkpoint over every entry now in the log.
    public func checkpoint() async throws -> SignedCheckpoint {
        guard let signer else { throw AuditError(.signature, "there is no audit key yet: run metertrust audit init") }
        let leaves = try await Self.leafHashes(in: store)
        let signed = try signer.sign(Checkpoint(origin: origin, size: leaves.count, rootHash: MerkleTree.root(leaves[...])))
        try await store.insertAuditCheckpoint(size: Int64(leaves.count), note: signed.text)
        return signed
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

    static func rows(in store: any AuditStore) async throws -> [AuditRow] {
        var rows: [AuditRow] = []
        var position: Int64 = -1
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
