/// An error from the PKI layer: what is wrong, and what to do about it.
///
/// The code is opaque and growable (after swift-certificates' `CertificateError`). Each edge (CLI, HTTP, CoAP)
/// maps codes to its own vocabulary in exactly one place.
public struct PKIError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Backing: String, Hashable, Sendable {
            case malformedRequest, badSignature, keyNotAllowed, requestExceedsProfile, unknownProfile
            case unknownAuthority, authorityExists, invalidArgument, issuance, revokedAuthority
        }
        let backing: Backing
        /// The CSR (or other input) is not well-formed DER/PEM.
        public static let malformedRequest = Code(backing: .malformedRequest)
        /// The CSR's self-signature does not verify: no proof of possession.
        public static let badSignature = Code(backing: .badSignature)
        /// The subject key's algorithm, curve or size is not allowed by the profile.
        public static let keyNotAllowed = Code(backing: .keyNotAllowed)
        /// The request asks for more than the profile allows (refused, never trimmed).
        public static let requestExceedsProfile = Code(backing: .requestExceedsProfile)
        public static let unknownProfile = Code(backing: .unknownProfile)
        public static let unknownAuthority = Code(backing: .unknownAuthority)
        public static let authorityExists = Code(backing: .authorityExists)
        public static let invalidArgument = Code(backing: .invalidArgument)
        public static let issuance = Code(backing: .issuance)
        /// The CA (or one above it) is revoked or destroyed: it issues nothing more.
        public static let revokedAuthority = Code(backing: .revokedAuthority)
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
