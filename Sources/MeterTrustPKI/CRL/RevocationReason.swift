/// RFC 5280 §5.3.1 CRLReason. 7 is not used; removeFromCRL (8) only appears in delta CRLs, which MeterTrust does not
/// publish, so it is not a reason an operator can give.
public enum RevocationReason: Int, Sendable, Hashable, CaseIterable, Codable {
    case unspecified = 0
    case keyCompromise = 1
    case caCompromise = 2
    case affiliationChanged = 3
    case superseded = 4
    case cessationOfOperation = 5
    case certificateHold = 6
    case removeFromCRL = 8
    case privilegeWithdrawn = 9
    case aaCompromise = 10

    /// The RFC's name (`keyCompromise`).
    public var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .keyCompromise: "keyCompromise"
        case .caCompromise: "cACompromise"
        case .affiliationChanged: "affiliationChanged"
        case .superseded: "superseded"
        case .cessationOfOperation: "cessationOfOperation"
        case .certificateHold: "certificateHold"
        case .removeFromCRL: "removeFromCRL"
        case .privilegeWithdrawn: "privilegeWithdrawn"
        case .aaCompromise: "aACompromise"
        }
    }

    /// The reasons an operator may give to `revoke`: every reason but removeFromCRL (delta CRLs only) and
    /// certificateHold (a hold is a suspension, and MeterTrust never un-revokes: a revocation is final).
    public static let revocable: [RevocationReason] = allCases.filter { $0 != .removeFromCRL && $0 != .certificateHold }

    /// The reason named `text`: its RFC name in any case (`keyCompromise`, `keycompromise`, `key-compromise`) or its
    /// code; nil for anything else or a reason ``revocable`` does not hold.
    public init?(parsing text: String) {
        let folded = text.lowercased().replacingOccurrences(of: "-", with: "").replacingOccurrences(of: "_", with: "")
        if let code = Int(folded), let reason = RevocationReason(rawValue: code), Self.revocable.contains(reason) {
            self = reason
        } else if let reason = Self.revocable.first(where: { $0.name.lowercased() == folded }) {
            self = reason
        } else {
            return nil
        }
    }
}
