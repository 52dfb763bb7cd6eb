import ArgumentParser
import Foundation
import MeterTrustAdmin
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustRevocation
import MeterTrustStore

struct RevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a meter's certificate, a certificate by issuer and serial, or a list of them (final: never undone).",
        discussion: """
            A meter by EUI-64 revokes its valid operational certificates (LDevID); with --identity its factory identity \
            certificate (IDevID). A certificate by --ca NAME --serial HEX. --list FILE revokes one target per line \
            (an EUI-64, or CA/SERIAL; # starts a comment), streamed in chunks of 1000, with a progress bar. Reasons \
            (RFC 5280 §5.3.1): \(RevocationReason.revocable.map(\.name).joined(separator: ", ")) (or their codes). \
            A CA's own certificate is revoked under quorum (admin request ca.revoke), not here. Revoking a certificate \
            again changes nothing and says when it was revoked. Every revocation is an audit entry; CRLs (serve --roles \
            crl) and the OCSP responder (serve --roles ocsp) answer it within a second.

            EXAMPLES:
              metertrust revoke 0024befffe804ff1 --reason keyCompromise
              metertrust revoke 0024befffe804ff1 --identity --reason cessationOfOperation --invalidity-date 2026-11-30T00:00:00Z
              metertrust revoke --ca north --serial 0193b2c4d5e6f708a1b2c3d4e5f60718 --reason superseded --json
              metertrust revoke --list stolen.txt --reason keyCompromise
            """
    )

    @Argument(help: "The meter's EUI-64 (its operational certificates; with --identity its factory identity certificate).")
    var eui64: String?
    @Flag(help: "Revoke the meter's factory identity certificate (IDevID) instead of its operational certificates.") var identity = false
    @Option(name: .customLong("ca"), help: "The issuing CA of the certificate given by --serial.") var authority: String?
    @Option(help: "The certificate's serial, hex (with --ca).") var serial: String?
    @Option(help: "A file of targets, one per line: an EUI-64 or CA/SERIAL ('-' for stdin).") var list: String?
    @Option(help: "RFC 5280 reason (default unspecified).") var reason: String = "unspecified"
    @Option(help: "When the key was (suspected to be) compromised, RFC 3339 (RFC 5280 §5.3.2).") var invalidityDate: String?
    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var output: OutputOptions

    struct Summary: Encodable {
        var revoked: Int
        var alreadyRevoked: Int
        var results: [RevocationResult]?
    }

    func run() async throws {
        guard let reason = RevocationReason(parsing: reason) else {
            throw CLIError(
                code: .usage, "--reason must be one of \(RevocationReason.revocable.map(\.name).joined(separator: ", ")) or its code, not \(DisplayText.escaped(self.reason, limit: 40))"
            )
        }
        var invalidity: Date?
        if let invalidityDate {
            guard let date = ISO8601DateFormatter().date(from: invalidityDate) else {
                throw CLIError(code: .usage, "--invalidity-date must be an RFC 3339 time such as 2026-11-30T00:00:00Z")
            }
            invalidity = date
        }
        let given = [eui64 != nil, serial != nil || authority != nil, list != nil].filter { $0 }.count
        guard given == 1 else { throw CLIError(code: .usage, "give one of: an EUI-64, --ca NAME --serial HEX, or --list FILE") }
        if identity, eui64 == nil { throw CLIError(code: .usage, "--identity goes with an EUI-64") }

        let context = try Context(data)
        guard context.configuration.audit != nil else {
            throw CLIError(code: .auditNotInitialised, "revocations are recorded in the audit log: run metertrust audit init first")
        }
        let store = try await context.openStore()
        let token = try context.openToken()
        let revocation = CertificateRevocation(store: store, audit: try context.auditLog(store: store, token: token))
        let revoker = Revoker.officer(actor: context.actor)

        if let list {
            try await revokeList(list, revocation: revocation, revoker: revoker, reason: reason, invalidity: invalidity)
            return
        }
        let targets: [RevocationTarget]
        if let eui64 {
            let meter = try EUI64(eui64)
            targets = try await revocation.targets(meter: meter, identity: identity)
        } else {
            guard let authority, let serial else { throw CLIError(code: .usage, "--ca and --serial go together") }
            targets = [RevocationTarget(issuer: authority, serial: try Self.serialHex(serial))]
        }
        let results = try await revocation.revoke(targets, reason: reason, invalidityDate: invalidity, by: revoker)
        if output.json {
            try Output.json(Summary(revoked: results.filter { !$0.alreadyRevoked }.count, alreadyRevoked: results.filter(\.alreadyRevoked).count, results: results))
        } else {
            for result in results { Output.line(Self.describe(result)) }
        }
    }

    static func describe(_ result: RevocationResult) -> String {
        let what = "\(result.profile) certificate \(result.serial) of CA \(result.issuer)\(result.eui64.map { " (meter \($0))" } ?? "")"
        let when = Output.timestamp.string(from: result.revokedAt)
        return result.alreadyRevoked
            ? "already revoked: \(what), on \(when) (\(result.reason)); nothing changed"
            : "revoked \(what): \(result.reason), \(when) (audit entry \(result.auditIndex.map(String.init) ?? "-"))"
    }

    static func serialHex(_ text: String) throws -> String {
        let normalized = text.lowercased().replacingOccurrences(of: ":", with: "")
        guard !normalized.isEmpty, normalized.count <= 42, let bytes = hexBytes(normalized.count % 2 == 0 ? normalized : "0" + normalized) else {
            throw CLIError("\"\(DisplayText.escaped(text, limit: 50))\" is not a hex serial number")
        }
        return hexString(bytes)
    }

    /// Streams `path`: each line a target; chunks of ``CertificateRevocation/chunkSize`` revoked in one audit entry each.
    private func revokeList(
        _ path: String, revocation: CertificateRevocation, revoker: Revoker, reason: RevocationReason, invalidity: Date?
    ) async throws {
        let handle: FileHandle
        if path == "-" {
            handle = .standardInput
        } else {
            guard let opened = FileHandle(forReadingAtPath: path) else { throw CLIError(code: .fileSystem, "cannot read \(path)") }
            handle = opened
        }
        let total = path == "-" ? 0 : Self.countLines(path)
        let progress = TerminalProgress(quiet: output.json)
        var (revoked, already, lineNumber) = (0, 0, 0)
        var chunk: [RevocationTarget] = []
        let started = ContinuousClock.now
        func flush() async throws {
            guard !chunk.isEmpty else { return }
            let results = try await revocation.revoke(chunk, reason: reason, invalidityDate: invalidity, by: revoker)
            revoked += results.filter { !$0.alreadyRevoked }.count
            already += results.filter(\.alreadyRevoked).count
            chunk.removeAll(keepingCapacity: true)
            progress.update(phase: "revoking", done: lineNumber, total: max(total, lineNumber))
        }
        for line in LineStream(handle: handle) {
            lineNumber += 1
            let text = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
            guard !text.isEmpty else { continue }
            if let slash = text.firstIndex(of: "/") {
                let serial: String
                do { serial = try Self.serialHex(String(text[text.index(after: slash)...])) } catch {
                    throw CLIError("\(path):\(lineNumber): \(Output.message(for: error)); nothing after line \(lineNumber - chunk.count - 1) was revoked")
                }
                chunk.append(RevocationTarget(issuer: String(text[..<slash]), serial: serial))
            } else if let meter = try? EUI64(text) {
                do { chunk += try await revocation.targets(meter: meter, identity: identity) } catch {
                    throw CLIError(code: .revocationUnknownCertificate, "\(path):\(lineNumber): \(Output.message(for: error)); lines after \(lineNumber - chunk.count - 1) were not revoked")
                }
            } else {
                throw CLIError("\(path):\(lineNumber): \(DisplayText.escaped(text, limit: 60)) is neither an EUI-64 nor CA/SERIAL; lines from \(lineNumber - chunk.count) on were not revoked")
            }
            if chunk.count >= CertificateRevocation.chunkSize { try await flush() }
        }
        try await flush()
        progress.finish(phase: "revoking")
        let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18 + Double((ContinuousClock.now - started).components.seconds)
        if output.json {
            try Output.json(Summary(revoked: revoked, alreadyRevoked: already, results: nil))
        } else {
            Output.line("revoked \(revoked) certificates (\(already) already revoked) from \(path) in \(TerminalProgress.duration(seconds))")
        }
    }

    static func countLines(_ path: String) -> Int {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        return data.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
    }
}

/// The lines of a file, read 64 KiB at a time (a list of a million targets is never held whole); a line is at most
/// 4 KiB (longer ones are cut there, and then refused as targets).
struct LineStream: Sequence, IteratorProtocol {
    let handle: FileHandle
    private var buffer: [UInt8] = []
    /// Where the unread part of `buffer` starts (consumed lines are dropped only when more is read).
    private var start = 0
    private var finished = false

    init(handle: FileHandle) { self.handle = handle }

    mutating func next() -> String? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                let line = buffer[start..<newline].prefix(4096)
                start = newline + 1
                return String(decoding: line, as: UTF8.self)
            }
            if finished {
                guard start < buffer.count else { return nil }
                defer { start = buffer.count }
                return String(decoding: buffer[start...].prefix(4096), as: UTF8.self)
            }
            let chunk = handle.readData(ofLength: 65_536)
            buffer.removeFirst(start)
            start = 0
            if chunk.isEmpty { finished = true } else { buffer += chunk }
        }
    }
}
