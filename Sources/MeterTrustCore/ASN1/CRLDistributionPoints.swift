import SwiftASN1
import X509

/// The CRL distribution points extension, RFC 5280 §4.2.1.13, restricted to what MeterTrust issues: each point a
/// `fullName` of URIs, no reasons, no cRLIssuer.
///
/// ```
/// id-ce-cRLDistributionPoints OBJECT IDENTIFIER ::=  { id-ce 31 }
/// CRLDistributionPoints ::= SEQUENCE SIZE (1..MAX) OF DistributionPoint
/// DistributionPoint ::= SEQUENCE {
///      distributionPoint       [0]     DistributionPointName OPTIONAL,
///      reasons                 [1]     ReasonFlags OPTIONAL,
///      cRLIssuer               [2]     GeneralNames OPTIONAL }
/// DistributionPointName ::= CHOICE {
///      fullName                [0]     GeneralNames,
///      nameRelativeToCRLIssuer [1]     RelativeDistinguishedName }
/// ```
public struct CRLDistributionPoints: DERImplicitlyTaggable, Hashable, Sendable {
    public static let oid: ASN1ObjectIdentifier = [2, 5, 29, 31]
    public static var defaultIdentifier: ASN1Identifier { .sequence }

    /// One URI per distribution point.
    public var uris: [String]

    public init(uris: [String]) {
        self.uris = uris
    }

    public init(derEncoded rootNode: ASN1Node, withIdentifier identifier: ASN1Identifier) throws {
        self.uris = try DER.sequence(of: ASN1Any.self, identifier: identifier, rootNode: rootNode).flatMap { point in
            try DER.sequence(ASN1Node(point), identifier: .sequence) { nodes -> [String] in
                guard let name = try DER.optionalExplicitlyTagged(&nodes, tagNumber: 0, tagClass: .contextSpecific, { $0 }) else {
                    return []
                }
                return try DER.sequence(name, identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { names in
                    var uris: [String] = []
                    while let node = names.next() {
                        if case .uniformResourceIdentifier(let uri) = try GeneralName(derEncoded: node) { uris.append(uri) }
                    }
                    return uris
                }
            }
        }
    }

    public func serialize(into coder: inout DER.Serializer, withIdentifier identifier: ASN1Identifier) throws {
        try coder.appendConstructedNode(identifier: identifier) { coder in
            for uri in uris {
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { coder in
                        try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { coder in
                            try coder.serialize(GeneralName.uniformResourceIdentifier(uri))
                        }
                    }
                }
            }
        }
    }
}

extension ASN1Node {
    init(_ any: ASN1Any) throws {
        var serializer = DER.Serializer()
        try serializer.serialize(any)
        self = try DER.parse(serializer.serializedBytes)
    }
}
