import MeterTrustStore
import PostgresNIO

// How PostgreSQL's failures become store error codes: in this one place, by SQLSTATE (class 23, integrity constraint
// violation) and, for the uniqueness constraints the domain tells apart, by the constraint's name in the schema.
extension PostgresStore {
    /// The store error for a failed write.
    func storeError(writing error: any Error) -> StoreError {
        if let error = error as? PSQLError, let info = error.serverInfo, let state = info[.sqlState], var code = Self.constraintCode(state) {
            if code == .duplicate, let unique = Self.uniquenessCode(info[.constraintName]) { code = unique }
            return StoreError(code, "\(code.constraintExplanation): \(info[.message] ?? "constraint violated")")
        }
        return StoreError(.unavailable, "writing to the store \(location) failed: \(Self.reason(error))")
    }

    /// The code of a constraint failure (SQLSTATE class 23); nil if the error is not one.
    static func constraintCode(_ sqlState: String) -> StoreError.Code? {
        switch sqlState {
        case "23505": .duplicate  // unique_violation
        case "23503": .foreignKey  // foreign_key_violation
        case "23514", "P0001": .checkViolation  // check_violation; a trigger's RAISE enforcing a rule of the schema
        case "23502": .notNull  // not_null_violation
        case let state where state.hasPrefix("23"): .constraint
        default: nil
        }
    }

    /// Which of the uniqueness constraints the domain tells apart failed, by the names the schema gives them: a serial
    /// collision is drawn again, a meter provisioned twice or a key seen before is refused. Nil for every other one.
    static func uniquenessCode(_ constraint: String?) -> StoreError.Code? {
        switch constraint {
        case "certificates_pkey"?: .serialInUse
        case "device_identities_pkey"?: .meterProvisioned
        case "device_keys_pkey"?: .keyReused
        default:
            // A partition's own copy of the primary key is named after the partition (certificates_p3_pkey).
            if let constraint, constraint.hasPrefix("certificates_p"), constraint.hasSuffix("_pkey") { .serialInUse } else { nil }
        }
    }

    /// SQLSTATEs after which the same transaction, run again, may succeed: serialization failure, deadlock.
    static func isRetryable(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01"
    }


    /// One line for an error: the server's own message, or what failed on the way to it. Never the query or its
    /// values (postgres-nio's description of an error deliberately hides them too).
    static func reason(_ error: any Error) -> String {
        if error is LeaseTimeout { return "the database did not answer within the operation timeout (is the server up? the primary may have failed over)" }
        if let error = error as? PSQLError {
            if let info = error.serverInfo { return info[.message] ?? "server error \(info[.sqlState] ?? "")" }
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
                return "cannot reach the database: \(cause(error.underlying))"
            case .sslUnsupported: return "the server does not offer TLS, which the store URL's sslmode requires"
            case .authMechanismRequiresPassword: return "the server asks for a password: set METERTRUST_STORE_PASSWORD or --store-password-file"
            case .saslError: return "password authentication failed"
            case .failedToAddSSLHandler: return "TLS to the database failed: \(cause(error.underlying))"
            default: return "\(error.code)"
            }
        }
        return "\(error)"
    }

    /// A network or TLS failure in words, without the library's type names.
    static func cause(_ underlying: (any Error)?) -> String {
        guard let underlying else { return "the connection closed" }
        let text = String(describing: underlying)
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's TLS certificate did not verify (give its CA with sslrootcert=FILE in the store URL, or check the host name)"
        }
        if text.contains("SSL") { return "the TLS handshake with the server failed" }
        if text.lowercased().contains("refused") { return "the connection was refused (is the server running and listening there?)" }
        if text.lowercased().contains("timeout") || text.lowercased().contains("timed out") { return "the connection timed out" }
        return "the connection failed (\(text.prefix(120)))"
    }
}
