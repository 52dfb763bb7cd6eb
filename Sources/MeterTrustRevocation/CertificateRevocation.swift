import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore

/// A revocation refused: one line saying what and why, with its code.
public struct RevocationError: CodedError, Hashable, Sendable {
    public let errorCode: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.errorCode = code
        self.message = message
    }
}

/// Who revokes, which decides what they may revoke.
public enum Revoker: Sendable, Hashable {
    /// A PKI officer on the HSM host (`metertrust revoke`, with the user PIN): any end-entity certificate.
    case officer(actor: String)
    /// A utility operator through the account API: only the operational certificates of their own account's
    /// Operational CA.
    case accountOperator(account: String, operationalCA: String, actor: String)

    var actor: String {
        switch self {
        case .officer(let actor), .accountOperator(_, _, let actor): actor
        }
    }
}

/// One certificate to revoke.
public struct RevocationTarget: Sendable, Hashable, Codable {
    /// The issuing CA's name.
    public var issuer: String
    /// The serial's INTEGER content octets, hex.
    public var serial: String

    public init(issuer: String, serial: String) {
        self.issuer = issuer
        self.serial = serial.lowercased()
    }
}

/// What a revocation did to one certificate.
public struct RevocationResult: Sendable, Hashable, Codable {
    public var issuer: String
    public var serial: String
    public var profile: String
    public var eui64: String?
    /// RFC 5280 reason name (`keyCompromise`).
    public var reason: String
    public var reasonCode: Int
    public var revokedAt: Date
    public var invalidityDate: Date?
    /// It was revoked before: nothing changed, and `reason` and `revokedAt` are the first revocation's.
    public var alreadyRevoked: Bool
    /// The index of the audit entry that records the revocation (nil when it was already revoked).
    public var auditIndex: Int64?
}

/// Revoking certificates: the rules (who may revoke what; a CA's certificate only under quorum; a revocation is final
/// and a second one changes nothing) and the record. **The audit log is the record**: each revocation is a
/// `state.revoked.<issuer>/<serial>` change in a sealed `certificate.revoke` entry, and everything that answers
/// "is it revoked?" (CRLs, the OCSP responder, EST, the admin and account APIs) reads the verified log's state, so
/// deleting or rolling back a revocation row in the database does not make a certificate good again. The store's
/// row follows as the index a listing reads.
public struct CertificateRevocation: Sendable {
    /// The most certificates one call revokes (one audit entry): `--list` is revoked in chunks of this size.
    public static let chunkSize = 1_000

    public let store: any MeterTrustStore
    public let audit: AuditLog
    public let state: VerifiedStateCache
    public let clock: any WallClock

    public init(store: any MeterTrustStore, audit: AuditLog, state: VerifiedStateCache? = nil, clock: any WallClock = SystemClock()) {
        self.store = store
        self.audit = audit
        self.state = state ?? VerifiedStateCache(audit: audit, maximumAge: .zero)
        self.clock = clock
    }

    /// The certificate a meter revocation names: with `identity`, its factory identity certificate (IDevID);
    /// otherwise its operational certificates that are still valid (or, if none is, the latest, so revoking it
    /// again reports that it was revoked).
    public func targets(meter eui64: EUI64, identity: Bool) async throws -> [RevocationTarget] {
        let profile = identity ? CertificateProfile.deviceIdentity.name : CertificateProfile.deviceOperational.name
        let records = try await store.certificates(
            matching: CertificateFilter(profile: profile, eui64: eui64.description), after: nil, limit: 1_000
        ).certificates
        guard !records.isEmpty else {
            throw RevocationError(
                .revocationUnknownCertificate,
                identity
                    ? "meter \(eui64) has no factory identity certificate in this store"
                    : "meter \(eui64) has no operational certificate: it never enrolled (revoke its factory identity with --identity)"
            )
        }
        let state = try await state.state()
        let now = clock.now()
        let live = records.filter { $0.notAfter > now && !state.isRevoked(issuer: $0.issuer, serial: $0.serial) }
        let chosen = live.isEmpty ? [records.max { $0.notBefore < $1.notBefore }!] : live
        return chosen.map { RevocationTarget(issuer: $0.issuer, serial: $0.serial) }
    }

    /// Revokes `targets` (at most ``chunkSize``) for `reason` with an optional invalidity date, as `revoker` may. Every
    /// target is checked before anything is recorded (one refused: none revoked). Those revoked before are reported and
    /// left as they were; the others are recorded in one audit entry, then in the store.
    public func revoke(
        _ targets: [RevocationTarget], reason: RevocationReason, invalidityDate: Date? = nil, by revoker: Revoker
    ) async throws -> [RevocationResult] {
        guard targets.count <= Self.chunkSize else {
            throw RevocationError(.invalidArgument, "at most \(Self.chunkSize) certificates per revocation; give more as a --list")
        }
        guard RevocationReason.revocable.contains(reason) else {
            throw RevocationError(.invalidArgument, "\(reason.name) is not a reason MeterTrust revokes for (a revocation is final: no certificateHold)")
        }
        let now = clock.now()
        if let invalidityDate, invalidityDate > now {
            throw RevocationError(.invalidArgument, "the invalidity date \(ISO8601DateFormatter().string(from: invalidityDate)) is in the future")
        }
        let state = try await state.state()
        var results: [RevocationResult] = []
        var fresh: [(RevocationTarget, CertificateRecord)] = []
        var seen = Set<RevocationTarget>()
        for target in targets where seen.insert(target).inserted {
            guard let record = try await store.certificate(issuer: target.issuer, serial: target.serial) else {
                throw RevocationError(
                    .revocationUnknownCertificate, "CA \(target.issuer) issued no certificate with serial \(target.serial) that this store holds"
                )
            }
            try Self.check(record, by: revoker)
            if let earlier = state.revocation(issuer: target.issuer, serial: target.serial) {
                let reason = RevocationReason(rawValue: earlier.reason) ?? .unspecified
                results.append(
                    RevocationResult(
                        issuer: record.issuer, serial: record.serial, profile: record.profile, eui64: record.eui64, reason: reason.name,
                        reasonCode: earlier.reason, revokedAt: earlier.revokedAt, invalidityDate: earlier.invalidityDate, alreadyRevoked: true
                    )
                )
            } else {
                fresh.append((target, record))
            }
        }
        guard !fresh.isEmpty else { return results }
        let revokedAt = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        var details: [String: String] = ["reason": reason.name, "count": "\(fresh.count)"]
        if let invalidityDate { details["invalidityDate"] = ISO8601DateFormatter().string(from: invalidityDate) }
        if case .accountOperator(let account, _, _) = revoker { details["account"] = account }
        for (target, _) in fresh {
            let change = SecurityState.Change.revoked(
                issuer: target.issuer, serial: target.serial, reason: reason.rawValue, at: revokedAt, invalidityDate: invalidityDate
            )
            details[change.0] = change.1
        }
        let subject = fresh.count == 1 ? "\(fresh[0].0.issuer)/\(fresh[0].0.serial)" : "\(fresh.count) certificates"
        let auditIndex = try await audit.record(AuditEvent(actor: revoker.actor, action: "certificate.revoke", subject: subject, details: details))
        // The index for listings; the audit entry above is what every decision reads.
        _ = try await store.recordRevocations(
            fresh.map { RevocationRecord(issuer: $0.0.issuer, serial: $0.0.serial, reason: reason.rawValue, revokedAt: revokedAt) }
        )
        for (_, record) in fresh {
            results.append(
                RevocationResult(
                    issuer: record.issuer, serial: record.serial, profile: record.profile, eui64: record.eui64, reason: reason.name,
                    reasonCode: reason.rawValue, revokedAt: revokedAt, invalidityDate: invalidityDate, alreadyRevoked: false, auditIndex: auditIndex
                )
            )
        }
        return results
    }

    /// A utility operator's revocation: the meter's operational certificates from `account`'s Operational CA only
    /// (another account's are not theirs to revoke: ``ErrorCode/otherAccount``).
    public func revokeOperational(
        meter eui64: EUI64, account: String, operationalCA: String, reason: RevocationReason, invalidityDate: Date?, actor: String
    ) async throws -> [RevocationResult] {
        let targets = try await targets(meter: eui64, identity: false).filter { $0.issuer == operationalCA }
        guard !targets.isEmpty else {
            throw RevocationError(.otherAccount, "account \(account) holds no operational certificate of meter \(eui64)")
        }
        return try await revoke(
            targets, reason: reason, invalidityDate: invalidityDate,
            by: .accountOperator(account: account, operationalCA: operationalCA, actor: actor)
        )
    }

    /// Whether `revoker` may revoke `record`.
    static func check(_ record: CertificateRecord, by revoker: Revoker) throws {
        guard record.kind != .authority else {
            throw RevocationError(
                .revocationUnderQuorum,
                "serial \(record.serial) is CA certificate (\(record.subject)): a CA is revoked under quorum (metertrust admin request ca.revoke name=NAME reason=N)"
            )
        }
        if case .accountOperator(let account, let operationalCA, _) = revoker {
            guard record.profile == CertificateProfile.deviceOperational.name else {
                throw RevocationError(
                    .revocationNotPermitted,
                    "a utility operator revokes operational certificates only; serial \(record.serial) is a \(record.profile) certificate (a PKI officer revokes it)"
                )
            }
            guard record.issuer == operationalCA else {
                throw RevocationError(.otherAccount, "serial \(record.serial) was not issued by account \(account)'s Operational CA")
            }
        }
    }
}
