import Crypto
import Foundation
import MeterTrustCore

/// A request for an operation under quorum: a canonical, content-addressed document.
///
/// Canonical form: JSON with keys sorted, no insignificant whitespace, `/` unescaped, every value a string (the
/// output of Foundation's `JSONEncoder` with `.sortedKeys` and `.withoutEscapingSlashes`). Its id is the SHA-256 of
/// those bytes; approvers sign those bytes (ECDSA P-256 with SHA-256, i.e. a signature over the digest). A document
/// that is not in canonical form is refused, so one request has exactly one id.
public struct AdminRequest: Sendable, Hashable, Codable {
    public static let formatName = "metertrust-request/v1"
    /// Largest request document accepted.
    public static let maximumSize = 64 * 1024

    public let format: String
    public let operation: String
    public let parameters: [String: String]
    /// Name of the custodian who asked.
    public let requester: String
    /// RFC 3339 UTC, whole seconds.
    public let created: String
    public let expires: String
    /// 128 random bits, lowercase hex: two requests for the same thing are two different requests.
    public let nonce: String

    public init(operation: AdminOperation, parameters: [String: String], requester: String, created: Date = Date(), lifetime: TimeInterval) throws {
        try operation.check(parameters)
        guard lifetime > 0, lifetime <= 7 * 86_400 else {
            throw QuorumError(.invalidRequest, "a request lives between 1 second and 7 days, not \(Int(lifetime)) s")
        }
        let start = Date(timeIntervalSince1970: created.timeIntervalSince1970.rounded(.down))
        self.format = Self.formatName
        self.operation = operation.rawValue
        self.parameters = parameters
        self.requester = requester
        self.created = Self.timestamp(start)
        self.expires = Self.timestamp(start.addingTimeInterval(lifetime.rounded(.down)))
        var generator = SystemRandomNumberGenerator()
        self.nonce = hexString((0..<16).map { _ in UInt8.random(in: 0 ... 255, using: &generator) })
    }

    /// The canonical bytes: what is stored, hashed and signed.
    public var canonicalBytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try! encoder.encode(self))
    }

    /// SHA-256 of the canonical bytes, lowercase hex.
    public var id: String { Self.id(of: canonicalBytes) }

    static func id(of bytes: [UInt8]) -> String {
        hexString(SHA256.hash(data: bytes))
    }

    public var createdDate: Date { get throws { try Self.date(created, field: "created") } }
    public var expiresDate: Date { get throws { try Self.date(expires, field: "expires") } }

    /// Parses a request document; refuses one that is oversized, malformed, of another format, not canonical, or
    /// naming an operation that is not well formed. Whether this deployment runs the operation, with these
    /// parameters, is the registry's to say (`QuorumOperationRegistry.operation(of:)`).
    public static func parse(_ bytes: [UInt8]) throws -> AdminRequest {
        guard bytes.count <= maximumSize else {
            throw QuorumError(.invalidRequest, "the request document is \(bytes.count) bytes; the limit is \(maximumSize)")
        }
        let request: AdminRequest
        do {
            request = try JSONDecoder().decode(AdminRequest.self, from: Data(bytes))
        } catch {
            throw QuorumError(.invalidRequest, "the request document is not a \(formatName) JSON document")
        }
        guard request.format == formatName else {
            throw QuorumError(.invalidRequest, "the request document's format is \"\(request.format)\", not \(formatName)")
        }
        guard request.canonicalBytes == bytes else {
            throw QuorumError(.invalidRequest, "the request document is not in canonical form (sorted keys, no whitespace): it was altered")
        }
        guard AdminOperation.isWellFormedName(request.operation) else {
            throw QuorumError(.invalidRequest, "the request's operation \"\(request.operation.prefix(64))\" is not an operation name")
        }
        guard try request.expiresDate > request.createdDate else {
            throw QuorumError(.invalidRequest, "the request expires before it was created")
        }
        guard isLowercaseHex(request.nonce, count: 32) else {
            throw QuorumError(.invalidRequest, "the request nonce must be 32 hex digits")
        }
        return request
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    static func date(_ text: String, field: String) throws -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        guard let date = formatter.date(from: text) else {
            throw QuorumError(.invalidRequest, "the request's \(field) \"\(text)\" is not an RFC 3339 time")
        }
        return date
    }
}

/// One custodian's approval of one request: an ECDSA P-256 signature over the request's canonical bytes, made
/// with the key of the custodian's admin certificate.
public struct Approval: Sendable, Hashable, Codable {
    public static let formatName = "metertrust-approval/v1"
    public static let maximumSize = 8 * 1024

    public let format: String
    /// Id of the approved request.
    public let request: String
    public let custodian: String
    /// SHA-256 of the custodian's admin certificate, lowercase hex.
    public let certificate: String
    /// DER ECDSA-Sig-Value, base64.
    public let signature: String

    /// Signs `request` as `custodian` with the private key of their admin certificate.
    public init(approving request: AdminRequest, custodian: String, certificateFingerprint: String, key: P256.Signing.PrivateKey) throws {
        let signature = try key.signature(for: request.canonicalBytes)
        self.format = Self.formatName
        self.request = request.id
        self.custodian = custodian
        self.certificate = certificateFingerprint
        self.signature = signature.derRepresentation.base64EncodedString()
    }

    public var bytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try! encoder.encode(self))
    }

    public static func parse(_ bytes: [UInt8]) throws -> Approval {
        guard bytes.count <= maximumSize else {
            throw QuorumError(.forgedApproval, "the approval is \(bytes.count) bytes; the limit is \(maximumSize)")
        }
        guard let approval = try? JSONDecoder().decode(Approval.self, from: Data(bytes)), approval.format == formatName else {
            throw QuorumError(.forgedApproval, "the approval is not a \(formatName) JSON document")
        }
        return approval
    }

    /// Whether the signature verifies over `document` with `key`.
    func verifies(document: [UInt8], key: P256.Signing.PublicKey) -> Bool {
        guard let der = Data(base64Encoded: signature), let signature = try? P256.Signing.ECDSASignature(derRepresentation: der) else {
            return false
        }
        return key.isValidSignature(signature, for: document)
    }
}
