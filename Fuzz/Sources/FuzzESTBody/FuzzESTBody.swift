import Foundation
import FuzzMain
import FuzzSupport
import MeterTrustCore
import SwiftASN1

// The EST server's parsers of untrusted bodies: `ESTBase64.decode` (every simpleenroll/simplereenroll body, with
// the server's 16 KiB bound) and `CsrAttrs` (a csrattrs response, as a meter's client would read it). The first
// input byte picks the parser.
//
// What must hold: base64 the decoder accepts, Foundation's decoder (which is laxer about padding) accepts too once
// whitespace is removed, with the same bytes (a differential check); its own encoding decodes back to the same bytes. A CsrAttrs decoded,
// serialized again, decodes as the same and serializes to the same bytes.

let maximum = 16 * 1024

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)
    guard let selector = input.first else { return 0 }
    let body = Array(input.dropFirst())
    if selector & 1 == 0 {
        let decoded = try? ESTBase64.decode(body, maximumDecodedBytes: maximum)
        let stripped = body.filter { ![0x20, 0x09, 0x0D, 0x0A].contains($0) }
        let foundation = Data(base64Encoded: Data(stripped)).map(Array.init)
        if let decoded {
            Fuzz.require(decoded.count <= maximum, "ESTBase64 returned \(decoded.count) bytes over its bound")
            Fuzz.require(foundation == decoded, "ESTBase64 accepted what Foundation decodes otherwise: \(stripped)")
            let again = try? ESTBase64.decode(Array(ESTBase64.encode(decoded).utf8), maximumDecodedBytes: maximum)
            Fuzz.require(again == decoded, "ESTBase64's own encoding does not decode to the same bytes")
        }
    } else {
        guard let attributes = try? CsrAttrs(derEncoded: body) else { return 0 }
        var serializer = DER.Serializer()
        guard (try? serializer.serialize(attributes)) != nil else { Fuzz.violated("a decoded CsrAttrs does not serialize") }
        let written = serializer.serializedBytes
        guard let again = try? CsrAttrs(derEncoded: written) else { Fuzz.violated("a CsrAttrs, serialized again, is refused") }
        Fuzz.require(again == attributes, "a CsrAttrs, serialized again, decodes as another")
        var second = DER.Serializer()
        guard (try? second.serialize(again)) != nil else { Fuzz.violated("a decoded CsrAttrs does not serialize") }
        Fuzz.require(second.serializedBytes == written, "CsrAttrs serialization is not a fixed point")
    }
    return 0
}

@_cdecl("FuzzESTBody_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
