import MeterTrustCore

/// An error from the PKI layer: what is wrong, and what to do about it.
///
/// The code is opaque and growable (after swift-certificates' `CertificateError`). Each edge (CLI, HTTP, CoAP)
/// maps codes to its own vocabulary in exactly one place.
public struct PKIError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code in the closed set every edge maps.
        public let errorCode: ErrorCode
        /// The CSR (or other input) is not well-formed DER/PEM.
        public static let malformedRequest = Code(errorCode: .malformedRequest)
        /// The CSR's self-signature does not verify: no proof of possession.
        public static let badSignature = Code(errorCode: .badSignature)
        /// The subject key's algorithm, curve or size is not allowed by the profile.
        public static let keyNotAllowed = Code(errorCode: .keyNotAllowed)
        /// The request asks for more than the profile allows (refused, never trimmed).
        public static let requestExceedsProfile = Code(errorCode: .requestExceedsProfile)
        public static let unknownProfile = Code(errorCode: .unknownProfile)
        public static let unknownAuthority = Code(errorCode: .unknownAuthority)
        public static let authorityExists = Code(errorCode: .authorityExists)
        public static let invalidArgument = Code(errorCode: .pkiInvalidArgument)
        public static let issuance = Code(errorCode: .issuanceFailed)
        /// The CA (or one above it) is revoked or destroyed: it issues nothing more.
        public static let revokedAuthority = Code(errorCode: .revokedAuthority)
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

extension PKIError: CodedError {
    public var errorCode: ErrorCode { code.errorCode }
}
