import MeterTrustCore

/// A refusal of the HTTP edge itself (a body or query it cannot read, a connection without a client certificate),
/// as opposed to a domain rule's; mapped like every other coded error.
public struct HTTPProblem: CodedError, Sendable {
    public let errorCode: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String) {
        self.errorCode = code
        self.message = message
    }
}
