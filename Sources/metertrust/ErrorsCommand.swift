import ArgumentParser
import MeterTrustCore
import MeterTrustServer

/// `metertrust errors`: every error code, the exit status the CLI gives it and the HTTP status the servers answer
/// with, from the edges' own mappings (so this list cannot drift from what they do).
struct ErrorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "errors",
        abstract: "List every error code with its exit status and HTTP status.",
        discussion: """
            Scripts match on the code (`--json` output and the `code` of an HTTP problem body), never on the message. \
            Exit statuses: 1 refused, 2 usage, 3 unavailable (HSM, store, admin API), 4 denied (quorum, role, state), \
            5 integrity (the audit log or a store row does not match what was signed), 70 internal; and 6 partial, \
            which no code maps to (factory run issued some meters and refused others). With --json on any command an \
            error is {"error":{"code":"domain.reason","message":"..."}} on stderr.

            EXAMPLES:
              metertrust errors
              metertrust errors --json \\
                  | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
            """
    )

    @OptionGroup var output: OutputOptions

    struct Row: Encodable {
        var code: String
        var exitStatus: Int32
        var exitMeaning: String
        var httpStatus: Int
    }

    static var rows: [Row] {
        ErrorCode.allCases.map { code in
            let exit = ExitStatus.for(code)
            return Row(code: code.rawValue, exitStatus: exit.rawValue, exitMeaning: "\(exit)", httpStatus: HTTPErrorMapping.status(for: code).code)
        }
    }

    func run() throws {
        if output.json { return try Output.json(Self.rows) }
        let width = Self.rows.map(\.code.count).max() ?? 0
        for row in Self.rows {
            Output.line("\(row.code.padding(toLength: width, withPad: " ", startingAt: 0))  exit \(row.exitStatus) (\(row.exitMeaning))  HTTP \(row.httpStatus)")
        }
    }
}
