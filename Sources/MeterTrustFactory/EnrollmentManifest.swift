import Crypto
import Foundation

/// The list of a batch's meters that a manufacturer hands to utilities, who upload it to their account.
///
/// Format `metertrust-enrollment-manifest` version 1: a JSON document,
/// ```json
/// { "format": "metertrust-enrollment-manifest", "version": 1, "batch": "...", "manufacturer": "acme",
///   "manufacturerCA": { "subject": "...", "serial": "...", "certificateSHA256": "..." },
///   "deviceType": "2.999.2.1", "signatureAlgorithm": "ecdsa-with-SHA256", "created": "2026-11-21T05:00:00Z",
///   "count": 2, "meters": [ { "eui64": "...", "certificateSHA256": "..." }, ... ] }
/// ```
/// and a detached signature `enrollment-manifest.json.sig`: the DER ECDSA-Sig-Value over the exact bytes of the
/// JSON file, made by the manufacturer CA's key in the HSM. Anyone holding the manufacturer CA certificate can check
/// it, e.g. `openssl dgst -sha256 -verify <(openssl x509 -in manufacturer-ca.pem -pubkey -noout)
/// -signature enrollment-manifest.json.sig enrollment-manifest.json`.
public struct EnrollmentManifest: Codable, Sendable {
    public static let formatName = "metertrust-enrollment-manifest"

    public struct Authority: Codable, Sendable {
        public var subject: String
        public var serial: String
        public var certificateSHA256: String
    }

    public struct Meter: Codable, Sendable, Hashable {
        public var eui64: String
        public var certificateSHA256: String
    }

    public var format: String
    public var version: Int
    public var batch: String
    public var manufacturer: String
    public var manufacturerCA: Authority
    public var deviceType: String
    public var signatureAlgorithm: String
    public var created: String
    public var count: Int
    public var meters: [Meter]
}

/// Writes an enrollment manifest meter by meter, hashing as it goes, so a million meters need no more memory than
/// ten.
struct EnrollmentManifestWriter {
    private let handle: FileHandle
    private var hasher: SHA256?
    private var sha384: SHA384?
    private var first = true
    private var buffer = Data()

    /// `header` is the manifest without `count` and `meters`; they follow in that order.
    init(path: String, header: [(String, String)], useSHA384: Bool) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw FactoryError(.output, "cannot create \(path)")
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        if useSHA384 { sha384 = SHA384() } else { hasher = SHA256() }
        var text = "{\n"
        for (key, value) in header { text += "  \(Self.quote(key)): \(value),\n" }
        text += "  \"meters\": ["
        append(text)
    }

    mutating func add(_ meter: EnrollmentManifest.Meter) throws {
        append("\(first ? "" : ",")\n    {\"eui64\": \(Self.quote(meter.eui64)), \"certificateSHA256\": \(Self.quote(meter.certificateSHA256))}")
        first = false
        if buffer.count > 1 << 20 { try flush() }
    }

    /// Closes the document with the final count and returns the digest of every byte written.
    mutating func finish(count: Int) throws -> [UInt8] {
        append("\(first ? "" : "\n  ")],\n  \"count\": \(count)\n}\n")
        try flush()
        try handle.close()
        if let hasher { return Array(hasher.finalize()) }
        return Array(sha384!.finalize())
    }

    private mutating func append(_ text: String) {
        let data = Data(text.utf8)
        hasher?.update(data: data)
        sha384?.update(data: data)
        buffer.append(data)
    }

    private mutating func flush() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    static func quote(_ text: String) -> String {
        let data = try! JSONEncoder().encode(text)  // a String always encodes
        return String(decoding: data, as: UTF8.self)
    }
}
