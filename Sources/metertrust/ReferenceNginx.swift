import Foundation

/// nginx from Debian's package as `bench est`'s reference: mutual TLS on loopback with the same certificate types and
/// trust store as our EST server (a P-256 tls-server certificate from the Service CA, its key in software here;
/// clients verified against the manufacturer CA and the root), session cache and tickets off so every connection is
/// a full handshake, and one small static answer (a certs-only CMS of one operational certificate, as our server's).
/// One worker process per core.
struct ReferenceNginx {
    static let binary = "/usr/sbin/nginx"

    let directory: URL
    let port: Int
    private let process: Process

    /// Installs Debian's nginx package with apt-get if it is missing (as root, or through sudo).
    static func installIfMissing(log: (String) -> Void) throws {
        guard !FileManager.default.isExecutableFile(atPath: binary) else { return }
        log("installing nginx (Debian's package) with apt-get")
        let prefix = getuid() == 0 ? [] : ["sudo"]
        for arguments in [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = prefix + arguments
            process.environment = ProcessInfo.processInfo.environment.merging(["DEBIAN_FRONTEND": "noninteractive"]) { $1 }
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CLIError(code: .unreachable, "cannot install nginx (\(arguments.joined(separator: " ")) exited \(process.terminationStatus)): install Debian's nginx package")
            }
        }
    }

    /// Starts nginx on 127.0.0.1:`port` answering `POST|GET path` with `body` (base64 text) as `contentType`.
    static func start(
        in directory: URL, port: Int, serverChainPEM: String, serverKeyPEM: String, clientCAsPEM: String, path: String, contentType: String, body: String,
        workers: Int
    ) throws -> ReferenceNginx {
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        let d = directory.path
        try serverChainPEM.write(toFile: "\(d)/server.pem", atomically: true, encoding: .utf8)
        try Data(serverKeyPEM.utf8).write(to: URL(fileURLWithPath: "\(d)/server.key"), options: .atomic)
        chmod("\(d)/server.key", 0o600)
        try clientCAsPEM.write(toFile: "\(d)/client-ca.pem", atomically: true, encoding: .utf8)
        let configuration = """
            daemon off;
            worker_processes \(workers);
            pid \(d)/nginx.pid;
            error_log \(d)/error.log warn;
            events { worker_connections 4096; }
            http {
                access_log off;
                client_body_temp_path \(d)/tmp/body; proxy_temp_path \(d)/tmp/proxy; fastcgi_temp_path \(d)/tmp/fastcgi;
                uwsgi_temp_path \(d)/tmp/uwsgi; scgi_temp_path \(d)/tmp/scgi;
                keepalive_timeout 0;
                server {
                    listen 127.0.0.1:\(port) ssl backlog=4096;
                    ssl_certificate \(d)/server.pem;
                    ssl_certificate_key \(d)/server.key;
                    ssl_protocols TLSv1.3;
                    ssl_session_cache off;
                    ssl_session_tickets off;
                    ssl_client_certificate \(d)/client-ca.pem;
                    ssl_verify_client on;
                    ssl_verify_depth 2;
                    location = \(path) { default_type "\(contentType)"; add_header Content-Transfer-Encoding base64; return 200 "\(body)"; }
                    location / { return 404; }
                }
            }

            """
        try configuration.write(toFile: "\(d)/nginx.conf", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-c", "\(d)/nginx.conf", "-p", d, "-e", "\(d)/error.log"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let nginx = ReferenceNginx(directory: directory, port: port, process: process)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if LoopbackPort.accepts(port) { return nginx }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        nginx.stop()
        let log = (try? String(contentsOfFile: "\(d)/error.log", encoding: .utf8)) ?? ""
        throw CLIError(code: .unreachable, "nginx did not start on 127.0.0.1:\(port): \(Output.oneLine(String(log.suffix(300))))")
    }

    /// The master's pid; its workers are its children.
    var pid: Int32 { process.processIdentifier }

    /// SIGTERM (the master's fast shutdown, which stops its workers), SIGKILL if it is still there after 5 s.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Loopback ports for the benchmark's servers.
enum LoopbackPort {
    /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice).
    static func free() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw CLIError(code: .unreachable, "socket(): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        guard bound == 0, named == 0 else { throw CLIError(code: .unreachable, "cannot find a free loopback port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func accepts(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

/// Peak resident memory of a process and its children (nginx's master and workers), from /proc.
enum ProcessMemory {
    /// Sum of VmHWM over `pid` and its direct children, MB.
    static func peakMB(of pid: Int32) -> Double {
        var pids = [pid]
        if let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
            for task in tasks {
                let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
                pids += children.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
        }
        return pids.reduce(0) { $0 + field("VmHWM:", of: $1) }
    }

    /// A `kB` field of /proc/PID/status, MB.
    static func field(_ name: String, of pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) })
        else { return 0 }
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }
}
