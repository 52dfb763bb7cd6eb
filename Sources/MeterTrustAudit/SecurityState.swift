import Crypto
import Foundation

/// The security state the audit log records: what the policies are, who the custodians are (role and certificate),
/// which requests were claimed or ran, which certificates are revoked and which CAs destroyed.
///
/// Events that change it carry `state.*` details (``Change``); ``AuditLog/verifiedState()`` replays them from the part
/// of the log a signed checkpoint covers, after checking that part against the audit key and the head kept in the HSM.
/// Decisions use a store row only when it matches this state, so changing, deleting or rolling back a row (someone
/// with the database but without the HSM) is refused or ignored, never believed.
///
/// Why replay rather than a MAC per row: the holder of the user PIN could compute a MAC with an HSM key, and a MAC
/// does not stop an old, validly MACed row from being put back. The log's order and its checkpoints do.
public struct SecurityState: Sendable, Hashable {
    /// What the log says of a custodian.
    public struct CustodianState: Sendable, Hashable {
        public var role: String
        /// SHA-256 of their admin certificate, hex.
        public var fingerprint: String
        public var removed: Bool
    }

    public var bootstrapped = false
    /// Operation class → ``QuorumPolicy`` text as the quorum module writes it.
    public var policies: [String: String] = [:]
    public var custodians: [String: CustodianState] = [:]
    /// Request id → `executing`, `executed` or `failed`.
    public var requests: [String: String] = [:]
    /// What the log says of one revoked certificate.
    public struct Revocation: Sendable, Hashable {
        /// RFC 5280 §5.3.1 reason code.
        public var reason: Int
        /// When it was revoked (the entry's time for entries written before revocations carried their time).
        public var revokedAt: Date
        /// When the key is known or suspected to have been compromised (RFC 5280 §5.3.2), if given.
        public var invalidityDate: Date?

        public init(reason: Int, revokedAt: Date, invalidityDate: Date? = nil) {
            self.reason = reason
            self.revokedAt = revokedAt
            self.invalidityDate = invalidityDate
        }
    }

    /// The root's CRL as the log records it.
    public struct RootCRL: Sendable, Hashable {
        public var der: [UInt8]
        /// cRLNumber's INTEGER content octets, hex.
        public var number: String
        public var thisUpdate: Date
        public var nextUpdate: Date
        public var entries: Int

        public init(der: [UInt8], number: String, thisUpdate: Date, nextUpdate: Date, entries: Int) {
            self.der = der
            self.number = number
            self.thisUpdate = thisUpdate
            self.nextUpdate = nextUpdate
            self.entries = entries
        }
    }

    /// Issuer (CA name) → its revoked certificates (serial hex → revocation, in the order the log recorded them: what
    /// was added since a count seen before is what follows it, so a CRL publisher adds only those to its shards). A
    /// revocation is final: the first one recorded stands. Copying the state shares them (``RevokedSerials``).
    public var revoked: [String: RevokedSerials] = [:]
    /// How many revocations ``revoked`` holds; it changes whenever one is added (what a cache of responses keys on).
    public var revocationCount = 0
    public var destroyedAuthorities: Set<String> = []
    /// The root's latest CRL, signed under quorum (`crl.sign-root`): the log carries the document itself, so every node
    /// serves the one the custodians approved.
    public var rootCRL: RootCRL?
    /// Entries the replay covered (the latest checkpoint's size).
    public var verifiedSize = 0

    public init() {}

    /// The detail keys of state changes. Stored values: never renamed.
    public enum Change {
        public static let prefix = "state."

        public static func bootstrapped() -> (String, String) { ("state.bootstrapped", "true") }
        public static func policy(_ operationClass: String, _ text: String) -> (String, String) { ("state.policy.\(operationClass)", text) }
        public static func custodian(_ name: String, role: String, fingerprint: String) -> (String, String) {
            ("state.custodian.\(name)", "\(role) \(fingerprint)")
        }
        public static func custodianRemoved(_ name: String) -> (String, String) { ("state.custodian.\(name)", "removed") }
        public static func request(_ id: String, _ state: String) -> (String, String) { ("state.request.\(id)", state) }
        /// `reason revokedAt [invalidityDate]`, the dates as whole seconds since 1970 (entries before these dates
        /// held the reason alone).
        public static func revoked(issuer: String, serial: String, reason: Int, at date: Date? = nil, invalidityDate: Date? = nil) -> (String, String) {
            var value = "\(reason)"
            if let date { value += " \(Int64(date.timeIntervalSince1970.rounded(.down)))" }
            if date != nil, let invalidityDate { value += " \(Int64(invalidityDate.timeIntervalSince1970.rounded(.down)))" }
            return ("state.revoked.\(issuer)/\(serial)", value)
        }
        public static func destroyed(_ authority: String) -> (String, String) { ("state.destroyed.\(authority)", "true") }
        /// `number thisUpdate nextUpdate entries base64`, the dates in whole seconds since 1970.
        public static func rootCRL(_ crl: RootCRL) -> (String, String) {
            (
                "state.crl.root",
                "\(crl.number) \(Int64(crl.thisUpdate.timeIntervalSince1970)) \(Int64(crl.nextUpdate.timeIntervalSince1970)) \(crl.entries) \(Data(crl.der).base64EncodedString())"
            )
        }
    }

    /// Whether the certificate `serial` of `issuer` is revoked.
    public func isRevoked(issuer: String, serial: String) -> Bool { revoked[issuer]?[serial] != nil }

    /// The revocation of the certificate `serial` of `issuer`, if the log records one.
    public func revocation(issuer: String, serial: String) -> Revocation? { revoked[issuer]?[serial] }

    /// Whether a certificate with `serial` is revoked by any issuer (serials carry 80 random bits).
    public func isRevoked(serial: String) -> Bool { revoked.values.contains { $0[serial] != nil } }

    /// Applies the state changes of `entries`, in log order. Only successful events change state; refusals and
    /// failures are recorded but change nothing (a failed execution is recorded as `failed` by its own detail).
    /// `onto`: the state of the entries before these. Only entries that change state have their seal checked (an
    /// entry without `state.*` details changes nothing, sealed or not).
    public static func replay(
        _ entries: some Sequence<AuditEntry>, sealedBy key: P256.Signing.PublicKey? = nil, onto initial: SecurityState = SecurityState()
    ) -> SecurityState {
        var state = initial
        for entry in entries {
            state.verifiedSize = Int(entry.index) + 1
            guard entry.details.keys.contains(where: { $0.hasPrefix(Change.prefix) }) else { continue }
            if let key, !entry.isSealed(by: key) { continue }
            for (key, value) in entry.details where key.hasPrefix(Change.prefix) {
                // A request's claim and failure are state even when the event around them failed.
                let isRequestState = key.hasPrefix("state.request.")
                guard entry.outcome == .success || isRequestState else { continue }
                state.apply(key: String(key.dropFirst(Change.prefix.count)), value: value, entry: entry)
            }
        }
        return state
    }

    private mutating func apply(key: String, value: String, entry: AuditEntry) {
        if key == "bootstrapped" {
            bootstrapped = true
        } else if let name = key.dropPrefix("policy.") {
            policies[name] = value
        } else if let name = key.dropPrefix("custodian.") {
            if value == "removed" {
                custodians[name]?.removed = true
            } else {
                let fields = value.split(separator: " ").map(String.init)
                if fields.count == 2 { custodians[name] = CustodianState(role: fields[0], fingerprint: fields[1], removed: false) }
            }
        } else if let id = key.dropPrefix("request.") {
            // A request moves forward only: executing → executed | failed; never back to nothing.
            if requests[id] == nil || value != "executing" { requests[id] = value }
        } else if let certificate = key.dropPrefix("revoked."), let slash = certificate.lastIndex(of: "/") {
            let fields = value.split(separator: " ")
            guard let first = fields.first, let reason = Int(first) else { return }
            let issuer = String(certificate[..<slash])
            let serial = String(certificate[certificate.index(after: slash)...])
            let revokedAt = fields.count > 1 ? Int64(fields[1]).map { Date(timeIntervalSince1970: TimeInterval($0)) } : nil
            let invalidity = fields.count > 2 ? Int64(fields[2]).map { Date(timeIntervalSince1970: TimeInterval($0)) } : nil
            let revocation = Revocation(reason: reason, revokedAt: revokedAt ?? entry.date, invalidityDate: invalidity)
            if revoked[issuer, default: RevokedSerials()].insert(revocation, serial: serial) { revocationCount += 1 }
        } else if let name = key.dropPrefix("destroyed.") {
            destroyedAuthorities.insert(name)
        } else if key == "crl.root" {
            let fields = value.split(separator: " ")
            guard fields.count == 5, let this = Int64(fields[1]), let next = Int64(fields[2]), let entries = Int(fields[3]),
                let der = Data(base64Encoded: String(fields[4]))
            else { return }
            rootCRL = RootCRL(
                der: Array(der), number: String(fields[0]), thisUpdate: Date(timeIntervalSince1970: TimeInterval(this)),
                nextUpdate: Date(timeIntervalSince1970: TimeInterval(next)), entries: entries
            )
        }
    }
}

extension String {
    fileprivate func dropPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
