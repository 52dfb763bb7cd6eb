import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustRevocation
import MeterTrustStore
import X509

/// Utility accounts, their operators, enrollment uploads, claims, conflicts and change of supplier: the rules, over
/// the store, every state change recorded in the audit log.
///
/// **Tenant isolation.** Every method that takes an `account` acts for that account only, whoever calls it (the
/// edge says which account the caller's certificate names; this module does not trust the edge to have checked the
/// rest): an upload claims only for its account; a meter another account holds reads as not claimed by this one
/// (``claim(eui64:account:)`` is nil, ``release(eui64:account:actor:)`` is refused as `onboarding.not-claimed`,
/// nothing changes); ``history(eui64:account:)`` shows only the events the account took part in (as holder,
/// claimant or counterparty) and refuses a meter it never had to do with; ``conflicts(account:openOnly:after:limit:)``
/// lists only conflicts the account is a side of (both sides see each other's account id: that is what a conflict
/// report is). Conflict resolution (``resolveConflict(eui64:claimant:inFavourOf:actor:)``) and the platform-wide
/// ``history(eui64:)`` take no account: they are the platform's (the caller wraps the first in a quorum operation).
public struct Onboarding: Sendable {
    public let store: any MeterTrustStore
    public let audit: AuditLog
    public let clock: any WallClock
    public var limits: EnrollmentLimits

    /// Conflicting meters named in an upload's result and audit entry.
    public static let conflictsNamed = 20
    /// The most rows a listing returns.
    public static let maximumPage = 1000

    public init(store: any MeterTrustStore, audit: AuditLog, clock: any WallClock = SystemClock(), limits: EnrollmentLimits = EnrollmentLimits()) {
        self.store = store
        self.audit = audit
        self.clock = clock
        self.limits = limits
    }

    // MARK: Accounts

    /// Whether `id` is an account id: `[a-z0-9-]{1,63}`.
    public static func isAccountID(_ id: String) -> Bool {
        (1...63).contains(id.utf8.count) && id.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }
    }

    /// Everything ``createAccount(id:displayName:operationalCA:manufacturers:actor:requestID:)`` checks before it
    /// writes, so a request under quorum is refused before approvals are collected: the id, the display name, the
    /// live Operational CA, the registered manufacturers, and that the id is free.
    public func checkNewAccount(id: String, displayName: String, operationalCA: String, manufacturers: [String]) async throws {
        guard Self.isAccountID(id) else {
            throw OnboardingError(.invalidAccount, "\"\(DisplayText.escaped(id, asciiOnly: true, limit: 70))\" is not an account id: use 1 to 63 lowercase letters, digits and -")
        }
        guard !displayName.isEmpty, displayName.count <= 200, !displayName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw OnboardingError(.invalidAccount, "the display name of account \(id) must be 1 to 200 printable characters")
        }
        guard let ca = try await store.certificateAuthority(named: operationalCA), ca.destroyedAt == nil else {
            throw OnboardingError(.unknownAuthority, "there is no live CA \(operationalCA): create the account's Operational CA first")
        }
        guard ca.roleName == CertificateAuthorityRole.operational.rawValue else {
            throw OnboardingError(.invalidAccount, "CA \(operationalCA) is a \(ca.roleName) CA, not an operational CA: bind the account to an Operational CA")
        }
        guard !manufacturers.isEmpty, manufacturers.count <= 100 else {
            throw OnboardingError(.invalidAccount, "account \(id) must accept 1 to 100 manufacturers")
        }
        for name in Set(manufacturers) {
            guard let manufacturer = try await store.certificateAuthority(named: name),
                manufacturer.roleName == CertificateAuthorityRole.manufacturer.rawValue
            else { throw OnboardingError(.unregisteredManufacturer, "\(name) is not a registered manufacturer: register its Manufacturer Device CA first") }
        }
        if try await store.account(id: id) != nil {
            throw OnboardingError(.storeDuplicate, "account \(id) exists already: choose another id")
        }
    }

    /// Creates an account bound to its Operational CA and accepting meters of `manufacturers` (registered
    /// Manufacturer Device CAs); audited as `account.create`. `requestID` names the quorum request it runs under.
    public func createAccount(
        id: String, displayName: String, operationalCA: String, manufacturers: [String], actor: String, requestID: String? = nil
    ) async throws -> AccountRecord {
        try await checkNewAccount(id: id, displayName: displayName, operationalCA: operationalCA, manufacturers: manufacturers)
        let record = AccountRecord(
            id: id, displayName: displayName, operationalCA: operationalCA, manufacturers: Array(Set(manufacturers)), createdAt: clock.now(),
            createdBy: actor, requestID: requestID
        )
        do {
            try await store.createAccount(record)
        } catch let error as StoreError where error.code == .duplicate {
            throw OnboardingError(.storeDuplicate, "account \(id) exists already: choose another id")
        }
        var details = ["operationalCA": operationalCA, "manufacturers": record.manufacturers.joined(separator: ","), "displayName": displayName]
        if let requestID { details["request"] = requestID }
        _ = try await audit.record(AuditEvent(actor: actor, action: "account.create", subject: id, details: details))
        return record
    }

    /// The account, or `onboarding.unknown-account`.
    public func account(_ id: String) async throws -> AccountRecord {
        guard let account = try await store.account(id: id) else {
            throw OnboardingError(.unknownAccount, "there is no account \(DisplayText.escaped(id, asciiOnly: true, limit: 70))")
        }
        return account
    }

    public func accounts(after id: String? = nil, limit: Int = maximumPage) async throws -> [AccountRecord] {
        try await store.accounts(after: id, limit: min(max(limit, 0), Self.maximumPage))
    }

    // MARK: Operators

    /// Records an operator of `account` holding `certificateDER` (issued by CA `issuer`): the certificate's subject O
    /// must be the account id (the account is the O and nothing else). Audited as `account.operator.add`.
    public func addOperator(account id: String, name: String, certificateDER: [UInt8], issuer: String, actor: String) async throws -> OperatorRecord {
        _ = try await account(id)
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: certificateDER)
        } catch {
            throw OnboardingError(.invalidCertificate, "the operator certificate of \(name) is not a DER X.509 certificate")
        }
        let organizations = certificate.subject.flatMap { Array($0) }.filter { $0.type == .RDNAttributeType.organizationName }.compactMap { String($0.value) }
        guard organizations == [id] else {
            throw OnboardingError(.invalidCertificate, "the operator certificate of \(name) names organization \(organizations.joined(separator: ",")), not account \(id)")
        }
        let record = OperatorRecord(
            account: id, name: name, certificateIssuer: issuer, certificateSerial: certificate.serialHex,
            fingerprintSHA256: hexString(SHA256.hash(data: certificateDER)), addedAt: clock.now(), addedBy: actor
        )
        do {
            try await store.addOperator(record)
        } catch let error as StoreError where error.code == .duplicate {
            throw OnboardingError(.storeDuplicate, "that certificate is already an operator's: issue a new certificate for \(name)")
        }
        _ = try await audit.record(
            AuditEvent(actor: actor, action: "account.operator.add", subject: id, details: ["operator": name, "fingerprint": record.fingerprintSHA256, "serial": record.certificateSerial])
        )
        return record
    }

    /// Removes `account`'s operator holding the certificate with this fingerprint; audited as `account.operator.remove`.
    public func removeOperator(account id: String, fingerprintSHA256: String, actor: String) async throws {
        _ = try await account(id)
        let fingerprint = fingerprintSHA256.lowercased()
        guard let record = try await store.operatorRecord(fingerprintSHA256: fingerprint), record.account == id, record.removedAt == nil else {
            throw OnboardingError(.notFound, "account \(id) has no operator with certificate fingerprint \(fingerprint)")
        }
        let now = clock.now()
        do {
            try await store.removeOperator(account: id, fingerprintSHA256: fingerprint, at: now, by: actor)
        } catch let error as StoreError where error.code == .notFound {
            throw OnboardingError(.notFound, "account \(id) has no operator with certificate fingerprint \(fingerprint)")
        }
        // Their certificate is revoked too (RFC 5280 reason 3, affiliationChanged), in the audit log's security state:
        // what the account API checks, so a removal row put back by someone with the database does not let them in.
        try? await store.revokeCertificate(issuer: record.certificateIssuer, serial: record.certificateSerial, reason: 3, at: now)
        let revoked = SecurityState.Change.revoked(issuer: record.certificateIssuer, serial: record.certificateSerial, reason: 3, at: now)
        _ = try await audit.record(
            AuditEvent(
                actor: actor, action: "account.operator.remove", subject: id,
                details: ["fingerprint": fingerprint, "operator": record.name, "serial": record.certificateSerial, revoked.0: revoked.1]
            )
        )
    }

    public func operators(account id: String) async throws -> [OperatorRecord] {
        _ = try await account(id)
        return try await store.operators(account: id, limit: Self.maximumPage)
    }

    /// The live operator holding the certificate with this fingerprint: what an edge uses to tell who calls.
    public func liveOperator(fingerprintSHA256: String) async throws -> OperatorRecord? {
        guard let record = try await store.operatorRecord(fingerprintSHA256: fingerprintSHA256.lowercased()), record.removedAt == nil else { return nil }
        return record
    }

    // MARK: Uploads

    /// Begins an upload to `account` of meters made by `manufacturer` (a registered Manufacturer Device CA the
    /// account accepts). A manifest needs its detached `signature` (DER ECDSA-Sig-Value over the exact bytes).
    public func beginUpload(
        account id: String, format: EnrollmentUploadRecord.Format, manufacturer: String, signature: [UInt8]? = nil, actor: String,
        progress: EnrollmentProgress? = nil
    ) async throws -> EnrollmentUploadSession {
        let account = try await account(id)
        guard let ca = try await store.certificateAuthority(named: manufacturer), ca.roleName == CertificateAuthorityRole.manufacturer.rawValue else {
            throw OnboardingError(.unregisteredManufacturer, "\(DisplayText.escaped(manufacturer, asciiOnly: true, limit: 70)) is not a registered manufacturer: name the Manufacturer Device CA that made the meters")
        }
        guard account.manufacturers.contains(manufacturer) else {
            throw OnboardingError(.manufacturerNotAccepted, "account \(id) does not accept meters of \(manufacturer) (it accepts \(account.manufacturers.joined(separator: ", "))): the platform administrators add a manufacturer to an account")
        }
        var signer: EnrollmentUploadSession.Signer?
        if format == .manifest {
            guard let signature, !signature.isEmpty else {
                throw OnboardingError(.badManifestSignature, "an enrollment manifest needs its detached signature (enrollment-manifest.json.sig)")
            }
            guard let record = try await store.certificate(issuer: ca.parent ?? ca.name, serial: ca.certificateSerial),
                let certificate = try? Certificate(derEncoded: record.der)
            else { throw OnboardingError(.storeCorrupt, "the certificate of manufacturer CA \(manufacturer) is missing from the store") }
            signer = .init(
                certificate: certificate, certificateSerial: ca.certificateSerial.lowercased(), certificateSHA256: hexString(SHA256.hash(data: record.der)),
                signature: signature
            )
        }
        let upload = EnrollmentUploadRecord(
            id: UUID().uuidString.lowercased(), account: id, manufacturer: manufacturer, format: format, createdAt: clock.now(), actor: actor
        )
        try await store.beginUpload(upload)
        return EnrollmentUploadSession(onboarding: self, record: upload, signer: signer, progress: progress)
    }

    /// Records a committed upload in the audit log: one entry with its counts, and one naming its conflicts.
    func committed(
        upload: String, account: String, manufacturer: String, format: EnrollmentUploadRecord.Format, batch: String?, meters: Int64,
        counts: EnrollmentCommitCounts, actor: String
    ) async throws -> EnrollmentUploadResult {
        var conflicting: [String] = []
        if counts.conflicts > 0 {
            var after: Int64?
            scan: while conflicting.count < Self.conflictsNamed {
                let page = try await store.conflicts(account: account, openOnly: true, after: after, limit: Self.maximumPage)
                for conflict in page where conflict.upload == upload && conflict.claimant == account {
                    conflicting.append(conflict.eui64)
                    if conflicting.count == Self.conflictsNamed { break scan }
                }
                guard let last = page.last, page.count == Self.maximumPage else { break }
                after = last.id
            }
        }
        var details = [
            "upload": upload, "manufacturer": manufacturer, "format": format.rawValue, "meters": "\(meters)", "claimed": "\(counts.claimed)",
            "alreadyHeld": "\(counts.alreadyHeld)", "conflicts": "\(counts.conflicts)",
        ]
        if let batch { details["batch"] = batch }
        _ = try await audit.record(AuditEvent(actor: actor, action: "enrollment.upload", subject: account, details: details))
        if counts.conflicts > 0 {
            _ = try await audit.record(
                AuditEvent(
                    actor: actor, action: "enrollment.conflict", subject: account,
                    details: ["upload": upload, "conflicts": "\(counts.conflicts)", "meters": conflicting.joined(separator: ",")]
                )
            )
        }
        return EnrollmentUploadResult(
            upload: upload, account: account, manufacturer: manufacturer, format: format, batch: batch, meters: meters, claimed: counts.claimed,
            alreadyHeld: counts.alreadyHeld, conflicts: counts.conflicts, conflictingMeters: conflicting
        )
    }

    /// Records a refused upload (best effort: the refusal itself reaches the caller whatever happens here).
    func refused(upload: String, account: String, manufacturer: String, format: EnrollmentUploadRecord.Format, error: any Error, actor: String) async {
        let code = (error as? any CodedError)?.errorCode.rawValue ?? ErrorCode.internalError.rawValue
        let message = (error as? any CodedError)?.message ?? "the upload failed"
        _ = try? await audit.record(
            AuditEvent(
                actor: actor, action: "enrollment.upload", subject: account, outcome: .refused,
                details: ["upload": upload, "manufacturer": manufacturer, "format": format.rawValue, "code": code, "reason": String(message.prefix(300))]
            )
        )
    }

    // MARK: Claims, conflicts, change of supplier

    static func meter(_ text: String) throws -> String { try EUI64(text).description }

    /// The account's open claim of the meter; nil if it does not hold it (whoever else may).
    public func claim(eui64: String, account id: String) async throws -> ClaimRecord? {
        _ = try await account(id)
        guard let claim = try await store.claim(eui64: try Self.meter(eui64)), claim.account == id else { return nil }
        return claim
    }

    /// The account's claims in EUI-64 order after `eui64`, at most `limit` (≤ ``maximumPage``).
    public func claims(account id: String, after eui64: String? = nil, limit: Int = maximumPage) async throws -> [ClaimRecord] {
        _ = try await account(id)
        return try await store.claims(account: id, after: try eui64.map(Self.meter), limit: min(max(limit, 0), Self.maximumPage))
    }

    /// Conflicts the account is a side of (holder or claimant), by id after `id`.
    public func conflicts(account id: String, openOnly: Bool = true, after: Int64? = nil, limit: Int = maximumPage) async throws -> [ConflictRecord] {
        _ = try await account(id)
        return try await store.conflicts(account: id, openOnly: openOnly, after: after, limit: min(max(limit, 0), Self.maximumPage))
    }

    /// What a release did: the operational certificates recorded for revocation.
    public struct Release: Sendable, Hashable, Codable {
        public var eui64: String
        public var account: String
        public var revocations: [RevocationCandidate]
    }

    /// Change of supplier: `account` releases the meter it holds; the meter's live operational certificates from the
    /// account's Operational CA are recorded for revocation (superseded). Audited as `enrollment.release`. Refused
    /// as `onboarding.not-claimed` (nothing changes) if the account does not hold the meter.
    public func release(eui64 text: String, account id: String, actor: String) async throws -> Release {
        let account = try await account(id)
        let eui64 = try Self.meter(text)
        guard let claim = try await store.claim(eui64: eui64), claim.account == id else {
            throw OnboardingError(.notClaimed, "account \(id) does not hold meter \(eui64): only the holding account releases a meter")
        }
        let candidates = try await operationalCertificates(of: eui64, issuer: account.operationalCA)
        do {
            try await store.release(eui64: eui64, account: id, at: clock.now(), actor: actor, revocationCandidates: candidates)
        } catch let error as StoreError where error.code == .notFound {
            throw OnboardingError(.notClaimed, "account \(id) does not hold meter \(eui64): only the holding account releases a meter")
        }
        _ = try await audit.record(
            AuditEvent(
                actor: actor, action: "enrollment.release", subject: eui64,
                details: ["account": id, "revocations": candidates.map { "\($0.issuer)/\($0.serial)" }.joined(separator: ",")]
            )
        )
        try await revokeSuperseded(candidates, by: .accountOperator(account: id, operationalCA: account.operationalCA, actor: actor))
        return Release(eui64: eui64, account: id, revocations: candidates)
    }

    /// Change of supplier: the old account's operational certificates are revoked at once (RFC 5280 superseded),
    /// through the one revocation path (audited, bound to the audit log), so the CRLs and the OCSP responder answer
    /// revoked within a second. Their pending-revocation rows stay as the record of why.
    func revokeSuperseded(_ candidates: [RevocationCandidate], by revoker: Revoker) async throws {
        guard !candidates.isEmpty else { return }
        let revocation = CertificateRevocation(store: store, audit: audit, clock: clock)
        for start in stride(from: 0, to: candidates.count, by: CertificateRevocation.chunkSize) {
            let chunk = candidates[start..<min(start + CertificateRevocation.chunkSize, candidates.count)]
            _ = try await revocation.revoke(chunk.map { RevocationTarget(issuer: $0.issuer, serial: $0.serial) }, reason: .superseded, by: revoker)
        }
    }

    /// The meter's live (unrevoked, unexpired) operational certificates issued by `issuer`.
    func operationalCertificates(of eui64: String, issuer: String) async throws -> [RevocationCandidate] {
        let now = clock.now()
        var found: [RevocationCandidate] = []
        var position: CertificateListPosition?
        repeat {
            let page = try await store.certificates(matching: CertificateFilter(issuer: issuer, eui64: eui64), after: position, limit: 100)
            for record in page.certificates where record.kind == .deviceOperational && record.notAfter > now {
                if try await store.revocation(issuer: record.issuer, serial: record.serial) == nil {
                    found.append(RevocationCandidate(issuer: record.issuer, serial: record.serial))
                }
            }
            position = page.next
        } while position != nil && found.count < 1000
        return found
    }

    /// Closes the open conflict of `claimant` over the meter: in favour of the claimant the claim moves to it and the
    /// holder's operational certificates are recorded for revocation; in favour of the holder only the conflict
    /// closes. Audited as `enrollment.conflict.resolve`. The platform's decision: the caller runs it under quorum.
    public func resolveConflict(eui64 text: String, claimant: String, inFavourOf resolution: ConflictResolution, actor: String) async throws -> ConflictRecord {
        let eui64 = try Self.meter(text)
        guard resolution != .released else {
            throw OnboardingError(.invalidArgument, "a conflict is resolved in favour of the claimant or of the holder")
        }
        guard let open = try await store.openConflicts(eui64: eui64).first(where: { $0.claimant == claimant }) else {
            throw OnboardingError(.noOpenConflict, "there is no open conflict of account \(claimant) over meter \(eui64)")
        }
        var candidates: [RevocationCandidate] = []
        if resolution == .claimant {
            candidates = try await operationalCertificates(of: eui64, issuer: try await account(open.holder).operationalCA)
        }
        let closed: ConflictRecord
        do {
            closed = try await store.resolveConflict(
                eui64: eui64, claimant: claimant, inFavourOf: resolution, at: clock.now(), actor: actor, revocationCandidates: candidates
            )
        } catch let error as StoreError where error.code == .notFound {
            throw OnboardingError(.noOpenConflict, "there is no open conflict of account \(claimant) over meter \(eui64)")
        }
        _ = try await audit.record(
            AuditEvent(
                actor: actor, action: "enrollment.conflict.resolve", subject: eui64,
                details: [
                    "holder": open.holder, "claimant": claimant, "inFavourOf": resolution.rawValue,
                    "revocations": candidates.map { "\($0.issuer)/\($0.serial)" }.joined(separator: ","),
                ]
            )
        )
        try await revokeSuperseded(candidates, by: .officer(actor: actor))
        return closed
    }

    /// The meter's history as `account` may see it: the events it took part in, oldest first. Refused as
    /// `onboarding.not-claimed` if the account never had to do with the meter.
    public func history(eui64 text: String, account id: String) async throws -> [MeterHistoryEvent] {
        _ = try await account(id)
        let eui64 = try Self.meter(text)
        let visible = try await history(eui64: eui64).filter { $0.account == id || $0.counterparty == id }
        guard !visible.isEmpty else {
            throw OnboardingError(.notClaimed, "account \(id) has no history with meter \(eui64)")
        }
        return visible
    }

    /// The meter's whole history, oldest first (the platform's view).
    public func history(eui64 text: String) async throws -> [MeterHistoryEvent] {
        let eui64 = try Self.meter(text)
        var events: [MeterHistoryEvent] = []
        var after: Int64?
        while events.count < 10 * Self.maximumPage {
            let page = try await store.history(eui64: eui64, after: after, limit: Self.maximumPage)
            events += page
            guard let last = page.last, page.count == Self.maximumPage else { break }
            after = last.id
        }
        return events
    }

    /// Certificates recorded for revocation (what the revocation service consumes).
    public func pendingRevocations(after position: CertificateListPosition? = nil, limit: Int = maximumPage) async throws -> [PendingRevocationRecord] {
        try await store.pendingRevocations(after: position, limit: min(max(limit, 0), Self.maximumPage))
    }
}
