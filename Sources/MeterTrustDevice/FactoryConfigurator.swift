import Crypto
import Foundation
import MeterTrustCore
import SwiftASN1
import X509

/// An error from the meter's factory configurator. The message says what is wrong and what to do.
public struct ConfiguratorError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code in the closed set every edge maps.
        public let errorCode: ErrorCode
        /// Provisioning was finalized: the configurator can never be used again.
        public static let locked = Code(errorCode: .configuratorLocked)
        public static let wrongStage = Code(errorCode: .configuratorWrongStage)
        /// The bundle failed validation; nothing was stored.
        public static let invalidBundle = Code(errorCode: .invalidBundle)
        public static let storage = Code(errorCode: .configuratorStorage)
        public var description: String { errorCode.rawValue }
    }

    public let code: Code
    public let message: String
    public var description: String { message }

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// The factory configurator client that runs on the meter during provisioning (stages 1, 2, 4 and 5 of the line).
///
/// Its state lives in a directory standing in for the meter's protected storage: `configurator.json` (stage, EUI-64,
/// image digest), `image.bin`, `identity-key.der` (mode 0600, the meter's private key), `bundle.json` (mode 0600),
/// and for a PSK meter `psk.key` (mode 0600, its 32-octet TLS PSK, installed from the bundle). After
/// ``finalize()`` every call fails with ``ConfiguratorError/Code/locked``.
public struct FactoryConfigurator: Sendable {
    public enum Stage: String, Codable, Sendable {
        /// Stage 1 done: software image injected.
        case imaged
        /// Stage 2 done: identity key generated on the meter, CSR produced.
        case keyed
        /// Stages 3 and 4 done: bundle received, validated and stored.
        case provisioned
        /// Stage 5 done: provisioning finalized, configurator locked for good.
        case locked
    }

    public struct State: Codable, Sendable {
        public var eui64: String
        public var stage: Stage
        public var imageSHA256: String
        public var keyGeneratedOnMeter: Bool
        public var lockedAt: Date?
        /// SHA-256 (hex) of the root certificate the image pins: the only trust anchor a bundle may bring. Nil for a
        /// meter imaged before pinning; such a meter accepts no bundle until it is imaged again.
        public var trustAnchorSHA256: String?
    }

    public let directory: URL
    public static let maximumBundleSize = 64 * 1024

    /// Opens the configurator of the meter whose state is in `directory`.
    public init(directory: URL) {
        self.directory = directory
    }

    /// Stage 1: the software image is injected into a blank meter, with the SHA-256 of the root certificate it
    /// trusts (the meter's trust anchor, pinned from here on: a bundle carrying any other root is refused).
    public static func injectImage(_ image: Data, eui64: EUI64, trustAnchorSHA256: String, into directory: URL) throws -> FactoryConfigurator {
        guard trustAnchorSHA256.utf8.count == 64, trustAnchorSHA256.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw ConfiguratorError(.storage, "the trust anchor is pinned by the SHA-256 of the root certificate: 64 lowercase hex digits")
        }
        let configurator = FactoryConfigurator(directory: directory)
        if FileManager.default.fileExists(atPath: configurator.stateURL.path) {
            _ = try configurator.unlockedState()
            throw ConfiguratorError(.wrongStage, "meter \(eui64) already has an image: its configurator is past stage 1")
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try image.write(to: configurator.imageURL)
        } catch {
            throw ConfiguratorError(.storage, "cannot write the meter's storage in \(directory.path)")
        }
        try configurator.save(
            State(
                eui64: eui64.description, stage: .imaged, imageSHA256: hexString(SHA256.hash(data: image)), keyGeneratedOnMeter: false,
                trustAnchorSHA256: trustAnchorSHA256
            )
        )
        return configurator
    }

    /// Current state (readable even when locked).
    public func state() throws -> State {
        guard let data = FileManager.default.contents(atPath: stateURL.path) else {
            throw ConfiguratorError(.storage, "no configurator state in \(directory.path): inject an image first (meter init)")
        }
        do {
            return try JSONDecoder.iso8601.decode(State.self, from: data)
        } catch {
            throw ConfiguratorError(.storage, "the configurator state in \(directory.path) is corrupt")
        }
    }

    /// Stage 2 (default, key on the meter): generates the identity key, which never leaves the meter, and returns
    /// the CSR (DER) asking for a device identity certificate with this meter's HardwareModuleName.
    public func generateIdentity(hardwareType: ASN1ObjectIdentifier) throws -> [UInt8] {
        var state = try unlockedState()
        guard state.stage == .imaged else {
            throw ConfiguratorError(.wrongStage, "meter \(state.eui64) already has an identity key (stage \(state.stage.rawValue))")
        }
        let identity = MeterIdentity(eui64: try EUI64(state.eui64))
        let csr = try identity.certificateSigningRequestDER(hardwareType: hardwareType)
        try storeKey(identity.privateKey)
        state.stage = .keyed
        state.keyGeneratedOnMeter = true
        try save(state)
        return csr
    }

    /// Stages 3 and 4: receives the bundle the factory tool writes, validates it, and stores it. Nothing is stored
    /// unless every check passes:
    /// the certificate carries the meter's key; it chains to the root in the bundle, which is the root the image pinned
    /// at stage 1; its HardwareModuleName is this
    /// meter's EUI-64; the endpoint name, bootstrap server URI and parameters are present and well-formed; the image
    /// digest is the digest of the meter's image.
    public func install(bundle data: Data) async throws -> ProvisioningBundle {
        var state = try unlockedState()
        guard state.stage == .keyed || (state.stage == .imaged) else {
            throw ConfiguratorError(.wrongStage, "meter \(state.eui64) is already provisioned (stage \(state.stage.rawValue))")
        }
        let bundle = try decode(data)
        let eui = try EUI64(state.eui64)
        func refuse(_ reason: String) -> ConfiguratorError {
            ConfiguratorError(.invalidBundle, "bundle refused by meter \(eui): \(reason)")
        }
        guard bundle.eui64 == eui.description else { throw refuse("it is for meter \(bundle.eui64)") }
        guard bundle.endpointName == eui.deviceURN else { throw refuse("endpoint name \(bundle.endpointName) is not \(eui.deviceURN)") }
        do { try BootstrapURI.check(bundle.bootstrapServerURI) } catch { throw refuse("\(error)") }
        guard bundle.imageDigest.algorithm == "sha-256" else { throw refuse("image digest algorithm \(bundle.imageDigest.algorithm) is not sha-256") }
        guard bundle.imageDigest.value.lowercased() == state.imageSHA256 else {
            throw refuse("the image digest \(bundle.imageDigest.value) does not match the meter's image (\(state.imageSHA256))")
        }
        for (name, value) in bundle.parameters where name.isEmpty || value.isEmpty {
            throw refuse("configuration parameter \"\(name)\" is empty")
        }

        let certificate: Certificate
        let chain: [Certificate]
        let root: Certificate
        do {
            certificate = try Certificate(pemEncoded: bundle.deviceCertificate)
            chain = try bundle.chain.map { try Certificate(pemEncoded: $0) }
            root = try Certificate(pemEncoded: bundle.trustAnchor)
        } catch {
            throw refuse("a certificate in it is not valid PEM/DER")
        }
        guard let name = try? certificate.hardwareModuleName, name.serialNumber == eui.bytes else {
            throw refuse("the certificate's HardwareModuleName is not this meter's EUI-64")
        }
        guard root.issuer == root.subject, root.publicKey.isValidSignature(root.signature, for: root) else {
            throw refuse("the trust anchor is not a self-signed root certificate")
        }
        // The root the image pinned at stage 1, not whatever root the bundle brings.
        guard let pinned = state.trustAnchorSHA256 else {
            throw refuse("this meter's image pins no trust anchor (imaged by an earlier version): inject the image again")
        }
        guard let rootDER = try? root.derBytes, hexString(SHA256.hash(data: rootDER)) == pinned else {
            throw refuse("its root certificate is not the trust anchor this meter's image pins (SHA-256 \(pinned.prefix(16))…)")
        }
        do {
            try await ChainVerification.verify(leaf: certificate, intermediates: chain, root: root)
        } catch let error as CoreError {
            throw refuse(error.message)
        }

        // The key: the meter's own, or (factory-key mode) the one the bundle brings.
        let key: P256.Signing.PrivateKey
        if state.stage == .keyed {
            guard bundle.privateKey == nil else { throw refuse("it carries a private key, but this meter generated its own") }
            key = try loadKey()
        } else {
            guard let pem = bundle.privateKey, let factoryKey = try? P256.Signing.PrivateKey(pemRepresentation: pem) else {
                throw refuse("this meter has no identity key and the bundle brings none: run stage 2 (meter keygen) first")
            }
            key = factoryKey
        }
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw refuse("the certificate does not carry the meter's public key")
        }
        // A PSK meter's key, as its batch's bundle brings it (never named in a message: only its shape is checked).
        let psk: PresharedKey?
        do {
            psk = try bundle.presharedKey.map { try PresharedKey(hex: $0) }
        } catch {
            throw refuse("its presharedKey is not \(2 * PresharedKey.length) hex digits")
        }

        if state.stage == .imaged { try storeKey(key) }
        do {
            if let psk { try SecretFile.write(psk.bytes, to: pskURL.path) }
            // 0600: the bundle may carry the meter's private key or its PSK.
            try SecretFile.write(Array(data), to: bundleURL.path)
        } catch {
            throw ConfiguratorError(.storage, "cannot store the bundle in \(directory.path)")
        }
        state.stage = .provisioned
        try save(state)
        return bundle
    }

    /// Stage 5: finalizes provisioning and locks the configurator. Irreversible.
    public func finalize() throws {
        var state = try unlockedState()
        guard state.stage == .provisioned else {
            throw ConfiguratorError(.wrongStage, "meter \(state.eui64) cannot be finalized at stage \(state.stage.rawValue): install a bundle first")
        }
        state.stage = .locked
        state.lockedAt = Date()
        try save(state)
    }

    /// The installed bundle.
    public func installedBundle() throws -> ProvisioningBundle {
        _ = try state()
        guard let data = FileManager.default.contents(atPath: bundleURL.path) else {
            throw ConfiguratorError(.wrongStage, "no bundle installed in \(directory.path)")
        }
        return try decode(data)
    }

    /// The meter's TLS PSK, for a meter of a `keyMode: psk` batch (nil for any other); readable once installed, as
    /// the meter's TLS stack reads it, also after the configurator is locked.
    public func presharedKey() throws -> PresharedKey? {
        _ = try state()
        guard let bytes = FileManager.default.contents(atPath: pskURL.path) else { return nil }
        do {
            return try PresharedKey(bytes: bytes)
        } catch {
            throw ConfiguratorError(.storage, "the meter's PSK in \(directory.path) is corrupt")
        }
    }

    // MARK: Storage

    private var stateURL: URL { directory.appendingPathComponent("configurator.json") }
    private var imageURL: URL { directory.appendingPathComponent("image.bin") }
    private var keyURL: URL { directory.appendingPathComponent("identity-key.der") }
    private var bundleURL: URL { directory.appendingPathComponent("bundle.json") }
    private var pskURL: URL { directory.appendingPathComponent("psk.key") }

    /// The state, or the lock error: the one gate every configurator call goes through.
    private func unlockedState() throws -> State {
        let state = try state()
        if state.stage == .locked {
            let when = state.lockedAt.map { " on \(ISO8601DateFormatter().string(from: $0))" } ?? ""
            throw ConfiguratorError(
                .locked,
                "the factory configurator of meter \(state.eui64) was locked when provisioning was finalized\(when); it cannot be used again"
            )
        }
        return state
    }

    private func save(_ state: State) throws {
        do {
            try JSONEncoder.iso8601.encode(state).write(to: stateURL, options: .atomic)
        } catch {
            throw ConfiguratorError(.storage, "cannot write the configurator state in \(directory.path)")
        }
    }

    private func storeKey(_ key: P256.Signing.PrivateKey) throws {
        do {
            try SecretFile.write(Array(key.derRepresentation), to: keyURL.path)
        } catch {
            throw ConfiguratorError(.storage, "cannot store the identity key in \(directory.path): \(error)")
        }
    }

    /// The meter's identity key (its IDevID's), readable after the lock: the meter authenticates with it to enroll.
    func loadKey() throws -> P256.Signing.PrivateKey {
        guard let data = FileManager.default.contents(atPath: keyURL.path), let key = try? P256.Signing.PrivateKey(derRepresentation: data) else {
            throw ConfiguratorError(.storage, "the meter's identity key in \(directory.path) is missing or corrupt")
        }
        return key
    }

    private func decode(_ data: Data) throws -> ProvisioningBundle {
        guard data.count <= Self.maximumBundleSize else {
            throw ConfiguratorError(.invalidBundle, "the bundle is \(data.count) bytes; the limit is \(Self.maximumBundleSize)")
        }
        let bundle: ProvisioningBundle
        do {
            bundle = try JSONDecoder().decode(ProvisioningBundle.self, from: data)
        } catch {
            throw ConfiguratorError(.invalidBundle, JSONInput.problem(error, in: "the bundle") + ": not a \(ProvisioningBundle.formatName) document")
        }
        guard bundle.format == ProvisioningBundle.formatName, bundle.version == ProvisioningBundle.currentVersion else {
            throw ConfiguratorError(.invalidBundle, "bundle format \(bundle.format) version \(bundle.version) is not supported (want \(ProvisioningBundle.formatName) version 1)")
        }
        return bundle
    }
}

extension JSONDecoder {
    static var iso8601: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

extension JSONEncoder {
    static var iso8601: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}

extension ConfiguratorError: CodedError {
    public var errorCode: ErrorCode { code.errorCode }
}
