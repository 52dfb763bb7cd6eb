import FuzzMain
import FuzzSupport
import MeterTrustQuorum

// A custodian's approval as the admin API and the quorum rules parse it. An accepted approval, written back, parses
// as the same approval.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)
    guard let approval = try? Approval.parse(input) else { return 0 }
    let written = approval.bytes
    Fuzz.require((try? Approval.parse(written)) == approval, "an accepted approval, written back, parses as another")
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzApproval_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
