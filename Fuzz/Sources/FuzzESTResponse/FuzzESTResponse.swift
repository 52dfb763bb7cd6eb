import Foundation
import FuzzMain
import FuzzSupport
import MeterTrustCore
import MeterTrustDevice
import SwiftASN1

// An EST server's answer as the meter's client reads it: `ESTResponse.meaning(of:from:)` on the status, the
// Content-Type, the Retry-After and the body (bounded). The first byte picks the operation and the status, the second
// the Content-Type; a third byte with the top bit set takes the text up to the first newline as Retry-After; the rest
// is the body. Whatever comes, the answer is certificates (which a certs-only CMS of them reads back as the same),
// CSR attributes (whose DER reads back as the same), a retry after a non-negative delay, or an ESTClientError of one
// line — never a trap.

let operations = ESTOperation.allCases
let statuses = [200, 200, 200, 202, 204, 400, 403, 404, 409, 500, 503, 503]
let contentTypes: [String?] = [
    "application/pkcs7-mime; smime-type=certs-only", "application/pkcs7-mime", "application/csrattrs", "application/problem+json",
    "text/plain", nil, "APPLICATION/PKCS7-MIME ; smime-type=certs-only", "application/problem+json; charset=utf-8",
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = Fuzz.bytes(start, count)[...]
    guard let selector = input.popFirst(), let typeByte = input.popFirst() else { return 0 }
    let operation = operations[Int(selector & 0x03)]
    let status = statuses[Int(selector >> 2) % statuses.count]
    let contentType = contentTypes[Int(typeByte) % contentTypes.count]
    var retryAfter: String?
    if let flag = input.first, flag & 0x80 != 0 {
        input = input.dropFirst()
        let line = input.prefix { $0 != 0x0a }
        retryAfter = String(decoding: line, as: UTF8.self)
        input = input.dropFirst(line.count + 1)
    }
    let response = ESTResponse(status: status, contentType: contentType, retryAfter: retryAfter, body: Array(input))
    do {
        switch try response.meaning(of: operation, from: "https://fuzz.invalid:443") {
        case .certificates(let certificates):
            Fuzz.require(status == 200 && operation != .csrattrs && !certificates.isEmpty, "certificates from status \(status), \(operation)")
            // DER SET order: the same certificates, perhaps in another order.
            let again = try CertsOnlyCMS(derEncoded: try CertsOnlyCMS(certificates: certificates).derBytes()).certificates
            Fuzz.require(Set(again) == Set(certificates) && again.count == certificates.count, "the certificates, in a certs-only CMS again, read back differently")
        case .attributes(let attributes):
            Fuzz.require(operation == .csrattrs, "CSR attributes for \(operation)")
            var serializer = DER.Serializer()
            try serializer.serialize(attributes)
            Fuzz.require(try CsrAttrs(derEncoded: serializer.serializedBytes) == attributes, "CSR attributes read back differently")
        case .retry(let seconds):
            Fuzz.require((status == 202 || status == 503) && seconds >= 0, "a retry from status \(status) after \(seconds) s")
        }
    } catch let error as ESTClientError {
        Fuzz.require(!error.message.contains("\n") && !error.message.contains("\r"), "an error message of more than one line: \(error.message)")
        Fuzz.note("refused: \(error.errorCode) \(error.message)")
    } catch {
        Fuzz.violated("meaning(of:) threw something other than an ESTClientError: \(error)")
    }
    return 0
}

/// The executable's entry point as SwiftPM links it (see FuzzMain.c).
@_cdecl("FuzzESTResponse_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
