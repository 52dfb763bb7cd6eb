import Foundation
import MeterTrustCore
import SwiftASN1
import X509

/// An X.509 v2 CRL (RFC 5280 §5) as MeterTrust publishes it: built with swift-asn1's DER serializer, signed in the
/// HSM by the CA itself (no indirect CRLs).
///
/// ```
/// CertificateList  ::=  SEQUENCE  {
///      tbsCertList          TBSCertList,
///      signatureAlgorithm   AlgorithmIdentifier,
///      signatureValue       BIT STRING  }
/// TBSCertList  ::=  SEQUENCE  {
///      version                 Version OPTIONAL,   -- v2 (1)
///      signature               AlgorithmIdentifier,
///      issuer                  Name,
///      thisUpdate              Time,
///      nextUpdate              Time OPTIONAL,
///      revokedCertificates     SEQUENCE OF SEQUENCE  {
///           userCertificate         CertificateSerialNumber,
///           revocationDate          Time,
///           crlEntryExtensions      Extensions OPTIONAL } OPTIONAL,
///      crlExtensions           [0]  EXPLICIT Extensions OPTIONAL }
/// ```
///
/// CRL extensions: authorityKeyIdentifier, cRLNumber and, for a shard's CRL, a critical issuingDistributionPoint whose
/// distribution point is the URI the shard's certificates name (so a relying party can never take a shard's CRL for
/// the complete one). Entry extensions: reasonCode (absent for unspecified, as §5.3.1 recommends) and invalidityDate.
public struct CertificateRevocationList: Sendable {
    /// One revoked certificate.
    public struct Entry: Sendable, Hashable {
        /// The serial's INTEGER content octets.
        public var serial: [UInt8]
        public var revocationDate: Date
        public var reason: RevocationReason
        public var invalidityDate: Date?

        public init(serial: [UInt8], revocationDate: Date, reason: RevocationReason, invalidityDate: Date? = nil) {
            self.serial = serial
            self.revocationDate = revocationDate
            self.reason = reason
            self.invalidityDate = invalidityDate
        }
    }

    /// What the CRL's issuing distribution point says of its scope.
    public struct Scope: Sendable, Hashable {
        /// The distribution point's URI (the shard's CRL URL).
        public var distributionPoint: String
        /// onlyContainsUserCerts: every certificate in the scope is an end entity's.
        public var onlyContainsUserCertificates: Bool

        public init(distributionPoint: String, onlyContainsUserCertificates: Bool) {
            self.distributionPoint = distributionPoint
            self.onlyContainsUserCertificates = onlyContainsUserCertificates
        }
    }

    public var issuer: DistinguishedName
    public var authorityKeyIdentifier: [UInt8]
    /// cRLNumber (RFC 5280 §5.2.3): monotonic per scope, at most 20 octets.
    public var number: CRLNumber
    public var thisUpdate: Date
    public var nextUpdate: Date
    /// Nil: the complete CRL of the CA (no issuing distribution point).
    public var scope: Scope?
    public var entries: [Entry]

    public init(
        issuer: DistinguishedName, authorityKeyIdentifier: [UInt8], number: CRLNumber, thisUpdate: Date, nextUpdate: Date, scope: Scope?,
        entries: [Entry]
    ) {
        self.issuer = issuer
        self.authorityKeyIdentifier = authorityKeyIdentifier
        self.number = number
        self.thisUpdate = thisUpdate
        self.nextUpdate = nextUpdate
        self.scope = scope
        self.entries = entries
    }

    static let reasonCodeOID: ASN1ObjectIdentifier = [2, 5, 29, 21]
    static let invalidityDateOID: ASN1ObjectIdentifier = [2, 5, 29, 24]
    static let crlNumberOID: ASN1ObjectIdentifier = [2, 5, 29, 20]
    static let issuingDistributionPointOID: ASN1ObjectIdentifier = [2, 5, 29, 28]

    /// The DER of TBSCertList for `algorithm`.
    public func tbsBytes(algorithm: SignatureAlgorithmIdentifier) throws -> [UInt8] {
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(1)  // v2
            try coder.serialize(algorithm)
            try coder.serialize(issuer)
            try DERTime.serialize(thisUpdate, into: &coder)
            try DERTime.serialize(nextUpdate, into: &coder)
            if !entries.isEmpty {
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    for entry in entries { try Self.serialize(entry, into: &coder) }
                }
            }
            try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.serialize(try Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: authorityKeyIdentifier[...]), critical: false))
                    try coder.serialize(Certificate.Extension(oid: Self.crlNumberOID, critical: false, value: try DERBytes.of(number.octets[...])[...]))
                    if let scope {
                        let value = try DERBytes.of(IssuingDistributionPoint(scope: scope))
                        try coder.serialize(Certificate.Extension(oid: Self.issuingDistributionPointOID, critical: true, value: value[...]))
                    }
                }
            }
        }
        return coder.serializedBytes
    }

    private static func serialize(_ entry: Entry, into coder: inout DER.Serializer) throws {
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(entry.serial[...])
            try DERTime.serialize(entry.revocationDate, into: &coder)
            guard entry.reason != .unspecified || entry.invalidityDate != nil else { return }
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                if entry.reason != .unspecified {
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(reasonCodeOID)
                        try coder.serialize(ASN1OctetString(contentBytes: try DERBytes.enumerated(entry.reason.rawValue)[...]))
                    }
                }
                if let invalidity = entry.invalidityDate {
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(invalidityDateOID)
                        var inner = DER.Serializer()
                        try inner.serialize(try GeneralizedTime(invalidity))
                        try coder.serialize(ASN1OctetString(contentBytes: inner.serializedBytes[...]))
                    }
                }
            }
        }
    }

    /// The signed CRL's DER: the TBSCertList signed by `sign` (DER ECDSA-Sig-Value over the TBS bytes; the CA's HSM
    /// key, blocking: call from the HSM queue or a worker thread).
    public func signed(algorithm: SignatureAlgorithmIdentifier, sign: (_ tbs: [UInt8]) throws -> [UInt8]) throws -> [UInt8] {
        let tbs = try tbsBytes(algorithm: algorithm)
        let signature = try sign(tbs)
        return try SignedDocument.der(tbs: tbs, algorithm: algorithm, signature: signature)
    }
}

/// A cRLNumber anchored in the audit log: the verified log's size in the high octets, thisUpdate's Unix seconds in
/// the low four. The log's size never decreases (its head is kept in the HSM: a restored database is detected, not
/// believed), and a later CRL of the same scope at the same size has a later thisUpdate, so numbers only grow and
/// are never reused, even after a database restore; no counter in the database is trusted for it. 12 octets.
public struct CRLNumber: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Big-endian magnitude: 8 octets of the log size, 4 of seconds.
    public let value: (high: UInt64, low: UInt32)

    public init(auditSize: Int, thisUpdate: Date) {
        value = (UInt64(max(0, auditSize)), UInt32(truncatingIfNeeded: Int64(thisUpdate.timeIntervalSince1970.rounded(.down))))
    }

    init(high: UInt64, low: UInt32) { value = (high, low) }

    /// The next number after this one (a CRL rebuilt within the same second at the same log size).
    public var successor: CRLNumber { value.low == .max ? CRLNumber(high: value.high + 1, low: 0) : CRLNumber(high: value.high, low: value.low + 1) }

    /// INTEGER content octets (a leading 0x00 only where the top bit is set), minimal.
    public var octets: [UInt8] {
        let raw = withUnsafeBytes(of: value.high.bigEndian, Array.init) + withUnsafeBytes(of: value.low.bigEndian, Array.init)
        return Array(Certificate.SerialNumber(bytes: raw.drop { $0 == 0 }.isEmpty ? [0] : Array(raw.drop { $0 == 0 })).bytes)
    }

    public var description: String { hexString(octets) }

    public static func < (lhs: CRLNumber, rhs: CRLNumber) -> Bool { lhs.value.high != rhs.value.high ? lhs.value.high < rhs.value.high : lhs.value.low < rhs.value.low }
    public static func == (lhs: CRLNumber, rhs: CRLNumber) -> Bool { lhs.value == rhs.value }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(value.high)
        hasher.combine(value.low)
    }
}

/// ```
/// IssuingDistributionPoint ::= SEQUENCE {
///      distributionPoint          [0] DistributionPointName OPTIONAL,
///      onlyContainsUserCerts      [1] BOOLEAN DEFAULT FALSE,
///      onlyContainsCACerts        [2] BOOLEAN DEFAULT FALSE,
///      onlySomeReasons            [3] ReasonFlags OPTIONAL,
///      indirectCRL                [4] BOOLEAN DEFAULT FALSE,
///      onlyContainsAttributeCerts [5] BOOLEAN DEFAULT FALSE }
/// ```
struct IssuingDistributionPoint: DERSerializable {
    let scope: CertificateRevocationList.Scope

    func serialize(into coder: inout DER.Serializer) throws {
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { coder in
                try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { coder in
                    try coder.serialize(GeneralName.uniformResourceIdentifier(scope.distributionPoint))
                }
            }
            if scope.onlyContainsUserCertificates {
                try true.serialize(into: &coder, withIdentifier: ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific))
            }
        }
    }
}

/// The signature algorithms MeterTrust's HSM keys sign with: ECDSA with SHA-256 (P-256) or SHA-384 (P-384), whose
/// AlgorithmIdentifier has no parameters (RFC 5758 §3.2).
public enum SignatureAlgorithmIdentifier: DERSerializable, Sendable, Hashable {
    case ecdsaWithSHA256, ecdsaWithSHA384

    var oid: ASN1ObjectIdentifier {
        switch self {
        case .ecdsaWithSHA256: [1, 2, 840, 10045, 4, 3, 2]
        case .ecdsaWithSHA384: [1, 2, 840, 10045, 4, 3, 3]
        }
    }

    public func serialize(into coder: inout DER.Serializer) throws {
        try coder.appendConstructedNode(identifier: .sequence) { coder in try coder.serialize(oid) }
    }
}

/// Signed ASN.1 documents of the X.509 family (CRLs, BasicOCSPResponse) end the same way.
enum SignedDocument {
    /// `SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }`, the TBS copied as it was signed.
    static func der(tbs: [UInt8], algorithm: SignatureAlgorithmIdentifier, signature: [UInt8]) throws -> [UInt8] {
        var coder = DER.Serializer()
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            coder.serializeRawBytes(tbs)
            try coder.serialize(algorithm)
            try coder.serialize(ASN1BitString(bytes: signature[...]))
        }
        return coder.serializedBytes
    }
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, UTC.
public enum DERTime {
    public static func serialize(_ date: Date, into coder: inout DER.Serializer) throws {
        let c = components(date)
        if c.year < 2050 {
            try coder.serialize(try UTCTime(year: c.year, month: c.month, day: c.day, hours: c.hour, minutes: c.minute, seconds: c.second))
        } else {
            try coder.serialize(try GeneralizedTime(date))
        }
    }

    static func components(_ date: Date) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }
}

extension GeneralizedTime {
    /// `date` in whole seconds, UTC (RFC 5280 §4.1.2.5.2: no fractional seconds).
    public init(_ date: Date) throws {
        let c = DERTime.components(date)
        try self.init(year: c.year, month: c.month, day: c.day, hours: c.hour, minutes: c.minute, seconds: c.second, fractionalSeconds: 0)
    }
}

/// DER encodings of single values, for extension values.
enum DERBytes {
    static func of(_ value: some DERSerializable) throws -> [UInt8] {
        var coder = DER.Serializer()
        try coder.serialize(value)
        return coder.serializedBytes
    }

    /// An ENUMERATED of `value` (0...127).
    static func enumerated(_ value: Int) throws -> [UInt8] {
        var coder = DER.Serializer()
        try value.serialize(into: &coder, withIdentifier: .enumerated)
        return coder.serializedBytes
    }
}
