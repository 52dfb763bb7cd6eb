import Foundation
import MeterTrustCore

/// Writes command results: text for people, one JSON document for scripts; and errors, one line each.
///
/// The conventions (README, "JSON output"): with `--json` a result is exactly one JSON document on stdout (never a
/// JSON string nested inside it) and an error one JSON object `{"error":{"code":"domain.reason","message":"..."}}`
/// on stderr, usage errors included; the exit status is the one the code maps to (``ExitStatus``) either way.
enum Output {
    /// Whether this run asked for JSON: `--json` anywhere before a `--` terminator. Read from the arguments
    /// themselves, so that a command line ArgumentParser refuses is answered in JSON too.
    static let jsonRequested: Bool = CommandLine.arguments.dropFirst().prefix { $0 != "--" }.contains("--json")

    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        FileHandle.standardOutput.write(try encoder.encode(value))
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    /// One JSON document: `value`'s object with `fields` added (e.g. the `version` a benchmark report carries).
    static func json(_ value: some Encodable, adding fields: [String: String]) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        guard case .object(var object) = try JSONDecoder().decode(JSONValue.self, from: try encoder.encode(value)) else { return try json(value) }
        for (key, text) in fields { object[key] = .string(text) }
        try json(JSONValue.object(object))
    }

    static func line(_ text: String = "") {
        print(text)
        fflush(nil)
    }

    /// A warning for people on stderr (not in JSON mode's stderr, which carries only errors).
    static func warning(_ text: String) {
        guard !jsonRequested else { return }
        FileHandle.standardError.write(Data("warning: \(oneLine(text))\n".utf8))
    }

    /// Reports `error` on stderr (one `error:` line, or the JSON error object) and returns its exit status.
    @discardableResult
    static func failure(_ error: any Error) -> ExitStatus {
        let code = ExitStatus.code(of: error)
        failure(code: code, message: message(for: error))
        return ExitStatus.for(code)
    }

    static func failure(code: ErrorCode, message: String) {
        let text = oneLine(message)
        if jsonRequested {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let body = ErrorDocument(error: .init(code: code.rawValue, message: text))
            let data = (try? encoder.encode(body)) ?? Data(#"{"error":{"code":"edge.internal","message":"the error could not be encoded"}}"#.utf8)
            FileHandle.standardError.write(data + Data("\n".utf8))
        } else {
            FileHandle.standardError.write(Data("error: \(text)\n".utf8))
        }
    }

    /// `{"error":{"code","message"}}`: what `--json` prints on stderr, and what documents that report a failure
    /// on stdout (`audit verify --json` on a tampered log) carry under `error`.
    struct ErrorDocument: Encodable {
        struct Body: Encodable {
            var code: String
            var message: String
        }
        var error: Body

        init(error: Body) { self.error = error }
        init(_ error: any Error) {
            self.error = Body(code: ExitStatus.code(of: error).rawValue, message: Output.oneLine(Output.message(for: error)))
        }
    }

    /// What to tell people about `error`: a coded error's own message; for errors no module coded, a line without
    /// library internals (Swift type names, decoder descriptions, `NSError` domains).
    static func message(for error: any Error) -> String {
        switch error {
        case let coded as any CodedError:
            return coded.message
        case is DecodingError:
            return JSONInput.problem(error, in: "the JSON input")
        case let error as CocoaError:
            return error.localizedDescription
        case let error as POSIXError:
            return "\(error.code): \(error.localizedDescription)"
        default:
            return "metertrust failed unexpectedly (\(error)); this is a fault of metertrust: please report it"
        }
    }

    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
    }

    static let timestamp: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return formatter
    }()
}

/// Any JSON value, to carry a JSON document inside a result as an object rather than as a string holding JSON
/// (e.g. a request's outcome, which the admin API stores and sends as text).
enum JSONValue: Codable, Equatable, Sendable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    /// The value `text` holds if it is JSON; otherwise the text itself as a string.
    init(parsing text: String) {
        self = (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .string(text)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
}
