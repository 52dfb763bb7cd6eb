import Crypto
import Foundation
import MeterTrustCore

/// A log checkpoint in the C2SP tlog-checkpoint format, as the body of a C2SP signed note:
///
/// ```
/// <origin>
/// <tree size, decimal>
/// <root hash, base64>
///
/// — <key name> base64(key ID || signature)
/// ```
/// Signatures are of signed-note type 0x02 (ECDSA, P-256, SHA-256, ASN.1 DER signature over the note text), key ID =
/// the first four bytes of SHA-256 of the key's DER SubjectPublicKeyInfo.
public struct Checkpoint: Sendable, Hashable {
    public var origin: String
    public var size: Int
    public var rootHash: [UInt8]

    public init(origin: String, size: Int, rootHash: [UInt8]) {
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
    }

    /// The note text that is signed.
    public var body: String { "\(origin)\n\(size)\n\(Data(rootHash).base64EncodedString())\n" }
}

/// A checkpoint and its signature, as stored and as handed to verifiers.
public struct SignedCheckpoint: Sendable, Hashable {
    public var checkpoint: Checkpoint
    public var keyName: String
    public var keyID: [UInt8]
    /// DER ECDSA-Sig-Value.
    public var signature: [UInt8]

    /// The full signed note.
    public var text: String {
        checkpoint.body + "\n— \(keyName) \(Data(keyID + signature).base64EncodedString())\n"
    }

    public static let maximumSize = 8192

    /// Parses a signed note holding a checkpoint with one signature.
    public init(text: String) throws {
        guard text.utf8.count <= Self.maximumSize else { throw AuditError(.malformed, "the checkpoint note is larger than \(Self.maximumSize) bytes") }
        guard let separator = text.range(of: "\n\n— ") else { throw AuditError(.malformed, "the checkpoint has no signature line") }
        let body = String(text[..<separator.lowerBound]) + "\n"
        let lines = body.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        guard lines.count >= 3, let size = Int(lines[1]), size >= 0, let root = Data(base64Encoded: String(lines[2])), root.count == 32 else {
            throw AuditError(.malformed, "the checkpoint body is not <origin>, <size>, <base64 root hash>")
        }
        let signatureLine = text[separator.upperBound...].split(separator: "\n").first ?? ""
        let fields = signatureLine.split(separator: " ")
        guard fields.count == 2, let blob = Data(base64Encoded: String(fields[1])), blob.count > 4 else {
            throw AuditError(.malformed, "the checkpoint signature line is not \"— <name> <base64>\"")
        }
        self.checkpoint = Checkpoint(origin: String(lines[0]), size: size, rootHash: Array(root))
        self.keyName = String(fields[0])
        self.keyID = Array(blob.prefix(4))
        self.signature = Array(blob.dropFirst(4))
    }

    public init(checkpoint: Checkpoint, keyName: String, keyID: [UInt8], signature: [UInt8]) {
        self.checkpoint = checkpoint
        self.keyName = keyName
        self.keyID = keyID
        self.signature = signature
    }

    /// Whether the signature is by `key` (and names it).
    public func isValid(for key: P256.Signing.PublicKey, keyName expectedName: String) -> Bool {
        guard keyName == expectedName, keyID == Self.keyID(for: key),
            let signature = try? P256.Signing.ECDSASignature(derRepresentation: signature)
        else { return false }
        return key.isValidSignature(signature, for: Array(checkpoint.body.utf8))
    }

    /// C2SP signed-note key ID for signature type 0x02: SHA-256(DER SubjectPublicKeyInfo)[:4].
    public static func keyID(for key: P256.Signing.PublicKey) -> [UInt8] {
        Array(SHA256.hash(data: key.derRepresentation).prefix(4))
    }
}

/// Signs checkpoints: the audit key in the HSM in production.
public protocol CheckpointSigner: Sendable {
    var keyName: String { get }
    var publicKey: P256.Signing.PublicKey { get }
    /// DER ECDSA signature (SHA-256) over `message`.
    func sign(_ message: [UInt8]) throws -> [UInt8]
}

extension CheckpointSigner {
    public func sign(_ checkpoint: Checkpoint) throws -> SignedCheckpoint {
        SignedCheckpoint(
            checkpoint: checkpoint, keyName: keyName, keyID: SignedCheckpoint.keyID(for: publicKey),
            signature: try sign(Array(checkpoint.body.utf8))
        )
    }
}

/// An error from the audit log. The message says what and where.
public struct AuditError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code in the closed set every edge maps.
        public let errorCode: ErrorCode
        public static let malformed = Code(errorCode: .auditMalformed)
        /// The log does not match its signed checkpoints: something was altered, removed, inserted or reordered.
        public static let tampered = Code(errorCode: .auditTampered)
        public static let notFound = Code(errorCode: .auditNotFound)
        public static let signature = Code(errorCode: .auditSignature)
        /// There is no audit key yet (`metertrust audit init`).
        public static let notInitialised = Code(errorCode: .auditNotInitialised)
        public var description: String { errorCode.rawValue }
    }

    public let code: Code
    public let message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

extension AuditError: CodedError {
    public var errorCode: ErrorCode { code.errorCode }
}
