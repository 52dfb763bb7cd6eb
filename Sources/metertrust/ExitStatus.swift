import ArgumentParser
import Foundation
import MeterTrustCore

/// The CLI's exit statuses: the one place an ``ErrorCode`` becomes one (README, "Exit statuses").
enum ExitStatus: Int32, CaseIterable, Sendable {
    case success = 0
    /// The input or the request was refused by a rule (a CSR, a manifest, a name, a file): fix it and run again.
    case refused = 1
    /// The command line itself is wrong (unknown option, missing argument, a value out of range).
    case usage = 2
    /// The HSM, the store or the admin API could not be reached or used: nothing was decided; try again.
    case unavailable = 3
    /// Denied: the quorum, a custodian's role or the deployment's state does not allow it.
    case denied = 4
    /// Integrity: the audit log, a checkpoint or a store row does not match what was signed. Stop and investigate.
    case untrusted = 5
    /// Partly done: a factory batch issued some meters and refused others (the report names each refusal). No error
    /// code maps here; a script that wants every meter treats it as a failure, one that wants progress as success.
    case partial = 6
    /// A fault of metertrust itself; the message says what failed.
    case internalFault = 70

    static func `for`(_ code: ErrorCode) -> ExitStatus {
        switch code {
        case .invalidArgument, .malformedInput, .untrustedChain, .malformedRequest, .badSignature, .keyNotAllowed,
            .requestExceedsProfile, .unknownProfile, .unknownAuthority, .authorityExists, .pkiInvalidArgument,
            .alreadyIssued, .keyReused, .hsmKeyNotFound, .hsmInvalidKeyMaterial, .storeDuplicate, .storeForeignKey,
            .storeCheckViolation, .storeNotNull, .storeConstraint, .storeNotFound, .invalidManifest, .unregisteredManufacturer,
            .factoryInput, .factoryOutput, .batchRefusedEveryMeter, .configuratorLocked, .configuratorWrongStage,
            .invalidBundle, .configuratorStorage, .auditNotFound, .auditNotInitialised, .invalidRequest, .unknownRequest, .invalidCertificate,
            .backup, .fileSystem, .configuration, .notFound, .payloadTooLarge, .executionFailed, .revokedAuthority,
            .invalidAccount, .unknownAccount, .badManifestSignature, .malformedManifest, .malformedList, .unknownMeter, .otherManufacturer,
            .fingerprintMismatch, .meterListedTwice, .manufacturerNotAccepted, .uploadTooLarge, .notClaimed, .noOpenConflict,
            .pskUnknownMeter, .pskMalformedImport, .pskCannotOpen, .estRefused, .estBadResponse, .meterNotEnrolled,
            .revocationUnknownCertificate:
            return .refused
        case .usage:
            return .usage
        case .hsmModuleLoad, .hsmTokenNotFound, .hsmPINUnavailable, .hsmPKCS11, .hsmConfiguration, .storeUnavailable,
            .storeMigration, .issuanceFailed, .unreachable, .estBusy:
            return .unavailable
        case .forgedApproval, .expiredRequest, .unknownCustodian, .removedCustodian, .wrongRole, .selfApproval,
            .alreadyExecuted, .belowQuorum, .duplicateApproval, .wrongRequest, .notBootstrapped, .underQuorumControl, .lockOut, .unauthenticated,
            .otherAccount, .estUntrustedCertificate, .estRevokedCertificate, .estExpiredCertificate, .estPSKRequired, .estNothingToRenew, .estIdentityMismatch,
            .estNotClaimed, .estMeterInConflict, .revocationUnderQuorum, .revocationNotPermitted:
            return .denied
        case .auditMalformed, .auditTampered, .auditSignature, .untrustedState, .storeCorrupt:
            return .untrusted
        case .internalError:
            return .internalFault
        }
    }

    /// The code of an error no domain module coded: files and JSON the user gave are refused input; anything else
    /// is metertrust's own fault.
    static func code(of error: any Error) -> ErrorCode {
        switch error {
        case let coded as any CodedError: return coded.errorCode
        case is CocoaError, is POSIXError: return .fileSystem
        case is DecodingError: return .malformedInput
        default: return .internalError
        }
    }
}
