import Foundation

/// Where the token's user PIN comes from. Never from a command-line argument, never logged.
public enum PINSource: Sendable, Hashable, CustomStringConvertible {
    /// The value of an environment variable.
    case environment(String)
    /// The first line of a file that only its owner may read or write (mode 0600 or 0400).
    case file(String)

    public static let defaultEnvironmentVariable = "METERTRUST_HSM_PIN"
    /// Where the security officer's PIN is read from by default (backup-key ceremony only).
    public static let securityOfficerEnvironmentVariable = "METERTRUST_HSM_SO_PIN"

    public var description: String {
        switch self {
        case .environment(let name): return "environment variable \(name)"
        case .file(let path): return "PIN file \(path)"
        }
    }

    /// Reads the PIN. The bytes are the caller's to wipe.
    public func read() throws -> [UInt8] {
        switch self {
        case .environment(let name):
            guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
                throw HSMError.make(.pinUnavailable, "the HSM PIN is not set: export \(name) or configure a PIN file")
            }
            return Array(value.utf8)
        case .file(let path):
            let attributes: [FileAttributeKey: Any]
            do {
                attributes = try FileManager.default.attributesOfItem(atPath: path)
            } catch {
                throw HSMError.make(.pinUnavailable, "cannot read the PIN file \(path): it does not exist or is not accessible")
            }
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
            guard mode & 0o077 == 0 else {
                throw HSMError.make(
                    .pinUnavailable,
                    "the PIN file \(path) is readable by others (mode \(String(mode, radix: 8))): run chmod 600 \(path)"
                )
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw HSMError.make(.pinUnavailable, "cannot read the PIN file \(path)")
            }
            var bytes = Array(data)
            while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
            guard !bytes.isEmpty else { throw HSMError.make(.pinUnavailable, "the PIN file \(path) is empty") }
            return bytes
        }
    }
}
