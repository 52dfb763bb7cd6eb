import SwiftASN1

/// The hardware module name of RFC 4108 §5, carried as an otherName in subjectAltName.
///
/// ```
/// id-on-hardwareModuleName OBJECT IDENTIFIER ::= { id-on 4 }   -- 1.3.6.1.5.5.7.8.4
/// HardwareModuleName ::= SEQUENCE {
///     hwType OBJECT IDENTIFIER,
///     hwSerialNum OCTET STRING }
/// ```
/// MeterTrust puts the device-type OID in `hwType` and the meter's 8-byte EUI-64 in `hwSerialNum`
/// (GB SMKI device certificate profile; IEEE 802.1AR).
public struct HardwareModuleName: DERImplicitlyTaggable, Hashable, Sendable {
    public static let otherNameTypeID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 8, 4]
    public static var defaultIdentifier: ASN1Identifier { .sequence }

    public var hardwareType: ASN1ObjectIdentifier
    public var serialNumber: [UInt8]

    public init(hardwareType: ASN1ObjectIdentifier, serialNumber: [UInt8]) {
        self.hardwareType = hardwareType
        self.serialNumber = serialNumber
    }

    public init(derEncoded rootNode: ASN1Node, withIdentifier identifier: ASN1Identifier) throws {
        self = try DER.sequence(rootNode, identifier: identifier) { nodes in
            let type = try ASN1ObjectIdentifier(derEncoded: &nodes)
            let serial = try ASN1OctetString(derEncoded: &nodes)
            return HardwareModuleName(hardwareType: type, serialNumber: Array(serial.bytes))
        }
    }

    public func serialize(into coder: inout DER.Serializer, withIdentifier identifier: ASN1Identifier) throws {
        try coder.appendConstructedNode(identifier: identifier) { coder in
            try coder.serialize(hardwareType)
            try coder.serialize(ASN1OctetString(contentBytes: serialNumber[...]))
        }
    }
}
