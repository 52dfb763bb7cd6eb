import Crypto
import FuzzMain
import FuzzSupport
import MeterTrustPKI
import SwiftASN1
import X509

// The CSR on both of its paths. The octet-level reader (`DeviceRequest.read`, the factory's hot path) is a shortcut,
// never a second judge: whatever it accepts, the model path (`CSRCheck.validate`, swift-certificates) must accept
// with the same reading (EUI-64, key, key identifier, key usage, hwType), as IssuanceHotPathTests holds it on
// mutated requests. The model path is also run as the issuer and the admin CLI run it: PEM or DER, then checked.

let profiles: [CertificateProfile] = [.deviceIdentity, .deviceOperational]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)

    for profile in profiles {
        let fast = DeviceRequest.read(input, profile: profile)
        let full: ValidatedCSR
        do {
            full = try CSRCheck.validate(der: input, profile: profile)
        } catch {
            if let fast {
                Fuzz.violated("profile \(profile.name): the octet-level reader accepted \(fast) but the model path refused: \(error)")
            }
            continue
        }
        guard let fast else { continue }
        Fuzz.require(DeviceRequest.verifiesProofOfPossession(input), "accepted by the reader without proof of possession")
        Fuzz.require(fast.claimedEUI64 == full.claimedEUI64, "EUI-64: reader \(String(describing: fast.claimedEUI64)), model \(String(describing: full.claimedEUI64))")
        Fuzz.require(fast.subjectKeyIdentifier == full.subjectKeyIdentifier, "subject key identifiers differ")
        guard let key = P256.Signing.PublicKey(full.publicKey) else { Fuzz.violated("the reader accepted a key the model path reads as not P-256") }
        Fuzz.require(Array(fast.point) == Array(key.x963Representation), "public keys differ")
        let fullUsage: DeviceRequest.Usage? = full.requestedKeyUsage.map { $0.keyAgreement ? .keyAgreement : .digitalSignature }
        Fuzz.require(fast.requestedKeyUsage == fullUsage, "key usage: reader \(String(describing: fast.requestedKeyUsage)), model \(String(describing: full.requestedKeyUsage))")
        var typeContent: [UInt8]? = nil
        if let type = full.claimedHardwareType {
            var serializer = DER.Serializer()
            do { try serializer.serialize(type) } catch { Fuzz.violated("the model path's hwType does not encode: \(error)") }
            typeContent = Array(serializer.serializedBytes.dropFirst(2))
        }
        Fuzz.require(fast.claimedHardwareType.map(Array.init) == typeContent, "hwType: reader and model path differ")
    }

    // The model path as CertificateIssuer and `metertrust admin` take a request: PEM or DER.
    if let der = try? CSRCheck.decode(input), der != input {
        _ = try? CSRCheck.validate(der: der, profile: .deviceIdentity)
        _ = DeviceRequest.read(der, profile: .deviceIdentity)
    }
    _ = try? CSRCheck.validate(der: input, profile: .custodian)
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzCSR_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
