import Foundation
import MeterTrustCore

/// The OEM's file of PSKs it generated, each sealed to the platform: format `metertrust-psk-import` version 1, JSON
/// lines (LF or CRLF), read as a stream and bounded (``maximumLineLength`` per line, ``maximumMeters`` meters).
///
/// Line 1, the header:
/// ```json
/// {"format": "metertrust-psk-import", "version": 1, "batch": "acme-2026-psk-1",
///  "suite": "DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM",
///  "recipient": "<SHA-256, hex, of the onboarding key's SubjectPublicKeyInfo DER>"}
/// ```
/// then one line per meter:
/// ```json
/// {"eui64": "0024befffe000001", "enc": "<base64, 65 octets>", "ciphertext": "<base64, 48 octets>"}
/// ```
/// Each meter's PSK (32 octets) is sealed on its own with RFC 9180 HPKE base mode (``HPKEBaseReceiver``) to the
/// platform's PSK onboarding key (`metertrust psk onboarding-key`), with `info` = ``info(batch:)`` and `aad` = the
/// meter's 8 EUI-64 octets, so a ciphertext opens only for its own meter and batch. `enc` is the sender's ephemeral
/// public key (uncompressed P-256 point); `ciphertext` is the AES-128-GCM ciphertext with its 16-octet tag.
public struct PSKImportFile {
    public static let formatName = "metertrust-psk-import"
    public static let maximumLineLength = 4096
    public static let maximumMeters = 1_000_000

    public struct Header: Codable, Sendable, Hashable {
        public var format: String
        public var version: Int
        public var batch: String
        public var suite: String
        /// SHA-256 (lowercase hex) of the recipient key's SubjectPublicKeyInfo, DER.
        public var recipient: String

        public init(batch: String, recipient: String) {
            self.format = PSKImportFile.formatName
            self.version = 1
            self.batch = batch
            self.suite = HPKEBaseReceiver.suiteName
            self.recipient = recipient
        }
    }

    public struct Entry: Sendable, Hashable {
        public var line: Int
        public var eui64: EUI64
        public var enc: [UInt8]
        public var ciphertext: [UInt8]
    }

    /// The wire form of an entry line.
    public struct EntryLine: Codable, Sendable {
        public var eui64: String
        public var enc: String
        public var ciphertext: String

        public init(eui64: EUI64, enc: [UInt8], ciphertext: [UInt8]) {
            self.eui64 = eui64.description
            self.enc = Data(enc).base64EncodedString()
            self.ciphertext = Data(ciphertext).base64EncodedString()
        }
    }

    /// HPKE `info` for a batch: "MeterTrust PSK import v1" ‖ 0x00 ‖ the batch id's UTF-8.
    public static func info(batch: String) -> [UInt8] {
        Array("MeterTrust PSK import v1".utf8) + [0] + Array(batch.utf8)
    }
}

/// Reads ``PSKImportFile`` from pieces of any size: ``feed(_:)`` returns what the new bytes completed, ``finish()``
/// the rest. Every refusal is ``OnboardingError`` `psk.malformed-import` naming the line. Holds at most one line
/// and the set of meters seen (to refuse a meter listed twice).
public struct PSKImportParser {
    public enum Item: Sendable, Hashable {
        case header(PSKImportFile.Header)
        case entry(PSKImportFile.Entry)
    }

    private var pending: [UInt8] = []
    private var lineNumber = 0
    private var header: PSKImportFile.Header?
    private var seen: Set<EUI64> = []

    public init() {}

    public var meterCount: Int { seen.count }

    public mutating func feed(_ bytes: some Collection<UInt8>) throws -> [Item] {
        var items: [Item] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if let item = try completeLine() { items.append(item) }
            } else {
                guard pending.count < PSKImportFile.maximumLineLength else {
                    throw refusal(line: lineNumber + 1, "is longer than \(PSKImportFile.maximumLineLength) bytes")
                }
                pending.append(byte)
            }
        }
        return items
    }

    /// The last line (without a final newline), and the check that there was a header.
    public mutating func finish() throws -> [Item] {
        var items: [Item] = []
        if !pending.isEmpty, let item = try completeLine() { items.append(item) }
        guard header != nil else { throw OnboardingError(.pskMalformedImport, "the PSK import file is empty: its first line must be the \(PSKImportFile.formatName) header") }
        return items
    }

    private mutating func completeLine() throws -> Item? {
        lineNumber += 1
        var line = pending
        pending.removeAll(keepingCapacity: true)
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
        guard let header else {
            let decoded: PSKImportFile.Header
            do {
                decoded = try JSONDecoder().decode(PSKImportFile.Header.self, from: Data(line))
            } catch {
                throw refusal(line: lineNumber, "is not the header: " + JSONInput.problem(error, in: "it"))
            }
            guard decoded.format == PSKImportFile.formatName, decoded.version == 1 else {
                throw refusal(line: lineNumber, "names format \(DisplayText.escaped(decoded.format, asciiOnly: true, limit: 40)) version \(decoded.version), not \(PSKImportFile.formatName) version 1")
            }
            guard decoded.suite == HPKEBaseReceiver.suiteName else {
                throw refusal(line: lineNumber, "names HPKE suite \(DisplayText.escaped(decoded.suite, asciiOnly: true, limit: 80)); only \(HPKEBaseReceiver.suiteName) is accepted")
            }
            guard decoded.recipient.utf8.count == 64, hexBytes(decoded.recipient) != nil else {
                throw refusal(line: lineNumber, "has a recipient that is not a SHA-256 in hex")
            }
            self.header = decoded
            return .header(decoded)
        }
        _ = header
        let decoded: PSKImportFile.EntryLine
        do {
            decoded = try JSONDecoder().decode(PSKImportFile.EntryLine.self, from: Data(line))
        } catch {
            throw refusal(line: lineNumber, JSONInput.problem(error, in: "the entry"))
        }
        let eui: EUI64
        do { eui = try EUI64(decoded.eui64) } catch let error as CoreError { throw refusal(line: lineNumber, error.message) }
        guard let enc = Data(base64Encoded: decoded.enc), enc.count == HPKEBaseReceiver.encapsulatedKeyLength else {
            throw refusal(line: lineNumber, "(meter \(eui)): enc is not \(HPKEBaseReceiver.encapsulatedKeyLength) octets in base64")
        }
        let ciphertextLength = PresharedKey.length + HPKEBaseReceiver.tagLength
        guard let ciphertext = Data(base64Encoded: decoded.ciphertext), ciphertext.count == ciphertextLength else {
            throw refusal(line: lineNumber, "(meter \(eui)): ciphertext is not \(ciphertextLength) octets in base64 (a 32-octet PSK and its tag)")
        }
        guard seen.count < PSKImportFile.maximumMeters else {
            throw refusal(line: lineNumber, "is past the limit of \(PSKImportFile.maximumMeters) meters per import: split the file")
        }
        guard seen.insert(eui).inserted else { throw refusal(line: lineNumber, "lists meter \(eui) a second time") }
        return .entry(PSKImportFile.Entry(line: lineNumber, eui64: eui, enc: Array(enc), ciphertext: Array(ciphertext)))
    }

    private func refusal(line: Int, _ what: String) -> OnboardingError {
        OnboardingError(.pskMalformedImport, "line \(line) of the PSK import file \(what)")
    }
}
