import Foundation

/// The JSON messages of the account API that are not store records, shared by the server (MeterTrustServer) and its
/// clients (the CLI), which need not link the server for them. Plain Codable structs over Foundation only. Records
/// the API returns as they are (accounts, claims, conflicts, history events) are MeterTrustStore's own types.
public enum AccountAPIMessage {
    /// Body of `POST /v1/accounts/{account}/operators`: a further operator of the caller's account.
    public struct NewOperator: Codable, Sendable {
        /// The operator's name (the certificate's CN).
        public var name: String
        /// The operator's PKCS#10 request, PEM: the key stays with the operator.
        public var csr: String

        public init(name: String, csr: String) {
            self.name = name
            self.csr = csr
        }
    }

    /// Body of `POST /v1/accounts/{account}/meters/{eui64}/revoke`: revoke the meter's operational certificates from
    /// the account's Operational CA.
    public struct Revoke: Codable, Sendable {
        /// RFC 5280 reason name (`keyCompromise`) or code; unspecified when absent.
        public var reason: String?
        /// RFC 3339: when the key was (suspected to be) compromised.
        public var invalidityDate: String?

        public init(reason: String? = nil, invalidityDate: String? = nil) {
            self.reason = reason
            self.invalidityDate = invalidityDate
        }
    }

    /// Answer to an operator's issuance: the certificate (utility-operator profile) and its chain to the root.
    public struct IssuedOperator: Codable, Sendable {
        public var account: String
        public var name: String
        public var serial: String
        /// SHA-256 of the certificate's DER, hex: how the operator is named when removed.
        public var fingerprint: String
        public var certificate: String
        /// The Operator CA's certificate, then the root's, PEM.
        public var chain: [String]

        public init(account: String, name: String, serial: String, fingerprint: String, certificate: String, chain: [String]) {
            self.account = account
            self.name = name
            self.serial = serial
            self.fingerprint = fingerprint
            self.certificate = certificate
            self.chain = chain
        }
    }

    /// One page of a listing and the cursor of the next (nil on the last page).
    public struct Page<Item: Codable & Sendable>: Codable, Sendable {
        public var items: [Item]
        public var next: String?

        public init(items: [Item], next: String?) {
            self.items = items
            self.next = next
        }
    }

    /// The header that carries a manifest's detached signature (base64 of the DER ECDSA-Sig-Value) on an upload.
    public static let signatureHeader = "MeterTrust-Manifest-Signature"
}
