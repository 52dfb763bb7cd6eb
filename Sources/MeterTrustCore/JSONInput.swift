import Foundation

/// Reading JSON that someone gave us (a batch manifest, a bundle, a request document, the configuration, an API
/// answer): a failure is one line saying which field is wrong and how, never the decoder's own description (Swift
/// type names, "Debug description", coding-path dumps).
public enum JSONInput {
    /// Decodes `type` from `data`; a failure is a ``CoreError`` with `code` and the line ``problem(_:in:)`` makes.
    public static func decode<T: Decodable>(
        _ type: T.Type, from data: Data, what: String, code: ErrorCode = .malformedInput, decoder: JSONDecoder = JSONDecoder()
    ) throws -> T {
        do {
            return try decoder.decode(type, from: data)
        } catch {
            throw CoreError(code, problem(error, in: what))
        }
    }

    /// What is wrong with `what` (e.g. "the batch manifest"), in one line: "the batch manifest is not valid JSON",
    /// "the batch manifest lacks the field meters.start", "the field firmware.sha256 of the batch manifest must be a
    /// string", "the field keyGeneration of the batch manifest has a value that is not allowed".
    public static func problem(_ error: any Error, in what: String) -> String {
        guard let error = error as? DecodingError else { return "\(what) cannot be read" }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(what) lacks the field \(path(context.codingPath + [key]))"
        case .valueNotFound(_, let context):
            return context.codingPath.isEmpty ? "\(what) is empty (null)" : "the field \(path(context.codingPath)) of \(what) must not be null"
        case .typeMismatch(let type, let context):
            let expected = jsonKind(type)
            return context.codingPath.isEmpty
                ? "\(what) must be a JSON \(expected)" : "the field \(path(context.codingPath)) of \(what) must be \(article(expected)) \(expected)"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "\(what) is not valid JSON" }
            return "the field \(path(context.codingPath)) of \(what) has a value that is not allowed"
        @unknown default:
            return "\(what) cannot be read"
        }
    }

    /// `meters.eui64s[3]`: object keys joined by dots, array positions in brackets.
    static func path(_ keys: [any CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue, key.stringValue.hasPrefix("Index") || key.stringValue == "\(index)" {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return text.isEmpty ? "(top level)" : text
    }

    /// The JSON kind a Swift type is decoded from.
    static func jsonKind(_ type: Any.Type) -> String {
        switch type {
        case is String.Type, is Substring.Type: return "string"
        case is Bool.Type: return "boolean (true or false)"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type, is UInt64.Type, is UInt32.Type, is Double.Type, is Float.Type:
            return "number"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array<") || name.hasPrefix("[") && !name.contains(":") { return "array" }
            return "object"
        }
    }

    private static func article(_ kind: String) -> String {
        kind.first.map { "aeiou".contains($0) } == true ? "an" : "a"
    }
}
