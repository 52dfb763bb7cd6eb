import MeterTrustCore

extension StoreError: CodedError {
    public var errorCode: ErrorCode {
        switch code.backing {
        case .duplicate, .serialInUse: return .storeDuplicate
        case .meterProvisioned: return .alreadyIssued
        case .keyReused: return .keyReused
        case .foreignKey: return .storeForeignKey
        case .checkViolation: return .storeCheckViolation
        case .notNull: return .storeNotNull
        case .constraint: return .storeConstraint
        case .notFound: return .storeNotFound
        case .unavailable: return .storeUnavailable
        case .migration: return .storeMigration
        case .corrupt: return .storeCorrupt
        }
    }
}
