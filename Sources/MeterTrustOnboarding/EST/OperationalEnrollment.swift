import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore
import SwiftASN1
import X509

/// How a meter proved who it is on its connection to the EST server.
public enum MeterCredential: Sendable, Hashable {
    /// Its factory identity (IDevID) certificate, DER, whose key signed the TLS handshake: `simpleenroll`.
    case factoryCertificate([UInt8])
    /// Its current operational (LDevID) certificate, DER, whose key signed the TLS handshake: `simplereenroll`
    /// (RFC 7030 §4.2.2).
    case operationalCertificate([UInt8])
    /// A TLS-PSK handshake with the meter's PSK, derived in the HSM from its EUI-64 (the PSK listener): for meters
    /// whose factory key is keyAgreement-only and so cannot sign a handshake. There is no certificate: the meter's
    /// manufacturer and device type come from its device identity certificate in the store (a certificate the
    /// manufacturer CA signed in the HSM), and its revocation is checked as for a certificate.
    case presharedKey(EUI64)

    /// Which kind of credential, as audit entries name it (stored values: never renamed).
    public enum Kind: String, Sendable, Hashable {
        case factoryCertificate = "factory-certificate"
        case operationalCertificate = "operational-certificate"
        case presharedKey = "preshared-key"
    }

    public var kind: Kind {
        switch self {
        case .factoryCertificate: .factoryCertificate
        case .operationalCertificate: .operationalCertificate
        case .presharedKey: .presharedKey
        }
    }
}

/// Which EST operation a meter asks for (RFC 7030 §4.2.1, §4.2.2).
public enum EnrollmentOperation: String, Sendable, Hashable {
    /// Its first operational certificate (or one for a new account): factory certificate or PSK.
    case simpleEnroll = "simpleenroll"
    /// A renewal of its current operational certificate, for the same key or a new one (§4.2.2 allows rekey):
    /// the operational certificate or, for a PSK meter, the PSK while it holds a current operational certificate.
    case simpleReenroll = "simplereenroll"
}

/// A meter whose credential passed every check of ``OperationalEnrollment/authenticate(_:)``; only that method
/// makes one.
public struct AuthenticatedMeter: Sendable, Hashable {
    public let eui64: EUI64
    /// hwType of its HardwareModuleName: the operational certificate carries the same.
    public let hardwareType: ASN1ObjectIdentifier
    /// The Manufacturer Device CA that made it.
    public let manufacturer: String
    /// For an operational credential: the Operational CA that issued it.
    public let operationalCA: String?
    public let credential: MeterCredential.Kind
}

/// EST's rules (RFC 7030): which meter may have an operational certificate (device-operational, from the Operational
/// CA of the one account that claims it), checked on the meter's credential and its request, issued in the HSM,
/// stored, audited. The HTTP edge (`EstRole`) is thin over this; so is the PSK listener's.
///
/// **What each decision rests on.** The meter's identity: a certificate signed by a registered Manufacturer Device
/// CA (or an Operational CA) whose key is in the HSM, checked against that CA's certificate loaded through
/// ``CAHierarchy/authority(named:toIssue:)`` (its HSM key must match it, and neither the store nor the verified audit
/// log may say it is revoked or destroyed); the certificate's own revocation: the verified audit log's state
/// (``VerifiedStateCache``) or the store's row, either refuses. The claim and the account are store rows (as
/// onboarding's are; see README "What the database alone decides"): someone with the database can point a meter at
/// another account, which is what claims are; they cannot make a meter another meter, nor a CA sign without its key.
public struct OperationalEnrollment: Sendable {
    public let store: any MeterTrustStore
    public let hierarchy: CAHierarchy
    public let audit: AuditLog
    public let state: VerifiedStateCache
    public let queue: EnrollmentQueue
    public let clock: any WallClock

    public init(
        store: any MeterTrustStore, hierarchy: CAHierarchy, audit: AuditLog, state: VerifiedStateCache? = nil, queue: EnrollmentQueue = EnrollmentQueue(),
        clock: any WallClock = SystemClock()
    ) {
        self.store = store
        self.hierarchy = hierarchy
        self.audit = audit
        self.state = state ?? VerifiedStateCache(audit: audit)
        self.queue = queue
        self.clock = clock
    }

    /// An issued operational certificate and what it was issued for.
    public struct Issued: Sendable {
        public let meter: AuthenticatedMeter
        public let account: String
        public let certificate: Certificate
        public let record: CertificateRecord
        /// The issuing Operational CA's certificate first, the root's last.
        public let chain: [Certificate]
    }

    // MARK: Enrollment

    /// `simpleenroll` (with ``MeterCredential/factoryCertificate(_:)`` or ``MeterCredential/presharedKey(_:)``) and
    /// `simplereenroll` (with ``MeterCredential/operationalCertificate(_:)``): checks the credential, the request
    /// (DER PKCS#10) and the claim, then issues device-operational from the claiming account's Operational CA.
    /// `label`: the account the meter asked for (`/.well-known/est/<label>/`), which must be the claiming one.
    /// `authenticated` is told the meter as soon as its credential passed (for the request log). Bounded by
    /// ``queue``: refused with `est.busy` when it is full. Nothing is stored or audited unless a certificate is issued.
    ///
    /// `operation` defaults to what the credential implies (an operational certificate renews); a PSK meter names it,
    /// and renews only while it holds a current operational certificate from its account's Operational CA
    /// (`est.nothing-to-renew` otherwise).
    public func enroll(
        _ credential: MeterCredential, csr der: [UInt8], label: String?, operation: EnrollmentOperation? = nil,
        authenticated: @Sendable (AuthenticatedMeter) -> Void = { _ in }
    ) async throws -> Issued {
        let operation = operation ?? (credential.kind == .operationalCertificate ? .simpleReenroll : .simpleEnroll)
        switch (credential.kind, operation) {
        case (.factoryCertificate, .simpleReenroll):
            throw OnboardingError(.estUntrustedCertificate, "simplereenroll renews with the meter's current operational certificate, not its factory certificate: use simpleenroll")
        case (.operationalCertificate, .simpleEnroll):
            throw OnboardingError(.estUntrustedCertificate, "simpleenroll takes the meter's factory certificate; an operational certificate renews with simplereenroll")
        default: break
        }
        return try await queue.admit {
            let meter = try await authenticate(credential)
            authenticated(meter)
            let csr = try CSRCheck.validate(der: der, profile: .deviceOperational)
            guard let named = csr.claimedEUI64 else {
                throw OnboardingError(
                    .estIdentityMismatch,
                    "the request names no meter: meter \(meter.eui64) puts CN=\(meter.eui64.deviceURN) in its subject or its HardwareModuleName in a subjectAltName"
                )
            }
            guard named == meter.eui64 else {
                throw OnboardingError(.estIdentityMismatch, "the request is for meter \(named), but the client authenticated as meter \(meter.eui64): a meter enrolls only itself")
            }
            if let type = csr.claimedHardwareType, type != meter.hardwareType {
                throw OnboardingError(
                    .estIdentityMismatch,
                    "the request names device type \(type.dotted), but meter \(meter.eui64)'s factory identity says \(meter.hardwareType.dotted)"
                )
            }
            let account = try await claimingAccount(of: meter, label: label)
            if let issuer = meter.operationalCA, issuer != account.operationalCA {
                throw OnboardingError(
                    .estNotClaimed,
                    "meter \(meter.eui64)'s operational certificate is from CA \(issuer), not from its account's Operational CA: enroll again with the factory certificate (simpleenroll)"
                )
            }
            if operation == .simpleReenroll, meter.credential == .presharedKey {
                try await requireCurrentOperationalCertificate(of: meter.eui64, from: account)
            }
            let authority = try await hierarchy.authority(named: account.operationalCA)
            let issued = try await CertificateIssuer(hierarchy: hierarchy).issue(
                csr, profile: .deviceOperational, authority: authority, eui64: meter.eui64, hardwareType: meter.hardwareType
            )
            var details = ["account": account.id, "ca": authority.name, "serial": issued.record.serial, "credential": meter.credential.rawValue]
            if let label { details["label"] = label }
            let action = operation == .simpleReenroll ? "est.reenroll" : "est.enroll"
            _ = try await audit.record(AuditEvent(actor: "meter:\(meter.eui64)", action: action, subject: meter.eui64.description, details: details))
            return Issued(meter: meter, account: account.id, certificate: issued.certificate, record: issued.record, chain: issued.chain)
        }
    }

    /// The account that may give `meter` its operational certificate: exactly one claims it (no open conflict),
    /// `label` (if any) is that account, and it accepts the meter's manufacturer.
    func claimingAccount(of meter: AuthenticatedMeter, label: String?) async throws -> AccountRecord {
        let eui64 = meter.eui64.description
        let conflicts = try await store.openConflicts(eui64: eui64)
        if let conflict = conflicts.first {
            throw OnboardingError(
                .estMeterInConflict,
                "meter \(eui64) is in conflict: accounts \(conflict.holder) and \(conflict.claimant) both list it, and it gets no operational certificate until the platform resolves the conflict"
            )
        }
        guard let claim = try await store.claim(eui64: eui64) else {
            throw OnboardingError(
                .estNotClaimed, "no account claims meter \(eui64): the utility that installs it uploads it to its account's enrollment list first"
            )
        }
        if let label, label != claim.account {
            throw OnboardingError(
                .otherAccount, "meter \(eui64) is not enrolled in account \(DisplayText.escaped(label, asciiOnly: true, limit: 70)): use the EST path of the account that listed it"
            )
        }
        guard let account = try await store.account(id: claim.account) else {
            throw OnboardingError(.storeCorrupt, "meter \(eui64) is claimed by account \(claim.account), which does not exist")
        }
        guard account.manufacturers.contains(meter.manufacturer) else {
            throw OnboardingError(
                .manufacturerNotAccepted, "account \(account.id) does not accept meters of \(meter.manufacturer): the platform administrators add the manufacturer to the account"
            )
        }
        return account
    }

    /// A PSK meter renews only what it has: an operational certificate of `account`'s Operational CA, valid now and
    /// revoked neither in the verified audit log nor in the store.
    func requireCurrentOperationalCertificate(of eui64: EUI64, from account: AccountRecord) async throws {
        let now = clock.now()
        let state = try await self.state.state()
        var position: CertificateListPosition?
        repeat {
            let page = try await store.certificates(
                matching: CertificateFilter(issuer: account.operationalCA, profile: CertificateProfile.deviceOperational.name, eui64: eui64.description),
                after: position, limit: 100
            )
            for record in page.certificates where record.notBefore <= now && now <= record.notAfter {
                guard !state.isRevoked(issuer: record.issuer, serial: record.serial),
                    try await store.revocation(issuer: record.issuer, serial: record.serial) == nil
                else { continue }
                return
            }
            position = page.next
        } while position != nil
        throw OnboardingError(
            .estNothingToRenew,
            "meter \(eui64) holds no current operational certificate from account \(account.id)'s Operational CA \(account.operationalCA): its first one comes from simpleenroll"
        )
    }

    // MARK: Authentication

    /// The meter behind `credential`, or a refusal saying why not (`est.*`, `factory.unregistered-manufacturer`).
    public func authenticate(_ credential: MeterCredential) async throws -> AuthenticatedMeter {
        switch credential {
        case .factoryCertificate(let der): return try await factoryIdentity(der)
        case .operationalCertificate(let der): return try await operationalIdentity(der)
        case .presharedKey(let eui64): return try await presharedKeyIdentity(eui64)
        }
    }

    /// An IDevID: issued by a registered, live Manufacturer Device CA (chain checked to the root), valid now, not
    /// revoked, with a HardwareModuleName, and a key that can sign (digitalSignature).
    func factoryIdentity(_ der: [UInt8]) async throws -> AuthenticatedMeter {
        let certificate = try Self.certificate(der)
        let authority = try await issuingAuthority(of: certificate, role: .manufacturer) {
            throw OnboardingError(
                .unregisteredManufacturer,
                "the client certificate was issued by \(DisplayText.escaped("\(certificate.issuer)", asciiOnly: true, limit: 120)), which is not a registered Manufacturer Device CA"
                    + " (an operational certificate renews with simplereenroll)"
            )
        }
        let (eui64, hardwareType) = try await checkDeviceCertificate(certificate, issuedBy: authority, what: "factory certificate")
        let usage = try? certificate.extensions.keyUsage
        guard usage?.digitalSignature == true else {
            if usage?.keyAgreement == true {
                throw OnboardingError(
                    .estPSKRequired,
                    "meter \(eui64)'s factory certificate is for key agreement only: its key cannot have signed the TLS handshake; such meters enroll by PSK"
                )
            }
            throw OnboardingError(.estUntrustedCertificate, "meter \(eui64)'s factory certificate does not allow digitalSignature")
        }
        return AuthenticatedMeter(
            eui64: eui64, hardwareType: hardwareType, manufacturer: authority.name, operationalCA: nil, credential: .factoryCertificate
        )
    }

    /// An LDevID: issued by a live Operational CA of this platform, valid now, not revoked, device-operational
    /// (HardwareModuleName, clientAuth).
    func operationalIdentity(_ der: [UInt8]) async throws -> AuthenticatedMeter {
        let certificate = try Self.certificate(der)
        let authority = try await issuingAuthority(of: certificate, role: .operational) {
            throw OnboardingError(
                .estUntrustedCertificate,
                "the client certificate was issued by \(DisplayText.escaped("\(certificate.issuer)", asciiOnly: true, limit: 120)), which is not an Operational CA of this platform: "
                    + "a meter's first operational certificate comes from simpleenroll with its factory certificate"
            )
        }
        let (eui64, hardwareType) = try await checkDeviceCertificate(certificate, issuedBy: authority, what: "operational certificate")
        guard let usages = try? certificate.extensions.extendedKeyUsage, usages.contains(.clientAuth) else {
            throw OnboardingError(.estUntrustedCertificate, "meter \(eui64)'s operational certificate lacks extended key usage clientAuth")
        }
        let identity = try await deviceIdentityRecord(of: eui64)
        return AuthenticatedMeter(
            eui64: eui64, hardwareType: hardwareType, manufacturer: identity.issuer, operationalCA: authority.name,
            credential: .operationalCertificate
        )
    }

    /// A meter the PSK listener authenticated by its HSM-derived key: its device identity certificate from the store
    /// gives its manufacturer and device type; that certificate must not be revoked, nor its CA revoked or destroyed.
    func presharedKeyIdentity(_ eui64: EUI64) async throws -> AuthenticatedMeter {
        let record = try await deviceIdentityRecord(of: eui64)
        let certificate = try Self.certificate(record.der)
        let authority = try await issuingAuthority(of: certificate, role: .manufacturer) {
            throw OnboardingError(.unregisteredManufacturer, "meter \(eui64)'s factory certificate is not from a registered Manufacturer Device CA")
        }
        let (named, hardwareType) = try await checkDeviceCertificate(certificate, issuedBy: authority, what: "factory certificate")
        guard named == eui64 else {
            throw OnboardingError(.storeCorrupt, "the store's device identity of meter \(eui64) names meter \(named): it was changed outside MeterTrust")
        }
        return AuthenticatedMeter(
            eui64: eui64, hardwareType: hardwareType, manufacturer: authority.name, operationalCA: nil, credential: .presharedKey
        )
    }

    /// The CA of `role` whose subject is the certificate's issuer, loaded with its HSM key checked and its status
    /// judged (store and verified audit log); `unknown` throws the refusal for an issuer that is none of them.
    private func issuingAuthority(
        of certificate: Certificate, role: CertificateAuthorityRole, unknown: () throws -> Never
    ) async throws -> CertificateAuthority {
        for record in try await hierarchy.authorities(role: role) {
            guard let stored = try await store.certificate(issuer: record.parent ?? record.name, serial: record.certificateSerial),
                let caCertificate = try? Certificate(derEncoded: stored.der), caCertificate.subject == certificate.issuer
            else { continue }
            do {
                return try await hierarchy.authority(named: record.name, toIssue: true)
            } catch let error as any CodedError where error.errorCode == .revokedAuthority {
                throw OnboardingError(.estRevokedCertificate, "the client certificate's issuer, CA \(record.name), is revoked: \(error.message)")
            } catch let error as any CodedError where [.unknownAuthority, .hsmKeyNotFound].contains(error.errorCode) {
                throw OnboardingError(
                    role == .manufacturer ? .unregisteredManufacturer : .estUntrustedCertificate,
                    "the client certificate's issuer, CA \(record.name), issues nothing more: \(error.message)"
                )
            }
        }
        try unknown()
    }

    /// The checks every meter certificate passes: valid now, chains to `authority` and the root, a HardwareModuleName
    /// with an 8-octet serial, not revoked (verified audit log or store).
    private func checkDeviceCertificate(
        _ certificate: Certificate, issuedBy authority: CertificateAuthority, what: String
    ) async throws -> (EUI64, ASN1ObjectIdentifier) {
        guard let name = try? certificate.hardwareModuleName, let eui64 = try? EUI64(bytes: name.serialNumber) else {
            throw OnboardingError(.estUntrustedCertificate, "the client certificate from CA \(authority.name) is not a meter's: it carries no HardwareModuleName with an EUI-64")
        }
        let now = clock.now()
        guard certificate.notValidBefore <= now, now <= certificate.notValidAfter else {
            let formatter = ISO8601DateFormatter()
            throw OnboardingError(
                .estExpiredCertificate,
                "meter \(eui64)'s \(what) is not valid now: valid from \(formatter.string(from: certificate.notValidBefore)) to \(formatter.string(from: certificate.notValidAfter))"
            )
        }
        do {
            try await ChainVerification.verify(leaf: certificate, intermediates: [authority.certificate], root: authority.root)
        } catch let error as CoreError {
            throw OnboardingError(.estUntrustedCertificate, "meter \(eui64)'s \(what) does not chain to CA \(authority.name): \(error.message)")
        }
        let serial = certificate.serialHex
        let state = try await self.state.state()
        if state.isRevoked(issuer: authority.name, serial: serial) {
            throw OnboardingError(.estRevokedCertificate, "meter \(eui64)'s \(what) (CA \(authority.name), serial \(serial)) is revoked")
        }
        if let revoked = try await store.revocation(issuer: authority.name, serial: serial) {
            throw OnboardingError(
                .estRevokedCertificate, "meter \(eui64)'s \(what) (CA \(authority.name), serial \(serial)) was revoked on \(ISO8601DateFormatter().string(from: revoked.date))"
            )
        }
        return (eui64, name.hardwareType)
    }

    private func deviceIdentityRecord(of eui64: EUI64) async throws -> CertificateRecord {
        let page = try await store.certificates(matching: CertificateFilter(profile: CertificateProfile.deviceIdentity.name, eui64: eui64.description), after: nil, limit: 2)
        guard let record = page.certificates.first(where: { $0.kind == .deviceIdentity }) else {
            throw OnboardingError(.estUntrustedCertificate, "the platform holds no factory certificate of meter \(eui64)")
        }
        return record
    }

    private static func certificate(_ der: [UInt8]) throws -> Certificate {
        do {
            return try Certificate(derEncoded: der)
        } catch {
            throw OnboardingError(.estUntrustedCertificate, "the client certificate is not a DER X.509 certificate")
        }
    }

    // MARK: CA certificates

    /// `cacerts`: the certificates a meter needs to trust what this EST server issues. With `label`, that account's
    /// Operational CA and the root; without, the root and every live Operational CA. Each CA is loaded with its HSM
    /// key checked against its certificate, so a certificate swapped in the store is not served.
    public func caCertificates(label: String?) async throws -> [Certificate] {
        if let label {
            guard Onboarding.isAccountID(label), let account = try await store.account(id: label) else {
                throw OnboardingError(.unknownAccount, "there is no account \(DisplayText.escaped(label, asciiOnly: true, limit: 70))")
            }
            return try await hierarchy.authority(named: account.operationalCA, toIssue: false).chain
        }
        let root = try await hierarchy.rootAuthority()
        var certificates = [root.certificate]
        for record in try await hierarchy.authorities(role: .operational) where record.destroyedAt == nil {
            certificates.append(try await hierarchy.authority(named: record.name, toIssue: false).certificate)
        }
        return certificates
    }

    /// `csrattrs` (RFC 7030 §4.5): what a request for device-operational should carry, DER.
    public func csrAttributes() throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(CsrAttrs.deviceOperational)
        return serializer.serializedBytes
    }
}
