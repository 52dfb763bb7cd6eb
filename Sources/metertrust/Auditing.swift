import Crypto
import Foundation
import MeterTrustAdmin
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
            checkpointInterval: settings.checkpointInterval, anchor: HSMAuditAnchor(token: token, origin: settings.keyName)
        )
    }

    /// Runs `body` with the token logged in as user, the audit log and the quorum gate over the verified log; the
    /// token is closed (and so logged out) when `body` returns, so a security-officer session can follow in this
    /// process (PKCS#11 allows one login type per application).
    func withGate<R>(store: any MeterTrustStore, _ body: (QuorumGate) async throws -> R) async throws -> R {
        let token = try openToken()
        let gate = try await QuorumGate(store: store, audit: try auditLog(store: store, token: token))
        return try await body(gate)
    }

    /// Who is acting: the operating-system account running the command, as the kernel says (the effective user id
    /// and its name from the password database), never an environment variable anyone can set.
    var actor: String {
        let uid = geteuid()
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "cli:uid-\(uid)" }
        return "cli:\(String(cString: name))(uid \(uid))"
    }

    /// Records `event` in the audit log; a failure to record is an error (an unaudited key event must not pass).
    func audit(_ event: AuditEvent, store: any MeterTrustStore, token: HSMToken? = nil) async throws {
        try await auditLog(store: store, token: token).record(event)
    }

    /// Runs `body` as this command's `action` on `subject`, through the domain's one audited-operation helper
    /// (``AuditLog/audited(in:actor:action:subject:details:recordingIntent:_:)``): intent first (if it cannot be
    /// recorded, nothing runs), then success, failure or refusal by the domain's rule. The log is opened for each entry.
    func audited<T>(
        _ action: String, subject: String, store: any MeterTrustStore, token: HSMToken? = nil, details: [String: String] = [:],
        _ body: () async throws -> (T, [String: String])
    ) async throws -> T {
        try await AuditLog.audited(
            in: { try auditLog(store: store, token: token) }, actor: actor, action: action, subject: subject, details: details, recordingIntent: true, body
        )
    }
}
