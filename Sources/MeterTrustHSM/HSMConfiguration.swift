import Foundation
/// How to reach the token that holds MeterTrust's keys.
public struct HSMConfiguration: Sendable, Hashable, Codable {
    /// Path of the PKCS#11 module to dlopen (SoftHSM2 by default, the vendor's module in production).
    public var modulePath: String
    /// Label of the token (slot ids move; labels do not).
    public var tokenLabel: String
    /// Name of the environment variable holding the user PIN, when no PIN file is configured.
    public var pinEnvironmentVariable: String?
    /// Path of a 0600 file holding the user PIN; takes precedence over the environment variable.
    public var pinFile: String?
    /// Number of PKCS#11 sessions (one per concurrent signer). Defaults to the number of cores.
    public var sessionCount: Int?

    public static let defaultModulePath = "/usr/lib/softhsm/libsofthsm2.so"

    public init(
        modulePath: String = HSMConfiguration.defaultModulePath,
        tokenLabel: String,
        pinEnvironmentVariable: String? = PINSource.defaultEnvironmentVariable,
        pinFile: String? = nil,
        sessionCount: Int? = nil
    ) {
        self.modulePath = modulePath
        self.tokenLabel = tokenLabel
        self.pinEnvironmentVariable = pinEnvironmentVariable
        self.pinFile = pinFile
        self.sessionCount = sessionCount
    }

    public var pinSource: PINSource {
        if let pinFile { return .file(pinFile) }
        return .environment(pinEnvironmentVariable ?? PINSource.defaultEnvironmentVariable)
    }

    /// Whether a PIN is configured and present (the variable set, or the file there), without reading it.
    public var pinAvailable: Bool {
        switch pinSource {
        case .file(let path): return FileManager.default.fileExists(atPath: path)
        case .environment(let name): return !(ProcessInfo.processInfo.environment[name] ?? "").isEmpty
        }
    }
}
