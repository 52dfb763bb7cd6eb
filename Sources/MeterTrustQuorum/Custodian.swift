import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore
import SwiftASN1
import X509

/// A registered custodian with their admin certificate parsed.
public struct Custodian: Sendable {
    public let record: CustodianRecord
    public let role: CustodianRole
    public let certificate: Certificate
    public let publicKey: P256.Signing.PublicKey

    public var name: String { record.name }
    public var isActive: Bool { record.removedAt == nil }

    public init(_ record: CustodianRecord) throws {
        self.record = record
        self.role = try CustodianRole.parse(record.role)
        self.certificate = try Certificate(derEncoded: record.certificateDER)
        guard let key = P256.Signing.PublicKey(certificate.publicKey) else {
            throw QuorumError(.invalidCertificate, "custodian \(record.name)'s certificate does not hold a P-256 key")
        }
        self.publicKey = key
    }

    /// Checks an admin certificate offered for registration and returns the record to store: it must chain to the
    /// Admin CA (and through it to the root), be valid now, be a custodian-profile certificate (P-256,
    /// digitalSignature, EKU clientAuth) and name the person (CN) and a known role (OU).
    public static func admit(
        certificate der: [UInt8], adminCA: CertificateAuthority, registeredBy request: String?, now: Date = Date()
    ) async throws -> CustodianRecord {
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: der)
        } catch {
            throw QuorumError(.invalidCertificate, "the custodian certificate is not a DER X.509 certificate")
        }
        do {
            try await ChainVerification.verify(leaf: certificate, intermediates: [adminCA.certificate], root: adminCA.root)
        } catch {
            throw QuorumError(.invalidCertificate, "the custodian certificate does not chain to Admin CA \(adminCA.name): \(error)")
        }
        guard certificate.issuer == adminCA.certificate.subject else {
            throw QuorumError(.invalidCertificate, "the custodian certificate was issued by \(certificate.issuer), not by Admin CA \(adminCA.name)")
        }
        guard P256.Signing.PublicKey(certificate.publicKey) != nil else {
            throw QuorumError(.invalidCertificate, "a custodian certificate holds a P-256 key")
        }
        guard let usage = try? certificate.extensions.extendedKeyUsage, usage.contains(.clientAuth) else {
            throw QuorumError(.invalidCertificate, "the custodian certificate lacks extended key usage clientAuth")
        }
        let attributes = certificate.subject.flatMap { Array($0) }
        let names = attributes.filter { $0.type == .RDNAttributeType.commonName }.compactMap { String($0.value) }
        let units = attributes.filter { $0.type == .RDNAttributeType.organizationalUnitName }.compactMap { String($0.value) }
        guard names.count == 1, units.count == 1 else {
            throw QuorumError(.invalidCertificate, "a custodian certificate names one person (CN) and one role (OU); this one is \(certificate.subject)")
        }
        let role = try CustodianRole.parse(units[0])
        return CustodianRecord(
            name: names[0], role: role.rawValue, certificateDER: der,
            fingerprintSHA256: hexString(SHA256.hash(data: der)), registeredAt: now,
            registeredBy: request
        )
    }
}

/// The custodian registry as of one moment.
public struct CustodianRegistry: Sendable {
    public let custodians: [Custodian]
    /// Rows of the store that the audit log does not back, with why they were left out.
    public private(set) var disregarded: [String: String] = [:]

    public init(_ records: [CustodianRecord]) throws {
        custodians = try records.map(Custodian.init)
    }

    /// The registry the audit log backs: a row counts only if the log registered that custodian with that role and
    /// that certificate; a custodian the log removed is removed whatever the row says; a custodian whose admin
    /// certificate is revoked (in the log) or not valid `now` is not active. So a changed role, a cleared
    /// `removed_at` or a custodian inserted with sqlite3 gains nothing.
    public init(_ records: [CustodianRecord], boundTo state: SecurityState, now: Date = Date()) throws {
        var bound: [CustodianRecord] = []
        var disregarded: [String: String] = [:]
        for var record in records {
            guard let logged = state.custodians[record.name] else {
                disregarded[record.name] = "the audit log never registered \(record.name)"
                continue
            }
            // The certificate itself, not the fingerprint column next to it: its SHA-256 must be what the log registered.
            let fingerprint = hexString(SHA256.hash(data: record.certificateDER))
            guard logged.role == record.role, logged.fingerprint == record.fingerprintSHA256, fingerprint == logged.fingerprint else {
                disregarded[record.name] = "the store's role or certificate for \(record.name) differs from what the audit log registered"
                continue
            }
            let certificate = try Certificate(derEncoded: record.certificateDER)
            let revoked = state.isRevoked(serial: certificate.serialHex)
            if logged.removed || revoked || now < certificate.notValidBefore || now > certificate.notValidAfter {
                record.removedAt = record.removedAt ?? now
            }
            bound.append(record)
        }
        custodians = try bound.map(Custodian.init)
        self.disregarded = disregarded
    }

    public var active: [Custodian] { custodians.filter(\.isActive) }

    public func custodian(named name: String) -> Custodian? { custodians.first { $0.name == name } }

    /// The active custodian whose admin certificate is exactly `der` (a TLS peer).
    public func activeCustodian(certificateDER der: [UInt8]) -> Custodian? {
        active.first { $0.record.certificateDER == der }
    }
}
