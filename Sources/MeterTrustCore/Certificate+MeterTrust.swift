import Crypto
import SwiftASN1
import X509

extension Certificate {
    /// DER encoding.
    public var derBytes: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(self)
            return serializer.serializedBytes
        }
    }

    /// PEM encoding with a trailing newline.
    public var pem: String {
        get throws { try serializeAsPEM().pemString + "\n" }
    }

    /// Serial as lowercase hex of the INTEGER's content octets.
    public var serialHex: String { hexString(serialNumber.bytes) }

    /// SHA-256 fingerprint of the DER, lowercase hex.
    public var fingerprintSHA256: String {
        get throws { hexString(SHA256.hash(data: try derBytes)) }
    }

    /// The HardwareModuleName in the subjectAltName, if there is one.
    public var hardwareModuleName: HardwareModuleName? {
        get throws {
            guard let names = try extensions.subjectAlternativeNames else { return nil }
            for case .otherName(let otherName) in names where otherName.typeID == HardwareModuleName.otherNameTypeID {
                guard let value = otherName.value else { continue }
                var serializer = DER.Serializer()
                try serializer.serialize(value)
                return try HardwareModuleName(derEncoded: serializer.serializedBytes)
            }
            return nil
        }
    }
}
