import Foundation
import MeterTrustCore
import SwiftASN1
import X509

/// What people and scripts see of a certificate (`metertrust cert show`, `issue`, `demo`).
public struct CertificateDescription: Encodable, Sendable {
    public var serial: String
    public var issuer: String
    public var subject: String
    public var profile: String?
    public var eui64: String?
    public var hardwareType: String?
    public var notBefore: Date
    public var notAfter: Date
    public var keyUsage: [String]
    public var extendedKeyUsage: [String]
    public var isCertificateAuthority: Bool
    public var subjectKeyIdentifier: String?
    public var authorityKeyIdentifier: String?
    public var policies: [String]
    public var publicKey: String
    public var fingerprintSHA256: String
    public var pem: String

    public init(_ certificate: Certificate, profile: String? = nil) throws {
        serial = certificate.serialHex
        issuer = certificate.issuer.description
        subject = certificate.subject.description
        self.profile = profile
        let hardwareName = try certificate.hardwareModuleName
        eui64 = try hardwareName.map { try EUI64(bytes: $0.serialNumber).description }
        hardwareType = hardwareName.map { $0.hardwareType.dotted }
        notBefore = certificate.notValidBefore
        notAfter = certificate.notValidAfter
        let usage = try certificate.extensions.keyUsage
        let names: [(KeyPath<KeyUsage, Bool>, String)] = [
            (\.digitalSignature, "digitalSignature"), (\.nonRepudiation, "nonRepudiation"),
            (\.keyEncipherment, "keyEncipherment"), (\.dataEncipherment, "dataEncipherment"),
            (\.keyAgreement, "keyAgreement"), (\.keyCertSign, "keyCertSign"), (\.cRLSign, "cRLSign"),
        ]
        keyUsage = usage.map { usage in names.filter { usage[keyPath: $0.0] }.map(\.1) } ?? []
        extendedKeyUsage = (try certificate.extensions.extendedKeyUsage).map { $0.map { "\($0)" } } ?? []
        if case .isCertificateAuthority = try certificate.extensions.basicConstraints {
            isCertificateAuthority = true
        } else {
            isCertificateAuthority = false
        }
        subjectKeyIdentifier = try certificate.extensions.subjectKeyIdentifier.map { hexString($0.keyIdentifier) }
        authorityKeyIdentifier = try certificate.extensions.authorityKeyIdentifier?.keyIdentifier.map { hexString($0) }
        policies = try certificate.extensions[oid: CertificatePolicies.oid].map {
            try CertificatePolicies(derEncoded: $0.value).policies.map(\.dotted)
        } ?? []
        publicKey = (try? ECPublicKey(certificate.publicKey).curveName).map { "EC \($0)" } ?? "\(certificate.publicKey)"
        fingerprintSHA256 = try certificate.fingerprintSHA256
        pem = try certificate.pem
    }

    /// Indented `name: value` lines.
    public func textLines(indent: String = "  ") -> [String] {
        let formatter = ISO8601DateFormatter()
        var lines = [
            "serial:         \(serial)",
            "issuer:         \(issuer)",
            "subject:        \(subject.isEmpty ? "(empty)" : subject)",
        ]
        if let profile { lines.append("profile:        \(profile)") }
        if let eui64 { lines.append("EUI-64:         \(eui64)  (HardwareModuleName, hwType \(hardwareType ?? "?"))") }
        lines += [
            "not before:     \(formatter.string(from: notBefore))",
            "not after:      \(formatter.string(from: notAfter))",
            "key:            \(publicKey)",
            "key usage:      \(keyUsage.joined(separator: ", "))",
        ]
        if !extendedKeyUsage.isEmpty { lines.append("extended usage: \(extendedKeyUsage.joined(separator: ", "))") }
        if isCertificateAuthority { lines.append("CA:             yes") }
        if let subjectKeyIdentifier { lines.append("subject key id: \(subjectKeyIdentifier)") }
        if let authorityKeyIdentifier { lines.append("issuer key id:  \(authorityKeyIdentifier)") }
        lines.append("policies:       \(policies.joined(separator: ", "))")
        lines.append("SHA-256:        \(fingerprintSHA256)")
        return lines.map { indent + $0 }
    }
}
