import FuzzMain
import FuzzSupport
import MeterTrustCore
import SwiftASN1

// CsrAttrs (RFC 7030 §4.5.2) as a meter's EST client reads a csrattrs answer (the base64 around it is Base64Body,
// fuzzed by FuzzCertsOnlyCMS). What must hold: a decoded CsrAttrs, serialized again, decodes as the same and
// serializes to the same bytes.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard let attributes = try? CsrAttrs(derEncoded: Fuzz.bytes(start, count)) else { return 0 }
    var serializer = DER.Serializer()
    guard (try? serializer.serialize(attributes)) != nil else { Fuzz.violated("a decoded CsrAttrs does not serialize") }
    let written = serializer.serializedBytes
    guard let again = try? CsrAttrs(derEncoded: written) else { Fuzz.violated("a CsrAttrs, serialized again, is refused") }
    Fuzz.require(again == attributes, "a CsrAttrs, serialized again, decodes as another")
    var second = DER.Serializer()
    guard (try? second.serialize(again)) != nil else { Fuzz.violated("a decoded CsrAttrs does not serialize") }
    Fuzz.require(second.serializedBytes == written, "CsrAttrs serialization is not a fixed point")
    return 0
}

@_cdecl("FuzzCsrAttrs_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
