import Foundation
import SwiftASN1
import X509

/// A swift-certificates verifier policy for MeterTrust's own critical extensions: certificatePolicies (critical in
/// every profile) and subjectAltName (critical, with the HardwareModuleName, on device certificates). Used together
/// with `RFC5280Policy`, which checks signatures, validity, basicConstraints and names.
public struct MeterTrustCertificatePolicy: VerifierPolicy {
    public let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [
        CertificatePolicies.oid, .X509ExtensionID.subjectAlternativeName,
    ]

    public init() {}

    public mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        for certificate in chain {
            guard let policies = certificate.extensions[oid: CertificatePolicies.oid] else { continue }
            guard (try? CertificatePolicies(derEncoded: policies.value)) != nil else {
                return .failsToMeetPolicy(reason: "certificate \(certificate.serialHex) has a malformed certificatePolicies extension")
            }
        }
        if let leaf = chain.first, leaf.extensions[oid: .X509ExtensionID.subjectAlternativeName]?.critical == true,
            leaf.subject == DistinguishedName(), (try? leaf.hardwareModuleName) == nil
        {
            return .failsToMeetPolicy(reason: "the device certificate's subjectAltName holds no HardwareModuleName")
        }
        return .meetsPolicy
    }
}

public enum ChainVerification {
    /// Verifies that `leaf` chains through `intermediates` to `root` (RFC 5280 path validation now, plus
    /// ``MeterTrustCertificatePolicy``). Throws a ``CoreError`` (``ErrorCode/untrustedChain``) saying why not.
    public static func verify(leaf: Certificate, intermediates: [Certificate], root: Certificate) async throws {
        var verifier = Verifier(rootCertificates: X509.CertificateStore([root])) {
            RFC5280Policy()
            MeterTrustCertificatePolicy()
        }
        let result = await verifier.validate(leaf: leaf, intermediates: X509.CertificateStore(intermediates))
        guard case .couldNotValidate(let failures) = result else { return }
        let reasons = failures.map { "\($0.policyFailureReason)" }.joined(separator: "; ")
        throw CoreError(.untrustedChain, "the certificate does not chain to the trust anchor: \(reasons.isEmpty ? "no path found" : reasons)")
    }
}
