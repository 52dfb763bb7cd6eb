import Foundation
import MeterTrustCore

/// A certificate as the store keeps it: the DER plus the columns it is found by.
public struct CertificateRecord: Sendable, Hashable, Codable {
    /// What a certificate is, as far as the store's queries and constraints care: a closed set, stored by raw value in
    /// a column of its own (CHECKed), so no query filters on a profile's name. The issuer (PKI) sets it from the
    /// profile; one device identity per EUI-64 is a constraint on `.deviceIdentity`. Never rename a raw value.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// A meter's device identity certificate (at most one per EUI-64).
        case deviceIdentity = "device-identity"
        /// A meter's operational certificate.
        case deviceOperational = "device-operational"
        /// A certificate authority's own certificate.
        case authority = "ca"
        /// Any other end entity of the platform: custodians, the audit signer, TLS servers.
        case service
    }

    /// Name of the issuing CA (its ``CertificateAuthorityRecord/name``).
    public var issuer: String
    /// Serial number as lowercase hex of its DER INTEGER content bytes; unique per issuer.
    public var serial: String
    /// Name of the profile the certificate was issued under.
    public var profile: String
    public var kind: Kind
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
    /// Core's `SubjectKeyDigest` of the certificate's subject key (16 octets), set by the issuer on device
    /// certificates. The store keeps each such key for one meter only: a device certificate whose key already belongs
    /// to another EUI-64 is refused (``StoreError/Code/keyReused``); the same meter may keep its key. Not read back.
    public var subjectKeyDigest: [UInt8]?
    /// The certificate's shard under its issuing CA (Core's ``ShardCount``: from the serial's random low octets,
    /// modulo the CA's ``CertificateAuthorityRecord/shardCount``), fixed at issuance: the partition the store keeps it
    /// in and the CRL shard that lists it once revoked. The issuer sets it for every certificate it stores.
    public var shard: Int

    /// Without `shard`, the serial's shard under the default count (256); 0 for a serial that is not hex.
    public init(
        issuer: String, serial: String, profile: String, kind: Kind, subject: String, eui64: String?, notBefore: Date,
        notAfter: Date, fingerprintSHA256: String, der: [UInt8], createdAt: Date = Date(), batch: String? = nil,
        batchPosition: Int64? = nil, subjectKeyDigest: [UInt8]? = nil, shard: Int? = nil
    ) {
        self.shard = shard ?? ShardCount.default.shard(ofSerialHex: serial) ?? 0
        self.subjectKeyDigest = subjectKeyDigest
        self.issuer = issuer
        self.serial = serial
        self.profile = profile
        self.kind = kind
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
    /// The role the CA plays in the hierarchy, as the PKI names it (`CertificateAuthorityRole`'s raw value, which the
    /// PKI validates when it reads the record); the store keeps it as it was given. The schema knows one name of it:
    /// at most one CA has the role `root`.
    public var roleName: String
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
    /// How many shards the certificates this CA issues are spread over (Core's ``ShardCount``, 1...4096), fixed when
    /// the CA is created. The CA's own certificate is sharded by its issuer's count.
    public var shardCount: Int

    public init(
        name: String, roleName: String, parent: String?, keyLabel: String, keyID: String, curve: String,
        certificateSerial: String, createdAt: Date = Date(), destroyedAt: Date? = nil, shardCount: Int = ShardCount.default.value
    ) {
        self.shardCount = shardCount
        self.destroyedAt = destroyedAt
        self.name = name
        self.roleName = roleName
        self.parent = parent
        self.keyLabel = keyLabel
        self.keyID = keyID
        self.curve = curve
        self.certificateSerial = certificateSerial
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case name, roleName = "role", parent, keyLabel, keyID, curve, certificateSerial, createdAt, destroyedAt, shardCount
    }

    /// A record encoded before shard counts existed has the default.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name), roleName: try container.decode(String.self, forKey: .roleName),
            parent: try container.decodeIfPresent(String.self, forKey: .parent), keyLabel: try container.decode(String.self, forKey: .keyLabel),
            keyID: try container.decode(String.self, forKey: .keyID), curve: try container.decode(String.self, forKey: .curve),
            certificateSerial: try container.decode(String.self, forKey: .certificateSerial),
            createdAt: try container.decode(Date.self, forKey: .createdAt), destroyedAt: try container.decodeIfPresent(Date.self, forKey: .destroyedAt),
            shardCount: try container.decodeIfPresent(Int.self, forKey: .shardCount) ?? ShardCount.default.value
        )
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
    /// For a `keyMode: psk` batch: CKA_LABEL of its PSK master key in the HSM (the key itself never leaves it). Only
    /// a name: someone who changes it with write access to the database points the batch's meters at another key,
    /// which gives each of them a PSK nobody holds (their handshakes fail), never one the attacker knows.
    public var pskMasterKeyLabel: String?

    public init(
        id: String, manufacturer: String, manifestSHA256: String, meterCount: Int64, createdAt: Date = Date(), completedAt: Date? = nil,
        pskMasterKeyLabel: String? = nil
    ) {
        self.id = id
        self.manufacturer = manufacturer
        self.manifestSHA256 = manifestSHA256
        self.meterCount = meterCount
        self.createdAt = createdAt
        self.completedAt = completedAt
        self.pskMasterKeyLabel = pskMasterKeyLabel
    }
}

/// Where a meter's device identity certificate came from.
public struct DeviceIdentityEntry: Sendable, Hashable {
    public var eui64: String
    public var issuer: String
    public var serial: String
    public var batch: String?
    public var batchPosition: Int64?

    public init(eui64: String, issuer: String, serial: String, batch: String? = nil, batchPosition: Int64? = nil) {
        self.eui64 = eui64
        self.issuer = issuer
        self.serial = serial
        self.batch = batch
        self.batchPosition = batchPosition
    }
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

    public init(size: Int64, note: String) {
        self.size = size
        self.note = note
    }
}
