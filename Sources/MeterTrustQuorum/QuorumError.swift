import MeterTrustCore

/// Why the quorum machinery refused something. The code is opaque and growable; the message names the request,
/// the custodian and what to do.
public struct QuorumError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code in the closed set every edge maps.
        public let errorCode: ErrorCode
        public static let forgedApproval = Code(errorCode: .forgedApproval)
        public static let expiredRequest = Code(errorCode: .expiredRequest)
        public static let unknownCustodian = Code(errorCode: .unknownCustodian)
        public static let removedCustodian = Code(errorCode: .removedCustodian)
        public static let duplicateApproval = Code(errorCode: .duplicateApproval)
        public static let wrongRole = Code(errorCode: .wrongRole)
        public static let wrongRequest = Code(errorCode: .wrongRequest)
        /// No request has this id.
        public static let unknownRequest = Code(errorCode: .unknownRequest)
        /// The operation was approved and claimed, and failed while it ran.
        public static let executionFailed = Code(errorCode: .executionFailed)
        public static let selfApproval = Code(errorCode: .selfApproval)
        public static let alreadyExecuted = Code(errorCode: .alreadyExecuted)
        public static let belowQuorum = Code(errorCode: .belowQuorum)
        public static let invalidRequest = Code(errorCode: .invalidRequest)
        public static let invalidCertificate = Code(errorCode: .invalidCertificate)
        public static let notBootstrapped = Code(errorCode: .notBootstrapped)
        public static let underQuorumControl = Code(errorCode: .underQuorumControl)
        public static let backup = Code(errorCode: .backup)
        /// The operation would leave the deployment without a reachable quorum (no Admin CA, two, no custodians).
        public static let lockOut = Code(errorCode: .lockOut)
        /// A store row does not match the verified audit log (someone changed the database outside MeterTrust).
        public static let untrustedState = Code(errorCode: .untrustedState)
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

extension QuorumError: CodedError {
    public var errorCode: ErrorCode { code.errorCode }
}
