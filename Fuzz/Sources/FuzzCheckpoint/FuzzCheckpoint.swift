import FuzzMain
import FuzzSupport
import MeterTrustAudit

// A signed checkpoint note (C2SP tlog-checkpoint in a signed note) as the audit verifier parses the stored text.
// A parsed note, written out again, parses as the same checkpoint; the signature check runs against the audit key
// the seed notes were signed with.

let auditKey = FuzzFixture.auditKey.publicKey

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    // The store keeps the note as TEXT; invalid UTF-8 reaches the parser as replacement characters.
    let text = String(decoding: Fuzz.bytes(start, count), as: UTF8.self)
    guard let signed = try? SignedCheckpoint(text: text) else { return 0 }
    _ = signed.isValid(for: auditKey, keyName: FuzzFixture.auditKeyName)
    let written = signed.text
    guard let again = try? SignedCheckpoint(text: written) else {
        Fuzz.violated("a parsed checkpoint note, written out again, is refused: \(written.debugDescription)")
    }
    Fuzz.require(again == signed, "a parsed checkpoint note, written out again, parses as another: \(written.debugDescription)")
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzCheckpoint_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
