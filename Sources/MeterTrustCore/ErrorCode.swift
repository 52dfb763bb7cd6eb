/// Every reason MeterTrust refuses or fails, as one closed set of stable codes.
///
/// Each domain error (``CodedError``) carries one of these; each edge maps them in exactly one place: the CLI to a
/// message and an exit status, HTTP to a status and an RFC 9457 problem body. The raw value (`domain.reason`) is
/// what scripts and clients see (`--json` errors, the problem's `code`); it is never renamed or reused. Adding a
/// case breaks every edge's exhaustive `switch` until the edge decides what the new code means there.
public enum ErrorCode: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    // Input the shared vocabulary refuses (EUI-64, hex, DER productions, bundles, chains).
    case invalidArgument = "input.invalid-argument"
    case malformedInput = "input.malformed"
    case untrustedChain = "input.untrusted-chain"

    // PKI: requests, profiles, authorities.
    case malformedRequest = "pki.malformed-request"
    case badSignature = "pki.bad-signature"
    case keyNotAllowed = "pki.key-not-allowed"
    case requestExceedsProfile = "pki.request-exceeds-profile"
    case unknownProfile = "pki.unknown-profile"
    case unknownAuthority = "pki.unknown-authority"
    case authorityExists = "pki.authority-exists"
    case pkiInvalidArgument = "pki.invalid-argument"
    case issuanceFailed = "pki.issuance-failed"
    case revokedAuthority = "pki.revoked-authority"
    case alreadyIssued = "pki.already-issued"
    case keyReused = "pki.key-reused"

    // HSM.
    case hsmModuleLoad = "hsm.module-load"
    case hsmTokenNotFound = "hsm.token-not-found"
    case hsmPINUnavailable = "hsm.pin-unavailable"
    case hsmPKCS11 = "hsm.pkcs11"
    case hsmKeyNotFound = "hsm.key-not-found"
    case hsmInvalidKeyMaterial = "hsm.invalid-key-material"
    case hsmConfiguration = "hsm.configuration"

    // Store: each constraint kind has its own code.
    case storeDuplicate = "store.duplicate"
    case storeForeignKey = "store.foreign-key"
    case storeCheckViolation = "store.check"
    case storeNotNull = "store.not-null"
    case storeConstraint = "store.constraint"
    case storeNotFound = "store.not-found"
    case storeUnavailable = "store.unavailable"
    case storeMigration = "store.migration"
    case storeCorrupt = "store.corrupt"

    // Factory.
    case invalidManifest = "factory.invalid-manifest"
    case unregisteredManufacturer = "factory.unregistered-manufacturer"
    case factoryInput = "factory.input"
    case factoryOutput = "factory.output"
    case batchRefusedEveryMeter = "factory.every-meter-refused"

    // The meter's configurator.
    case configuratorLocked = "configurator.locked"
    case configuratorWrongStage = "configurator.wrong-stage"
    case invalidBundle = "configurator.invalid-bundle"
    case configuratorStorage = "configurator.storage"

    // The meter's EST client (what it makes of an EST server's answers).
    case estRefused = "meter.est-refused"
    case estBadResponse = "meter.est-bad-response"
    case meterNotEnrolled = "meter.not-enrolled"

    // Audit log.
    case auditMalformed = "audit.malformed"
    case auditTampered = "audit.tampered"
    case auditNotFound = "audit.not-found"
    case auditSignature = "audit.signature"
    case auditNotInitialised = "audit.not-initialised"

    // Quorum.
    case forgedApproval = "quorum.forged-approval"
    case expiredRequest = "quorum.expired-request"
    case unknownCustodian = "quorum.unknown-custodian"
    case removedCustodian = "quorum.removed-custodian"
    case duplicateApproval = "quorum.duplicate-approval"
    case wrongRole = "quorum.wrong-role"
    case wrongRequest = "quorum.wrong-request"
    case selfApproval = "quorum.self-approval"
    case alreadyExecuted = "quorum.already-executed"
    case belowQuorum = "quorum.below-quorum"
    case invalidRequest = "quorum.invalid-request"
    case unknownRequest = "quorum.unknown-request"
    case invalidCertificate = "quorum.invalid-certificate"
    case notBootstrapped = "quorum.not-bootstrapped"
    case underQuorumControl = "quorum.under-quorum-control"
    case backup = "quorum.backup"
    case lockOut = "quorum.lock-out"
    case untrustedState = "quorum.untrusted-state"
    case executionFailed = "quorum.execution-failed"

    // Onboarding: utility accounts, enrollment uploads, claims, conflicts, change of supplier.
    case invalidAccount = "onboarding.invalid-account"
    case unknownAccount = "onboarding.unknown-account"
    case badManifestSignature = "onboarding.bad-manifest-signature"
    case malformedManifest = "onboarding.malformed-manifest"
    case malformedList = "onboarding.malformed-list"
    case unknownMeter = "onboarding.unknown-meter"
    case otherManufacturer = "onboarding.other-manufacturer"
    case fingerprintMismatch = "onboarding.fingerprint-mismatch"
    case meterListedTwice = "onboarding.meter-listed-twice"
    case manufacturerNotAccepted = "onboarding.manufacturer-not-accepted"
    case uploadTooLarge = "onboarding.upload-too-large"
    case notClaimed = "onboarding.not-claimed"
    case noOpenConflict = "onboarding.no-open-conflict"
    case otherAccount = "onboarding.other-account"

    // EST (RFC 7030): a meter asking for its operational certificate.
    /// The client certificate is not a meter certificate of this platform (issuer, chain, profile).
    case estUntrustedCertificate = "est.untrusted-certificate"
    /// The meter's certificate is revoked (in the verified audit log or the store).
    case estRevokedCertificate = "est.revoked-certificate"
    /// The meter's certificate is not valid now.
    case estExpiredCertificate = "est.expired-certificate"
    /// A keyAgreement-only factory certificate, which cannot sign a TLS handshake: such meters enroll by PSK.
    case estPSKRequired = "est.psk-required"
    /// The CSR names another meter (EUI-64, HardwareModuleName) than the authenticated one, or none.
    case estIdentityMismatch = "est.identity-mismatch"
    /// No account claims the meter (never listed, or released).
    case estNotClaimed = "est.not-claimed"
    /// Two accounts list the meter: no operational certificate until the conflict is resolved.
    case estMeterInConflict = "est.meter-in-conflict"
    /// `simplereenroll` over PSK for a meter that holds no current operational certificate: `simpleenroll` first.
    case estNothingToRenew = "est.nothing-to-renew"
    /// The enrollment queue is full: retry after the Retry-After seconds.
    case estBusy = "est.busy"

    // Revocation: revoking certificates, CRLs, OCSP.
    /// The certificate (issuer and serial, or a meter's) is not one the store holds.
    case revocationUnknownCertificate = "revocation.unknown-certificate"
    /// A CA's own certificate: revoked under quorum (`admin request ca.revoke`), never by `revoke`.
    case revocationUnderQuorum = "revocation.under-quorum"
    /// The caller may not revoke that certificate (a utility operator and a factory identity certificate).
    case revocationNotPermitted = "revocation.not-permitted"

    // PSK meters: derived and imported pre-shared keys, the OEM's sealed import file.
    case pskUnknownMeter = "psk.unknown-meter"
    case pskMalformedImport = "psk.malformed-import"
    case pskCannotOpen = "psk.cannot-open"

    // Files the platform writes or reads (secret files, configuration).
    case fileSystem = "file.system"
    case configuration = "config.invalid"

    // The edges themselves.
    case usage = "edge.usage"
    case unauthenticated = "edge.unauthenticated"
    case notFound = "edge.not-found"
    case unreachable = "edge.unreachable"
    case payloadTooLarge = "edge.payload-too-large"
    case internalError = "edge.internal"

    public var description: String { rawValue }
}

/// An error that carries a stable ``ErrorCode`` and a message for people (never secret material).
public protocol CodedError: Error, CustomStringConvertible {
    var errorCode: ErrorCode { get }
    var message: String { get }
}

extension CodedError {
    public var description: String { message }
}

/// An error of the shared vocabulary: an EUI-64, hex or DER production, bundle or chain that is not what it must be.
public struct CoreError: CodedError, Hashable, Sendable {
    public let errorCode: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.errorCode = code
        self.message = message
    }
}
