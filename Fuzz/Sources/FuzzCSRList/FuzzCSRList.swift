import Foundation
import FuzzMain
import FuzzSupport
import MeterTrustCore
import MeterTrustFactory
import MeterTrustPKI

// The CSR list as the batch runner reads it: a file, streamed line by line. Every line is a request or a refusal;
// the requests, written back with `CSRListReader.line`, read back as the same meters and CSRs.

let listPath = Fuzz.scratchDirectory.appendingPathComponent("csrs.txt").path
let rewrittenPath = Fuzz.scratchDirectory.appendingPathComponent("rewritten.txt").path

func readAll(_ path: String) -> [CSRListReader.Line] {
    do {
        var reader = try CSRListReader(path: path)
        var lines: [CSRListReader.Line] = []
        while let line = try reader.next() { lines.append(line) }
        return lines
    } catch {
        Fuzz.violated("reading the list file threw \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Data(Fuzz.bytes(start, count))
    guard FileManager.default.createFile(atPath: listPath, contents: input) else { Fuzz.violated("cannot write \(listPath)") }
    var requests: [(EUI64, [UInt8])] = []
    for line in readAll(listPath) {
        if case .request(_, let eui, let csr) = line { requests.append((eui, csr)) }
    }
    guard !requests.isEmpty else { return 0 }
    let rewritten = requests.map { CSRListReader.line(eui64: $0.0, csr: $0.1) }.joined()
    guard FileManager.default.createFile(atPath: rewrittenPath, contents: Data(rewritten.utf8)) else { Fuzz.violated("cannot write \(rewrittenPath)") }
    let reread = readAll(rewrittenPath)
    Fuzz.require(reread.count == requests.count, "\(requests.count) requests written back read as \(reread.count) lines")
    for (number, (line, request)) in zip(reread, requests).enumerated() {
        guard case .request(let lineNumber, let eui, let csr) = line else {
            Fuzz.violated("request \(request.0) written back is refused: \(line)")
        }
        Fuzz.require(lineNumber == Int64(number + 1) && eui == request.0 && csr == request.1, "request \(request.0) written back reads as \(eui)")
    }
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzCSRList_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
