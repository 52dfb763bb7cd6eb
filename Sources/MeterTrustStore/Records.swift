import Foundation

/// The role a certificate authority plays in the hierarchy. Stored by raw value: never rename a case.
public enum CertificateAuthorityRole: String, Sendable, Hashable, Codable, CaseIterable {
    case root
    case manufacturer
    case operational
    case admin
}

/// A certificate as the store keeps it: the DER plus the columns it is found by.
public struct CertificateRecord: Sendable, Hashable, Codable {
    /// Name of the issuing CA (its ``CertificateAuthorityRecord/name``).
    public var issuer: String
    /// Serial number as lowercase hex of its DER INTEGER content bytes; unique per issuer.
    public var serial: String
    /// Name of the profile the certificate was issued under.
    public var profile: String
    /// Human-readable subject (RFC 4514 string; empty for device identity certificates).
    public var subject: String
    /// The meter's EUI-64 as 16 lowercase hex digits, for device certificates.
    public var eui64: String?
    public var notBefore: Date
    public var notAfter: Date
    /// SHA-256 of the DER, lowercase hex.
    public var fingerprintSHA256: String
    public var der: [UInt8]
    public var createdAt: Date
    /// The factory batch that issued it, and its position (line) in that batch's input.
    public var batch: String?
    public var batchPosition: Int64?

    public init(
        issuer: String, serial: String, profile: String, subject: String, eui64: String?, notBefore: Date,
        notAfter: Date, fingerprintSHA256: String, der: [UInt8], createdAt: Date = Date(), batch: String? = nil,
        batchPosition: Int64? = nil
    ) {
        self.issuer = issuer
        self.serial = serial
        self.profile = profile
        self.subject = subject
        self.eui64 = eui64
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.fingerprintSHA256 = fingerprintSHA256
        self.der = der
        self.createdAt = createdAt
        self.batch = batch
        self.batchPosition = batchPosition
    }
}

/// A certificate authority: where its key is on the HSM and which certificate it holds.
public struct CertificateAuthorityRecord: Sendable, Hashable, Codable {
    /// Unique name, e.g. the manufacturer's or utility's short name.
    public var name: String
    public var role: CertificateAuthorityRole
    /// Name of the issuing CA; nil for the root.
    public var parent: String?
    /// CKA_LABEL of the CA's key pair on the token.
    public var keyLabel: String
    /// CKA_ID of the CA's key pair, lowercase hex.
    public var keyID: String
    /// Curve name, e.g. `P-256`.
    public var curve: String
    /// Serial of the CA's own certificate (issued by `parent`, or by itself for the root).
    public var certificateSerial: String
    public var createdAt: Date
    /// Set when the CA's key was destroyed under quorum; the CA issues nothing more.
    public var destroyedAt: Date?

    public init(
        name: String, role: CertificateAuthorityRole, parent: String?, keyLabel: String, keyID: String, curve: String,
        certificateSerial: String, createdAt: Date = Date(), destroyedAt: Date? = nil
    ) {
        self.destroyedAt = destroyedAt
        self.name = name
        self.role = role
        self.parent = parent
        self.keyLabel = keyLabel
        self.keyID = keyID
        self.curve = curve
        self.certificateSerial = certificateSerial
        self.createdAt = createdAt
    }
}

/// A factory provisioning batch.
public struct BatchRecord: Sendable, Hashable, Codable {
    public var id: String
    /// Name of the manufacturer CA that issues the batch.
    public var manufacturer: String
    /// SHA-256 of the batch manifest, so a re-run can be told from a changed batch.
    public var manifestSHA256: String
    public var meterCount: Int64
    public var createdAt: Date
    public var completedAt: Date?

    public init(id: String, manufacturer: String, manifestSHA256: String, meterCount: Int64, createdAt: Date = Date(), completedAt: Date? = nil) {
        self.id = id
        self.manufacturer = manufacturer
        self.manifestSHA256 = manifestSHA256
        self.meterCount = meterCount
        self.createdAt = createdAt
        self.completedAt = completedAt
    }
}

/// Where a meter's device identity certificate came from.
public struct DeviceIdentityEntry: Sendable, Hashable {
    public var eui64: String
    public var issuer: String
    public var serial: String
    public var batch: String?
    public var batchPosition: Int64?
}

/// One stored audit log entry.
public struct AuditRow: Sendable, Hashable {
    public var position: Int64
    public var entry: [UInt8]

    public init(position: Int64, entry: [UInt8]) {
        self.position = position
        self.entry = entry
    }
}

/// One stored signed checkpoint.
public struct AuditCheckpointRow: Sendable, Hashable {
    public var size: Int64
    public var note: String
}
