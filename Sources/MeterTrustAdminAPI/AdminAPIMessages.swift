import Foundation

/// The JSON messages of the admin API that are not domain types, shared by the server (MeterTrustServer) and its
/// clients (the CLI), which need not link the server for them. Plain Codable structs over Foundation only.
public enum AdminAPIMessage {
    /// Body of `POST /v1/requests`.
    public struct NewRequest: Codable, Sendable {
        public var operation: String
        public var parameters: [String: String]
        public var lifetimeSeconds: Int?

        public init(operation: String, parameters: [String: String], lifetimeSeconds: Int?) {
            self.operation = operation
            self.parameters = parameters
            self.lifetimeSeconds = lifetimeSeconds
        }
    }

    /// One entry of `GET /v1/custodians`.
    public struct CustodianSummary: Codable, Sendable {
        public var name: String
        public var role: String
        /// SHA-256 of the admin certificate, hex.
        public var certificate: String
        public var registeredAt: Date
        public var removedAt: Date?

        public init(name: String, role: String, certificate: String, registeredAt: Date, removedAt: Date?) {
            self.name = name
            self.role = role
            self.certificate = certificate
            self.registeredAt = registeredAt
            self.removedAt = removedAt
        }
    }

    /// One entry of `GET /v1/requests`.
    public struct RequestSummary: Codable, Sendable {
        public var id: String
        public var operation: String
        public var requester: String
        public var state: String
        public var created: Date
        public var expires: Date

        public init(id: String, operation: String, requester: String, state: String, created: Date, expires: Date) {
            self.id = id
            self.operation = operation
            self.requester = requester
            self.state = state
            self.created = created
            self.expires = expires
        }
    }

    /// `GET /v1/audit/checkpoint[?since=N]`: the latest signed checkpoint, the audit signer's certificate, and the
    /// consistency proof from N entries (what a custodian's CLI checks as a witness).
    public struct AuditCheckpoint: Codable, Sendable {
        /// The C2SP signed note.
        public var checkpoint: String
        /// The audit-signer certificate, DER base64 (the witness checks it chains to its trust anchor).
        public var signerCertificate: String
        public var since: Int
        /// RFC 9162 consistency proof hashes, base64, from `since` entries to the checkpoint's size.
        public var consistency: [String]

        public init(checkpoint: String, signerCertificate: String, since: Int, consistency: [String]) {
            self.checkpoint = checkpoint
            self.signerCertificate = signerCertificate
            self.since = since
            self.consistency = consistency
        }
    }

    /// Every error answer: `{"code": ..., "message": ...}`.
    /// Every error answer: an RFC 9457 problem document (`application/problem+json`) with MeterTrust's stable `code`
    /// beside the standard members; `message` repeats `detail` for clients of the first version.
    public struct ErrorBody: Codable, Sendable {
        /// `urn:metertrust:error:<code>`.
        public var type: String?
        /// The code, as a short title.
        public var title: String?
        public var status: Int?
        public var detail: String?
        public var code: String
        public var message: String

        public init(code: String, message: String, status: Int? = nil) {
            self.type = "urn:metertrust:error:\(code)"
            self.title = code
            self.status = status
            self.detail = message
            self.code = code
            self.message = message
        }
    }
}
