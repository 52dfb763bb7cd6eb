import ArgumentParser
import Foundation
import Logging
import MeterTrustAdmin
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore

/// Options every command that touches the data directory takes.
struct DataDirectoryOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Data directory (default: $METERTRUST_HOME or ./metertrust-data).")
    var dataDirectory: String?

    var url: URL {
        let path = dataDirectory ?? ProcessInfo.processInfo.environment["METERTRUST_HOME"] ?? "metertrust-data"
        return URL(fileURLWithPath: path).standardizedFileURL
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON document instead of text.")
    var json = false
}

/// What a command works with: configuration, store, token and CA hierarchy, opened on demand.
struct Context {
    let dataDirectory: URL
    let configuration: Configuration
    let logger: Logger

    init(_ options: DataDirectoryOptions) throws {
        self.dataDirectory = options.url
        self.configuration = try Configuration.load(dataDirectory: options.url)
        self.logger = Logging.metertrustLogger()
    }

    /// The deployment's context if `options` names a data directory that has a configuration (for commands that
    /// also run without one, such as the restore ceremony on another site).
    static func ifPresent(_ options: DataDirectoryOptions) -> Context? {
        FileManager.default.fileExists(atPath: options.url.appendingPathComponent(Configuration.fileName).path) ? try? Context(options) : nil
    }

    func openStore() async throws -> any MeterTrustStore {
        try await StoreOpening.open(configuration, in: dataDirectory)
    }

    func openToken() throws -> HSMToken {
        try HSMToken.open(configuration.hsm, logger: Logger(label: "metertrust.hsm"))
    }

    /// The store (every view) and the CA hierarchy over it; once the audit log exists, which CAs may issue is also
    /// judged from the verified log.
    func platform() async throws -> (store: any MeterTrustStore, hierarchy: CAHierarchy) {
        let token = try openToken()
        let store = try await openStore()
        let status = configuration.audit == nil ? nil : AuditedAuthorityStatus(audit: try auditLog(store: store, token: token))
        return (store, CAHierarchy(token: token, store: store, settings: configuration.pki, statusSource: status))
    }

    /// The CA hierarchy alone, for commands that touch only CAs, certificates and revocations.
    func hierarchy() async throws -> CAHierarchy { try await platform().hierarchy }
}

enum Logging {
    /// Logs go to stderr at the level in $METERTRUST_LOG_LEVEL (default: warning; with --json only critical, so
    /// stderr carries nothing but the JSON error object), so stdout stays for output.
    static func bootstrap() {
        let level = ProcessInfo.processInfo.environment["METERTRUST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            ?? (Output.jsonRequested ? .critical : .warning)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    static func metertrustLogger() -> Logger { Logger(label: "metertrust") }
}
