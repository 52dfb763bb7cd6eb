import FuzzMain
import FuzzSupport
import MeterTrustCore

// The certs-only CMS message an EST client reads (and the base64 body it arrives in): bounded, and whatever it
// accepts re-encodes to a message that decodes to the same certificates.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)
    for der in [input, try? Base64Body.decode(input, maximumLength: 4 * CertsOnlyCMS.maximumDERSize / 3 + 4096)].compactMap({ $0 }) {
        guard let message = try? CertsOnlyCMS(derEncoded: der) else { continue }
        Fuzz.require(message.certificates.count <= CertsOnlyCMS.maximumCertificates, "more certificates than the bound")
        do {
            let again = try CertsOnlyCMS(derEncoded: try message.derBytes())
            Fuzz.require(Set(again.certificates) == Set(message.certificates), "re-encoding changed the certificates")
        } catch {
            Fuzz.violated("an accepted message does not re-encode and decode: \(error)")
        }
    }
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzCertsOnlyCMS_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
