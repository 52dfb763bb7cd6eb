import Foundation

/// A utility account: the tenant enrollment lists, claims and operators belong to.
public struct AccountRecord: Sendable, Hashable, Codable {
    /// The utility's short id, `[a-z0-9-]{1,63}`: what its operators' certificates carry as the subject's O.
    public var id: String
    public var displayName: String
    /// Name of the Operational CA that issues the account's meters' operational certificates.
    public var operationalCA: String
    /// Names of the Manufacturer Device CAs whose meters the account accepts, sorted.
    public var manufacturers: [String]
    public var createdAt: Date
    /// The actor who created it (an admin, or the executor of a quorum request).
    public var createdBy: String
    /// The quorum request under which it was created, if any.
    public var requestID: String?

    public init(
        id: String, displayName: String, operationalCA: String, manufacturers: [String], createdAt: Date = Date(), createdBy: String,
        requestID: String? = nil
    ) {
        self.id = id
        self.displayName = displayName
        self.operationalCA = operationalCA
        self.manufacturers = manufacturers.sorted()
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.requestID = requestID
    }
}

/// An operator of an account, known by the certificate the platform issued it.
public struct OperatorRecord: Sendable, Hashable, Codable {
    public var account: String
    public var name: String
    public var certificateIssuer: String
    public var certificateSerial: String
    /// SHA-256 of the operator certificate's DER, lowercase hex: unique in the store.
    public var fingerprintSHA256: String
    public var addedAt: Date
    public var addedBy: String
    public var removedAt: Date?
    public var removedBy: String?

    public init(
        account: String, name: String, certificateIssuer: String, certificateSerial: String, fingerprintSHA256: String, addedAt: Date = Date(),
        addedBy: String, removedAt: Date? = nil, removedBy: String? = nil
    ) {
        self.account = account
        self.name = name
        self.certificateIssuer = certificateIssuer
        self.certificateSerial = certificateSerial
        self.fingerprintSHA256 = fingerprintSHA256
        self.addedAt = addedAt
        self.addedBy = addedBy
        self.removedAt = removedAt
        self.removedBy = removedBy
    }
}

/// One upload of an enrollment list to an account.
public struct EnrollmentUploadRecord: Sendable, Hashable, Codable {
    public enum Format: String, Sendable, Hashable, Codable, CaseIterable {
        /// The manufacturer-signed enrollment manifest the factory writes (JSON, detached signature).
        case manifest
        /// A plain list of EUI-64s, the manufacturer named by the uploader.
        case list
    }

    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        /// Entries are being staged; nothing is claimed yet.
        case staging
        /// Verified and committed: its meters were claimed (or reported as conflicts).
        case committed
        /// Refused (or abandoned): its staged entries were discarded, nothing was claimed.
        case refused
    }

    public var id: String
    public var account: String
    /// Name of the Manufacturer Device CA the meters' device identities must come from.
    public var manufacturer: String
    public var format: Format
    /// The factory batch a manifest names.
    public var batch: String?
    public var state: State
    /// Entries staged so far (duplicates included).
    public var entryCount: Int64
    public var claimed: Int64
    public var alreadyHeld: Int64
    public var conflicts: Int64
    public var createdAt: Date
    public var finishedAt: Date?
    public var actor: String

    public init(
        id: String, account: String, manufacturer: String, format: Format, batch: String? = nil, state: State = .staging, entryCount: Int64 = 0,
        claimed: Int64 = 0, alreadyHeld: Int64 = 0, conflicts: Int64 = 0, createdAt: Date = Date(), finishedAt: Date? = nil, actor: String
    ) {
        self.id = id
        self.account = account
        self.manufacturer = manufacturer
        self.format = format
        self.batch = batch
        self.state = state
        self.entryCount = entryCount
        self.claimed = claimed
        self.alreadyHeld = alreadyHeld
        self.conflicts = conflicts
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.actor = actor
    }
}

/// One staged entry of an upload: the meter and, for a manifest, the SHA-256 of its device identity certificate.
public struct EnrollmentEntry: Sendable, Hashable {
    /// 16 lowercase hex digits.
    public var eui64: String
    /// Lowercase hex; nil for a plain list.
    public var certificateSHA256: String?
    /// Where the entry is in the upload, unique and increasing within it (Onboarding uses the line of a plain list,
    /// the 1-based index in a manifest's meters), so a problem names its place.
    public var position: Int64

    public init(eui64: String, certificateSHA256: String? = nil, position: Int64) {
        self.eui64 = eui64
        self.certificateSHA256 = certificateSHA256
        self.position = position
    }
}

/// What ``OnboardingStore/check(upload:limit:)`` found wrong with a staged entry.
public struct EnrollmentProblem: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        /// The store holds no device identity certificate for the meter.
        case unknownMeter = "unknown-meter"
        /// The meter's device identity was issued by another CA than the upload's manufacturer (`detail`: that CA).
        case otherManufacturer = "other-manufacturer"
        /// The listed certificate fingerprint is not the stored device identity certificate's.
        case fingerprintMismatch = "fingerprint-mismatch"
        /// The meter is listed more than once in the upload.
        case listedTwice = "listed-twice"
    }

    public var kind: Kind
    public var eui64: String
    /// The entry's ``EnrollmentEntry/position``.
    public var position: Int64
    public var detail: String?

    public init(kind: Kind, eui64: String, position: Int64, detail: String? = nil) {
        self.kind = kind
        self.eui64 = eui64
        self.position = position
        self.detail = detail
    }
}

/// What committing an upload did.
public struct EnrollmentCommitCounts: Sendable, Hashable, Codable {
    /// Meters claimed for the account by this upload.
    public var claimed: Int64
    /// Meters the account already held.
    public var alreadyHeld: Int64
    /// Meters held by another account: each is an (open) conflict.
    public var conflicts: Int64

    public init(claimed: Int64, alreadyHeld: Int64, conflicts: Int64) {
        self.claimed = claimed
        self.alreadyHeld = alreadyHeld
        self.conflicts = conflicts
    }
}

/// One claim period of a meter by an account: open while `releasedAt` is nil (at most one open per meter, by the
/// database's constraint).
public struct ClaimRecord: Sendable, Hashable, Codable {
    /// The store's sequence number of the claim (insertion order).
    public var id: Int64
    public var eui64: String
    public var account: String
    /// The upload that claimed it (nil for a claim transferred by a conflict resolution without one).
    public var upload: String?
    public var claimedAt: Date
    public var claimedBy: String
    public var releasedAt: Date?
    public var releasedBy: String?

    public init(
        id: Int64 = 0, eui64: String, account: String, upload: String?, claimedAt: Date, claimedBy: String, releasedAt: Date? = nil,
        releasedBy: String? = nil
    ) {
        self.id = id
        self.eui64 = eui64
        self.account = account
        self.upload = upload
        self.claimedAt = claimedAt
        self.claimedBy = claimedBy
        self.releasedAt = releasedAt
        self.releasedBy = releasedBy
    }
}

/// How a conflict was closed.
public enum ConflictResolution: String, Sendable, Hashable, Codable, CaseIterable {
    /// The claimant got the meter (the holder's claim was closed).
    case claimant
    /// The holder keeps the meter.
    case holder
    /// The holder released the meter; the claimant may claim it by uploading it again.
    case released
}

/// A meter listed by a second account (the claimant) while claimed by a first (the holder).
public struct ConflictRecord: Sendable, Hashable, Codable {
    public var id: Int64
    public var eui64: String
    public var holder: String
    public var claimant: String
    /// The claimant's upload that listed the meter.
    public var upload: String?
    public var reportedAt: Date
    public var resolvedAt: Date?
    public var resolution: ConflictResolution?
    public var resolvedBy: String?

    public init(
        id: Int64 = 0, eui64: String, holder: String, claimant: String, upload: String?, reportedAt: Date, resolvedAt: Date? = nil,
        resolution: ConflictResolution? = nil, resolvedBy: String? = nil
    ) {
        self.id = id
        self.eui64 = eui64
        self.holder = holder
        self.claimant = claimant
        self.upload = upload
        self.reportedAt = reportedAt
        self.resolvedAt = resolvedAt
        self.resolution = resolution
        self.resolvedBy = resolvedBy
    }
}

/// A certificate to revoke on a change of supplier (or a conflict resolved against its holder).
public struct RevocationCandidate: Sendable, Hashable, Codable {
    public var issuer: String
    public var serial: String

    public init(issuer: String, serial: String) {
        self.issuer = issuer
        self.serial = serial
    }
}

/// An operational certificate recorded for revocation: what the revocation service consumes.
public struct PendingRevocationRecord: Sendable, Hashable, Codable {
    public var issuer: String
    public var serial: String
    public var eui64: String
    /// The account that held the meter.
    public var account: String
    /// RFC 5280 reason code: 4 (superseded) on a change of supplier.
    public var reason: Int
    public var recordedAt: Date

    public init(issuer: String, serial: String, eui64: String, account: String, reason: Int = 4, recordedAt: Date) {
        self.issuer = issuer
        self.serial = serial
        self.eui64 = eui64
        self.account = account
        self.reason = reason
        self.recordedAt = recordedAt
    }
}

/// One event of a meter's onboarding history.
public struct MeterHistoryEvent: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// `account` claimed the meter (by `upload`, or by a conflict resolved in its favour).
        case claimed
        /// `account` (the claimant) listed the meter while `counterparty` held it.
        case conflict
        /// A conflict was resolved: `account` is the winner, `counterparty` the other side.
        case resolvedForClaimant = "resolved-for-claimant"
        case resolvedForHolder = "resolved-for-holder"
        /// A conflict of claimant `counterparty` closed because the holder `account` released the meter.
        case conflictClosed = "conflict-closed"
        /// `account` released the meter (change of supplier, or a conflict resolved against it).
        case released
    }

    /// The store's sequence number: history is in this order.
    public var id: Int64
    public var eui64: String
    public var kind: Kind
    public var account: String
    public var counterparty: String?
    public var upload: String?
    public var actor: String
    public var at: Date

    public init(id: Int64 = 0, eui64: String, kind: Kind, account: String, counterparty: String? = nil, upload: String? = nil, actor: String, at: Date) {
        self.id = id
        self.eui64 = eui64
        self.kind = kind
        self.account = account
        self.counterparty = counterparty
        self.upload = upload
        self.actor = actor
        self.at = at
    }
}

/// Rows of the onboarding tables as they are, for ``StoreCopy`` only: written in the order given (sequence numbers
/// are the target's own, in the same order), with no rule of the domain applied but the schema's.
public struct OnboardingRows: Sendable, Hashable {
    public var accounts: [AccountRecord] = []
    public var operators: [OperatorRecord] = []
    public var uploads: [EnrollmentUploadRecord] = []
    public var claims: [ClaimRecord] = []
    public var conflicts: [ConflictRecord] = []
    public var pendingRevocations: [PendingRevocationRecord] = []
    public var history: [MeterHistoryEvent] = []

    public init() {}
}

/// How many rows each onboarding table holds (staged entries excepted).
public struct OnboardingCounts: Sendable, Hashable, Codable {
    public var accounts = 0
    public var operators = 0
    public var uploads = 0
    public var claims = 0
    public var conflicts = 0
    public var pendingRevocations = 0
    public var historyEvents = 0

    public init() {}

    public var isEmpty: Bool { self == OnboardingCounts() }
}
