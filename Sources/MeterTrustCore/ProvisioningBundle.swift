import Foundation

/// What the factory tool writes into one meter (stage 3) and the meter's configurator validates (stage 4).
///
/// Format `metertrust-provisioning-bundle`, version 1: one JSON object (in a batch, one per line of
/// `bundles.jsonl`). Fields are never renamed or renumbered; a new field means a new version only if old meters
/// must refuse it.
public struct ProvisioningBundle: Codable, Sendable, Hashable {
    public static let formatName = "metertrust-provisioning-bundle"
    public static let currentVersion = 1

    public var format: String = ProvisioningBundle.formatName
    public var version: Int = ProvisioningBundle.currentVersion
    public var batch: String
    /// The meter's EUI-64, 16 lowercase hex digits.
    public var eui64: String
    /// LwM2M endpoint client name, `urn:dev:mac:<eui64>` (RFC 9039).
    public var endpointName: String
    /// The LwM2M bootstrap server, e.g. `coaps+tcp://bootstrap.example.net:5684`.
    public var bootstrapServerURI: String
    /// The firmware image the meter must be running.
    public var imageDigest: ImageDigest
    /// Deployment configuration parameters for the meter (string values).
    public var parameters: [String: String]
    /// The meter's device identity certificate (IDevID), PEM.
    public var deviceCertificate: String
    /// The issuing CA's certificate first; PEM each. The trust anchor is not repeated here.
    public var chain: [String]
    /// The root CA certificate the meter anchors trust in, PEM.
    public var trustAnchor: String
    /// Only in the weaker factory-generated-key mode: the meter's private key, PKCS#8 PEM. Absent when the key was
    /// generated on the meter (the default), where it never leaves the meter.
    public var privateKey: String?
    /// Only for a meter of a `keyMode: psk` batch: its TLS PSK, 64 hex digits (derived in the HSM from the batch's
    /// master key; see ``PSKDerivation``). The bundle is the only place it is written: the file holding it is 0600.
    public var presharedKey: String?

    public struct ImageDigest: Codable, Sendable, Hashable {
        /// `sha-256` (the only algorithm in version 1).
        public var algorithm: String
        /// Lowercase hex.
        public var value: String

        public init(algorithm: String = "sha-256", value: String) {
            self.algorithm = algorithm
            self.value = value
        }
    }

    public init(
        batch: String, eui64: String, endpointName: String, bootstrapServerURI: String, imageDigest: ImageDigest,
        parameters: [String: String], deviceCertificate: String, chain: [String], trustAnchor: String, privateKey: String? = nil,
        presharedKey: String? = nil
    ) {
        self.presharedKey = presharedKey
        self.batch = batch
        self.eui64 = eui64
        self.endpointName = endpointName
        self.bootstrapServerURI = bootstrapServerURI
        self.imageDigest = imageDigest
        self.parameters = parameters
        self.deviceCertificate = deviceCertificate
        self.chain = chain
        self.trustAnchor = trustAnchor
        self.privateKey = privateKey
    }

    /// Compact JSON with sorted keys: one line.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// The bootstrap server URI a meter accepts: CoAP over TLS/TCP (RFC 8323) or DTLS, with a host.
public enum BootstrapURI {
    public static let schemes = ["coaps+tcp", "coaps"]

    public static func check(_ text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme, schemes.contains(scheme),
            let host = components.host, !host.isEmpty
        else {
            throw CoreError(.invalidArgument, "bootstrap server URI \"\(text)\" is not coaps+tcp://host[:port] or coaps://host[:port]")
        }
    }
}
