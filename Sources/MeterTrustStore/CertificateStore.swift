import Foundation

/// Certificates: what an issuer needs. Uniqueness of (issuer, serial) is the database's constraint, so it holds
/// across every node that shares the store.
public protocol CertificateStore: Sendable {
    /// Stores one certificate. Throws ``StoreError/Code/duplicate`` if the issuer already used the serial.
    func insertCertificate(_ certificate: CertificateRecord) async throws
    /// Stores several certificates in one transaction: all or none.
    func insertCertificates(_ certificates: [CertificateRecord]) async throws
    /// Certificates with this serial issued by registered CAs (unique per issuer, so at most one per CA).
    func certificates(serial: String) async throws -> [CertificateRecord]
    func certificate(issuer: String, serial: String) async throws -> CertificateRecord?
    func certificateCount(issuer: String?) async throws -> Int
    /// The certificates matching `filter` after `position` (from the start if nil), at most `limit` of them, in the
    /// listing order (``CertificateListPosition``: issuer, then serial); `next` is set when more match. Keyset
    /// paging: a page costs the same wherever it starts, and a certificate stored meanwhile repeats or shifts nothing.
    func certificates(matching filter: CertificateFilter, after position: CertificateListPosition?, limit: Int) async throws -> CertificatePage
}

/// The certificates a listing returns: every field that is set must match.
public struct CertificateFilter: Sendable, Hashable {
    /// The issuing CA's name.
    public var issuer: String?
    /// The profile the certificate was issued under.
    public var profile: String?
    /// The meter (16 lowercase hex digits): its device identity and every other certificate naming it.
    public var eui64: String?
    /// The factory batch that issued it.
    public var batch: String?
    /// Stored (issued) at or after this time.
    public var issuedSince: Date?

    public init(issuer: String? = nil, profile: String? = nil, eui64: String? = nil, batch: String? = nil, issuedSince: Date? = nil) {
        self.issuer = issuer
        self.profile = profile
        self.eui64 = eui64
        self.batch = batch
        self.issuedSince = issuedSince
    }
}

/// A place in the order listings use: by issuer name, then serial (both compared octet by octet, as the primary key
/// orders them; serials begin with the issuance time, so within one CA the order is oldest first). Written
/// `issuer/serial`, the cursor a caller hands back for the next page.
public struct CertificateListPosition: Sendable, Hashable, LosslessStringConvertible {
    public var issuer: String
    public var serial: String

    public init(issuer: String, serial: String) {
        self.issuer = issuer
        self.serial = serial
    }

    public init?(_ description: String) {
        guard let slash = description.lastIndex(of: "/") else { return nil }
        let issuer = String(description[..<slash])
        let serial = String(description[description.index(after: slash)...])
        // A CA name has no '/'; a serial is lowercase hex of at most 20 octets, as the store keeps it.
        guard !issuer.isEmpty, !issuer.contains("/"), (1...40).contains(serial.utf8.count),
            serial.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { return nil }
        self.init(issuer: issuer, serial: serial)
    }

    public init(_ record: CertificateRecord) {
        self.init(issuer: record.issuer, serial: record.serial)
    }

    public var description: String { "\(issuer)/\(serial)" }
}

/// One page of a listing and where the next one starts.
public struct CertificatePage: Sendable, Hashable {
    public var certificates: [CertificateRecord]
    /// The position of the last certificate of this page when more follow; nil on the last page.
    public var next: CertificateListPosition?

    public init(certificates: [CertificateRecord], next: CertificateListPosition?) {
        self.certificates = certificates
        self.next = next
    }
}

