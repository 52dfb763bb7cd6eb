import Crypto
import Foundation
import Logging
import MeterTrustCore
import MeterTrustHSM
import MeterTrustStore
import X509

/// Whether a CA may issue, as a source other than the store sees it (the verified audit log).
public protocol AuthorityStatusSource: Sendable {
    /// Why `authority`, whose certificate is `certificate`, may not issue (revoked, destroyed), or nil. Judged on the
    /// certificate (its serial), not on the row's copy of it.
    func refusal(for authority: CertificateAuthorityRecord, certificate: Certificate) async throws -> String?
}

/// The CA hierarchy: a root, and under it a Manufacturer Device CA per manufacturer, an Operational CA per utility
/// account and an Admin CA. Keys are generated in the HSM; certificates and metadata go to the store.
public struct CAHierarchy: Sendable {
    public let token: HSMToken
    public let store: any HierarchyStore
    public let settings: PKISettings
    /// What the verified audit log says of CAs (revoked, destroyed); asked before any CA is loaded to issue, so a
    /// deleted revocation row does not let a revoked CA sign again. Nil only before the audit log exists.
    public let statusSource: (any AuthorityStatusSource)?
    let logger: Logger

    public init(
        token: HSMToken, store: any HierarchyStore, settings: PKISettings, statusSource: (any AuthorityStatusSource)? = nil,
        logger: Logger = Logger(label: "metertrust.pki")
    ) {
        self.token = token
        self.store = store
        self.settings = settings
        self.statusSource = statusSource
        self.logger = logger
    }

    /// Creates the self-signed root CA. There is one root per store. `shards`: how many shards the certificates it
    /// issues (its own included) are spread over.
    public func createRoot(
        name: String, organization: String, curve: ECCurve = .p256, backup: Bool = false, shards: ShardCount = .default
    ) async throws -> CertificateAuthority {
        try Self.validate(name: name)
        if let existing = try await store.certificateAuthorities().first(where: { $0.role == .root }) {
            throw PKIError(.authorityExists, "a root CA already exists (\(existing.name)); there is one root per deployment")
        }
        return try await create(role: .root, name: name, organization: organization, curve: curve, parent: nil, backup: backup, shards: shards)
    }

    /// Creates a CA of `role` (manufacturer, operational or admin) under the root. With `backup`, the CA key is
    /// generated wrappable under the trusted backup key (see ``HSMKeyPolicy``). `shards`: how many shards the
    /// certificates the new CA issues are spread over, fixed here (its own certificate is in a shard of the root's).
    public func createAuthority(
        role: CertificateAuthorityRole, name: String, organization: String? = nil, curve: ECCurve = .p256, backup: Bool = false,
        shards: ShardCount = .default
    ) async throws -> CertificateAuthority {
        guard role != .root else {
            return try await createRoot(name: name, organization: organization ?? name, curve: curve, backup: backup, shards: shards)
        }
        try Self.validate(name: name)
        let root = try await rootAuthority()
        return try await create(role: role, name: name, organization: organization ?? name, curve: curve, parent: root, backup: backup, shards: shards)
    }

    /// Destroys a CA's key in the HSM and marks the CA destroyed; its certificates stay on record. The root cannot
    /// be destroyed this way.
    public func destroyAuthority(named name: String) async throws {
        let authority = try await self.authority(named: name, toIssue: false)
        guard authority.role != .root else { throw PKIError(.invalidArgument, "the root CA's key cannot be destroyed") }
        try await store.markCertificateAuthorityDestroyed(named: name, at: Date())
        let key = authority.signingKey.key
        try await token.perform { try $0.destroy(key) }
        logger.notice("destroyed CA key", metadata: ["ca": "\(name)", "key": "\(key.label)"])
    }

    /// Records the revocation of a CA's own certificate by its issuer (RFC 5280 reason code, 0 unspecified).
    public func revokeAuthority(named name: String, reason: Int) async throws {
        guard let record = try await store.certificateAuthority(named: name) else {
            throw PKIError(.unknownAuthority, "there is no CA named \"\(name)\": see metertrust ca list")
        }
        guard let parent = record.parent else { throw PKIError(.invalidArgument, "the root CA's certificate is not revoked by a CA") }
        guard (0...10).contains(reason), reason != 7 else { throw PKIError(.invalidArgument, "\(reason) is not an RFC 5280 reason code") }
        try await store.revokeCertificate(issuer: parent, serial: record.certificateSerial, reason: reason, at: Date())
        logger.notice("revoked CA certificate", metadata: ["ca": "\(name)", "serial": "\(record.certificateSerial)"])
    }

    /// Generates a P-256 key in the HSM for a TLS server and has CA `authority` (an operational CA) certify it for
    /// `hosts` under profile tls-server. The certificate is stored before it is returned.
    public func createTLSServerIdentity(host: String, extraHosts: [String] = [], authority name: String) async throws -> (key: HSMKey, certificate: Certificate) {
        try await createTLSServerIdentity(names: ([host] + extraHosts).map { .dns($0) }, authority: name)
    }

    /// Generates a P-256 key in the HSM for a TLS server and has CA `authority` (an operational CA) certify it for
    /// `names` (DNS names and IP addresses, at least one; the first is the CN) under profile tls-server. The
    /// certificate is stored before it is returned.
    public func createTLSServerIdentity(names: [ServerName], authority name: String) async throws -> (key: HSMKey, certificate: Certificate) {
        guard let first = names.first else { throw PKIError(.invalidArgument, "a TLS server needs at least one name: give --host or --ip") }
        var (dns, ip): ([String], [IPAddress]) = ([], [])
        for case .dns(let name) in names where !dns.contains(name) { dns.append(name) }
        for case .ip(let address) in names where !ip.contains(address) { ip.append(address) }
        let (dnsNames, addresses) = (dns, ip)
        let authority = try await authority(named: name)
        let signer = try CertificateSigner(authority: authority, profile: .tlsServer, settings: settings)
        let label = KeyLabel.unique("tls", first.description)
        let key = try await token.perform { try $0.generateKeyPair(curve: .p256, label: label) }
        do {
            let publicKey = HSMSigningKey(token: token, key: key).publicKey
            let (certificate, record) = try await token.perform { _ in
                try signer.signNamed(
                    try PublicKeyInfo(publicKey: publicKey), commonName: first.description, organizationalUnit: nil, dnsNames: dnsNames,
                    ipAddresses: addresses
                )
            }
            try await store.insertCertificate(record)
            return (key, certificate)
        } catch {
            try? await token.perform { try $0.destroy(key) }
            throw error
        }
    }

    private func create(
        role: CertificateAuthorityRole, name: String, organization: String, curve: ECCurve, parent: CertificateAuthority?, backup: Bool,
        shards: ShardCount
    ) async throws -> CertificateAuthority {
        if let existing = try await store.certificateAuthority(named: name) {
            throw PKIError(.authorityExists, "a CA named \"\(name)\" already exists (\(existing.roleName)); choose another name")
        }
        let profile = CertificateProfile.forAuthority(role)
        let label = KeyLabel.unique(role.rawValue, name)
        // Manufacturer CAs sign factory batches from session copies of their key; no other CA key may be copied.
        let keyPolicy = HSMKeyPolicy(backup: backup, sessionCopies: role == .manufacturer)
        let key = try await token.perform { try $0.generateKeyPair(curve: curve, label: label, policy: keyPolicy) }
        do {
            let signingKey = try HSMSigningKey.validated(token: token, key: key)
            let subject = try Self.subject(for: profile, name: name, organization: organization)
            let contents = CertificateContents(
                profile: profile, subject: subject, publicKey: signingKey.publicKey,
                keyUsage: profile.keyUsage.prescribed, device: nil
            )
            let signer = try parent?.signer
                ?? CertificateContents.Signer(authorityName: name, name: subject, key: signingKey, keyIdentifier: nil, notAfter: nil)
            let policy = try settings.policyOID()
            let settings = self.settings
            let certificate = try await token.perform { _ in try contents.sign(by: signer, policy: policy, settings: settings) }
            let record = CertificateAuthorityRecord(
                name: name, role: role, parent: parent?.name, keyLabel: key.label, keyID: hexString(key.id),
                curve: curve.rawValue, certificateSerial: certificate.serialHex, shardCount: shards.value
            )
            // Its own certificate is sharded by its issuer's count (the root's own by the root's).
            try await store.insertCertificateAuthority(
                record,
                certificate: try certificate.record(issuer: parent?.name ?? name, shards: parent?.shardCount ?? shards, profile: profile, eui64: nil)
            )
            logger.info("created CA", metadata: ["ca": "\(name)", "role": "\(role.rawValue)", "key": "\(key.label)"])
            return try CertificateAuthority(
                record: record, certificate: certificate, signingKey: signingKey, chain: [certificate] + (parent?.chain ?? [])
            )
        } catch {
            // Leave no orphan key on the token for a CA the store does not know.
            try? await token.perform { try $0.destroy(key) }
            throw error
        }
    }

    /// Generates the audit log's signing key (P-256) in the HSM and has the root certify it (profile audit-signer);
    /// the certificate is stored before it is returned.
    public func createAuditSigner(name: String) async throws -> (key: HSMKey, certificate: Certificate) {
        try Self.validate(name: name)
        let root = try await rootAuthority()
        let label = KeyLabel.unique("audit", name)
        let key = try await token.perform { try $0.generateKeyPair(curve: .p256, label: label) }
        do {
            let publicKey = HSMSigningKey(token: token, key: key).publicKey
            let contents = CertificateContents(
                profile: .auditSigner, subject: try Self.subject(for: .auditSigner, name: name, organization: name),
                publicKey: publicKey, keyUsage: KeyUsage(digitalSignature: true), device: nil
            )
            let signer = try root.signer
            let policy = try settings.policyOID()
            let settings = self.settings
            let certificate = try await token.perform { _ in try contents.sign(by: signer, policy: policy, settings: settings) }
            try await store.insertCertificate(try certificate.record(issuer: root.name, shards: root.shardCount, profile: .auditSigner, eui64: nil))
            logger.info("created audit signer", metadata: ["name": "\(name)", "key": "\(key.label)"])
            return (key, certificate)
        } catch {
            try? await token.perform { try $0.destroy(key) }
            throw error
        }
    }

    /// Generates a P-256 key in the HSM for CA `authorityName`'s delegated OCSP responder and has that CA certify it
    /// (profile ocsp-signer, 30 days); the certificate is stored before it is returned. The key's label names the
    /// CA and the certificate's serial (``ocspSignerKeyLabel(authority:serial:)``), so every node finds the key of a
    /// signer certificate it reads from the store. Not for the root: its responder is certified under quorum
    /// (``certifyRootOCSPSigner()``).
    public func createOCSPSigner(for authorityName: String) async throws -> (key: HSMKey, certificate: Certificate) {
        let authority = try await authority(named: authorityName)
        guard authority.role != .root else {
            throw PKIError(.invalidArgument, "the root's OCSP signer is certified under quorum, not online")
        }
        return try await makeOCSPSigner(by: authority, profile: .ocspSigner)
    }

    /// The root's delegated OCSP responder (profile root-ocsp-signer, a year): the same as ``createOCSPSigner(for:)``
    /// but signed by the root's key. Only the quorum operation `ocsp.certify-root-signer` calls it: the root signs
    /// nothing online.
    public func certifyRootOCSPSigner() async throws -> (key: HSMKey, certificate: Certificate) {
        try await makeOCSPSigner(by: try await rootAuthority(), profile: .rootOCSPSigner)
    }

    private func makeOCSPSigner(by authority: CertificateAuthority, profile: CertificateProfile) async throws -> (key: HSMKey, certificate: Certificate) {
        let serial = SerialNumbers.random()
        let label = Self.ocspSignerKeyLabel(authority: authority.name, serial: hexString(serial.bytes))
        let key = try await token.perform { try $0.generateKeyPair(curve: .p256, label: label) }
        do {
            let publicKey = HSMSigningKey(token: token, key: key).publicKey
            let contents = CertificateContents(
                profile: profile, subject: try Self.subject(for: profile, name: authority.name, organization: authority.name),
                publicKey: publicKey, keyUsage: KeyUsage(digitalSignature: true), device: nil
            )
            let signer = try authority.signer
            let policy = try settings.policyOID()
            let settings = self.settings
            let certificate = try await token.perform { _ in
                try contents.sign(by: signer, policy: policy, settings: settings, serialNumber: serial)
            }
            try await store.insertCertificate(
                try certificate.record(issuer: authority.name, shards: authority.shardCount, profile: profile, eui64: nil)
            )
            logger.info("created OCSP signer", metadata: ["ca": "\(authority.name)", "serial": "\(certificate.serialHex)", "key": "\(label)"])
            return (key, certificate)
        } catch {
            try? await token.perform { try $0.destroy(key) }
            throw error
        }
    }

    /// The HSM label of the key of CA `authority`'s OCSP signer whose certificate has `serial`.
    public static func ocspSignerKeyLabel(authority: String, serial: String) -> String {
        [KeyLabel.prefix, "ocsp", authority, serial].joined(separator: "/")
    }

    /// The root CA.
    public func rootAuthority() async throws -> CertificateAuthority {
        guard let root = try await store.certificateAuthorities().first(where: { $0.role == .root }) else {
            throw PKIError(.unknownAuthority, "there is no root CA yet: run metertrust ca create-root first")
        }
        return try await authority(named: root.name)
    }

    /// Loads the CA called `name`: its certificate from the store, its key from the HSM, its chain to the root.
    /// With `toIssue` (the default: every signing path), a CA that is destroyed or revoked, or under such a CA, is
    /// refused, whether the store or the audit log (``statusSource``) says so.
    public func authority(named name: String, toIssue: Bool = true) async throws -> CertificateAuthority {
        guard let record = try await store.certificateAuthority(named: name) else {
            throw PKIError(.unknownAuthority, "there is no CA named \"\(name)\": see metertrust ca list")
        }
        if let destroyed = record.destroyedAt {
            throw PKIError(.unknownAuthority, "CA \(name) was destroyed on \(destroyed); it issues nothing more")
        }
        let issuer = record.parent ?? record.name
        guard let stored = try await store.certificate(issuer: issuer, serial: record.certificateSerial) else {
            throw PKIError(.unknownAuthority, "the certificate of CA \(name) is missing from the store")
        }
        let certificate = try Certificate(derEncoded: stored.der)
        // The row must describe its certificate: a certificate row re-filed under another serial, or a CA row made
        // parentless, would otherwise steer the revocation checks below away from the real certificate.
        guard certificate.serialHex == record.certificateSerial, (record.parent == nil) == (certificate.issuer == certificate.subject) else {
            throw PKIError(.unknownAuthority, "the store's record of CA \(name) does not match its certificate: it was changed outside MeterTrust")
        }
        if toIssue {
            if let parent = record.parent, let revoked = try await store.revocation(issuer: parent, serial: certificate.serialHex) {
                throw PKIError(.revokedAuthority, "CA \(name) was revoked on \(revoked.date) (reason \(revoked.reason)); it issues nothing more")
            }
            if let refusal = try await statusSource?.refusal(for: record, certificate: certificate) {
                throw PKIError(.revokedAuthority, refusal)
            }
        }
        guard let keyID = hexBytes(record.keyID) else {
            throw PKIError(.unknownAuthority, "CA \(name) has a malformed key id in the store")
        }
        let key = try await token.perform { try $0.findKey(id: keyID) }
        let signingKey = try HSMSigningKey.validated(token: token, key: key)
        guard signingKey.publicKey == certificate.publicKey else {
            throw PKIError(.unknownAuthority, "the HSM key of CA \(name) does not match its certificate")
        }
        var chain = [certificate]
        if let parent = record.parent { chain += try await authority(named: parent, toIssue: toIssue).chain }
        return try CertificateAuthority(record: record, certificate: certificate, signingKey: signingKey, chain: chain)
    }

    /// The CAs of `role`.
    public func authorities(role: CertificateAuthorityRole) async throws -> [CertificateAuthorityRecord] {
        try await store.certificateAuthorities().filter { $0.role == role }
    }

    static func subject(for profile: CertificateProfile, name: String, organization: String) throws -> DistinguishedName {
        guard case .authority(let suffix, let withOrganization) = profile.subject else {
            return DistinguishedName()
        }
        return try DistinguishedName {
            if withOrganization { OrganizationName(organization) }
            CommonName("\(name) \(suffix)")
        }
    }

    /// CA names are identifiers that appear in key labels, URLs and file names.
    static func validate(name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard (1...64).contains(name.count), name.allSatisfy({ allowed.contains($0) }), name.first != "." else {
            throw PKIError(.invalidArgument, "\"\(name)\" is not a valid CA name: use 1 to 64 letters, digits, '-', '_' or '.'")
        }
    }
}
