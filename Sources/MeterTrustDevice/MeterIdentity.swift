import Crypto
import MeterTrustPKI
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

    /// A PKCS#10 request with an empty subject and a requested critical subjectAltName holding exactly one
    /// HardwareModuleName {hwType, hwSerialNum = EUI-64}, signed with the meter's key (proof of possession).
    public func certificateSigningRequest(hardwareType: ASN1ObjectIdentifier, keyAgreement: Bool = false) throws -> CertificateSigningRequest {
        let name = HardwareModuleName(hardwareType: hardwareType, serialNumber: eui64.bytes)
        let otherName = GeneralName.OtherName(typeID: HardwareModuleName.otherNameTypeID, value: try ASN1Any(erasing: name))
        let extensions = try Certificate.Extensions([
            try Certificate.Extension(SubjectAlternativeNames([.otherName(otherName)]), critical: true),
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

    /// DER of ``certificateSigningRequest(hardwareType:keyAgreement:)``.
    public func certificateSigningRequestDER(hardwareType: ASN1ObjectIdentifier, keyAgreement: Bool = false) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(try certificateSigningRequest(hardwareType: hardwareType, keyAgreement: keyAgreement))
        return serializer.serializedBytes
    }
}
