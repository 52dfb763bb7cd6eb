import SwiftASN1

/// What an EST server asks a meter to put in its CSR (RFC 7030 §4.5.2), the answer of `csrattrs`.
///
/// ```
/// CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
/// AttrOrOID ::= CHOICE (oid OBJECT IDENTIFIER, attribute Attribute }
/// Attribute { ATTRIBUTE:IOSet } ::= SEQUENCE {
///      type   ATTRIBUTE.&id({IOSet}),
///      values SET SIZE(1..MAX) OF ATTRIBUTE.&Type({IOSet}{@type}) }
/// ```
/// The meter reads the object identifiers (an attribute's by its `type`) and keeps the values as DER: its CSR's shape
/// is fixed by the device-operational profile (``MeterTrustCore/DeviceOperationalRequest``), so the list is shown,
/// not obeyed.
public struct CSRAttributes: DERImplicitlyTaggable, Hashable, Sendable {
    public enum Item: Hashable, Sendable {
        case oid(ASN1ObjectIdentifier)
        /// An attribute: its type and the DER of its values' SET.
        case attribute(type: ASN1ObjectIdentifier, values: [UInt8])

        public var identifier: ASN1ObjectIdentifier {
            switch self {
            case .oid(let oid): return oid
            case .attribute(let type, _): return type
            }
        }
    }

    public static var defaultIdentifier: ASN1Identifier { .sequence }
    /// More than this many items is not a meter's CSR attribute list.
    public static let maximumItems = 64

    public var items: [Item]

    public init(items: [Item]) {
        self.items = items
    }

    public init(derEncoded rootNode: ASN1Node, withIdentifier identifier: ASN1Identifier) throws {
        self = try DER.sequence(rootNode, identifier: identifier) { nodes in
            var items: [Item] = []
            while let node = nodes.next() {
                guard items.count < Self.maximumItems else {
                    throw ASN1Error.invalidASN1Object(reason: "more than \(Self.maximumItems) CSR attributes")
                }
                if node.identifier == .objectIdentifier {
                    items.append(.oid(try ASN1ObjectIdentifier(derEncoded: node)))
                } else {
                    items.append(
                        try DER.sequence(node, identifier: .sequence) { inner in
                            let type = try ASN1ObjectIdentifier(derEncoded: &inner)
                            guard let values = inner.next(), values.identifier == .set else {
                                throw ASN1Error.invalidASN1Object(reason: "an attribute without its SET of values")
                            }
                            guard case .constructed(let children) = values.content, children.contains(where: { _ in true }) else {
                                throw ASN1Error.invalidASN1Object(reason: "an attribute with an empty SET of values")
                            }
                            return .attribute(type: type, values: Array(values.encodedBytes))
                        }
                    )
                }
            }
            return CSRAttributes(items: items)
        }
    }

    public func serialize(into coder: inout DER.Serializer, withIdentifier identifier: ASN1Identifier) throws {
        try coder.appendConstructedNode(identifier: identifier) { coder in
            for item in items {
                switch item {
                case .oid(let oid):
                    try coder.serialize(oid)
                case .attribute(let type, let values):
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(type)
                        coder.serializeRawBytes(values)
                    }
                }
            }
        }
    }
}
