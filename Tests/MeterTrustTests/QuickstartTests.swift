import Foundation
import Testing

/// Issue 12, "done when": a new operator gets from a fresh clone to a running admin API by following the README. The
/// README's quick start runs here exactly as written (the block between `<!-- quickstart -->` and
/// `<!-- /quickstart -->`), with the freshly built `metertrust` first on PATH, in an empty directory, with no
/// MeterTrust or SoftHSM2 variable set beforehand.
@Suite("README quick start")
struct QuickstartTests {
    static func quickstartBlock() throws -> String {
        let readme = try String(contentsOf: TestEnvironment.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "<!-- quickstart -->\n```sh\n"), "the README has no quick start block")
        let end = try #require(readme.range(of: "```\n<!-- /quickstart -->", range: start.upperBound..<readme.endIndex))
        return String(readme[start.upperBound..<end.lowerBound])
    }

    @Test("the README's quick start, run as written, ends with a running admin API that executed a request two custodians approved")
    func quickstartRunsAsWritten() throws {
        let block = try Self.quickstartBlock()
        let directory = TestEnvironment.temporaryDirectory()
        // If a line fails, bash stops (-e) and the trap stops the admin API the block started.
        let script = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + block
        try Data(script.utf8).write(to: directory.appendingPathComponent("quickstart.sh"))
        let binDirectory = URL(fileURLWithPath: TestEnvironment.metertrust).deletingLastPathComponent().path
        let path = binDirectory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        var arguments = ["-u", "SOFTHSM2_CONF", "-u", "METERTRUST_HOME", "-u", "METERTRUST_HSM_PIN", "-u", "METERTRUST_ADMIN_URL"]
        arguments += ["PATH=\(path)", "bash", "-euo", "pipefail", "quickstart.sh"]
        let result = try TestEnvironment.run("/usr/bin/env", arguments, in: directory)
        #expect(result.status == 0, "quick start failed (\(result.status)):\n\(result.stdout)\n\(result.stderr)")
        // The URL the server printed is the one the block exports, used as it is.
        #expect(result.stdout.contains("admin API listening on https://127.0.0.1:18443"), "\(result.stdout)")
        // Three custodians registered; the request two of them approved ran: manufacturer beta exists under the root.
        for name in ["alice", "bob", "carol"] { #expect(result.stdout.contains(name)) }
        #expect(result.stdout.contains("executed by alice"), "\(result.stdout)")
        #expect(result.stdout.contains("beta  [manufacturer]  CN=beta Device CA,O=Beta Meters"), "\(result.stdout)")
        // And the platform it left verifies: the audit log holds every step.
        let verified = try TestEnvironment.run(
            TestEnvironment.metertrust, ["audit", "verify", "--json", "--data-dir", directory.appendingPathComponent("data").path],
            environment: ["SOFTHSM2_CONF": directory.appendingPathComponent(".softhsm/softhsm2.conf").path]
        )
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
    }
}
