import Crypto
import MeterTrustCore
import SwiftASN1
import X509

/// The meter's own identity key and the CSR it sends to the factory.
///
/// The key is a software P-256 key standing in for the meter's secure element: it is generated on the meter and
/// never leaves it; only the CSR does.
public struct MeterIdentity: Sendable {
    public let eui64: EUI64
    public let privateKey: P256.Signing.PrivateKey

    public init(eui64: EUI64, privateKey: P256.Signing.PrivateKey = P256.Signing.PrivateKey()) {
        self.eui64 = eui64
        self.privateKey = privateKey
    }

    /// The request ``DeviceIdentityRequest`` describes, signed with the meter's key.
    public func certificateSigningRequest(hardwareType: ASN1ObjectIdentifier, keyAgreement: Bool = false) throws -> CertificateSigningRequest {
        try DeviceIdentityRequest.make(eui64: eui64, privateKey: privateKey, hardwareType: hardwareType, keyAgreement: keyAgreement)
    }

    /// DER of ``certificateSigningRequest(hardwareType:keyAgreement:)``.
    public func certificateSigningRequestDER(hardwareType: ASN1ObjectIdentifier, keyAgreement: Bool = false) throws -> [UInt8] {
        try DeviceIdentityRequest.der(eui64: eui64, privateKey: privateKey, hardwareType: hardwareType, keyAgreement: keyAgreement)
    }
}
