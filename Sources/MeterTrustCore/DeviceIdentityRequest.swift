import Crypto
import SwiftASN1
import X509

/// The shape of the CSR a meter sends for its device identity certificate: what the meter builds (MeterTrustDevice)
/// and what the factory builds for a meter in the weaker factory-generated-key mode, written once.
///
/// A PKCS#10 request with an empty subject and a requested critical subjectAltName holding exactly one
/// HardwareModuleName {hwType, hwSerialNum = EUI-64}, a critical keyUsage (digitalSignature, or keyAgreement for a
/// key-agreement identity), signed with the meter's key (proof of possession).
public enum DeviceIdentityRequest {
    public static func make(
        eui64: EUI64, privateKey: P256.Signing.PrivateKey, hardwareType: ASN1ObjectIdentifier, keyAgreement: Bool = false
    ) throws -> CertificateSigningRequest {
        let extensions = try Certificate.Extensions([
            try requestedName(eui64: eui64, hardwareType: hardwareType),
            try Certificate.Extension(
                keyAgreement ? KeyUsage(keyAgreement: true) : KeyUsage(digitalSignature: true), critical: true
            ),
        ])
        return try CertificateSigningRequest(
            version: .v1, subject: DistinguishedName(), privateKey: Certificate.PrivateKey(privateKey),
            attributes: CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: extensions))]),
            signatureAlgorithm: .ecdsaWithSHA256
        )
    }

    /// DER of ``make(eui64:privateKey:hardwareType:keyAgreement:)``.
    public static func der(
        eui64: EUI64, privateKey: P256.Signing.PrivateKey, hardwareType: ASN1ObjectIdentifier, keyAgreement: Bool = false
    ) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(try make(eui64: eui64, privateKey: privateKey, hardwareType: hardwareType, keyAgreement: keyAgreement))
        return serializer.serializedBytes
    }

    /// The critical subjectAltName holding exactly one HardwareModuleName {hwType, hwSerialNum = EUI-64} that a
    /// meter's requests (identity and operational alike) ask for.
    static func requestedName(eui64: EUI64, hardwareType: ASN1ObjectIdentifier) throws -> Certificate.Extension {
        let name = HardwareModuleName(hardwareType: hardwareType, serialNumber: eui64.bytes)
        let otherName = GeneralName.OtherName(typeID: HardwareModuleName.otherNameTypeID, value: try ASN1Any(erasing: name))
        return try Certificate.Extension(SubjectAlternativeNames([.otherName(otherName)]), critical: true)
    }
}
