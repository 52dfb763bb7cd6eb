import Foundation
import Logging
import MeterTrustStore
import NIOCore
import NIOSSL
import PostgresNIO
import Synchronization

/// The scale-out store: PostgreSQL through postgres-nio's connection pool, for several MeterTrust nodes on one
/// database (primary with a synchronous standby; read replicas for look-ups).
///
/// Every rule the domain relies on is the database's: uniqueness by primary keys and unique indexes (serial per issuer,
/// one device identity per EUI-64 in a table keyed by it, one meter per key, one approval per custodian per request,
/// audit positions), run-once by conditional updates under row locks, checks across rows (a removal that must leave
/// the quorum intact) under SERIALIZABLE with retries. Nothing here locks in-process around a write.
///
/// One file per view: PostgresStore+Certificates, +Authorities, +Batches, +Audit, +Quorum, +Revocation; the schema in
/// PostgresMigrations (append-only); how PostgreSQL's errors become ``StoreError`` codes in PostgresStore+Errors.
public final class PostgresStore: MeterTrustStore {
    public let location: PostgresStoreLocation
    let client: PostgresClient
    private let runner: Task<Void, Never>
    let logger: Logger
    /// What one direct connection needs (``checkConnection()``): the password and the TLS settings the pool uses.
    private let password: String?
    private let tlsConfiguration: TLSConfiguration?
    private let operationTimeout: Duration
    /// Set when an operation lost its connection or timed out; cleared by the next successful direct connection.
    private let suspect = Mutex(false)

    /// How the store reaches its database.
    public struct Options: Sendable {
        /// Connections the pool opens at most (each MeterTrust node has its own pool).
        public var maximumConnections: Int
        public var connectTimeout: Duration
        /// How long one operation (waiting for a connection of the pool, then its statements) may take before it
        /// fails with `store.unavailable`: a batch must fail, not hang, when the primary dies.
        public var operationTimeout: Duration

        public init(maximumConnections: Int = 16, connectTimeout: Duration = .seconds(10), operationTimeout: Duration = .seconds(40)) {
            self.maximumConnections = maximumConnections
            self.connectTimeout = connectTimeout
            self.operationTimeout = operationTimeout
        }
    }

    /// Opens a pool to `location`; no connection is made until the first query. Call ``migrate()`` before first use.
    /// `password` comes from the caller's secret source (environment or a 0600 file), never from the URL.
    public init(location: PostgresStoreLocation, password: String?, options: Options = Options(), logger: Logger = Logger(label: "metertrust.store.postgres")) throws {
        var configuration: PostgresClient.Configuration
        let tlsConfiguration = try Self.tlsConfiguration(location)
        switch location.endpoint {
        case .tcp(let host, let port):
            configuration = PostgresClient.Configuration(
                host: host, port: port, username: location.user, password: password, database: location.database,
                tls: tlsConfiguration.map { .require($0) } ?? .disable
            )
        case .unixSocket(let directory, let port):
            configuration = PostgresClient.Configuration(
                unixSocketPath: "\(directory)/.s.PGSQL.\(port)", username: location.user, password: password, database: location.database
            )
        }
        configuration.options.maximumConnections = max(1, options.maximumConnections)
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = options.connectTimeout
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.location = location
        self.logger = logger
        self.password = password
        self.tlsConfiguration = tlsConfiguration
        self.operationTimeout = options.operationTimeout
        self.runner = Task { await client.run() }
    }

    deinit {
        runner.cancel()
    }

    /// Closes the pool: in-flight queries finish, no new one starts. The store cannot be used afterwards.
    public func close() async {
        runner.cancel()
        await runner.value
    }

    /// The TLS client settings for `location`; nil: no TLS.
    static func tlsConfiguration(_ location: PostgresStoreLocation) throws -> TLSConfiguration? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        switch location.tls {
        case .disable:
            return nil
        case .require:
            configuration.certificateVerification = .none
        case .verifyCA:
            configuration.certificateVerification = .noHostnameVerification
        case .verifyFull:
            configuration.certificateVerification = .fullVerification
        }
        if let file = location.rootCertificateFile, location.tls != .require {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(file))
            } catch {
                throw StoreError(.unavailable, "cannot read the database's root certificates \(file) (sslrootcert): \(error)")
            }
        }
        return configuration
    }

    /// Connects once, directly (not through the pool, whose retries would hide the cause for a minute), and runs
    /// `SELECT 1`: the first thing a command does with a PostgreSQL store, so a wrong password, an unverifiable
    /// server certificate or an unreachable server is said at once, in one line.
    public func checkConnection() async throws {
        var configuration: PostgresConnection.Configuration
        switch location.endpoint {
        case .tcp(let host, let port):
            let tls: PostgresConnection.Configuration.TLS
            do {
                tls = try tlsConfiguration.map { .require(try NIOSSLContext(configuration: $0)) } ?? .disable
            } catch {
                throw StoreError(.unavailable, "cannot set up TLS to the database \(location): \(error)")
            }
            configuration = PostgresConnection.Configuration(
                host: host, port: port, username: location.user, password: password, database: location.database, tls: tls
            )
        case .unixSocket(let directory, let port):
            configuration = PostgresConnection.Configuration(
                unixSocketPath: "\(directory)/.s.PGSQL.\(port)", username: location.user, password: password, database: location.database
            )
        }
        configuration.options.connectTimeout = .seconds(10)
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            defer { Task { try? await connection.close() } }
            _ = try await connection.query("SELECT 1", logger: logger).collect()
        } catch {
            throw StoreError(.unavailable, "cannot open the PostgreSQL store \(location): \(Self.reason(error))")
        }
    }

    static func seconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970.rounded(.down)) }
    static func date(_ seconds: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(seconds)) }

    // MARK: Plumbing

    /// The isolation a write runs under.
    enum Isolation: String {
        /// Each statement sees what was committed before it; row locks and unique indexes decide conflicts.
        case readCommitted = "READ COMMITTED"
        /// The transaction behaves as if alone; PostgreSQL aborts one of two that would not (40001), and
        /// ``transaction(_:_:)`` runs it again from the start.
        case serializable = "SERIALIZABLE"
    }

    /// An error thrown by a caller's check inside a transaction: rolls the transaction back and reaches the caller as
    /// it was, not as a store failure.
    struct CallerRefusal: Error {
        let underlying: any Error
    }

    /// How often a transaction aborted by a serialization failure or a deadlock is run again.
    static let attempts = 8

    /// Runs `body` in one transaction on one connection of the pool, committed if it returns, rolled back if it
    /// throws; a serialization failure or deadlock runs it again (up to ``attempts`` times).
    @discardableResult
    func transaction<T: Sendable>(
        _ isolation: Isolation = .readCommitted, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await leased { [self] connection in
                    try await execute(connection, PostgresQuery(unsafeSQL: "BEGIN ISOLATION LEVEL \(isolation.rawValue)"), logger: logger)
                    do {
                        let result = try await body(connection)
                        try await execute(connection, "COMMIT", logger: logger)
                        return result
                    } catch {
                        // A failed statement aborted the transaction; ROLLBACK ends it (and fails only on a dead connection).
                        try? await execute(connection, "ROLLBACK", logger: logger)
                        throw error
                    }
                }
            } catch let refusal as CallerRefusal {
                throw refusal.underlying
            } catch let error as StoreError {
                throw error
            } catch {
                if attempt < Self.attempts, Self.isRetryable(error) {
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * attempt))))
                    continue
                }
                throw storeError(writing: error)
            }
        }
    }

    /// Runs a read on a connection of the pool (each statement its own snapshot).
    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await leased { connection in try await body(connection) }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.unavailable, "reading the store \(location) failed: \(Self.reason(error))")
        }
    }

    /// The database did not answer an operation (a lease and its statements) within ``Options/operationTimeout``.
    struct LeaseTimeout: Error {}

    /// Runs `body` on a connection of the pool, giving up after ``Options/operationTimeout``. A server that dies
    /// (SIGKILL, a failed primary) can leave postgres-nio waiting for ever: for a connection its pool never makes,
    /// or for the answer to a query sent just before (seen in the fail-over test: every thread idle, no timer). The
    /// operation then fails with `store.unavailable` and its task is abandoned, so a batch fails instead of hanging.
    func leased<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        // After a lost connection or a timeout, one direct connection first: a dead server then fails this operation
        // at once (connection refused) instead of after another timeout (the audit entry of a failed batch, say).
        if suspect.withLock({ $0 }) {
            try await checkConnection()
            suspect.withLock { $0 = false }
        }
        do {
            return try await leasedWithDeadline(body)
        } catch let error as PSQLError where error.serverInfo == nil {
            suspect.withLock { $0 = true }
            throw error
        } catch let error as LeaseTimeout {
            suspect.withLock { $0 = true }
            throw error
        }
    }

    private func leasedWithDeadline<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let client = self.client
        let timeout = operationTimeout
        let gate = ResumeOnce<T>()
        return try await withCheckedThrowingContinuation { continuation in
            gate.install(continuation)
            let timer = Task {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { gate.resume(.failure(LeaseTimeout())) }
            }
            Task {
                do {
                    gate.resume(.success(try await client.withConnection { connection in try await body(connection) }))
                } catch {
                    gate.resume(.failure(error))
                }
                timer.cancel()
            }
        }
    }

    /// Runs a statement whose rows (if any) nobody reads: they are drained, so the connection is ready for the next.
    func execute(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws {
        _ = try await connection.query(query, logger: logger).collect()
    }

    /// The rows of `query` on `connection`.
    func rows(_ query: PostgresQuery, on connection: PostgresConnection) async throws -> [PostgresRandomAccessRow] {
        try await connection.query(query, logger: logger).collect().map { $0.makeRandomAccess() }
    }

    /// Runs raw SQL in one write transaction, errors mapped like every other write's: for the backend-specific tests
    /// (`@testable import`) of constraints the API itself never lets a caller reach.
    func execute(rawSQL sql: String) async throws {
        try await transaction { [self] connection in try await execute(connection, PostgresQuery(unsafeSQL: sql), logger: logger) }
    }
}

/// A continuation resumed by whichever comes first, the operation or its timer; later resumptions are dropped.
final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        self.continuation.withLock { $0 = continuation }
    }

    func resume(_ result: Result<T, any Error>) {
        let taken = continuation.withLock { current -> CheckedContinuation<T, any Error>? in
            defer { current = nil }
            return current
        }
        taken?.resume(with: result)
    }
}

extension PostgresRandomAccessRow {
    func string(_ column: String) throws -> String { try self[column].decode(String.self) }
    func optionalString(_ column: String) throws -> String? { try self[column].decode(String?.self) }
    func int64(_ column: String) throws -> Int64 { try self[column].decode(Int64.self) }
    func optionalInt64(_ column: String) throws -> Int64? { try self[column].decode(Int64?.self) }
    func int(_ column: String) throws -> Int { Int(try self[column].decode(Int64.self)) }
    func bool(_ column: String) throws -> Bool { try self[column].decode(Bool.self) }
    func bytes(_ column: String) throws -> [UInt8] { Array(try self[column].decode(ByteBuffer.self).readableBytesView) }
    func optionalBytes(_ column: String) throws -> [UInt8]? { try self[column].decode(ByteBuffer?.self).map { Array($0.readableBytesView) } }
}

extension ByteBuffer {
    init(bytes: [UInt8]) {
        self = ByteBufferAllocator().buffer(bytes: bytes)
    }
}

extension PostgresStore {
    /// Creates database `name` (letters, digits and `_` only) on the server at `location`, connecting to the database
    /// `location` names: for test clusters and for operators who let `init` make the database.
    public static func createDatabase(named name: String, on location: PostgresStoreLocation, password: String?) async throws {
        guard !name.isEmpty, name.utf8.count <= 63, name.utf8.allSatisfy({ $0 == 0x5F || (0x30...0x39).contains($0) || (0x61...0x7A).contains($0) }) else {
            throw StoreError(.unavailable, "\(name) is not a database name MeterTrust creates: use lowercase letters, digits and _")
        }
        let server = try PostgresStore(location: location, password: password, options: Options(maximumConnections: 1))
        defer { Task { await server.close() } }
        do {
            try await server.client.withConnection { connection in
                _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: server.logger).collect()
            }
        } catch {
            throw StoreError(.unavailable, "cannot create the database \(name) on \(location): \(reason(error))")
        }
    }
}
