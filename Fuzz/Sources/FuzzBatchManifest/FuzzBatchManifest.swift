import Foundation
import FuzzMain
import FuzzSupport
import MeterTrustFactory

// The batch manifest as the batch runner loads it. A manifest that loads, written back as JSON, loads again as the
// same batch.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Data(Fuzz.bytes(start, count))
    guard let manifest = try? BatchManifest.load(from: input) else { return 0 }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let written: Data
    do { written = try encoder.encode(manifest) } catch { Fuzz.violated("a loaded manifest does not encode: \(error)") }
    let again: BatchManifest
    do { again = try BatchManifest.load(from: written) } catch { Fuzz.violated("a loaded manifest, written back, is refused: \(error)") }
    Fuzz.require(
        again.batch == manifest.batch && again.meterCount == manifest.meterCount && again.keyMode == manifest.keyMode
            && again.meters.start == manifest.meters.start && again.meters.eui64s == manifest.meters.eui64s
            && again.firmware.sha256 == manifest.firmware.sha256 && again.parameters == manifest.parameters,
        "a loaded manifest, written back, loads as another batch"
    )
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzBatchManifest_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
