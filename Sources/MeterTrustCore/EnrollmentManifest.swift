import Foundation

/// The list of a batch's meters that a manufacturer hands to utilities, who upload it to their account.
///
/// Format `metertrust-enrollment-manifest` version 1: a JSON document,
/// ```json
/// { "format": "metertrust-enrollment-manifest", "version": 1, "batch": "...", "manufacturer": "acme",
///   "manufacturerCA": { "subject": "...", "serial": "...", "certificateSHA256": "..." },
///   "deviceType": "2.999.2.1", "signatureAlgorithm": "ecdsa-with-SHA256", "created": "2026-11-21T05:00:00Z",
///   "count": 2, "meters": [ { "eui64": "...", "certificateSHA256": "..." }, ... ] }
/// ```
/// and a detached signature `enrollment-manifest.json.sig`: the DER ECDSA-Sig-Value over the exact bytes of the
/// JSON file, made by the manufacturer CA's key in the HSM. Anyone holding the manufacturer CA certificate can check
/// it, e.g. `openssl dgst -sha256 -verify <(openssl x509 -in manufacturer-ca.pem -pubkey -noout)
/// -signature enrollment-manifest.json.sig enrollment-manifest.json`.
public struct EnrollmentManifest: Codable, Sendable {
    public static let formatName = "metertrust-enrollment-manifest"

    public struct Authority: Codable, Sendable, Hashable {
        public var subject: String
        public var serial: String
        public var certificateSHA256: String

        public init(subject: String, serial: String, certificateSHA256: String) {
            self.subject = subject
            self.serial = serial
            self.certificateSHA256 = certificateSHA256
        }
    }

    public struct Meter: Codable, Sendable, Hashable {
        public var eui64: String
        public var certificateSHA256: String

        public init(eui64: String, certificateSHA256: String) {
            self.eui64 = eui64
            self.certificateSHA256 = certificateSHA256
        }
    }

    public var format: String
    public var version: Int
    public var batch: String
    public var manufacturer: String
    public var manufacturerCA: Authority
    public var deviceType: String
    public var signatureAlgorithm: String
    public var created: String
    public var count: Int
    public var meters: [Meter]

    public init(
        format: String = EnrollmentManifest.formatName, version: Int = 1, batch: String, manufacturer: String, manufacturerCA: Authority,
        deviceType: String, signatureAlgorithm: String, created: String, count: Int, meters: [Meter]
    ) {
        self.format = format
        self.version = version
        self.batch = batch
        self.manufacturer = manufacturer
        self.manufacturerCA = manufacturerCA
        self.deviceType = deviceType
        self.signatureAlgorithm = signatureAlgorithm
        self.created = created
        self.count = count
        self.meters = meters
    }
}
