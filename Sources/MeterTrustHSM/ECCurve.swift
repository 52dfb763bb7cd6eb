import SwiftASN1

/// The elliptic curves MeterTrust generates keys on.
public enum ECCurve: String, Sendable, Hashable, Codable, CaseIterable {
    case p256 = "P-256"
    case p384 = "P-384"

    /// `namedCurve` OID (RFC 5480 §2.1.1.1).
    public var oid: ASN1ObjectIdentifier {
        switch self {
        case .p256: return [1, 2, 840, 10045, 3, 1, 7]
        case .p384: return [1, 3, 132, 0, 34]
        }
    }

    /// Length in bytes of one coordinate / one of r and s.
    public var coordinateLength: Int {
        switch self {
        case .p256: return 32
        case .p384: return 48
        }
    }

    /// DER of the OID, the value of CKA_EC_PARAMS.
    var ecParameters: [UInt8] {
        var serializer = DER.Serializer()
        try! serializer.serialize(oid)  // an OID literal always serialises
        return serializer.serializedBytes
    }
}
