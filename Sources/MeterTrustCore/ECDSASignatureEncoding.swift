import SwiftASN1

/// The two encodings of an ECDSA signature, and the one place MeterTrust converts between them.
///
/// - *raw*: `r ‖ s`, each a big-endian unsigned integer left-padded to the curve's coordinate size. This is what
///   PKCS#11 `CKM_ECDSA` returns (PKCS#11 v3.0 §2.3.1) and what swift-crypto's `rawRepresentation` holds.
/// - *DER*: the `ECDSA-Sig-Value` of RFC 3279 §2.2.3, used in X.509 signatures, CSRs, TLS 1.3 CertificateVerify
///   and MeterTrust's own signed documents (checkpoints, audit seals, enrollment manifests):
///
/// ```
/// Ecdsa-Sig-Value  ::=  SEQUENCE  {
///      r     INTEGER,
///      s     INTEGER  }
/// ```
///
/// Both directions go through swift-asn1's DER serializer and parser. The conversion runs once per certificate on
/// the issuance hot path: raw → DER makes one serializer buffer and no other allocation, which costs well under a
/// microsecond next to the token's ~35 µs `C_Sign` (BENCHMARKS.md), so no hand-written DER is needed.
public enum ECDSASignatureEncoding {
    /// Why a conversion was refused.
    ///
    /// Like swift-certificates' `CertificateError`, the code is opaque and growable; the message is for people.
    public struct Error: Swift.Error, Hashable, Sendable, CustomStringConvertible {
        public struct Code: Hashable, Sendable, CustomStringConvertible {
            enum Backing: Hashable, Sendable {
                case rawLength, malformedDER, negativeInteger, integerTooLong, zeroInteger
            }
            let backing: Backing
            /// A raw signature that is empty or of odd length, or not twice the coordinate size.
            public static let rawLength = Code(backing: .rawLength)
            /// Not one DER `SEQUENCE` of exactly two minimally encoded INTEGERs with nothing after it.
            public static let malformedDER = Code(backing: .malformedDER)
            /// An INTEGER with its sign bit set: r and s are positive (1 ≤ r, s < n).
            public static let negativeInteger = Code(backing: .negativeInteger)
            /// An INTEGER whose magnitude does not fit in the coordinate size.
            public static let integerTooLong = Code(backing: .integerTooLong)
            /// r or s is zero, which no ECDSA signature has (1 ≤ r, s < n; FIPS 186-5 §6.4.1).
            public static let zeroInteger = Code(backing: .zeroInteger)
            public var description: String { "\(backing)" }
        }

        public let code: Code
        public let message: String
        public var description: String { message }

        init(_ code: Code, _ message: String) {
            self.code = code
            self.message = message
        }
    }

    /// The DER `ECDSA-Sig-Value` of the raw signature `r ‖ s` (two halves of equal length): each half becomes a
    /// non-negative INTEGER, its leading zero octets dropped and one zero octet added when its first octet has the
    /// high bit set (X.690 §8.3.2).
    public static func der(raw: ArraySlice<UInt8>) throws -> [UInt8] {
        guard !raw.isEmpty, raw.count % 2 == 0 else {
            throw Error(.rawLength, "a raw ECDSA signature is two halves of equal length, not \(raw.count) octets")
        }
        let middle = raw.startIndex + raw.count / 2
        let r = raw[..<middle]
        let s = raw[middle...]
        guard r.contains(where: { $0 != 0 }), s.contains(where: { $0 != 0 }) else {
            throw Error(.zeroInteger, "a raw ECDSA signature with r or s zero")
        }
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(r)
            try coder.serialize(s)
        }
        return serializer.serializedBytes
    }

    /// The DER `ECDSA-Sig-Value` of the raw signature `r ‖ s`.
    public static func der(raw: [UInt8]) throws -> [UInt8] {
        try der(raw: raw[...])
    }

    /// The raw signature `r ‖ s` of a DER `ECDSA-Sig-Value`, each half left-padded with zeros to `coordinateLength`
    /// octets (32 for P-256, 48 for P-384). Refuses anything but exactly one DER SEQUENCE of two positive INTEGERs
    /// that fit the coordinate size.
    public static func raw(der: ArraySlice<UInt8>, coordinateLength: Int) throws -> [UInt8] {
        guard coordinateLength > 0 else {
            throw Error(.rawLength, "a coordinate size of \(coordinateLength) octets")
        }
        let root: ASN1Node
        do {
            root = try DER.parse(der)
        } catch {
            throw Error(.malformedDER, "an ECDSA signature that is not one DER value: \(error)")
        }
        guard root.identifier == .sequence, case .constructed(let nodes) = root.content else {
            throw Error(.malformedDER, "an ECDSA signature that is not a SEQUENCE but \(root.identifier)")
        }
        var iterator = nodes.makeIterator()
        guard let rNode = iterator.next(), let sNode = iterator.next(), iterator.next() == nil else {
            throw Error(.malformedDER, "an ECDSA signature that is not a SEQUENCE of two INTEGERs")
        }
        let r = try magnitude(rNode, name: "r", coordinateLength: coordinateLength)
        let s = try magnitude(sNode, name: "s", coordinateLength: coordinateLength)
        var output = [UInt8](repeating: 0, count: 2 * coordinateLength)
        output.replaceSubrange((coordinateLength - r.count)..<coordinateLength, with: r)
        output.replaceSubrange((2 * coordinateLength - s.count)..<(2 * coordinateLength), with: s)
        return output
    }

    /// The raw signature `r ‖ s` of a DER `ECDSA-Sig-Value`.
    public static func raw(der: [UInt8], coordinateLength: Int) throws -> [UInt8] {
        try raw(der: der[...], coordinateLength: coordinateLength)
    }

    /// The magnitude of a positive INTEGER, without leading zeros.
    private static func magnitude(_ node: ASN1Node, name: String, coordinateLength: Int) throws -> ArraySlice<UInt8> {
        guard node.identifier == .integer, case .primitive(let content) = node.content, let first = content.first else {
            throw Error(.malformedDER, "\(name) of an ECDSA signature is not an INTEGER")
        }
        guard first & 0x80 == 0 else {
            throw Error(.negativeInteger, "\(name) of an ECDSA signature is negative")
        }
        let magnitude: ArraySlice<UInt8>
        do {
            // Refuses non-minimal encodings (X.690 §8.3.2) and strips the one zero octet before a high bit.
            magnitude = try ArraySlice<UInt8>(derEncoded: node)
        } catch {
            throw Error(.malformedDER, "\(name) of an ECDSA signature is not a DER INTEGER: \(error)")
        }
        guard magnitude.contains(where: { $0 != 0 }) else {
            throw Error(.zeroInteger, "\(name) of an ECDSA signature is zero")
        }
        guard magnitude.count <= coordinateLength else {
            throw Error(.integerTooLong, "\(name) of an ECDSA signature has \(magnitude.count) octets, more than \(coordinateLength)")
        }
        return magnitude
    }
}

extension ECDSASignatureEncoding.Error: CodedError {
    /// Every refusal of the encoding is malformed input (the finer reason is ``code``).
    public var errorCode: ErrorCode { .malformedInput }
}
