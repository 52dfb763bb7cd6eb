/// Why the quorum machinery refused something. The code is opaque and growable; the message names the request,
/// the custodian and what to do.
public struct QuorumError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Backing: String, Hashable, Sendable {
            case forgedApproval = "forged-approval"
            case expiredRequest = "expired-request"
            case unknownCustodian = "unknown-custodian"
            case removedCustodian = "removed-custodian"
            case duplicateApproval = "duplicate-approval"
            case wrongRole = "wrong-role"
            case wrongRequest = "wrong-request"
            case selfApproval = "self-approval"
            case alreadyExecuted = "already-executed"
            case belowQuorum = "below-quorum"
            case invalidRequest = "invalid-request"
            case invalidCertificate = "invalid-certificate"
            case notBootstrapped = "not-bootstrapped"
            case underQuorumControl = "under-quorum-control"
            case backup = "backup"
            case lockOut = "lock-out"
            case untrustedState = "untrusted-state"
        }
        let backing: Backing
        public static let forgedApproval = Code(backing: .forgedApproval)
        public static let expiredRequest = Code(backing: .expiredRequest)
        public static let unknownCustodian = Code(backing: .unknownCustodian)
        public static let removedCustodian = Code(backing: .removedCustodian)
        public static let duplicateApproval = Code(backing: .duplicateApproval)
        public static let wrongRole = Code(backing: .wrongRole)
        public static let wrongRequest = Code(backing: .wrongRequest)
        public static let selfApproval = Code(backing: .selfApproval)
        public static let alreadyExecuted = Code(backing: .alreadyExecuted)
        public static let belowQuorum = Code(backing: .belowQuorum)
        public static let invalidRequest = Code(backing: .invalidRequest)
        public static let invalidCertificate = Code(backing: .invalidCertificate)
        public static let notBootstrapped = Code(backing: .notBootstrapped)
        public static let underQuorumControl = Code(backing: .underQuorumControl)
        public static let backup = Code(backing: .backup)
        /// The operation would leave the deployment without a reachable quorum (no Admin CA, two, no custodians).
        public static let lockOut = Code(backing: .lockOut)
        /// A store row does not match the verified audit log (someone changed the database outside MeterTrust).
        public static let untrustedState = Code(backing: .untrustedState)
        public var description: String { backing.rawValue }
    }

    public let code: Code
    public let message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
