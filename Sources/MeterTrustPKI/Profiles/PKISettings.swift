import MeterTrustCore
import SwiftASN1

/// Deployment settings the profiles read: policy and device-type OIDs, revocation URLs.
///
/// The defaults live under the example arc 2.999 (ITU-T X.660: "example"); a deployment must replace them with
/// OIDs from its own arc.
public struct PKISettings: Codable, Sendable, Hashable {
    public enum Environment: String, Codable, Sendable, Hashable { case production, test }

    public var environment: Environment
    public var productionPolicyOID: String
    public var testPolicyOID: String
    /// Default `hwType` of HardwareModuleName for meters when a batch or request names none.
    public var deviceTypeOID: String
    /// Base URL of CRLs: a CA certificate points at its issuer's CRL, `<base><issuer>.crl`; an end entity at its
    /// shard of its CA's CRL, `<base><ca>/<shard>.crl` (the shard of its serial, ``ShardCount``).
    public var crlBaseURL: String
    /// OCSP responder URL for AIA.
    public var ocspURL: String

    public init(
        environment: Environment = .test,
        productionPolicyOID: String = "2.999.1.1",
        testPolicyOID: String = "2.999.1.2",
        deviceTypeOID: String = "2.999.2.1",
        crlBaseURL: String = "http://crl.metertrust.example/",
        ocspURL: String = "http://ocsp.metertrust.example/"
    ) {
        self.environment = environment
        self.productionPolicyOID = productionPolicyOID
        self.testPolicyOID = testPolicyOID
        self.deviceTypeOID = deviceTypeOID
        self.crlBaseURL = crlBaseURL
        self.ocspURL = ocspURL
    }

    /// The one policy OID every certificate carries in this environment.
    public func policyOID() throws -> ASN1ObjectIdentifier {
        try Self.oid(environment == .production ? productionPolicyOID : testPolicyOID, setting: "policy OID")
    }

    public func defaultDeviceType() throws -> ASN1ObjectIdentifier {
        try Self.oid(deviceTypeOID, setting: "deviceTypeOID")
    }

    public static func oid(_ text: String, setting: String) throws -> ASN1ObjectIdentifier {
        do {
            return try ASN1ObjectIdentifier(dotRepresentation: text)
        } catch {
            throw PKIError(.invalidArgument, "\(setting) \"\(text)\" is not a dotted OID such as 2.999.2.1")
        }
    }
}
