import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustHSM
import MeterTrustStore
import X509

extension Context {
    /// The audit log of this data directory; checkpoints are signed once `audit init` made the audit key.
    func auditLog(store: any MeterTrustStore, token: HSMToken? = nil) throws -> AuditLog {
        guard let settings = configuration.audit else {
            return AuditLog(store: store, signer: nil, origin: "metertrust/audit")
        }
        let token = try token ?? openToken()
        let key = try token.findKey(label: settings.keyLabel)
        return AuditLog(
            store: store, signer: try HSMCheckpointSigner(token: token, key: key, keyName: settings.keyName), origin: settings.keyName,
            checkpointInterval: settings.checkpointInterval
        )
    }

    /// Who is acting: the operating-system user running the command.
    var actor: String { "cli:\(ProcessInfo.processInfo.environment["USER"] ?? "uid-\(getuid())")" }

    /// Records `event` in the audit log; a failure to record is an error (an unaudited key event must not pass).
    func audit(_ event: AuditEvent, store: any MeterTrustStore, token: HSMToken? = nil) async throws {
        try await auditLog(store: store, token: token).record(event)
    }

    /// Runs `body`; records its success or failure as `action` on `subject`.
    func audited<T>(
        _ action: String, subject: String, store: any MeterTrustStore, token: HSMToken? = nil, details: [String: String] = [:],
        _ body: () async throws -> (T, [String: String])
    ) async throws -> T {
        do {
            let (result, more) = try await body()
            try await audit(AuditEvent(actor: actor, action: action, subject: subject, outcome: .success, details: details.merging(more) { $1 }), store: store, token: token)
            return result
        } catch {
            let outcome: AuditEvent.Outcome = error is HSMError || error is StoreError ? .failed : .refused
            try? await audit(
                AuditEvent(actor: actor, action: action, subject: subject, outcome: outcome, details: details.merging(["reason": "\(error)"]) { $1 }),
                store: store, token: token
            )
            throw error
        }
    }
}
