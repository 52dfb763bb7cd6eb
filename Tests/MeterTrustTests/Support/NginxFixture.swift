import Foundation

/// nginx (Debian's package, installed by scripts/install-deps.sh) on loopback: an independent TLS server no one here
/// wrote, for the meter's EST client. Mutual TLS against the client CA file it is given (or none), the TLS versions it
/// is told, no session cache and no tickets (every connection a full handshake), and fixed answers per path.
struct NginxFixture {
    struct Answer {
        var status: Int
        var contentType: String
        var body: String
        var headers: [String: String] = [:]

        /// A certs-only CMS as EST sends it: base64 of the DER, `application/pkcs7-mime; smime-type=certs-only`.
        static func certsOnly(base64 text: String) -> Answer {
            Answer(status: 200, contentType: "application/pkcs7-mime; smime-type=certs-only", body: text, headers: ["Content-Transfer-Encoding": "base64"])
        }
    }

    let directory: URL
    let port: Int
    private let process: Process

    static let binary = "/usr/sbin/nginx"

    /// Starts nginx with the server certificate chain and key (PEM) and, when `clientCAs` is given, `ssl_verify_client
    /// on` against it; `answers` by exact path. Returns once the port accepts connections.
    static func start(
        serverChainPEM: String, serverKeyPEM: String, clientCAs: String?, protocols: String = "TLSv1.3", answers: [String: Answer]
    ) throws -> NginxFixture {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestEnvironment.TestSetupError("nginx is missing: run scripts/install-deps.sh (it installs Debian's nginx package)")
        }
        let directory = TestEnvironment.temporaryDirectory().appendingPathComponent("nginx")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        try serverChainPEM.write(to: directory.appendingPathComponent("server.pem"), atomically: true, encoding: .utf8)
        try serverKeyPEM.write(to: directory.appendingPathComponent("server.key"), atomically: true, encoding: .utf8)
        var verify = ""
        if let clientCAs {
            try clientCAs.write(to: directory.appendingPathComponent("client-ca.pem"), atomically: true, encoding: .utf8)
            verify = "ssl_client_certificate \(directory.path)/client-ca.pem; ssl_verify_client on; ssl_verify_depth 3;"
        }
        var locations = ""
        for (path, answer) in answers.sorted(by: { $0.key < $1.key }) {
            let headers = answer.headers.sorted { $0.key < $1.key }.map { "add_header \($0.key) \"\($0.value)\" always;" }.joined(separator: " ")
            locations += """
                    location = \(path) { default_type "\(answer.contentType)"; \(headers) return \(answer.status) "\(escaped(answer.body))"; }

                """
        }
        let port = try FailoverTests.HAPair.freePort()
        let temp = directory.appendingPathComponent("tmp").path
        let configuration = """
            daemon off;
            worker_processes 1;
            pid \(directory.path)/nginx.pid;
            error_log \(directory.path)/error.log info;
            events { worker_connections 512; }
            http {
                log_format est '"$request" $status $ssl_protocol $ssl_client_verify $ssl_session_reused $ssl_client_serial';
                access_log \(directory.path)/access.log est;
                client_body_temp_path \(temp)/body; proxy_temp_path \(temp)/proxy; fastcgi_temp_path \(temp)/fastcgi;
                uwsgi_temp_path \(temp)/uwsgi; scgi_temp_path \(temp)/scgi;
                server {
                    listen 127.0.0.1:\(port) ssl;
                    ssl_certificate \(directory.path)/server.pem;
                    ssl_certificate_key \(directory.path)/server.key;
                    ssl_protocols \(protocols);
                    ssl_session_cache off;
                    ssl_session_tickets off;
                    \(verify)
                    location / { return 404; }
            \(locations)
                }
            }

            """
        let configurationPath = directory.appendingPathComponent("nginx.conf").path
        try configuration.write(toFile: configurationPath, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-c", configurationPath, "-p", directory.path, "-e", "\(directory.path)/error.log"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let fixture = NginxFixture(directory: directory, port: port, process: process)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if fixture.accepts() { return fixture }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        let log = (try? String(contentsOf: directory.appendingPathComponent("error.log"), encoding: .utf8)) ?? ""
        fixture.stop()
        throw TestEnvironment.TestSetupError("nginx did not start: \(log)")
    }

    /// A string for nginx's double quotes (no variables: `$` is not expected in the answers).
    private static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }

    /// What nginx logged of one request: its request line, status, TLS version, client verification result
    /// (`SUCCESS`, `NONE`, `FAILED:…`), whether the session was resumed (`r`) or not (`.`), the client's serial.
    struct Logged: Equatable {
        var request: String
        var status: Int
        var tlsProtocol: String
        var clientVerify: String
        var resumed: Bool
        var clientSerial: String
    }

    /// The requests nginx logged, in order.
    func requests() -> [Logged] {
        let log = (try? String(contentsOf: directory.appendingPathComponent("access.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n").compactMap { line -> Logged? in
            let parts = line.split(separator: "\"", omittingEmptySubsequences: false)
            guard parts.count >= 3 else { return nil }
            let fields = parts[2].split(separator: " ").map(String.init)
            guard fields.count >= 4 else { return nil }
            return Logged(
                request: String(parts[1]), status: Int(fields[0]) ?? 0, tlsProtocol: fields[1], clientVerify: fields[2], resumed: fields[3] == "r",
                clientSerial: fields.count > 4 ? fields[4].lowercased() : ""
            )
        }
    }

    var url: String { "https://127.0.0.1:\(port)" }

    /// SIGTERM (the master's fast shutdown), SIGKILL if it is still there after 5 s.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    private func accepts() -> Bool {
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
