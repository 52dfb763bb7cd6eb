import Foundation
import MeterTrustHSM

/// Where the log's latest signed checkpoint is kept outside the store. Someone with write access to the database
/// can delete entries and checkpoints, but not move the anchor back; ``AuditLog/verifiedState()`` then finds the log
/// shorter than, or different from, what the anchor says was signed.
public protocol AuditAnchor: Sendable {
    /// The latest signed checkpoint the anchor holds, if any.
    func latest() throws -> SignedCheckpoint?
    /// Moves the anchor to `checkpoint` if it covers more entries than the one held (never backwards).
    func advance(to checkpoint: SignedCheckpoint) throws
}

/// The anchor as a private data object on the HSM token (CKO_DATA, CKA_PRIVATE): readable and writable only with the
/// user PIN. Several nodes on one (network) HSM share it.
///
/// What it does not stop: the holder of the user PIN can overwrite it (with a checkpoint the audit key signed, since a
/// forged one fails verification), so they could roll back to an earlier signed head; the custodians' witnesses
/// (`metertrust admin ...` keeps the latest checkpoint each custodian verified) catch that.
public struct HSMAuditAnchor: AuditAnchor {
    public let token: HSMToken
    public let label: String

    public init(token: HSMToken, origin: String) {
        self.token = token
        self.label = "metertrust/audit/head/\(origin)"
    }

    /// Reads and advances of the head in this process, one at a time: SoftHSM2 shows an object being created to
    /// other sessions before its value is set, and two creations at once may fail (CKR_TEMPLATE_INCONSISTENT),
    /// which concurrent enrollments signing checkpoints met. Other nodes use their own (network) HSM's atomicity.
    private static let lock = NSLock()

    /// The head covering the most entries (two objects exist for a moment while another node advances it).
    public func latest() throws -> SignedCheckpoint? {
        try Self.lock.withLock { try unlockedLatest() }
    }

    private func unlockedLatest() throws -> SignedCheckpoint? {
        var heads: [SignedCheckpoint] = []
        for value in try token.dataObjects(label: label) {
            do {
                heads.append(try SignedCheckpoint(text: String(decoding: value, as: UTF8.self)))
            } catch {
                throw AuditError(.tampered, "the log head kept in the HSM (\(label)) is not a signed checkpoint")
            }
        }
        return heads.max { $0.checkpoint.size < $1.checkpoint.size }
    }

    public func advance(to checkpoint: SignedCheckpoint) throws {
        try Self.lock.withLock {
            if let current = try unlockedLatest(), current.checkpoint.size >= checkpoint.checkpoint.size { return }
            try token.replaceDataObject(label: label, value: Array(checkpoint.text.utf8))
        }
    }
}
