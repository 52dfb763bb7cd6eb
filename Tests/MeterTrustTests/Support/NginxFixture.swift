import Foundation
import MeterTrustServer

/// nginx (Debian's package, installed by scripts/install-deps.sh) on loopback as the meter's EST server in tests: the
/// benchmark's ``ReferenceNginx`` with its access log, one worker, mutual TLS against the client CA file given.
struct NginxFixture {
    typealias Answer = ReferenceNginx.Answer

    let nginx: ReferenceNginx

    static func start(
        serverChainPEM: String, serverKeyPEM: String, clientCAs: String?, protocols: String = "TLSv1.3", answers: [String: Answer]
    ) throws -> NginxFixture {
        var settings = ReferenceNginx.Settings(serverChainPEM: serverChainPEM, serverKeyPEM: serverKeyPEM, clientCAsPEM: clientCAs, answers: answers)
        settings.protocols = protocols
        settings.accessLog = true
        return NginxFixture(nginx: try ReferenceNginx.start(in: TestEnvironment.temporaryDirectory().appendingPathComponent("nginx"), settings))
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
        let log = (try? String(contentsOf: nginx.directory.appendingPathComponent("access.log"), encoding: .utf8)) ?? ""
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

    var url: String { "https://127.0.0.1:\(nginx.port)" }

    func stop() { nginx.stop() }
}
