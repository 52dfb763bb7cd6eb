import Crypto
import Foundation
import MeterTrustCore

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
