import Crypto
import SwiftASN1
import X509

/// The shape of the CSR a meter sends over EST (`simpleenroll`, `simplereenroll`) for its operational certificate
/// (LDevID, profile device-operational in PROFILES.md), written once for the meter (MeterTrustDevice) and the EST
/// benchmark's simulated meters.
///
/// A PKCS#10 request (RFC 2986) with subject `CN=urn:dev:mac:<eui64>` (RFC 9039), a requested critical
/// subjectAltName holding exactly one HardwareModuleName {hwType, hwSerialNum = EUI-64} (RFC 4108 §5) — the same
/// hwType as the meter's factory identity — and a critical keyUsage digitalSignature, signed with the operational key
/// (proof of possession). It asks for nothing else: extendedKeyUsage clientAuth, the CRL distribution point and the
/// OCSP access are the profile's to add, and a request that asked for them would exceed the profile.
public enum DeviceOperationalRequest {
    public static func make(eui64: EUI64, privateKey: P256.Signing.PrivateKey, hardwareType: ASN1ObjectIdentifier) throws -> CertificateSigningRequest {
        let extensions = try Certificate.Extensions([
            try DeviceIdentityRequest.requestedName(eui64: eui64, hardwareType: hardwareType),
            try Certificate.Extension(KeyUsage(digitalSignature: true), critical: true),
        ])
        return try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(eui64.deviceURN) }, privateKey: Certificate.PrivateKey(privateKey),
            attributes: CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: extensions))]),
            signatureAlgorithm: .ecdsaWithSHA256
        )
    }

    /// DER of ``make(eui64:privateKey:hardwareType:)``.
    public static func der(eui64: EUI64, privateKey: P256.Signing.PrivateKey, hardwareType: ASN1ObjectIdentifier) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(try make(eui64: eui64, privateKey: privateKey, hardwareType: hardwareType))
        return serializer.serializedBytes
    }
}
