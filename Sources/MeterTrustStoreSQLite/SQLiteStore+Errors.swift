import GRDB
import MeterTrustStore

// How SQLite's failures become store error codes: in this one place, by SQLite's extended result code (GRDB turns
// extended codes on for every connection), so each kind of constraint keeps its own code.
extension SQLiteStore {
    /// The store error for a failed write.
    static func storeError(writing error: any Error, path: String) -> StoreError {
        if let error = error as? DatabaseError, var code = constraintCode(error) {
            if code == .duplicate, let unique = uniquenessCode(error) { code = unique }
            return StoreError(code, "\(code.constraintExplanation): \(error.message ?? "constraint violated")")
        }
        return StoreError(.unavailable, "writing to the store \(path) failed: \(reason(error))")
    }

    /// The code of a constraint failure; nil if the error is not one.
    static func constraintCode(_ error: DatabaseError) -> StoreError.Code? {
        guard error.resultCode == .SQLITE_CONSTRAINT else { return nil }
        switch error.extendedResultCode {
        case .SQLITE_CONSTRAINT_UNIQUE, .SQLITE_CONSTRAINT_PRIMARYKEY: return .duplicate
        case .SQLITE_CONSTRAINT_FOREIGNKEY: return .foreignKey
        // A trigger that raises enforces a rule of the schema, as a CHECK does; so does a STRICT table's type.
        case .SQLITE_CONSTRAINT_CHECK, .SQLITE_CONSTRAINT_TRIGGER, .SQLITE_CONSTRAINT_DATATYPE: return .checkViolation
        case .SQLITE_CONSTRAINT_NOTNULL: return .notNull
        default: return .constraint
        }
    }

    /// Which of the uniqueness constraints the domain tells apart failed, by the columns SQLite names ("UNIQUE
    /// constraint failed: certificates.issuer, certificates.serial"): a serial collision is drawn again, a meter
    /// provisioned twice or a key seen before is refused. Nil for every other uniqueness.
    static func uniquenessCode(_ error: DatabaseError) -> StoreError.Code? {
        guard let message = error.message else { return nil }
        if message.hasSuffix("certificates.issuer, certificates.serial") { return .serialInUse }
        if message.hasSuffix("certificates.eui64") { return .meterProvisioned }
        if message.hasSuffix("device_keys.key") { return .keyReused }
        return nil
    }


    static func reason(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error.resultCode)" }
        return "\(error)"
    }
}
