#if canImport(Glibc)
import Glibc
private let posixWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let posixWrite = Darwin.write
#endif

/// A file that holds a secret (a private key, a backup document, factory keys): created with mode 0600 at `open`,
/// never by chmod after the fact.
///
/// The bytes go to a new temporary file in the same directory, opened with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode
/// 0600, are flushed with `fsync`, and the file is renamed over `path`. So no other user can ever open it, a file
/// that already exists at `path` (a 0644 one, or a symbolic link someone planted) is replaced, never reused, and a
/// crash leaves either the old file or the whole new one.
public struct SecretFile: ~Copyable {
    public struct Failure: CodedError {
        public let path: String
        public let operation: String
        public let errno: Int32
        public var errorCode: ErrorCode { .fileSystem }
        public var message: String {
            "cannot \(operation) \(path): \(String(cString: strerror(errno)))"
        }
    }

    public let path: String
    private let temporaryPath: String
    private var descriptor: Int32

    /// Opens a new secret file that will replace `path` when ``commit()`` is called.
    public init(creating path: String) throws {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        var suffix: UInt64 = 0
        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        while true {
            suffix = generator.next()
            let candidate = "\(directory.isEmpty ? "/" : directory)/.\(path.split(separator: "/").last ?? "secret").\(String(suffix, radix: 16)).tmp"
            let fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 {
                self.path = path
                self.temporaryPath = candidate
                self.descriptor = fd
                return
            }
            attempt += 1
            guard errno == EEXIST, attempt < 8 else { throw Failure(path: path, operation: "create", errno: errno) }
        }
    }

    /// Appends `bytes`.
    public mutating func write(_ bytes: some Collection<UInt8>) throws {
        let buffer = Array(bytes)
        var offset = 0
        while offset < buffer.count {
            let written = buffer.withUnsafeBytes { posixWrite(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, operation: "write", errno: errno)
            }
            offset += written
        }
    }

    /// Flushes the file and renames it over `path`.
    public consuming func commit() throws {
        guard fsync(descriptor) == 0 else { throw Failure(path: path, operation: "flush", errno: errno) }
        guard close(descriptor) == 0 else { throw Failure(path: path, operation: "close", errno: errno) }
        descriptor = -1
        guard rename(temporaryPath, path) == 0 else {
            let error = errno
            unlink(temporaryPath)
            throw Failure(path: path, operation: "rename into place", errno: error)
        }
    }

    deinit {
        // Not committed: leave nothing behind.
        if descriptor >= 0 {
            close(descriptor)
            unlink(temporaryPath)
        }
    }

    /// Writes `bytes` to a new 0600 file at `path` in one step.
    public static func write(_ bytes: some Collection<UInt8>, to path: String) throws {
        var file = try SecretFile(creating: path)
        try file.write(bytes)
        try file.commit()
    }
}
