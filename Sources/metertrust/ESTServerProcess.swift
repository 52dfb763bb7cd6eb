import Foundation
import MeterTrustCore
import MeterTrustServer

/// Our EST server as `bench est` and `demo` run it: `metertrust server-cert --role est` (its key made in the HSM) and
/// `metertrust serve --roles est` as child processes of this binary on the deployment, on 127.0.0.1 (so that in the
/// benchmark the server's memory and CPU are its own, measured from /proc as nginx's are).
struct ESTServerProcess {
    let process: Process
    let port: Int

    /// This executable.
    static var executable: URL { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath() }

    /// `role`: `est` (TLS 1.3, the meter's certificate; its TLS identity made first) or `est-psk` (TLS 1.2 PSK).
    static func start(dataDirectory: URL, log: URL, role: String = EstRole.name) throws -> ESTServerProcess {
        let port = try LoopbackPort.free()
        if role == EstRole.name {
            let certified = try run(["server-cert", "--role", "est", "--ip", "127.0.0.1", "--port", String(port), "--data-dir", dataDirectory.path, "--json"])
            guard certified.status == 0 else { throw CLIError(code: .unreachable, "server-cert --role est failed: \(Output.oneLine(certified.stderr))") }
        }
        let portsFile = dataDirectory.deletingLastPathComponent().appendingPathComponent("serve-ports-\(role).json").path
        try? FileManager.default.removeItem(atPath: portsFile)
        let process = Process()
        process.executableURL = executable
        process.arguments = [
            "serve", "--roles", role, "--listen", "\(role)=127.0.0.1:\(port)", "--operations-listen", "127.0.0.1:0", "--ports-file", portsFile,
            "--data-dir", dataDirectory.path,
        ]
        // The request log (one line per request) goes to a file, at warning level: the bench measures serving, not logging.
        process.environment = ProcessInfo.processInfo.environment.merging(["METERTRUST_LOG_LEVEL": "warning"]) { $1 }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let server = ESTServerProcess(process: process, port: port)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: portsFile), LoopbackPort.accepts(port) { return server }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        server.stop()
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        throw CLIError(code: .unreachable, "serve --roles \(role) did not start: \(Output.oneLine(String(text.suffix(300))))")
    }

    var pid: Int32 { process.processIdentifier }

    /// SIGTERM (graceful shutdown), SIGKILL if it is still there after 15 s.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    private static func run(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
