import Hummingbird
import MeterTrustCore

/// The HTTP edge's one mapping from an ``ErrorCode`` to a status (every server role uses it). The body is an RFC 9457
/// problem: `type` is `urn:metertrust:error:<code>`, `title` the code, `status`, `detail` the message, and `code`.
public enum HTTPErrorMapping {
    public static func status(for code: ErrorCode) -> HTTPResponse.Status {
        switch code {
        case .invalidArgument, .malformedInput, .untrustedChain, .malformedRequest, .badSignature, .keyNotAllowed,
            .requestExceedsProfile, .unknownProfile, .pkiInvalidArgument, .invalidManifest, .factoryInput,
            .invalidBundle, .invalidRequest, .invalidCertificate, .usage, .auditMalformed, .configuration,
            .storeCheckViolation, .storeNotNull, .storeForeignKey, .storeConstraint, .invalidAccount, .badManifestSignature,
            .malformedManifest, .malformedList, .unknownMeter, .otherManufacturer, .fingerprintMismatch, .meterListedTwice,
            .pskMalformedImport, .pskCannotOpen:
            return .badRequest
        case .unauthenticated:
            return .unauthorized
        case .forgedApproval, .unknownCustodian, .removedCustodian, .wrongRole, .selfApproval, .revokedAuthority,
            .unregisteredManufacturer, .manufacturerNotAccepted, .otherAccount, .estUntrustedCertificate, .estRevokedCertificate,
            .estExpiredCertificate, .estPSKRequired, .estIdentityMismatch, .estNotClaimed, .estMeterInConflict, .estNothingToRenew,
            .revocationUnderQuorum, .revocationNotPermitted:
            return .forbidden
        case .unknownAuthority, .storeNotFound, .auditNotFound, .unknownRequest, .notFound, .unknownAccount, .notClaimed, .noOpenConflict, .pskUnknownMeter,
            .revocationUnknownCertificate:
            return .notFound
        case .expiredRequest:
            return .gone
        case .authorityExists, .alreadyIssued, .keyReused, .storeDuplicate, .duplicateApproval, .wrongRequest, .alreadyExecuted,
            .belowQuorum, .notBootstrapped, .auditNotInitialised, .underQuorumControl, .lockOut, .backup, .batchRefusedEveryMeter,
            .configuratorLocked, .configuratorWrongStage, .executionFailed, .meterNotEnrolled:
            return .conflict
        case .estRefused, .estBadResponse:
            // A meter's view of an EST server's answer; no server produces it, a proxy relaying it would say 502.
            return .badGateway
        case .payloadTooLarge, .uploadTooLarge:
            return .contentTooLarge
        case .hsmModuleLoad, .hsmTokenNotFound, .hsmPINUnavailable, .hsmPKCS11, .hsmConfiguration, .storeUnavailable,
            .storeMigration, .unreachable, .issuanceFailed, .estBusy:
            return .serviceUnavailable
        case .hsmKeyNotFound, .hsmInvalidKeyMaterial, .storeCorrupt, .auditTampered, .auditSignature, .untrustedState,
            .factoryOutput, .configuratorStorage, .fileSystem, .internalError:
            return .internalServerError
        }
    }

    /// Seconds a client should wait before retrying a refusal with this code (the `Retry-After` header, RFC 9110
    /// §10.2.3), or nil: a full enrollment queue clears as the HSM signs.
    public static func retryAfter(for code: ErrorCode) -> Int? {
        code == .estBusy ? 1 : nil
    }
}
