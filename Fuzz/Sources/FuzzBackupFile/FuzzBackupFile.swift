import FuzzMain
import FuzzSupport
import MeterTrustAdmin
import MeterTrustQuorum

// A key backup file as `metertrust backup restore` parses it. An accepted file, written back, parses again and
// writes back to the same bytes; its shares, in the encoding the store keeps them in, decode as backup-key shares.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)
    guard let file = try? KeyBackupFile.parse(input) else { return 0 }
    let written = file.bytes
    guard let again = try? KeyBackupFile.parse(written) else { Fuzz.violated("an accepted backup file, written back, is refused") }
    Fuzz.require(again.bytes == written, "an accepted backup file does not write back to the same bytes twice")
    _ = try? SecretShares.decode(file.shares.encoded, purpose: .backupKey)
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzBackupFile_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
