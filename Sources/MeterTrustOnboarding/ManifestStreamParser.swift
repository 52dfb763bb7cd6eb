import Foundation
import MeterTrustCore

/// A streaming parser of the enrollment manifest (Core's ``EnrollmentManifest``, as the factory writes it): a JSON
/// tokenizer and grammar check that keeps one unfinished token (at most ``maximumTokenLength`` bytes) and a stack of at
/// most ``maximumDepth`` containers, whatever the document's size. Any valid JSON with the manifest's fields parses:
/// keys in any order (`meters` before or after the header fields), whitespace anywhere, unknown keys with any value
/// (skipped, their strings not kept). Each `meters` element completes an entry as soon as its object closes.
public struct ManifestStreamParser: EnrollmentStreamParser {
    public static let maximumTokenLength = 4096
    public static let maximumDepth = 32

    /// A scalar value of the header.
    public enum Scalar: Sendable, Hashable {
        case string(String)
        case number(String)
        case bool(Bool)
        case null

        public var string: String? { if case .string(let value) = self { value } else { nil } }
        public var integer: Int? { if case .number(let value) = self { Int(value) } else { nil } }
    }

    /// The top-level scalar fields (`format`, `version`, `batch`, `manufacturer`, `count`, ...) and those of
    /// `manufacturerCA`, as far as the input went.
    public private(set) var header: [String: Scalar] = [:]
    public private(set) var authority: [String: Scalar] = [:]
    /// How many `meters` elements were read.
    public private(set) var meterCount = 0
    /// Whether a top-level `meters` array was seen.
    public private(set) var sawMeters = false

    /// The fields whose values are kept (strings of any other key are skipped, not stored).
    static let headerKeys: Set<String> = ["format", "version", "batch", "manufacturer", "deviceType", "signatureAlgorithm", "created", "count"]
    static let authorityKeys: Set<String> = ["subject", "serial", "certificateSHA256"]

    private enum Expect { case value, keyOrEnd, key, colon, commaOrEndObject, valueOrEndArray, commaOrEndArray, done }
    private enum Role { case top, authority, meters, meter, ignored }
    private struct Frame {
        var isObject: Bool
        var role: Role
        var key: String?
    }
    private enum Lex { case none, string, stringEscape, number, literal }

    private var stack: [Frame] = []
    private var expect = Expect.value
    private var lex = Lex.none
    private var token: [UInt8] = []
    private var keepToken = true
    private var tokenIsKey = false
    private var tokenHasEscape = false
    private var tokenIsASCII = true
    private var offset = 0
    private var meterEUI64: String?
    private var meterSHA256: String?

    public init() {
        token.reserveCapacity(128)
    }

    public mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, into entries: inout [ParsedEnrollmentEntry]) throws {
        for byte in bytes {
            offset += 1
            switch lex {
            case .string:
                if byte == 0x22 {  // "
                    lex = .none
                    try endString(into: &entries)
                    continue
                }
                guard byte >= 0x20 else { throw malformed("a control character inside a string") }
                if byte == 0x5C { lex = .stringEscape; tokenHasEscape = true }
                if byte >= 0x80 { tokenIsASCII = false }
                try keep(byte)
                continue
            case .stringEscape:
                lex = .string
                try keep(byte)
                continue
            case .number, .literal:
                if Self.continuesScalar(byte) {
                    try keep(byte)
                    continue
                }
                try endBareToken(into: &entries)
            case .none:
                break
            }
            try structural(byte, into: &entries)
        }
    }

    public mutating func finish(into entries: inout [ParsedEnrollmentEntry]) throws {
        switch lex {
        case .number, .literal: try endBareToken(into: &entries)
        case .string, .stringEscape: throw malformed("the document ends inside a string")
        case .none: break
        }
        guard expect == .done else { throw malformed("the document ends before its last object or array closes") }
    }

    // MARK: Tokens

    private static func continuesScalar(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x2B, 0x2D, 0x2E, 0x45, 0x65, 0x61...0x7A: true  // digits + - . E e, letters of true/false/null
        default: false
        }
    }

    private mutating func keep(_ byte: UInt8) throws {
        guard keepToken else { return }
        guard token.count < Self.maximumTokenLength else { throw malformed("a token longer than \(Self.maximumTokenLength) bytes") }
        token.append(byte)
    }

    private mutating func begin(_ kind: Lex, keep: Bool, first: UInt8? = nil) throws {
        lex = kind
        token.removeAll(keepingCapacity: true)
        keepToken = keep
        tokenHasEscape = false
        tokenIsASCII = true
        if let first { try self.keep(first) }
    }

    private mutating func structural(_ byte: UInt8, into entries: inout [ParsedEnrollmentEntry]) throws {
        switch byte {
        case 0x20, 0x09, 0x0A, 0x0D:
            return
        case 0x7B:  // {
            try startValue()
            try push(isObject: true)
            expect = .keyOrEnd
        case 0x5B:  // [
            try startValue()
            try push(isObject: false)
            expect = .valueOrEndArray
        case 0x7D:  // }
            guard expect == .keyOrEnd || expect == .commaOrEndObject else { throw malformed("an unexpected }") }
            try pop(into: &entries)
        case 0x5D:  // ]
            guard expect == .valueOrEndArray || expect == .commaOrEndArray else { throw malformed("an unexpected ]") }
            try pop(into: &entries)
        case 0x3A:  // :
            guard expect == .colon else { throw malformed("an unexpected :") }
            expect = .value
        case 0x2C:  // ,
            switch expect {
            case .commaOrEndObject: expect = .key
            case .commaOrEndArray: expect = .value
            default: throw malformed("an unexpected ,")
            }
        case 0x22:  // "
            if expect == .keyOrEnd || expect == .key {
                tokenIsKey = true
                try begin(.string, keep: true)
            } else {
                try startValue()
                tokenIsKey = false
                try begin(.string, keep: keepsValue)
            }
        case 0x2D, 0x30...0x39:
            try startValue()
            try begin(.number, keep: true, first: byte)
        case 0x74, 0x66, 0x6E:  // t f n
            try startValue()
            try begin(.literal, keep: true, first: byte)
        default:
            throw malformed("an unexpected character")
        }
    }

    /// Whether the value about to start is one the manifest reads (so its string is kept).
    private var keepsValue: Bool {
        guard let frame = stack.last, let key = frame.key else { return true }
        switch frame.role {
        case .top: return Self.headerKeys.contains(key)
        case .authority: return Self.authorityKeys.contains(key)
        case .meter: return key == "eui64" || key == "certificateSHA256"
        case .meters, .ignored: return false
        }
    }

    private func startValue() throws {
        guard expect == .value || expect == .valueOrEndArray else {
            throw malformed(expect == .done ? "more after the end of the document" : "a value where a key, a comma or a closing bracket belongs")
        }
    }

    private mutating func endString(into entries: inout [ParsedEnrollmentEntry]) throws {
        guard keepToken else { return try completeScalar(.null, kept: false, into: &entries) }
        let text = try decodeString()
        if tokenIsKey {
            stack[stack.count - 1].key = text
            expect = .colon
        } else {
            try completeScalar(.string(text), kept: true, into: &entries)
        }
    }

    private mutating func endBareToken(into entries: inout [ParsedEnrollmentEntry]) throws {
        let kind = lex
        lex = .none
        if kind == .literal {
            switch token {
            case Array("true".utf8): try completeScalar(.bool(true), kept: true, into: &entries)
            case Array("false".utf8): try completeScalar(.bool(false), kept: true, into: &entries)
            case Array("null".utf8): try completeScalar(.null, kept: true, into: &entries)
            default: throw malformed("an unknown literal")
            }
            return
        }
        guard Self.isJSONNumber(token) else { throw malformed("a malformed number") }
        try completeScalar(.number(String(decoding: token, as: UTF8.self)), kept: true, into: &entries)
    }

    /// RFC 8259's number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    static func isJSONNumber(_ bytes: [UInt8]) -> Bool {
        var i = 0
        func digits() -> Int {
            let start = i
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
            return i - start
        }
        if i < bytes.count, bytes[i] == 0x2D { i += 1 }
        guard i < bytes.count else { return false }
        if bytes[i] == 0x30 { i += 1 } else if digits() == 0 { return false }
        if i < bytes.count, bytes[i] == 0x2E {
            i += 1
            guard digits() > 0 else { return false }
        }
        if i < bytes.count, bytes[i] == 0x45 || bytes[i] == 0x65 {
            i += 1
            if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
            guard digits() > 0 else { return false }
        }
        return i == bytes.count
    }

    private func decodeString() throws -> String {
        if !tokenHasEscape {
            if tokenIsASCII { return String(decoding: token, as: UTF8.self) }
            guard let text = String(bytes: token, encoding: .utf8) else { throw malformed("a string that is not UTF-8") }
            return text
        }
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        var i = 0
        func hex4() throws -> UInt32 {
            guard i + 4 <= token.count else { throw malformed("a short \\u escape") }
            var value: UInt32 = 0
            for byte in token[i..<(i + 4)] {
                guard let nibble = hexNibble(byte) else { throw malformed("a malformed \\u escape") }
                value = value << 4 | UInt32(nibble)
            }
            i += 4
            return value
        }
        while i < token.count {
            let byte = token[i]
            i += 1
            guard byte == 0x5C else { out.append(byte); continue }
            guard i < token.count else { throw malformed("a malformed escape") }
            let escape = token[i]
            i += 1
            switch escape {
            case 0x22, 0x5C, 0x2F: out.append(escape)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 1 < token.count, token[i] == 0x5C, token[i + 1] == 0x75 else { throw malformed("an unpaired surrogate") }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw malformed("an unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw malformed("an unpaired surrogate")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw malformed("an invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(unicode)).utf8))
            default:
                throw malformed("an unknown escape")
            }
        }
        guard let text = String(bytes: out, encoding: .utf8) else { throw malformed("a string that is not UTF-8") }
        return text
    }

    // MARK: Structure

    private mutating func push(isObject: Bool) throws {
        guard stack.count < Self.maximumDepth else { throw malformed("nesting deeper than \(Self.maximumDepth)") }
        let role: Role
        if let parent = stack.last {
            switch parent.role {
            case .top where parent.key == "manufacturerCA" && isObject: role = .authority
            case .top where parent.key == "meters" && !isObject:
                role = .meters
                sawMeters = true
            case .meters:
                guard isObject else { throw OnboardingError(.malformedManifest, "meters[\(meterCount)] is not an object: each meter is {\"eui64\": ..., \"certificateSHA256\": ...}") }
                role = .meter
                meterEUI64 = nil
                meterSHA256 = nil
            default: role = .ignored
            }
        } else {
            guard isObject else { throw OnboardingError(.malformedManifest, "the enrollment manifest is not a JSON object") }
            role = .top
        }
        stack.append(Frame(isObject: isObject, role: role, key: nil))
    }

    private mutating func pop(into entries: inout [ParsedEnrollmentEntry]) throws {
        let frame = stack.removeLast()
        if frame.role == .meter { try completeMeter(into: &entries) }
        afterValue()
    }

    private mutating func afterValue() {
        guard let top = stack.last else { expect = .done; return }
        expect = top.isObject ? .commaOrEndObject : .commaOrEndArray
    }

    private mutating func completeScalar(_ value: Scalar, kept: Bool, into entries: inout [ParsedEnrollmentEntry]) throws {
        guard let frame = stack.last else { throw OnboardingError(.malformedManifest, "the enrollment manifest is not a JSON object") }
        switch frame.role {
        case .top:
            if kept, let key = frame.key, Self.headerKeys.contains(key) { header[key] = value }
        case .authority:
            if kept, let key = frame.key, Self.authorityKeys.contains(key) { authority[key] = value }
        case .meters:
            throw OnboardingError(.malformedManifest, "meters[\(meterCount)] is not an object: each meter is {\"eui64\": ..., \"certificateSHA256\": ...}")
        case .meter:
            if kept, frame.key == "eui64" || frame.key == "certificateSHA256" {
                guard case .string(let text) = value else {
                    throw OnboardingError(.malformedManifest, "meters[\(meterCount)].\(frame.key!) is not a string")
                }
                if frame.key == "eui64" { meterEUI64 = text } else { meterSHA256 = text }
            }
        case .ignored:
            break
        }
        afterValue()
    }

    private mutating func completeMeter(into entries: inout [ParsedEnrollmentEntry]) throws {
        let index = meterCount
        meterCount += 1
        guard let text = meterEUI64 else { throw OnboardingError(.malformedManifest, "meters[\(index)] has no eui64") }
        guard let eui64 = try? EUI64(text) else {
            throw OnboardingError(
                .malformedManifest, "meters[\(index)]: \"\(DisplayText.escaped(text, asciiOnly: true, limit: 40))\" is not an EUI-64 (16 hex digits)"
            )
        }
        guard let sha = meterSHA256, sha.utf8.count == 64, sha.utf8.allSatisfy({ hexNibble($0) != nil }) else {
            throw OnboardingError(.malformedManifest, "meters[\(index)] (meter \(eui64)) has no certificateSHA256 of 64 hex digits")
        }
        entries.append(ParsedEnrollmentEntry(eui64: eui64.description, certificateSHA256: sha.lowercased(), place: index + 1))
    }

    private func malformed(_ what: String) -> OnboardingError {
        OnboardingError(.malformedManifest, "the enrollment manifest is not valid JSON: \(what) at byte \(offset): upload the file the factory wrote, unchanged")
    }
}
