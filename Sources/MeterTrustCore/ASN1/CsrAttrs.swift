import SwiftASN1

/// What an EST server asks a client to put in its certification request (RFC 7030 §4.5.2), served by `csrattrs`:
///
/// ```
/// CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
/// AttrOrOID ::= CHOICE (oid OBJECT IDENTIFIER, attribute Attribute }
/// Attribute { ATTRIBUTE:IOSet } ::= SEQUENCE {
///      type   ATTRIBUTE.&id({IOSet}),
///      values SET SIZE(1..MAX) OF ATTRIBUTE.&Type({IOSet}{@type}) }
/// ```
///
/// An OID alone names an algorithm or attribute to use (e.g. ecdsa-with-SHA256); an attribute names its type and
/// values (RFC 7030's own example: `id-ecPublicKey` with the curve, `extensionRequest` with the extension types).
/// Decoding is swift-asn1's DER parser (bounded by the input; it refuses indefinite lengths and trailing bytes).
public struct CsrAttrs: DERImplicitlyTaggable, Hashable, Sendable {
    public static var defaultIdentifier: ASN1Identifier { .sequence }

    /// `AttrOrOID`.
    public enum Item: Hashable, Sendable {
        case oid(ASN1ObjectIdentifier)
        /// An attribute's type and its values, each an OBJECT IDENTIFIER (all RFC 7030's examples and ours are OIDs;
        /// any other value is refused on decoding).
        case attribute(type: ASN1ObjectIdentifier, values: [ASN1ObjectIdentifier])
    }

    public var items: [Item]

    public init(_ items: [Item]) { self.items = items }

    public init(derEncoded rootNode: ASN1Node, withIdentifier identifier: ASN1Identifier) throws {
        items = try DER.sequence(of: ItemNode.self, identifier: identifier, rootNode: rootNode).map(\.item)
    }

    public func serialize(into coder: inout DER.Serializer, withIdentifier identifier: ASN1Identifier) throws {
        try coder.serializeSequenceOf(items.map(ItemNode.init), identifier: identifier)
    }

    /// One `AttrOrOID` on the wire.
    private struct ItemNode: DERParseable, DERSerializable {
        let item: Item

        init(_ item: Item) { self.item = item }

        init(derEncoded node: ASN1Node) throws {
            switch node.identifier {
            case ASN1ObjectIdentifier.defaultIdentifier:
                item = .oid(try ASN1ObjectIdentifier(derEncoded: node))
            case .sequence:
                item = try DER.sequence(node, identifier: .sequence) { nodes in
                    let type = try ASN1ObjectIdentifier(derEncoded: &nodes)
                    guard let set = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "an Attribute has no values") }
                    let values = try DER.set(of: ASN1ObjectIdentifier.self, identifier: .set, rootNode: set)
                    guard !values.isEmpty else { throw ASN1Error.invalidASN1Object(reason: "an Attribute's values are SET SIZE(1..MAX)") }
                    return .attribute(type: type, values: values)
                }
            default:
                throw ASN1Error.unexpectedFieldType(node.identifier)
            }
        }

        func serialize(into coder: inout DER.Serializer) throws {
            switch item {
            case .oid(let oid):
                try coder.serialize(oid)
            case .attribute(let type, let values):
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.serialize(type)
                    try coder.serializeSetOf(values, identifier: .set)
                }
            }
        }
    }
}

extension CsrAttrs {
    /// ecdsa-with-SHA256 (RFC 5758 §3.2).
    public static let ecdsaWithSHA256: ASN1ObjectIdentifier = [1, 2, 840, 10045, 4, 3, 2]
    /// id-ecPublicKey (RFC 5480 §2.1.1).
    public static let ecPublicKey: ASN1ObjectIdentifier = [1, 2, 840, 10045, 2, 1]
    /// prime256v1 / secp256r1 (RFC 5480 §2.1.1.1).
    public static let prime256v1: ASN1ObjectIdentifier = [1, 2, 840, 10045, 3, 1, 7]
    /// PKCS#9 extensionRequest (RFC 2985 §5.4.2).
    public static let extensionRequest: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 9, 14]
    /// id-ce-subjectAltName (RFC 5280 §4.2.1.6).
    public static let subjectAltName: ASN1ObjectIdentifier = [2, 5, 29, 17]

    /// What a meter's request for its operational certificate (profile device-operational) should carry: signed with
    /// ecdsa-with-SHA256, a P-256 key, and a subjectAltName holding its HardwareModuleName (RFC 4108; or
    /// CN=urn:dev:mac:<eui64> in the subject).
    public static let deviceOperational = CsrAttrs([
        .oid(ecdsaWithSHA256),
        .attribute(type: ecPublicKey, values: [prime256v1]),
        .attribute(type: extensionRequest, values: [subjectAltName, HardwareModuleName.otherNameTypeID]),
    ])
}
