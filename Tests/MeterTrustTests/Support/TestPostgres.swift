import Foundation
import MeterTrustStore
import MeterTrustStorePostgres

/// The project-local PostgreSQL cluster (scripts/pg-cluster.sh: Debian's server run as the `postgres` user, TLS on
/// 127.0.0.1, SCRAM passwords). `make test` starts it and hands its coordinates over in the environment; a plain
/// `swift test` starts it here (it keeps running; `scripts/pg-cluster.sh stop` stops it). No mock database anywhere:
/// each store gets a fresh database of its own.
enum TestPostgres {
    struct Cluster: Sendable {
        /// The server over TCP with TLS, verified against the cluster's CA (database `postgres`).
        let location: PostgresStoreLocation
        let password: String
        let passwordFile: String
        let socketDirectory: String
        let port: Int
        let caFile: String
        /// The directory of the server's programs (pg_basebackup, pg_ctl, ...).
        let binaries: String
    }

    static let cluster: Cluster = {
        var environment = ProcessInfo.processInfo.environment
        if environment["METERTRUST_TEST_POSTGRES_URL"] == nil {
            let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/pg-cluster.sh").path
            let started = try! TestEnvironment.run(script, ["start"])
            precondition(started.status == 0, "the PostgreSQL test cluster did not start: \(started.stderr)")
            let printed = try! TestEnvironment.run(script, ["env"])
            for line in printed.stdout.split(separator: "\n") {
                // export NAME='value'
                guard let equals = line.firstIndex(of: "=") else { continue }
                let name = line[line.index(line.startIndex, offsetBy: 7)..<equals]
                environment[String(name)] = String(line[line.index(after: equals)...]).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
            }
        }
        let passwordFile = environment["METERTRUST_TEST_POSTGRES_PASSWORD_FILE"]!
        let caFile = environment["METERTRUST_TEST_POSTGRES_CA_FILE"]!
        var location = try! PostgresStoreLocation(url: environment["METERTRUST_TEST_POSTGRES_URL"]!)
        location.rootCertificateFile = caFile
        return Cluster(
            location: location,
            password: try! String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
            passwordFile: passwordFile, socketDirectory: environment["METERTRUST_TEST_POSTGRES_SOCKET"]!,
            port: Int(environment["METERTRUST_TEST_POSTGRES_PORT"]!)!, caFile: caFile, binaries: environment["METERTRUST_TEST_POSTGRES_BIN"]!
        )
    }()

    /// A new, empty database on the test cluster; its location.
    static func makeDatabase() async throws -> PostgresStoreLocation {
        let name = "mt_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        try await PostgresStore.createDatabase(named: String(name), on: cluster.location, password: cluster.password)
        return cluster.location.database(String(name))
    }

    /// A new, empty database, made with psql (for synchronous test set-up).
    static func makeDatabaseNow() throws -> PostgresStoreLocation {
        let name = "mt_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        let made = try psql(cluster.location, "CREATE DATABASE \(name)")
        guard made.status == 0 else { throw TestEnvironment.TestSetupError("CREATE DATABASE: \(made.stderr)") }
        return cluster.location.database(String(name))
    }

    /// A new, migrated PostgreSQL store in a database of its own. Its operation timeout is 300 s, not the product's
    /// 40 s: the whole suite runs in parallel on two cores, and a test that waits its turn for a connection is not a
    /// failure (the suites that test the timeout itself, fail-over and /readyz, set their own).
    static func makeStore(maximumConnections: Int = 4) async throws -> PostgresStore {
        let store = try PostgresStore(
            location: try await makeDatabase(), password: cluster.password,
            options: .init(maximumConnections: maximumConnections, operationTimeout: .seconds(300))
        )
        try await store.migrate()
        return store
    }

    /// The PostgreSQL store a deployment's configuration names.
    static func locationOf(_ deployment: CLITests.Deployment) throws -> PostgresStoreLocation {
        let data = try Data(contentsOf: deployment.dataDirectory.appendingPathComponent("metertrust.json"))
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        guard let url = (object?["postgres"] as? [String: Any])?["url"] as? String else { throw TestEnvironment.TestSetupError("no postgres store configured") }
        return try PostgresStoreLocation(url: url)
    }

    /// Runs SQL as the cluster's superuser through psql (the attacker's tool: write access to the database).
    static func psql(_ location: PostgresStoreLocation, _ sql: String) throws -> TestEnvironment.ProcessResult {
        try TestEnvironment.run(
            "/usr/bin/psql",
            ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", cluster.socketDirectory, "-p", String(cluster.port), "-U", cluster.location.user,
             "-d", location.database, "-c", sql],
            environment: ["PGPASSWORD": cluster.password]
        )
    }
}
