import Foundation
import MeterTrustQuorum
import MeterTrustStore

extension QuorumOperationRegistry {
    /// `backup.export`, `backup.reshare`.
    public mutating func registerBackupOperations() {
        register(ExportBackupOperation.self)
        register(ReshareBackupOperation.self)
    }
}

private func checkBackupKey(in context: QuorumOperationContext) async throws {
    guard try await context.store.backupKey() != nil else {
        throw QuorumError(.backup, "there is no backup key: run the backup-key ceremony (metertrust backup init-key) first")
    }
}

/// `backup.export`: the CA keys marked for backup, wrapped under the backup key; the document goes to the executor
/// only.
public struct ExportBackupOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {
        /// The CAs to export; absent: every CA whose key was made for backup.
        public var authorities: [String]?
    }

    public static let operation = AdminOperation.backupExport
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters {
        Parameters(authorities: QuorumParameters(raw, for: operation).optional("cas").map { $0.split(separator: ",").map(String.init) })
    }

    public func preflight(in context: QuorumOperationContext) async throws {
        try await checkBackupKey(in: context)
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        let file = try await KeyBackup.export(hierarchy: context.hierarchy, backupKeys: context.store, authorities: parameters.authorities, at: context.clock.now())
        return QuorumOperationResult(outcome: ["keys": file.keys.map(\.ca).joined(separator: ",")], backup: String(decoding: file.bytes, as: UTF8.self))
    }
}

/// `backup.reshare`: approved through the admin API, run as a ceremony on the HSM host with k security officers
/// present (``KeyBackup``), never by `execute`.
public struct ReshareBackupOperation: QuorumOperation {
    public struct Parameters: Sendable, Hashable {}

    public static let operation = AdminOperation.backupReshare
    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public static func parse(_ raw: [String: String]) throws -> Parameters { Parameters() }

    public func preflight(in context: QuorumOperationContext) async throws {
        try await checkBackupKey(in: context)
    }

    public func checkExecution(requestID: String, in context: QuorumOperationContext) async throws {
        throw QuorumError(
            .invalidRequest,
            "backup.reshare runs as a ceremony on the HSM host with k security officers present: metertrust backup reshare --request \(requestID) --custodian NAME=KEYFILE ..."
        )
    }

    public func run(requestID: String, in context: QuorumOperationContext) async throws -> QuorumOperationResult {
        throw QuorumError(.invalidRequest, "backup.reshare runs as a ceremony: metertrust backup reshare --request \(requestID)")
    }
}
