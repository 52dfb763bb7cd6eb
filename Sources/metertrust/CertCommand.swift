import ArgumentParser
import Foundation
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore
import X509

struct CertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert", abstract: "Look up and list issued certificates.",
        discussion: """
            EXAMPLES:
              metertrust cert list --ca acme --since 2026-12-01 --limit 50
              metertrust cert list --batch acme-2026-11-line3 --jsonl > certificates.jsonl
              metertrust cert show 68b5448253942a705c62f40f3bb80b55 --pem
            """,
        subcommands: [Show.self, List.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a certificate by serial (hex).")
        @Argument(help: "Serial number, hex.") var serial: String
        @Option(name: .customLong("ca"), help: "Issuing CA, when several CAs used the same serial.") var authority: String?
        @Flag(help: "Print only the PEM.") var pem = false
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let normalized = serial.lowercased().replacingOccurrences(of: ":", with: "")
            guard !normalized.isEmpty, hexBytes(normalized.count % 2 == 0 ? normalized : "0" + normalized) != nil else {
                throw CLIError("\"\(serial)\" is not a hex serial number")
            }
            let store = try await Context(data).openStore()
            var records = try await store.certificates(serial: normalized)
            if let authority { records = records.filter { $0.issuer == authority } }
            guard let record = records.first else {
                throw CLIError(code: .notFound, "no certificate with serial \(normalized)\(authority.map { " from CA \($0)" } ?? "") in the store")
            }
            guard records.count == 1 else {
                throw CLIError("CAs \(records.map(\.issuer).joined(separator: ", ")) each issued serial \(normalized): add --ca NAME")
            }
            let description = try CertificateDescription(try Certificate(derEncoded: record.der), profile: record.profile)
            if pem {
                print(description.pem, terminator: "")
            } else if output.json {
                try Output.json(Shown(issuerCA: record.issuer, storedAt: record.createdAt, shard: record.shard, certificate: description))
            } else {
                Output.line(
                    "certificate \(record.serial) issued by CA \(record.issuer), shard \(record.shard), stored \(Output.timestamp.string(from: record.createdAt))"
                )
                description.textLines().forEach { Output.line($0) }
                Output.line()
                print(description.pem, terminator: "")
            }
        }

        struct Shown: Encodable {
            var issuerCA: String
            var storedAt: Date
            /// The shard fixed at issuance (the issuing CA's shard count and the serial decide it).
            var shard: Int
            var certificate: CertificateDescription
        }
    }
}

extension CertCommand {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List issued certificates: by CA, profile, meter, batch or issue time; paged.",
            discussion: """
                Certificates are listed by issuing CA, then serial (serials begin with the issuance time, so each CA's \
                oldest first). A page holds --limit certificates (default 100) and names the cursor of the next one; \
                pass it to --after. --jsonl writes one JSON object per certificate and line, streaming every match \
                unless --limit is given (then a last line {"next": CURSOR} says where to go on).
                Examples:
                  metertrust cert list --ca acme --since 2026-11-01
                  metertrust cert list --eui64 0024befffe804ff1
                  metertrust cert list --batch acme-2026-11-line3 --json
                  metertrust cert list --profile device-identity --jsonl > certificates.jsonl
                """
        )
        @Option(name: .customLong("ca"), help: "Only certificates this CA issued.") var authority: String?
        @Option(help: "Only certificates of this profile (e.g. device-identity, device-operational, custodian).") var profile: String?
        @Option(help: "Only certificates of this meter (its device identity and operational certificates).") var eui64: String?
        @Option(help: "Only certificates of this factory batch.") var batch: String?
        @Option(help: "Only certificates issued at or after this ISO 8601 date or time (2026-11-01 or 2026-11-01T08:00:00Z, UTC).")
        var since: String?
        @Option(help: "Certificates per page (default 100; with --jsonl, all unless given).") var limit: Int?
        @Option(help: "Start after this cursor (printed with the previous page).") var after: String?
        @Flag(help: "One JSON object per certificate and line, for streaming.") var jsonl = false
        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        static let defaultLimit = 100
        /// Rows read per store call while streaming.
        static let streamingPage = 1000

        func filter() throws -> CertificateFilter {
            var filter = CertificateFilter(issuer: authority, profile: profile, batch: batch)
            if let eui64 { filter.eui64 = try EUI64(eui64).description }
            if let since { filter.issuedSince = try Self.date(since) }
            return filter
        }

        static func date(_ text: String) throws -> Date {
            let formatter = ISO8601DateFormatter()
            for options: ISO8601DateFormatter.Options in [[.withFullDate], [.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds]] {
                formatter.formatOptions = options
                if let date = formatter.date(from: text) { return date }
            }
            throw CLIError(code: .usage, "--since \(text) is not an ISO 8601 date or time: write 2026-11-01 or 2026-11-01T08:00:00Z")
        }

        func run() async throws {
            guard !(jsonl && output.json) else { throw CLIError(code: .usage, "--json and --jsonl exclude each other: choose one") }
            if let limit, limit < 1 { throw CLIError(code: .usage, "--limit must be at least 1") }
            let position = try after.map { text -> CertificateListPosition in
                guard let position = CertificateListPosition(text) else {
                    throw CLIError(code: .usage, "--after \(text) is not a cursor of metertrust cert list (it looks like CA/serial)")
                }
                return position
            }
            let filter = try filter()
            let store = try await Context(data).openStore()
            // A filter naming what does not exist is a mistake, not an empty list.
            if let authority, try await store.certificateAuthority(named: authority) == nil {
                throw CLIError(code: .unknownAuthority, "there is no CA named \"\(authority)\": see metertrust ca list")
            }
            if let batch, try await store.batch(id: batch) == nil {
                throw CLIError(code: .notFound, "there is no batch \(batch): see metertrust batch list")
            }
            if jsonl {
                try await stream(store, filter: filter, from: position)
                return
            }
            let page = try await store.certificates(matching: filter, after: position, limit: limit ?? Self.defaultLimit)
            if output.json {
                try Output.json(ListingPage(name: "certificates", items: page.certificates.map(ListedCertificate.init), next: page.next?.description))
                return
            }
            if page.certificates.isEmpty { Output.line(position == nil ? "no certificates match" : "no more certificates match") }
            page.certificates.forEach { Output.line(ListedCertificate($0).textLine) }
            if let next = page.next { Output.line("more: add --after \(next)") }
        }

        /// Every match (or `limit` of them), one compact JSON object a line, read from the store a page at a time.
        func stream(_ store: any MeterTrustStore, filter: CertificateFilter, from start: CertificateListPosition?) async throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            var position = start
            var remaining = limit ?? Int.max
            while remaining > 0 {
                let page = try await store.certificates(matching: filter, after: position, limit: min(remaining, Self.streamingPage))
                var lines = Data()
                for record in page.certificates {
                    lines.append(try encoder.encode(ListedCertificate(record)))
                    lines.append(UInt8(ascii: "\n"))
                }
                FileHandle.standardOutput.write(lines)
                remaining -= page.certificates.count
                guard let next = page.next else { return }
                position = next
            }
            // --limit reached and more match: say where to go on.
            if let position {
                FileHandle.standardOutput.write(try encoder.encode(["next": position.description]) + Data([UInt8(ascii: "\n")]))
            }
        }
    }
}

/// One certificate in a listing: what the store knows of it, without parsing the DER.
struct ListedCertificate: Encodable {
    var issuerCA: String
    var serial: String
    var profile: String
    var kind: String
    var subject: String
    var eui64: String?
    var notBefore: Date
    var notAfter: Date
    var fingerprintSHA256: String
    var storedAt: Date
    var batch: String?
    var batchPosition: Int64?
    /// The shard fixed at issuance.
    var shard: Int

    init(_ record: CertificateRecord) {
        issuerCA = record.issuer
        serial = record.serial
        profile = record.profile
        kind = record.kind.rawValue
        subject = record.subject
        eui64 = record.eui64
        notBefore = record.notBefore
        notAfter = record.notAfter
        fingerprintSHA256 = record.fingerprintSHA256
        storedAt = record.createdAt
        batch = record.batch
        batchPosition = record.batchPosition
        shard = record.shard
    }

    var textLine: String {
        let name = eui64.map { "meter \($0)" } ?? (subject.isEmpty ? "(empty subject)" : DisplayText.escaped(subject))
        return "\(issuerCA)  \(serial)  \(profile)  \(name)  \(Output.timestamp.string(from: storedAt))\(batch.map { "  batch \($0)" } ?? "")"
    }
}

/// A page of a listing as `--json` prints it: `{"<name>": [...], "next": CURSOR}`, `next` null (not absent) on the
/// last page.
struct ListingPage<Item: Encodable>: Encodable {
    let name: String
    let items: [Item]
    let next: String?

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(items, forKey: Key(stringValue: name))
        try container.encode(next, forKey: Key(stringValue: "next"))
    }
}
