import Foundation
import MeterTrustCore

/// Where a meter enrolls: an EST server (RFC 7030) at `https://HOST:PORT`, optionally under an account label, whose
/// operations are at `/.well-known/est[/<label>]/<operation>` (RFC 7030 §3.2.2).
public struct ESTServerAddress: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int
    /// The additional path segment of RFC 7030 §3.2.2 (here: the utility account), if any.
    public let label: String?

    /// Parses `https://HOST[:PORT]` (no path, query or user part; the port defaults to 443) and the label (1 to 63
    /// characters of `A-Za-z0-9-_.`, RFC 7030 §3.2.2's segment without the characters that need escaping).
    public init(url: String, label: String? = nil) throws {
        guard let components = URLComponents(string: url), components.scheme?.lowercased() == "https",
            let host = components.host, !host.isEmpty, components.user == nil, components.password == nil,
            components.path.isEmpty || components.path == "/", components.query == nil, components.fragment == nil
        else {
            throw CoreError(.invalidArgument, "the EST server \"\(DisplayText.escaped(url, limit: 200))\" is not https://HOST[:PORT] (no path: the meter adds /.well-known/est)")
        }
        let port = components.port ?? 443
        guard (1...65535).contains(port) else { throw CoreError(.invalidArgument, "the EST server's port \(port) is not 1 to 65535") }
        if let label {
            guard (1...63).contains(label.utf8.count),
                label.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) || $0 == 0x2d || $0 == 0x5f || $0 == 0x2e }),
                label != ".", label != ".."
            else {
                throw CoreError(.invalidArgument, "the EST label \"\(DisplayText.escaped(label, limit: 80))\" is not 1 to 63 letters, digits, '-', '_' or '.'")
            }
        }
        // URLComponents keeps the brackets of an IPv6 literal in `host`; the socket wants it bare.
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.port = port
        self.label = label
    }

    /// The path of `operation` on this server.
    public func path(_ operation: ESTOperation) -> String {
        "/.well-known/est" + (label.map { "/" + $0 } ?? "") + "/" + operation.rawValue
    }

    /// Whether `host` is an IP address literal (then the server's certificate must name it in an iPAddress SAN, and
    /// no SNI is sent).
    public var hostIsAddress: Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    public var description: String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "https://\(shown):\(port)" + (label.map { " (label \($0))" } ?? "")
    }
}

/// The EST operations a meter uses (RFC 7030 §3.2.2; the full-CMC and server-side key generation ones it does not).
public enum ESTOperation: String, Sendable, CaseIterable {
    case cacerts
    case simpleenroll
    case simplereenroll
    case csrattrs
}
