import Foundation
import MeterTrustHSM
import MeterTrustStore

/// An error that ends an audited operation with its own audit details and outcome, and is rethrown as
/// `underlying` (a claimed request whose operation failed: its entry records the request as failed).
public protocol AuditedFailure: Error {
    var underlying: any Error { get }
    /// Details added to the entry that records the failure.
    var auditDetails: [String: String] { get }
}

extension AuditLog {
    /// How an error ends an audited operation; the one rule every caller uses. An error of the machinery (HSM,
    /// store) is `.failed`; any other error (the input, a rule, or the audit log's own state refused) is `.refused`.
    public static func outcome(of error: any Error) -> AuditEvent.Outcome {
        switch error {
        case is HSMError, is StoreError: return .failed
        default: return .refused
        }
    }

    /// Runs `body` as `action` on `subject` by `actor` and records how it ended: success with `details` and the
    /// details `body` returns, or its failure or refusal (``outcome(of:)``) with the reason. With `recordingIntent`,
    /// a `started` entry is recorded first, and if it cannot be, nothing runs. A failure to record success is an
    /// error (an unaudited event must not pass); a failure to record a refusal is not (the refusal is thrown).
    public func audited<T>(
        actor: String, action: String, subject: String, details: [String: String] = [:], recordingIntent: Bool,
        _ body: () async throws -> (T, [String: String])
    ) async throws -> T {
        try await Self.audited(in: { self }, actor: actor, action: action, subject: subject, details: details, recordingIntent: recordingIntent, body)
    }

    /// ``audited(actor:action:subject:details:recordingIntent:_:)`` with the log opened afresh for each entry by
    /// `log` (a ceremony whose body needs the token free of this process's user session between entries).
    public static func audited<T>(
        in log: () throws -> AuditLog, actor: String, action: String, subject: String, details: [String: String] = [:], recordingIntent: Bool,
        _ body: () async throws -> (T, [String: String])
    ) async throws -> T {
        if recordingIntent {
            try await log().record(AuditEvent(actor: actor, action: action, subject: subject, outcome: .started, details: details))
        }
        do {
            let (result, more) = try await body()
            try await log().record(AuditEvent(actor: actor, action: action, subject: subject, outcome: .success, details: details.merging(more) { $1 }))
            return result
        } catch let failure as any AuditedFailure {
            _ = try? await log().record(
                AuditEvent(
                    actor: actor, action: action, subject: subject, outcome: .failed,
                    details: details.merging(["reason": "\(failure.underlying)"]) { $1 }.merging(failure.auditDetails) { $1 }
                )
            )
            throw failure.underlying
        } catch {
            _ = try? await log().record(
                AuditEvent(actor: actor, action: action, subject: subject, outcome: Self.outcome(of: error), details: details.merging(["reason": "\(error)"]) { $1 })
            )
            throw error
        }
    }
}
