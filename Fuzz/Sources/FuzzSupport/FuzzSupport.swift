import Crypto
import Dispatch
import Foundation
import MeterTrustCore
import MeterTrustPKI

/// What every fuzz target shares. Nothing here stands in for a parser: each target calls the real one.
public enum Fuzz {
    /// The input libFuzzer hands over, as the bytes a parser receives.
    public static func bytes(_ start: UnsafeRawPointer, _ count: Int) -> [UInt8] {
        count == 0 ? [] : Array(UnsafeRawBufferPointer(start: start, count: count))
    }

    /// A property the parser promises does not hold for this input: a finding. Traps, so libFuzzer saves the input.
    public static func violated(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
        fatalError("fuzz property violated: \(message())", file: file, line: line)
    }

    public static func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        if !condition { violated(message(), file: file, line: line) }
    }

    /// FUZZ_VERBOSE=1: targets say what the parser made of each input (for reading a reproducer, not for fuzzing).
    public static let verbose = ProcessInfo.processInfo.environment["FUZZ_VERBOSE"] != nil

    public static func note(_ message: @autoclosure () -> String) {
        if verbose { FileHandle.standardError.write(Data("fuzz: \(message())\n".utf8)) }
    }

    /// Runs `target` once on an empty input, before libFuzzer starts.
    public static func warmUp(_ target: (UnsafeRawPointer, Int) -> CInt) {
        let byte: [UInt8] = [0]
        _ = byte.withUnsafeBytes { target($0.baseAddress!, 0) }
    }

    /// Runs an async parser entry point to completion from libFuzzer's synchronous callback.
    public static func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let box = Box<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            box.value = await body()
            done.signal()
        }
        done.wait()
        return box.value!
    }

    private final class Box<T>: @unchecked Sendable {
        var value: T?
    }

    /// A directory of this process for parsers that read files (the CSR list) or keep state (the configurator);
    /// in /dev/shm where there is one. Removed when the process exits normally.
    public static let scratchDirectory: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
        let url = base.appendingPathComponent("metertrust-fuzz-\(getpid())")
        try? FileManager.default.removeItem(at: url)
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Fuzz.scratchDirectory) }
        return url
    }()
}

/// The fixed meter, image and keys the seed corpora were made with (Sources/MakeSeeds), so seeds reach the checks
/// past "this is not my meter". Fuzzing fixtures, not secrets.
public enum FuzzFixture {
    /// The meter whose keyed configurator (stage 2, key made on the meter) FuzzBundle installs bundles into; the seed
    /// on-device bundle is for it.
    public static let meter = EUI64(0x0024_BEFF_FE70_0001)
    /// The meter whose imaged configurator (stage 1) FuzzBundle installs factory-key bundles into.
    public static let factoryKeyMeter = EUI64(0x0024_BEFF_FE70_0002)
    /// The software image injected into that meter (its SHA-256 is in the seed bundles).
    public static let image = Data("metertrust fuzz firmware 1.0.0\n".utf8)
    public static var imageSHA256: String { hexString(SHA256.hash(data: image)) }
    /// hwType of the seed CSRs and bundles (the deployment default of the tests).
    public static let deviceType = "2.999.2.1"
    /// Where MakeSeeds writes what the seeds were made against, beside Corpus/.
    public static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// SHA-256 (hex) of the root certificate of the seed bundles: the trust anchor FuzzBundle's meters pin at stage 1.
    public static let trustAnchorSHA256: String = {
        let url = fixtures.appendingPathComponent("bundle-trust-anchor.sha256")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            fatalError("cannot read \(url.path): run make fuzz-seeds")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }()
    /// The audit signing key of the seed checkpoints: FuzzCheckpoint checks signatures with it.
    public static let auditKey = try! P256.Signing.PrivateKey(rawRepresentation: SHA256.hash(data: Data("metertrust fuzz audit key".utf8)))
    public static let auditKeyName = "metertrust-fuzz-audit"
    public static let auditOrigin = "metertrust.example/fuzz-log"
}
