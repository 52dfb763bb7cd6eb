import Foundation
import MeterTrustCore

/// nginx from Debian's package on loopback, the independent TLS server benchmarks measure our servers against (`bench
/// est`) and the meter's client is tested against: mutual TLS when given client CAs, the TLS versions it is told,
/// session cache and tickets off (every connection a full handshake), fixed answers by exact path, optionally an
/// access log of what each request negotiated. Its key is in software, in nginx.
public struct ReferenceNginx: Sendable {
    public static let binary = "/usr/sbin/nginx"

    /// A fixed answer: status, Content-Type, body (no `$`: nginx would read a variable), extra headers.
    public struct Answer: Sendable {
        public var status: Int
        public var contentType: String
        public var body: String
        public var headers: [String: String]

        public init(status: Int, contentType: String, body: String, headers: [String: String] = [:]) {
            self.status = status
            self.contentType = contentType
            self.body = body
            self.headers = headers
        }

        /// A certs-only CMS as EST sends it: base64 of the DER, `application/pkcs7-mime; smime-type=certs-only`.
        public static func certsOnly(base64 text: String) -> Answer {
            Answer(status: 200, contentType: "application/pkcs7-mime; smime-type=certs-only", body: text, headers: ["Content-Transfer-Encoding": "base64"])
        }
    }

    public struct Settings: Sendable {
        public var serverChainPEM: String
        public var serverKeyPEM: String
        /// `ssl_verify_client on` against these, or no client certificate asked for.
        public var clientCAsPEM: String?
        public var protocols = "TLSv1.3"
        public var answers: [String: Answer]
        public var workers = 1
        /// Log each request as `"$request" $status $ssl_protocol $ssl_client_verify $ssl_session_reused $ssl_client_serial`.
        public var accessLog = false

        public init(serverChainPEM: String, serverKeyPEM: String, clientCAsPEM: String?, answers: [String: Answer]) {
            self.serverChainPEM = serverChainPEM
            self.serverKeyPEM = serverKeyPEM
            self.clientCAsPEM = clientCAsPEM
            self.answers = answers
        }
    }

    public let directory: URL
    public let port: Int
    private let process: Process

    /// Installs Debian's nginx package with apt-get if it is missing (as root, or through sudo).
    public static func installIfMissing(log: (String) -> Void) throws {
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
                throw CoreError(.unreachable, "cannot install nginx (\(arguments.joined(separator: " ")) exited \(process.terminationStatus)): install Debian's nginx package")
            }
        }
    }

    /// Starts nginx in `directory` on 127.0.0.1:`port` (a free one when nil); returns once the port accepts.
    public static func start(in directory: URL, port: Int? = nil, _ settings: Settings) throws -> ReferenceNginx {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw CoreError(.unreachable, "nginx is missing: install Debian's nginx package (scripts/install-deps.sh does)")
        }
        let d = directory.path
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        try settings.serverChainPEM.write(toFile: "\(d)/server.pem", atomically: true, encoding: .utf8)
        try SecretFile.write(Array(settings.serverKeyPEM.utf8), to: "\(d)/server.key")
        var verify = ""
        if let clientCAs = settings.clientCAsPEM {
            try clientCAs.write(toFile: "\(d)/client-ca.pem", atomically: true, encoding: .utf8)
            verify = "ssl_client_certificate \(d)/client-ca.pem; ssl_verify_client on; ssl_verify_depth 3;"
        }
        var locations = ""
        for (path, answer) in settings.answers.sorted(by: { $0.key < $1.key }) {
            let headers = answer.headers.sorted { $0.key < $1.key }.map { "add_header \($0.key) \"\(quoted($0.value))\" always;" }.joined(separator: " ")
            locations += "        location = \(path) { default_type \"\(quoted(answer.contentType))\"; \(headers) return \(answer.status) \"\(quoted(answer.body))\"; }\n"
        }
        let port = try port ?? LoopbackPort.free()
        let log = settings.accessLog
            ? "log_format est '\"$request\" $status $ssl_protocol $ssl_client_verify $ssl_session_reused $ssl_client_serial'; access_log \(d)/access.log est;"
            : "access_log off;"
        let configuration = """
            daemon off;
            worker_processes \(settings.workers);
            pid \(d)/nginx.pid;
            error_log \(d)/error.log warn;
            events { worker_connections 4096; }
            http {
                \(log)
                client_body_temp_path \(d)/tmp/body; proxy_temp_path \(d)/tmp/proxy; fastcgi_temp_path \(d)/tmp/fastcgi;
                uwsgi_temp_path \(d)/tmp/uwsgi; scgi_temp_path \(d)/tmp/scgi;
                keepalive_timeout 0;
                server {
                    listen 127.0.0.1:\(port) ssl backlog=4096;
                    ssl_certificate \(d)/server.pem;
                    ssl_certificate_key \(d)/server.key;
                    ssl_protocols \(settings.protocols);
                    ssl_session_cache off;
                    ssl_session_tickets off;
                    \(verify)
                    location / { return 404; }
            \(locations)
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
        let errors = (try? String(contentsOfFile: "\(d)/error.log", encoding: .utf8)) ?? ""
        throw CoreError(.unreachable, "nginx did not start on 127.0.0.1:\(port): \(errors.suffix(300).split(separator: "\n").joined(separator: " | "))")
    }

    /// The master's pid; its workers are its children.
    public var pid: Int32 { process.processIdentifier }

    /// SIGTERM (the master's fast shutdown, which stops its workers), SIGKILL if it is still there after 5 s.
    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// A string for nginx's double quotes.
    private static func quoted(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}

/// TCP ports on loopback, for the servers a benchmark or test starts.
public enum LoopbackPort {
    /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice).
    public static func free() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw CoreError(.unreachable, "socket(): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        guard bound == 0, named == 0 else { throw CoreError(.unreachable, "cannot find a free loopback port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    public static func accepts(_ port: Int) -> Bool {
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
