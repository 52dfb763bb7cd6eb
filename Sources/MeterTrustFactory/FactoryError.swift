import MeterTrustCore

/// An error that stops a batch as a whole (a bad manifest, an unregistered manufacturer, unreadable input).
/// Errors about one meter are not thrown: they become ``Refusal``s in the batch report.
public struct FactoryError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code in the closed set every edge maps.
        public let errorCode: ErrorCode
        public static let invalidManifest = Code(errorCode: .invalidManifest)
        public static let unregisteredManufacturer = Code(errorCode: .unregisteredManufacturer)
        public static let input = Code(errorCode: .factoryInput)
        public static let output = Code(errorCode: .factoryOutput)
        /// No meter of the batch holds a certificate: nothing is signed.
        public static let everyMeterRefused = Code(errorCode: .batchRefusedEveryMeter)
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

/// One meter the batch did not provision, and why.
public struct Refusal: Codable, Sendable, Hashable {
    /// Line of the CSR list (1-based), when the refusal concerns a line.
    public var line: Int64?
    /// The meter, as written in the input (it may be malformed).
    public var meter: String
    public var reason: String

    public init(line: Int64?, meter: String, reason: String) {
        self.line = line
        self.meter = meter
        self.reason = reason
    }

    public var description: String {
        "meter \(meter)\(line.map { " (line \($0))" } ?? ""): \(reason)"
    }
}

extension FactoryError: CodedError {
    public var errorCode: ErrorCode { code.errorCode }
}
