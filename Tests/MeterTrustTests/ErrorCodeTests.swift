import Foundation
import MeterTrustCore
import Testing

/// Issue 11 item 4: one closed set of error codes, each mapped at every edge, documented in the README.
@Suite("Error codes")
struct ErrorCodeTests {
    struct Row: Decodable {
        var code: String
        var exitStatus: Int32
        var httpStatus: Int
    }

    /// The exit statuses the README documents.
    static let documentedExitStatuses: Set<Int32> = [1, 2, 3, 4, 5, 70]

    @Test("every code is `domain.reason`, unique, and the CLI and HTTP edges each map it (metertrust errors --json, from the edges' own mappings)")
    func everyCodeMappedAtEveryEdge() throws {
        let raw = ErrorCode.allCases.map(\.rawValue)
        #expect(Set(raw).count == raw.count)
        for code in raw {
            #expect(code.wholeMatch(of: /[a-z]+\.[a-z0-9-]+/) != nil, "\(code)")
        }
        let result = try TestEnvironment.run(TestEnvironment.metertrust, ["errors", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let rows = try JSONDecoder().decode([Row].self, from: Data(result.stdout.utf8))
        #expect(rows.map(\.code) == raw)
        for row in rows {
            #expect(Self.documentedExitStatuses.contains(row.exitStatus), "\(row.code) exits \(row.exitStatus)")
            #expect((400..<600).contains(row.httpStatus), "\(row.code) answers HTTP \(row.httpStatus)")
        }
        // Refusals of a different kind never share an exit status: quorum denials are not input refusals, an
        // integrity failure is neither, an unavailable HSM is not the caller's fault.
        let status = Dictionary(uniqueKeysWithValues: rows.map { ($0.code, $0.exitStatus) })
        #expect(status[ErrorCode.belowQuorum.rawValue] == 4)
        #expect(status[ErrorCode.malformedRequest.rawValue] == 1)
        #expect(status[ErrorCode.auditTampered.rawValue] == 5)
        #expect(status[ErrorCode.hsmTokenNotFound.rawValue] == 3)
        #expect(status[ErrorCode.usage.rawValue] == 2)
    }

    @Test("the README's error table lists every code with the exit and HTTP status the edges give it")
    func readmeListsEveryCode() throws {
        let readme = try String(contentsOf: TestEnvironment.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let result = try TestEnvironment.run(TestEnvironment.metertrust, ["errors", "--json"])
        let rows = try JSONDecoder().decode([Row].self, from: Data(result.stdout.utf8))
        for row in rows {
            #expect(readme.contains("| `\(row.code)` | \(row.exitStatus) | \(row.httpStatus) |"), "README lacks the row of \(row.code)")
        }
    }

    @Test("a usage error is one `error:` line with exit status 2; a missing configuration is refused with 1; help exits 0")
    func usageAndRefusalStatuses() throws {
        let unknown = try TestEnvironment.run(TestEnvironment.metertrust, ["ca", "list", "--no-such-option"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.hasPrefix("error: ") && unknown.stderr.split(separator: "\n").count == 1, "\(unknown.stderr)")
        let missing = try TestEnvironment.run(TestEnvironment.metertrust, ["ca", "list", "--data-dir", TestEnvironment.temporaryDirectory().path])
        #expect(missing.status == 1 && missing.stderr.contains("metertrust init"), "\(missing.stderr)")
        #expect(try TestEnvironment.run(TestEnvironment.metertrust, ["--help"]).status == 0)
        #expect(try TestEnvironment.run(TestEnvironment.metertrust, ["help", "ca"]).status == 0)
    }
}
