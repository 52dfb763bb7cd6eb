import Foundation
import MeterTrustStore

/// Where a PostgreSQL store is: parsed from a `postgres://` URL, which names no password (the password comes from an
/// environment variable or a 0600 file, never from argv or the configuration file).
///
///     postgres://USER@HOST[:PORT]/DATABASE[?sslmode=verify-full|verify-ca|require|disable][&sslrootcert=FILE]
///     postgres://USER@/DATABASE?host=/path/to/socket-directory[&port=PORT]
///
/// Over TCP the default `sslmode` is `verify-full` (TLS, the server's certificate checked against `sslrootcert` or the
/// system's roots, and its name against the host), unlike libpq's `prefer`: a store holding the platform's state is
/// not reached in clear or through an unverified peer unless the URL says so. A Unix socket carries no TLS.
public struct PostgresStoreLocation: Sendable, Hashable, CustomStringConvertible {
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        /// The socket directory; the server's socket is `DIR/.s.PGSQL.PORT`.
        case unixSocket(directory: String, port: Int)
    }

    public enum TLSMode: String, Sendable, Hashable, CaseIterable {
        /// TLS, server certificate verified against the roots and its name against the host.
        case verifyFull = "verify-full"
        /// TLS, server certificate verified against the roots; any name.
        case verifyCA = "verify-ca"
        /// TLS without verifying the server: protects against passive eavesdroppers only.
        case require
        /// No TLS.
        case disable
    }

    public var endpoint: Endpoint
    public var user: String
    public var database: String
    public var tls: TLSMode
    /// PEM file of the roots that verify the server (`sslrootcert`); nil: the system's.
    public var rootCertificateFile: String?

    public init(endpoint: Endpoint, user: String, database: String, tls: TLSMode, rootCertificateFile: String? = nil) {
        self.endpoint = endpoint
        self.user = user
        self.database = database
        self.tls = tls
        self.rootCertificateFile = rootCertificateFile
    }

    /// True for a string that names a PostgreSQL store rather than a file.
    public static func isPostgresURL(_ string: String) -> Bool {
        string.hasPrefix("postgres://") || string.hasPrefix("postgresql://")
    }

    /// The longest URL accepted (a configuration value, not a document).
    public static let maximumLength = 2048

    public init(url string: String) throws {
        func refuse(_ what: String) -> StoreError {
            StoreError(.unavailable, "the store URL is not usable: \(what) (expected postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full)")
        }
        guard string.utf8.count <= Self.maximumLength else { throw refuse("longer than \(Self.maximumLength) characters") }
        guard Self.isPostgresURL(string), let components = URLComponents(string: string) else { throw refuse("not a postgres:// URL") }
        guard components.password == nil else {
            throw StoreError(
                .unavailable,
                "the store URL must not carry a password (it would show in argv, logs and the configuration): give it in METERTRUST_STORE_PASSWORD or a 0600 file"
            )
        }
        guard let user = components.user, !user.isEmpty else { throw refuse("no user name (postgres://USER@…)") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw refuse("no database name after the host") }
        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard let value = item.value, parameters[item.name] == nil else { throw refuse("parameter \(item.name) without a value or given twice") }
            parameters[item.name] = value
        }
        let known: Set<String> = ["sslmode", "sslrootcert", "host", "port"]
        if let unknown = parameters.keys.sorted().first(where: { !known.contains($0) }) { throw refuse("unknown parameter \(unknown)") }
        func port(_ text: String?) throws -> Int {
            guard let text else { return 5432 }
            guard let port = Int(text), (1...65535).contains(port) else { throw refuse("port \(text) is not 1–65535") }
            return port
        }
        if let socket = parameters["host"] {
            guard socket.hasPrefix("/"), components.host?.isEmpty ?? true else {
                throw refuse("host= names a socket directory (an absolute path) and then the URL has no host")
            }
            // sockaddr_un holds 107 octets and a NUL: DIR/.s.PGSQL.PORT must fit.
            guard socket.utf8.count + "/.s.PGSQL.65535".utf8.count <= 107 else { throw refuse("the socket directory path is too long") }
            guard parameters["sslmode"].map({ $0 == TLSMode.disable.rawValue }) ?? true else {
                throw refuse("a Unix socket carries no TLS: leave sslmode out or set it to disable")
            }
            self.init(endpoint: .unixSocket(directory: socket, port: try port(parameters["port"])), user: user, database: database, tls: .disable)
            return
        }
        guard let host = components.host, !host.isEmpty else { throw refuse("no host") }
        guard parameters["port"] == nil else { throw refuse("give the port after the host, not as port=") }
        let mode: TLSMode
        if let name = parameters["sslmode"] {
            guard let parsed = TLSMode(rawValue: name) else {
                throw refuse("sslmode \(name) is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            mode = parsed
        } else {
            mode = .verifyFull
        }
        let bareHost = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.init(
            endpoint: .tcp(host: bareHost, port: try port(components.port.map(String.init))), user: user, database: database, tls: mode,
            rootCertificateFile: parameters["sslrootcert"]
        )
    }

    /// The URL again (never a password): for messages, logs and the configuration file.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            var url = "postgres://\(user)@\(shownHost):\(port)/\(database)?sslmode=\(tls.rawValue)"
            if let rootCertificateFile { url += "&sslrootcert=\(rootCertificateFile)" }
            return url
        case .unixSocket(let directory, let port):
            return "postgres://\(user)@/\(database)?host=\(directory)&port=\(port)"
        }
    }

    /// The same server and credentials, another database (the tests' fresh databases, `store copy`'s checks).
    public func database(_ name: String) -> PostgresStoreLocation {
        var copy = self
        copy.database = name
        return copy
    }
}
