import Crypto
import Foundation
import FuzzMain
import FuzzSupport
import MeterTrustDevice
import SwiftASN1
import X509

// An OCSP answer as the meter reads it when it checks the EST server's certificate (--check-server-ocsp): whoever
// sits between the meter and the responder may send any bytes. What must hold: never a crash, and never a status
// believed, because no input can carry a signature by the issuer's key (drawn when the fuzzer starts) or by a
// responder that key certified.

let issuerKey = P256.Signing.PrivateKey()
let issuer: Certificate = {
    let name = try! DistinguishedName { CommonName("Fuzz Issuing CA") }
    let now = Date()
    return try! Certificate(
        version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(issuerKey.publicKey), notValidBefore: now - 3600,
        notValidAfter: now + 86_400, issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
        extensions: try! Certificate.Extensions { Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0)) },
        issuerPrivateKey: .init(issuerKey)
    )
}()
let nonce = [UInt8](repeating: 0x5a, count: 32)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    if let status = try? OCSPStatusCheck.status(of: bytes, certificate: issuer, issuer: issuer, nonce: nonce) {
        Fuzz.require(false, "an answer no one could have signed was believed: \(status)")
    }
    return 0
}

@_cdecl("FuzzOCSPAnswer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
