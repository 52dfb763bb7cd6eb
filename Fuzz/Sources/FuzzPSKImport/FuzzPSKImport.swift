import FuzzMain
import FuzzSupport
import MeterTrustCore
import MeterTrustOnboarding

// The OEM's PSK import file (`PSKImportParser`, Onboarding) as `psk import` streams it. The first input byte picks
// the piece size (1...8); the rest is the file. Whatever the file, parsing it whole and in pieces of that size gives
// the same items or the same refusal; an accepted entry has an 8-octet EUI-64, a 65-octet enc and a 48-octet
// ciphertext, and no meter twice.

func parse(_ body: [UInt8], piece: Int) -> Result<[PSKImportParser.Item], OnboardingError> {
    var parser = PSKImportParser()
    var items: [PSKImportParser.Item] = []
    do {
        for start in stride(from: 0, to: body.count, by: piece) { items += try parser.feed(body[start..<min(start + piece, body.count)]) }
        items += try parser.finish()
        return .success(items)
    } catch let error as OnboardingError {
        return .failure(error)
    } catch {
        Fuzz.violated("the PSK import parser threw something other than an OnboardingError: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)
    guard let first = input.first else { return 0 }
    let body = Array(input.dropFirst())
    let whole = parse(body, piece: max(body.count, 1))
    let pieces = parse(body, piece: Int(first & 7) + 1)
    switch (whole, pieces) {
    case (.success(let a), .success(let b)): Fuzz.require(a == b, "the PSK import parser answers differently in pieces")
    case (.failure(let a), .failure(let b)): Fuzz.require(a.errorCode == b.errorCode && a.errorCode == .pskMalformedImport, "refusals differ in pieces")
    default: Fuzz.violated("the PSK import parser accepts in one cut and refuses in another")
    }
    if case .success(let items) = whole {
        var seen = Set<EUI64>()
        for case .entry(let entry) in items {
            Fuzz.require(entry.eui64.bytes.count == 8 && entry.enc.count == 65 && entry.ciphertext.count == 48, "an accepted entry has the wrong sizes")
            Fuzz.require(seen.insert(entry.eui64).inserted, "a meter accepted twice")
        }
    }
    return 0
}

/// The executable's entry point as SwiftPM links it (see FuzzMain.c).
@_cdecl("FuzzPSKImport_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
