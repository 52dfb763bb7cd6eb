import FuzzMain
import FuzzSupport
import MeterTrustOnboarding

// The streaming enrollment parsers (the manifest's JSON and the plain list) as an upload feeds them. The first input
// byte chooses the parser and the piece size (1...8); the rest is the body. Whatever the body, parsing it in one
// piece and in pieces of that size gives the same entries, or the same refusal: a parser's answer never depends on
// where the network cut the stream.

func parse<P: EnrollmentStreamParser>(_ parser: P, _ body: [UInt8], piece: Int) -> Result<[ParsedEnrollmentEntry], OnboardingError> {
    var parser = parser
    var entries: [ParsedEnrollmentEntry] = []
    do {
        for start in stride(from: 0, to: body.count, by: piece) {
            try Array(body[start..<min(start + piece, body.count)]).withUnsafeBufferPointer { try parser.feed($0, into: &entries) }
        }
        try parser.finish(into: &entries)
        return .success(entries)
    } catch let error as OnboardingError {
        return .failure(error)
    } catch {
        Fuzz.violated("a parser threw something other than an OnboardingError: \(error)")
    }
}

func same(_ a: Result<[ParsedEnrollmentEntry], OnboardingError>, _ b: Result<[ParsedEnrollmentEntry], OnboardingError>) -> Bool {
    switch (a, b) {
    case (.success(let x), .success(let y)): x == y
    case (.failure(let x), .failure(let y)): x.errorCode == y.errorCode
    default: false
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)
    guard let first = input.first else { return 0 }
    let body = Array(input.dropFirst())
    let piece = Int(first & 7) + 1
    if first & 0x80 == 0 {
        let whole = parse(ManifestStreamParser(), body, piece: max(body.count, 1))
        Fuzz.require(same(whole, parse(ManifestStreamParser(), body, piece: piece)), "the manifest parser answers differently in pieces of \(piece)")
    } else {
        let whole = parse(PlainListParser(), body, piece: max(body.count, 1))
        Fuzz.require(same(whole, parse(PlainListParser(), body, piece: piece)), "the list parser answers differently in pieces of \(piece)")
        if case .success(let entries) = whole { Fuzz.require(entries.allSatisfy { $0.eui64.utf8.count == 16 }, "a listed EUI-64 is not 16 digits") }
    }
    return 0
}

/// The executable's entry point as SwiftPM links it (see FuzzMain.c).
@_cdecl("FuzzEnrollmentList_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
