import MeterTrustCore

/// What the meter's EST client makes of a failed exchange: one line for people, with a stable code.
///
/// A refusal the server explained with a problem document (RFC 9457) keeps the server's own code when it is one of
/// MeterTrust's (`onboarding.not-claimed` stays `onboarding.not-claimed` on the meter's side), so a script sees the
/// reason, not only that it was refused; any other refusal is ``ErrorCode/estRefused``.
public struct ESTClientError: CodedError, Hashable, Sendable {
    public let errorCode: ErrorCode
    public let message: String
    /// The HTTP status, when the server answered.
    public let status: Int?
    /// The code the server's problem document named, as it named it (also when it is not one of ours).
    public let serverCode: String?

    public init(_ code: ErrorCode, _ message: String, status: Int? = nil, serverCode: String? = nil) {
        self.errorCode = code
        self.message = message
        self.status = status
        self.serverCode = serverCode
    }
}
