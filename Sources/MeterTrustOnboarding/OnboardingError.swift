import MeterTrustCore

/// A refusal of the onboarding domain: what is wrong (naming the account, the meter, the line) and what to do.
public struct OnboardingError: CodedError, Hashable, Sendable {
    public let errorCode: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.errorCode = code
        self.message = message
    }
}
