import Crypto
import Foundation

/// Something that happened to keys, CAs, batches or the administration: who, what, when, outcome.
public struct AuditEvent: Sendable, Hashable {
    public enum Outcome: String, Codable, Sendable {
        case success, refused, failed
        /// An intent: the operation is about to run (its outcome follows). Recorded first, so an operation whose
        /// intent cannot be recorded does not run, and one that dies midway is still in the log.
        case started
    }

    public var actor: String
    public var action: String
    public var subject: String
    public var outcome: Outcome
    public var details: [String: String]

    public init(actor: String, action: String, subject: String, outcome: Outcome = .success, details: [String: String] = [:]) {
        self.actor = actor
        self.action = action
        self.subject = subject
        self.outcome = outcome
        self.details = details
    }
}

/// One entry of the log as stored and hashed: canonical JSON (sorted keys, no whitespace). It embeds its own index
/// and the leaf hash of the entry before it, so a removed, inserted or reordered entry, or an altered one followed by
/// another, is located exactly; the signed checkpoints authenticate everything.
public struct AuditEntry: Codable, Sendable, Hashable {
    public var index: Int64
    /// RFC 3339 UTC time.
    public var time: String
    public var actor: String
    public var action: String
    public var subject: String
    public var outcome: AuditEvent.Outcome
    public var details: [String: String]
    /// Hex leaf hash of the previous entry; empty for the first.
    public var previous: String
    /// The audit key's ECDSA signature (DER, base64) over ``sealedBytes``, made in the HSM when the entry was
    /// appended. Anyone can compute an index and a hash chain, so without a seal an entry someone inserted into the
    /// database would look like any other; an unsealed entry is never signed into a checkpoint after the HSM-held head,
    /// and never counts as security state. Nil for entries written before the audit key existed.
    public var seal: String?

    public init(index: Int64, time: Date, event: AuditEvent, previous: String) {
        self.index = index
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        self.time = formatter.string(from: time)
        self.actor = event.actor
        self.action = event.action
        self.subject = event.subject
        self.outcome = event.outcome
        self.details = event.details
        self.previous = previous
    }

    /// What the seal signs: a domain-separation prefix, then the entry's canonical JSON without its seal.
    public var sealedBytes: [UInt8] {
        get throws {
            var unsealed = self
            unsealed.seal = nil
            return Array("metertrust audit entry v1\n".utf8) + (try unsealed.encoded())
        }
    }

    /// Whether the entry carries a valid seal by `key`.
    public func isSealed(by key: P256.Signing.PublicKey) -> Bool {
        guard let seal, let der = Data(base64Encoded: seal), let signature = try? P256.Signing.ECDSASignature(derRepresentation: der),
            let bytes = try? sealedBytes
        else { return false }
        return key.isValidSignature(signature, for: bytes)
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    public static func decode(_ bytes: [UInt8]) -> AuditEntry? {
        try? JSONDecoder().decode(AuditEntry.self, from: Data(bytes))
    }
}

extension AuditEntry {
    /// ``time`` as a date (the Unix epoch if it does not parse, which a sealed entry's never fails to).
    public var date: Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: time) ?? Date(timeIntervalSince1970: 0)
    }
}
