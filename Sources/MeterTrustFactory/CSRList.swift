import Foundation
import MeterTrustCore
import MeterTrustPKI

/// The meters' CSRs for a batch, one line each: `<eui64> <base64 of the DER CSR>`.
///
/// Format `metertrust-csr-list` version 1: UTF-8 text; blank lines and lines starting with `#` are ignored; a line
/// is at most 32 KiB. The EUI-64 names the meter the factory line took the CSR from; the CSR's own claims (in its
/// HardwareModuleName or subject) must agree with it. Read as a stream, so a list of millions costs no memory.
public struct CSRListReader {
    public enum Line {
        case request(line: Int64, eui64: EUI64, csr: [UInt8])
        case refused(Refusal)
    }

    public static let maximumLineLength = 32 * 1024
    private let reader: LineReader

    public init(path: String) throws {
        guard let reader = LineReader(path: path, maximumLineLength: Self.maximumLineLength) else {
            throw FactoryError(.input, "cannot open the CSR list \(path)")
        }
        self.reader = reader
    }

    /// The next request or refused line, or nil at the end. Parsed on bytes: this runs once per meter.
    public mutating func next() throws -> Line? {
        while let (number, bytes) = try reader.next() {
            guard var line = bytes else {
                return .refused(Refusal(line: number, meter: "?", reason: "the line is longer than \(Self.maximumLineLength) bytes"))
            }
            while let last = line.last, last == 0x20 || last == 0x09 || last == 0x0D { line = line.dropLast() }
            while let first = line.first, first == 0x20 || first == 0x09 { line = line.dropFirst() }
            if line.isEmpty || line.first == UInt8(ascii: "#") { continue }
            let separator = line.firstIndex(of: 0x20)
            let field = line[..<(separator ?? line.endIndex)]
            guard let separator else {
                let meter = String(decoding: field, as: UTF8.self)
                return .refused(Refusal(line: number, meter: meter, reason: "the line is not \"<eui64> <base64 CSR>\""))
            }
            guard let eui = EUI64(asciiHex: field) ?? (try? EUI64(String(decoding: field, as: UTF8.self))) else {
                let meter = String(decoding: field, as: UTF8.self)
                return .refused(Refusal(line: number, meter: meter, reason: "\"\(meter)\" is not an EUI-64 (16 hex digits)"))
            }
            let encoded = line[(separator + 1)...].drop { $0 == 0x20 }
            guard let der = Base64.decode(encoded) ?? Data(base64Encoded: Data(encoded)).map({ Array($0) }) else {
                return .refused(Refusal(line: number, meter: eui.description, reason: "the CSR is not valid base64"))
            }
            return .request(line: number, eui64: eui, csr: der)
        }
        return nil
    }

    /// One line of the list.
    public static func line(eui64: EUI64, csr: [UInt8]) -> String {
        "\(eui64) \(Data(csr).base64EncodedString())\n"
    }
}

/// Buffered reading of `\n`-terminated lines with a length bound; an over-long line is reported (as nil), never
/// held whole.
final class LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var start = 0
    private var lineNumber: Int64 = 0
    private var finished = false
    private let maximumLineLength: Int

    init?(path: String, maximumLineLength: Int) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        self.handle = handle
        self.maximumLineLength = maximumLineLength
    }

    deinit { try? handle.close() }

    /// The next line (without its `\n`) and its number; nil bytes for a line longer than the bound.
    func next() throws -> (Int64, ArraySlice<UInt8>?)? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[start..<newline]
                start = newline + 1
                lineNumber += 1
                if line.count > maximumLineLength { return (lineNumber, nil) }
                return (lineNumber, line)
            }
            if finished {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                lineNumber += 1
                return (lineNumber, line.count > maximumLineLength ? nil : line)
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            if buffer.count > maximumLineLength {
                // Skip the rest of an over-long line without holding it.
                buffer.removeAll(keepingCapacity: true)
                var skipping = true
                while skipping {
                    let chunk = try handle.read(upToCount: 1 << 16) ?? Data()
                    if chunk.isEmpty { finished = true; skipping = false; break }
                    if let newline = chunk.firstIndex(of: UInt8(ascii: "\n")) {
                        buffer.append(contentsOf: chunk[(newline + 1)...])
                        skipping = false
                    }
                }
                lineNumber += 1
                return (lineNumber, nil)
            }
            let chunk = try handle.read(upToCount: 1 << 20) ?? Data()
            if chunk.isEmpty { finished = true } else { buffer.append(contentsOf: chunk) }
        }
    }
}

/// Standard base64 (RFC 4648 §4, with padding) decoded straight into bytes: the CSR list's one decoding per meter.
enum Base64 {
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(character)] = UInt8(index)
        }
        return table
    }()

    /// The decoded bytes, or nil unless `text` is canonical padded base64 (length a multiple of 4, `=` only at the end,
    /// unused bits zero), which is what ``CSRListReader/line(eui64:csr:)`` writes; the reader hands anything else to
    /// Foundation's decoder.
    static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard !text.isEmpty, text.count % 4 == 0 else { return nil }
        var padding = 0
        if text.last == UInt8(ascii: "=") { padding += 1 }
        if text.dropLast().last == UInt8(ascii: "=") { padding += 1 }
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        var index = text.startIndex
        while index < text.endIndex {
            let lastQuad = index + 4 == text.endIndex
            var quad: UInt32 = 0
            for offset in 0..<4 {
                let character = text[index + offset]
                if lastQuad && offset >= 4 - padding {
                    quad <<= 6
                    continue
                }
                let value = values[Int(character)]
                guard value != 0xFF else { return nil }
                quad = quad << 6 | UInt32(value)
            }
            output.append(UInt8(quad >> 16))
            if !(lastQuad && padding == 2) { output.append(UInt8((quad >> 8) & 0xFF)) } else if quad & 0xFFFF != 0 { return nil }
            if !(lastQuad && padding >= 1) { output.append(UInt8(quad & 0xFF)) } else if padding == 1 && quad & 0xFF != 0 { return nil }
            index += 4
        }
        return output
    }
}
