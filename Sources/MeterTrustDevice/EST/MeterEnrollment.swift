import Crypto
import Foundation
import MeterTrustCore
import NIOCore
import NIOPosix
import SwiftASN1
import X509

/// The meter's operational certificate (LDevID), obtained and renewed over EST: `meter enroll` and `meter reenroll`.
///
/// Works on the meter's state directory (see ``FactoryConfigurator``): it needs the installed bundle (the factory
/// identity certificate, its chain, the trust anchor the image pinned) and the identity key, and keeps
/// `operational-key.der` (mode 0600), `operational-certificate.pem` and `operational-chain.pem` (the issuing CA
/// certificates the server's `cacerts` gave). It runs after provisioning was finalized: the configurator's lock
/// covers the factory stages, not the meter's life in the field.
///
/// The meter accepts an issued certificate only if it carries the operational key the meter generated for it, names
/// the meter (subject `CN=urn:dev:mac:<eui64>` and the HardwareModuleName's EUI-64), chains to the pinned trust
/// anchor through the CA certificates the server gave, and (re-enrollment, RFC 7030 §4.2.2) keeps the subject of the
/// certificate it replaces. Nothing is stored otherwise.
public struct MeterEnrollment: Sendable {
    public let directory: URL
    /// Retries of a 202/503 answer with Retry-After (``ESTClient/maximumRetries``).
    public var maximumRetries: Int
    /// Check the EST server's certificate by OCSP in each handshake (certificate mode; ``ServerRevocationCheck``).
    public var serverRevocation: ServerRevocationCheck?

    public init(directory: URL, maximumRetries: Int = 3) {
        self.directory = directory
        self.maximumRetries = maximumRetries
    }

    /// How the meter authenticates to the EST server.
    public enum Mode: String, Codable, Sendable {
        /// Mutual TLS 1.3: the factory identity to enroll, the operational certificate to re-enroll.
        case pki
        /// TLS 1.2 with the meter's pre-shared key.
        case psk
    }

    /// What `meter enroll` / `meter reenroll` report.
    public struct Outcome: Codable, Sendable {
        public var eui64: String
        public var operation: String
        public var mode: Mode
        public var server: String
        public var serial: String
        public var subject: String
        public var issuer: String
        public var notBefore: Date
        public var notAfter: Date
        public var crlDistributionPoints: [String]
        public var ocsp: [String]
        public var fingerprintSHA256: String
        /// Whether a new operational key was generated for this certificate (always on first enrollment).
        public var newKey: Bool
        public var certificatePath: String
    }

    /// The stored operational certificate and its key, if the meter has enrolled.
    public struct Operational: Sendable {
        public var certificate: Certificate
        public var chain: [Certificate]
        public var key: P256.Signing.PrivateKey
    }

    /// `simpleenroll`: a new operational key (or `key`, one the meter's secure element made beforehand), its CSR,
    /// authenticated by the factory identity (or the PSK).
    public func enroll(
        server: ESTServerAddress, mode: Mode, key: P256.Signing.PrivateKey? = nil, psk: PresharedKey? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Outcome {
        let meter = try provisionedMeter()
        let credential: ESTCredential
        switch mode {
        case .pki: credential = .certificate(meter.identity, chain: meter.identityChain, key: meter.identityKey)
        case .psk: credential = try pskCredential(meter, psk)
        }
        return try await obtain(
            server: server, credential: credential, meter: meter, key: key ?? P256.Signing.PrivateKey(), newKey: true, replacing: nil, mode: mode, group: group
        )
    }

    /// `simplereenroll`: authenticated by the current operational certificate (or the PSK), for the same key or,
    /// with `rekey`, a new one.
    public func reenroll(
        server: ESTServerAddress, mode: Mode, rekey: Bool, psk: PresharedKey? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Outcome {
        let meter = try provisionedMeter()
        guard let current = try operational() else {
            throw ESTClientError(.meterNotEnrolled, "meter \(meter.eui64) has no operational certificate to renew: run meter enroll first")
        }
        let credential: ESTCredential
        switch mode {
        case .pki: credential = .certificate(current.certificate, chain: current.chain, key: current.key)
        case .psk: credential = try pskCredential(meter, psk)
        }
        let key = rekey ? P256.Signing.PrivateKey() : current.key
        return try await obtain(
            server: server, credential: credential, meter: meter, key: key, newKey: rekey, replacing: current.certificate, mode: mode, group: group
        )
    }

    /// The stored operational certificate, chain and key; nil before the first enrollment.
    public func operational() throws -> Operational? {
        guard FileManager.default.fileExists(atPath: certificateURL.path) else { return nil }
        do {
            let certificate = try Certificate(pemEncoded: try String(contentsOf: certificateURL, encoding: .utf8))
            let chainText = (try? String(contentsOf: chainURL, encoding: .utf8)) ?? ""
            let chain = chainText.isEmpty ? [] : try PEMDocument.parseMultiple(pemString: chainText).map { try Certificate(pemDocument: $0) }
            guard let keyData = FileManager.default.contents(atPath: keyURL.path) else { throw CocoaError(.fileReadNoSuchFile) }
            let key = try P256.Signing.PrivateKey(derRepresentation: keyData)
            guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
                throw ConfiguratorError(.storage, "the operational certificate in \(directory.path) does not carry the stored operational key: enroll again")
            }
            return Operational(certificate: certificate, chain: chain, key: key)
        } catch let error as ConfiguratorError {
            throw error
        } catch {
            throw ConfiguratorError(.storage, "the operational certificate or key in \(directory.path) is corrupt: enroll again")
        }
    }

    // MARK: The exchange and the meter's checks

    private func obtain(
        server: ESTServerAddress, credential: ESTCredential, meter: ProvisionedMeter, key: P256.Signing.PrivateKey, newKey: Bool,
        replacing: Certificate?, mode: Mode, group: any EventLoopGroup
    ) async throws -> Outcome {
        var client = try ESTClient(server: server, credential: credential, trustAnchors: [meter.trustAnchor], group: group)
        client.maximumRetries = maximumRetries
        client.serverRevocation = serverRevocation
        // The CA certificates first (RFC 7030 §4.1.1: a client SHOULD have them before it enrolls): they are the
        // intermediates the issued certificate must chain through.
        let caCertificates = try await client.caCertificates()
        let csr = try DeviceOperationalRequest.der(eui64: meter.eui64, privateKey: key, hardwareType: meter.hardwareType)
        let answer = try await client.enroll(csr: csr, reenroll: replacing != nil)
        let operation = replacing == nil ? "simpleenroll" : "simplereenroll"
        let issued = try await accept(answer, caCertificates: caCertificates, key: key, meter: meter, replacing: replacing, what: "EST \(operation) at \(server)")

        let issuingChain = (caCertificates + answer).filter { $0 != issued.certificate && $0 != meter.trustAnchor && $0.issuer != $0.subject }
        try store(certificate: issued.certificate, chain: Self.unique(issuingChain), key: key, keyChanged: newKey)
        let certificate = issued.certificate
        return Outcome(
            eui64: meter.eui64.description, operation: operation, mode: mode, server: server.description, serial: certificate.serialHex,
            subject: certificate.subject.description, issuer: certificate.issuer.description, notBefore: certificate.notValidBefore,
            notAfter: certificate.notValidAfter, crlDistributionPoints: issued.crlDistributionPoints, ocsp: issued.ocsp,
            fingerprintSHA256: try certificate.fingerprintSHA256, newKey: newKey, certificatePath: certificateURL.path
        )
    }

    struct Accepted {
        var certificate: Certificate
        var crlDistributionPoints: [String]
        var ocsp: [String]
    }

    /// The meter's checks of what the server issued; each refusal says which.
    func accept(
        _ answer: [Certificate], caCertificates: [Certificate], key: P256.Signing.PrivateKey, meter: ProvisionedMeter, replacing: Certificate?, what: String
    ) async throws -> Accepted {
        func refuse(_ reason: String) -> ESTClientError { ESTClientError(.estBadResponse, "\(what): the meter refuses the certificate: \(reason)") }
        let publicKey = Certificate.PublicKey(key.publicKey)
        guard let certificate = answer.first(where: { $0.publicKey == publicKey }) else {
            throw refuse("none of the \(answer.count) certificate(s) in the answer carries the operational key the meter requested it for")
        }
        guard let name = try? certificate.hardwareModuleName, name.serialNumber == meter.eui64.bytes else {
            throw refuse("its HardwareModuleName does not name this meter (\(meter.eui64))")
        }
        let commonNames = certificate.subject.flatMap { $0 }.filter { $0.type == .RDNAttributeType.commonName }.map { String($0.value) }
        guard commonNames == [meter.eui64.deviceURN] else {
            throw refuse("its subject \(DisplayText.escaped(certificate.subject.description, limit: 120)) is not CN=\(meter.eui64.deviceURN)")
        }
        if let replacing, replacing.subject != certificate.subject {
            throw refuse("its subject differs from the certificate it renews (RFC 7030 §4.2.2)")
        }
        do {
            try await ChainVerification.verify(leaf: certificate, intermediates: caCertificates + answer, root: meter.trustAnchor)
        } catch let error as CoreError {
            throw refuse(error.message)
        }
        var ocsp: [String] = []
        if let access = try? certificate.extensions.authorityInformationAccess {
            for description in access where description.method == .ocspServer {
                if case .uniformResourceIdentifier(let uri) = description.location { ocsp.append(uri) }
            }
        }
        let points = certificate.extensions[oid: CRLDistributionPoints.oid].flatMap { try? CRLDistributionPoints(derEncoded: $0.value) }
        return Accepted(certificate: certificate, crlDistributionPoints: points?.uris ?? [], ocsp: ocsp)
    }

    // MARK: The meter's state

    struct ProvisionedMeter {
        var eui64: EUI64
        var identity: Certificate
        var identityChain: [Certificate]
        var identityKey: P256.Signing.PrivateKey
        var trustAnchor: Certificate
        var hardwareType: ASN1ObjectIdentifier
    }

    /// The installed bundle's material, after the checks the configurator made at install time are re-made on what
    /// is stored (the trust anchor is the pinned one; the identity certificate carries the identity key).
    func provisionedMeter() throws -> ProvisionedMeter {
        let configurator = FactoryConfigurator(directory: directory)
        let state = try configurator.state()
        guard state.stage == .provisioned || state.stage == .locked else {
            throw ConfiguratorError(.wrongStage, "meter \(state.eui64) has no provisioning bundle (stage \(state.stage.rawValue)): install one before it enrolls")
        }
        let bundle = try configurator.installedBundle()
        let eui = try EUI64(state.eui64)
        do {
            let identity = try Certificate(pemEncoded: bundle.deviceCertificate)
            let anchor = try Certificate(pemEncoded: bundle.trustAnchor)
            guard let pinned = state.trustAnchorSHA256, hexString(SHA256.hash(data: try anchor.derBytes)) == pinned else {
                throw ConfiguratorError(.invalidBundle, "the stored bundle's trust anchor of meter \(eui) is not the one its image pins")
            }
            let key = try configurator.loadKey()
            guard identity.publicKey == Certificate.PublicKey(key.publicKey), let name = try identity.hardwareModuleName else {
                throw ConfiguratorError(.storage, "the stored identity certificate of meter \(eui) does not carry its identity key")
            }
            return ProvisionedMeter(
                eui64: eui, identity: identity, identityChain: try bundle.chain.map { try Certificate(pemEncoded: $0) }, identityKey: key,
                trustAnchor: anchor, hardwareType: name.hardwareType
            )
        } catch let error as ConfiguratorError {
            throw error
        } catch {
            throw ConfiguratorError(.storage, "the stored bundle of meter \(eui) is unreadable: install it again")
        }
    }

    /// The PSK given, or the one the configurator installed from a `keyMode: psk` bundle.
    private func pskCredential(_ meter: ProvisionedMeter, _ given: PresharedKey?) throws -> ESTCredential {
        guard let key = try given ?? FactoryConfigurator(directory: directory).presharedKey() else {
            throw ConfiguratorError(.wrongStage, "meter \(meter.eui64) holds no pre-shared key (its bundle was not of a keyMode psk batch): enroll with its certificate")
        }
        return .preSharedKey(identity: meter.eui64.description, key: key)
    }

    private var keyURL: URL { directory.appendingPathComponent("operational-key.der") }
    private var certificateURL: URL { directory.appendingPathComponent("operational-certificate.pem") }
    private var chainURL: URL { directory.appendingPathComponent("operational-chain.pem") }

    /// The key first (0600, atomically), then the chain and the certificate (atomically): a crash in between leaves a
    /// certificate that does not carry the key, which ``operational()`` reports, never a certificate with a lost key.
    private func store(certificate: Certificate, chain: [Certificate], key: P256.Signing.PrivateKey, keyChanged: Bool) throws {
        do {
            if keyChanged { try SecretFile.write(Array(key.derRepresentation), to: keyURL.path) }
            try Data(chain.map { try $0.pem }.joined().utf8).write(to: chainURL, options: .atomic)
            try Data(try certificate.pem.utf8).write(to: certificateURL, options: .atomic)
        } catch {
            throw ConfiguratorError(.storage, "cannot store the operational certificate in \(directory.path): \(error)")
        }
    }

    private static func unique(_ certificates: [Certificate]) -> [Certificate] {
        var seen: [Certificate] = []
        for certificate in certificates where !seen.contains(certificate) { seen.append(certificate) }
        return seen
    }
}
