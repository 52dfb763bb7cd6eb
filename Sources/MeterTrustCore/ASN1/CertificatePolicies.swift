import SwiftASN1

/// The certificate policies extension, RFC 5280 §4.2.1.4 (identifiers only; qualifiers are kept as read).
///
/// ```
/// id-ce-certificatePolicies OBJECT IDENTIFIER ::=  { id-ce 32 }
/// certificatePolicies ::= SEQUENCE SIZE (1..MAX) OF PolicyInformation
/// PolicyInformation ::= SEQUENCE {
///     policyIdentifier   CertPolicyId,
///     policyQualifiers   SEQUENCE SIZE (1..MAX) OF PolicyQualifierInfo OPTIONAL }
/// ```
public struct CertificatePolicies: DERImplicitlyTaggable, Hashable, Sendable {
    public static let oid: ASN1ObjectIdentifier = [2, 5, 29, 32]
    public static var defaultIdentifier: ASN1Identifier { .sequence }

    public var policies: [ASN1ObjectIdentifier]

    public init(_ policies: [ASN1ObjectIdentifier]) {
        self.policies = policies
    }

    public init(derEncoded rootNode: ASN1Node, withIdentifier identifier: ASN1Identifier) throws {
        let policies = try DER.sequence(of: PolicyInformation.self, identifier: identifier, rootNode: rootNode)
        guard !policies.isEmpty else {
            throw ASN1Error.invalidASN1Object(reason: "certificatePolicies must hold at least one policy")
        }
        self.policies = policies.map(\.identifier)
    }

    public func serialize(into coder: inout DER.Serializer, withIdentifier identifier: ASN1Identifier) throws {
        try coder.serializeSequenceOf(policies.map { PolicyInformation(identifier: $0, qualifiers: nil) }, identifier: identifier)
    }

    struct PolicyInformation: DERImplicitlyTaggable, Hashable, Sendable {
        static var defaultIdentifier: ASN1Identifier { .sequence }
        var identifier: ASN1ObjectIdentifier
        var qualifiers: ASN1Any?

        init(identifier: ASN1ObjectIdentifier, qualifiers: ASN1Any?) {
            self.identifier = identifier
            self.qualifiers = qualifiers
        }

        init(derEncoded rootNode: ASN1Node, withIdentifier identifier: ASN1Identifier) throws {
            self = try DER.sequence(rootNode, identifier: identifier) { nodes in
                let id = try ASN1ObjectIdentifier(derEncoded: &nodes)
                let qualifiers = nodes.next().map { ASN1Any(derEncoded: $0) }
                return PolicyInformation(identifier: id, qualifiers: qualifiers)
            }
        }

        func serialize(into coder: inout DER.Serializer, withIdentifier identifier: ASN1Identifier) throws {
            try coder.appendConstructedNode(identifier: identifier) { coder in
                try coder.serialize(self.identifier)
                if let qualifiers { try coder.serialize(qualifiers) }
            }
        }
    }
}
