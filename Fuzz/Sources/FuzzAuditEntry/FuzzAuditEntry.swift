import FuzzMain
import FuzzSupport
import MeterTrustAudit

// An audit log entry as the verifier decodes the stored bytes. A decoded entry's canonical encoding decodes as the
// same entry and is a fixed point: encoding it again gives the same bytes (the bytes the log hashes).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)
    _ = MerkleTree.leafHash(input)
    guard let entry = AuditEntry.decode(input) else { return 0 }
    let canonical: [UInt8]
    do { canonical = try entry.encoded() } catch { Fuzz.violated("a decoded entry does not encode: \(error)") }
    guard let again = AuditEntry.decode(canonical) else { Fuzz.violated("a decoded entry's canonical encoding does not decode") }
    Fuzz.require(again == entry, "a decoded entry's canonical encoding decodes as another entry")
    Fuzz.require((try? again.encoded()) == canonical, "the canonical encoding is not a fixed point")
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzAuditEntry_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
