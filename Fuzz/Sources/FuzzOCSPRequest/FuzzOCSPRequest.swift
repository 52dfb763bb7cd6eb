import FuzzMain
import FuzzSupport
import MeterTrustPKI

// An OCSP request (RFC 6960 §4.1.1) as the responder reads every POST body and GET path: anyone may send one. What
// must hold: an accepted request asks about 1 to 64 certificates, each serial at most 21 content octets, any nonce
// 1 to 128 octets (its extnValue a few octets more); parsing is deterministic; nothing else is accepted silently.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    guard let request = try? OCSPRequest(derEncoded: bytes) else { return 0 }
    Fuzz.require((1...OCSPRequest.maximumCertificates).contains(request.certificates.count), "a request of \(request.certificates.count) certificates was accepted")
    for certificate in request.certificates {
        Fuzz.require(certificate.serial.count <= 21, "a serial of \(certificate.serial.count) octets was accepted")
        Fuzz.require(!certificate.der.isEmpty && certificate.der.count <= bytes.count, "a CertID's DER is not part of the request")
    }
    if let nonce = request.nonceExtensionValue {
        Fuzz.require((3...(OCSPRequest.nonceLengths.upperBound + 4)).contains(nonce.count), "a nonce extension of \(nonce.count) octets was accepted")
    }
    Fuzz.require((try? OCSPRequest(derEncoded: bytes)) == request, "the same request parsed twice differs")
    return 0
}

@_cdecl("FuzzOCSPRequest_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
