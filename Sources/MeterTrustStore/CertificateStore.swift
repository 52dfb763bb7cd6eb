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
}
