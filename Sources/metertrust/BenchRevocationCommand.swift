import ArgumentParser
import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustFactory
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustRevocation
import MeterTrustServer
import MeterTrustStore
import X509

extension BenchCommand {
    /// `bench crl`: CRL generation for many revoked certificates, the complete CRL against one shard's.
    struct CRL: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "crl",
            abstract: "Time CRL generation for N revoked certificates: the complete CRL against one shard's, size and memory.",
            discussion: """
                A deployment in a temporary directory (root and one Operational CA with --shards shards, keys in the \
                HSM) and a verified security state holding N revocations of that CA (serials drawn as the issuer draws \
                them, reason keyCompromise). Times, with the same CRLPublisher serve --roles crl runs: grouping the \
                revocations by shard, building and signing the complete CRL, every shard's CRL, and one shard's \
                republication after one more revocation (the path a revocation takes). Reports sizes and peak memory.
                EXAMPLE: metertrust bench crl --revoked 1000000 --token-label bench --json
                """
        )
        @Option(help: "Revoked certificates.") var revoked = 1_000_000
        @Option(help: "The CA's shard count.") var shards = 256
        @Option(help: "PKCS#11 module.") var module = HSMConfiguration.defaultModulePath
        @Option(help: "Label of an initialised token; PIN from $METERTRUST_HSM_PIN.") var tokenLabel: String
        @Option(help: "Where to make the temporary deployment (default: the system's temporary directory).") var workDirectory: String?
        @OptionGroup var output: OutputOptions

        struct Report: Codable {
            var revoked: Int
            var shards: Int
            var stateSeconds: Double
            var completeSeconds: Double
            var completeBytes: Int
            var firstShardSeconds: Double
            var allShardsSeconds: Double
            var largestShardBytes: Int
            var republishShardSeconds: Double
            var republishShardP99Seconds: Double
            var peakMemoryMB: Double
        }

        func run() async throws {
            guard let shardCount = ShardCount(shards) else { throw CLIError(code: .usage, ShardCount.refusal(of: "\(shards)", option: "--shards")) }
            guard (1...10_000_000).contains(revoked) else { throw CLIError(code: .usage, "--revoked is 1 to 10000000") }
            let log: (String) -> Void = { message in if !output.json || isatty(STDERR_FILENO) == 1 { FileHandle.standardError.write(Data("bench crl: \(message)\n".utf8)) } }
            let base = workDirectory.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
            let directory = base.appendingPathComponent("metertrust-bench-crl-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let dataDirectory = directory.appendingPathComponent("data")
            let configuration = Configuration(hsm: HSMConfiguration(modulePath: module, tokenLabel: tokenLabel, sessionCount: 2), pki: PKISettings())
            _ = try await InitCommand.initialize(at: dataDirectory, configuration: configuration, force: false)
            let context = try Context(DataDirectoryOptions(dataDirectory: dataDirectory.path))
            let (store, hierarchy) = try await context.platform()
            let suffix = UUID().uuidString.prefix(8).lowercased()
            var created: [CertificateAuthority] = []
            defer { for authority in created { try? hierarchy.token.destroy(authority.signingKey.key) } }
            created.append(try await hierarchy.createRoot(name: "bench-crl-root-\(suffix)", organization: "Bench"))
            let authority = try await hierarchy.createAuthority(role: .operational, name: "bench-crl-\(suffix)", organization: "Bench Utility", shards: shardCount)
            created.append(authority)

            // The verified state as the audit log's replay would hold it: N revocations of the CA.
            let stateStarted = ContinuousClock.now
            var state = SecurityState()
            let now = Date()
            var revocations = RevokedSerials()
            for _ in 0..<revoked {
                revocations.insert(SecurityState.Revocation(reason: 1, revokedAt: now, invalidityDate: nil), serial: Self.randomSerial())
            }
            state.revoked[authority.name] = revocations
            state.revocationCount = revocations.count
            state.verifiedSize = revoked / CertificateRevocation.chunkSize + 10
            let stateSeconds = Self.seconds(since: stateStarted)
            log("\(revoked) revocations in the state (\(String(format: "%.1f", stateSeconds)) s); building")

            let publisher = CRLPublisher(
                hierarchy: hierarchy, state: VerifiedStateCache(audit: AuditLog(store: store, signer: nil, origin: "bench")), logger: .init(label: "bench")
            )
            let completeStarted = ContinuousClock.now
            let complete = try await publisher.rebuild(authority: authority.name, scope: .complete, state: state)
            let completeSeconds = Self.seconds(since: completeStarted)
            log("complete CRL: \(complete.der.count) octets in \(String(format: "%.2f", completeSeconds)) s")
            let firstStarted = ContinuousClock.now
            var largest = try await publisher.rebuild(authority: authority.name, scope: .shard(0), state: state).der.count
            let firstShardSeconds = Self.seconds(since: firstStarted)
            let allStarted = ContinuousClock.now
            for shard in 1..<shardCount.value {
                largest = max(largest, try await publisher.rebuild(authority: authority.name, scope: .shard(shard), state: state).der.count)
            }
            let allShardsSeconds = Self.seconds(since: allStarted) + firstShardSeconds
            // One more revocation, then its shard republished: 50 times, p99.
            var republish: [Double] = []
            for _ in 0..<50 {
                let serial = Self.randomSerial()
                state.revoked[authority.name]!.insert(SecurityState.Revocation(reason: 1, revokedAt: Date(), invalidityDate: nil), serial: serial)
                state.revocationCount += 1
                let shard = shardCount.shard(ofSerialHex: serial)!
                let started = ContinuousClock.now
                _ = try await publisher.rebuild(authority: authority.name, scope: .shard(shard), state: state)
                republish.append(Self.seconds(since: started))
            }
            republish.sort()
            let report = Report(
                revoked: revoked, shards: shardCount.value, stateSeconds: stateSeconds, completeSeconds: completeSeconds, completeBytes: complete.der.count,
                firstShardSeconds: firstShardSeconds, allShardsSeconds: allShardsSeconds, largestShardBytes: largest,
                republishShardSeconds: republish[republish.count / 2], republishShardP99Seconds: republish[Int(Double(republish.count - 1) * 0.99)],
                peakMemoryMB: IssuanceBenchmark.peakMemoryMB()
            )
            if output.json { return try Output.json(report) }
            Output.line("CRL generation, \(revoked) revoked, \(shardCount.value) shards:")
            Output.line(String(format: "  complete CRL:  %.2f s, %.1f MB (first build: groups the revocations by shard)", completeSeconds, Double(complete.der.count) / 1e6))
            Output.line(String(format: "  every shard:   %.2f s, largest %.0f KB", allShardsSeconds, Double(largest) / 1e3))
            Output.line(String(format: "  one shard after one more revocation: p50 %.1f ms, p99 %.1f ms", report.republishShardSeconds * 1000, report.republishShardP99Seconds * 1000))
            Output.line(String(format: "  peak memory %.0f MB", report.peakMemoryMB))
        }

        /// A serial as the issuer draws them: 16 octets, positive.
        static func randomSerial() -> String {
            var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
            bytes[0] &= 0x7F
            return hexString(bytes)
        }

        static func seconds(since start: ContinuousClock.Instant) -> Double {
            let elapsed = ContinuousClock.now - start
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }
    }
}

extension BenchCommand {
    /// `bench ocsp`: our responder against `openssl ocsp` on the same CA and certificates, under the same wrk load.
    struct OCSP: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ocsp",
            abstract: "OCSP responses/s and latency: serve --roles ocsp against openssl ocsp -index under the same load (wrk).",
            discussion: """
                A deployment in a temporary directory (root, a Manufacturer Device CA, --certificates meters with \
                their factory identity certificates, a tenth of them revoked, the audit log). The reference: \
                `openssl ocsp -index` over the same certificates and revocations, `-multi` processes (default: the \
                cores), signing with a software P-256 key. Ours: `serve --roles ocsp`, its delegated signer's key in \
                the HSM. The same fixed request for a good certificate by wrk (--connections, --seconds each): POST \
                keep-alive, POST with a new connection per request, GET keep-alive, and POST with a nonce (signed live \
                by both). Then the time from a revocation's return to the responder answering revoked (p50, p99).
                EXAMPLE: metertrust bench ocsp --token-label bench --connections 64 --seconds 10 --json
                """
        )
        @Option(help: "Certificates the CA issued (a tenth revoked).") var certificates = 1_000
        @Option(help: "wrk connections.") var connections = 64
        @Option(help: "wrk threads (on the same cores as both servers).") var loadThreads = 2

        func validate() throws {
            guard (1...16).contains(loadThreads), connections >= loadThreads else {
                throw ValidationError("--load-threads must be 1 to 16 and at most --connections")
            }
        }
        @Option(help: "Seconds per run.") var seconds = 10
        @Option(help: "openssl ocsp -multi processes (default: the cores).") var multi: Int?
        @Option(help: "Revocations timed from revoke to answered revoked.") var revocations = 20
        @Option(help: "PKCS#11 module.") var module = ProcessInfo.processInfo.environment["METERTRUST_HSM_MODULE"] ?? HSMConfiguration.defaultModulePath
        @Option(help: "Label of an initialised token; PIN from $METERTRUST_HSM_PIN.") var tokenLabel: String
        @Option(help: "Where to make the temporary deployment (default: the system's temporary directory).") var workDirectory: String?
        @OptionGroup var output: OutputOptions

        struct Run: Codable {
            var target: String
            var variant: String
            var responsesPerSecond: Double
            var p50Milliseconds: Double
            var p99Milliseconds: Double
            var errors: Int
        }

        struct Report: Codable {
            var cores: Int
            var connections: Int
            var loadThreads: Int
            var seconds: Int
            var runs: [Run]
            /// Ours / openssl's, per variant.
            var ratios: [String: Double]
            var revocationToRevokedP50Milliseconds: Double
            var revocationToRevokedP99Milliseconds: Double
        }

        func run() async throws {
            let log: (String) -> Void = { message in if !output.json || isatty(STDERR_FILENO) == 1 { FileHandle.standardError.write(Data("bench ocsp: \(message)\n".utf8)) } }
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/wrk") else {
                throw CLIError(code: .configuration, "bench ocsp needs wrk (Debian package wrk): run make deps")
            }
            let base = workDirectory.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
            let directory = base.appendingPathComponent("metertrust-bench-ocsp-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            func file(_ name: String) -> String { directory.appendingPathComponent(name).path }

            // The deployment, untimed.
            let dataDirectory = directory.appendingPathComponent("data")
            let configuration = Configuration(hsm: HSMConfiguration(modulePath: module, tokenLabel: tokenLabel, sessionCount: 4), pki: PKISettings())
            _ = try await InitCommand.initialize(at: dataDirectory, configuration: configuration, force: false)
            let context = try Context(DataDirectoryOptions(dataDirectory: dataDirectory.path))
            let (store, hierarchy) = try await context.platform()
            let suffix = UUID().uuidString.prefix(8).lowercased()
            var created: [CertificateAuthority] = []
            defer { for authority in created { try? hierarchy.token.destroy(authority.signingKey.key) } }
            let root = try await hierarchy.createRoot(name: "bench-ocsp-root-\(suffix)", organization: "Bench")
            created.append(root)
            let manufacturer = try await hierarchy.createAuthority(role: .manufacturer, name: "bench-ocsp-mfr-\(suffix)", organization: "Bench Meters")
            created.append(manufacturer)
            let fleet = try await SimulatedFleet.make(
                count: certificates, first: 0x0024_BE00_0000_0000 | (UInt64.random(in: 0..<(1 << 16)) << 32), batch: "bench-ocsp-\(suffix)",
                manufacturer: manufacturer, hierarchy: hierarchy, store: store, threads: 2, progress: TerminalProgress(quiet: true)
            )
            _ = try await AuditCommand.Init.initialize(
                data: DataDirectoryOptions(dataDirectory: dataDirectory.path), name: root.name, keyName: "bench.metertrust.example/ocsp-\(suffix)", interval: 1000
            )
            let audited = try Context(DataDirectoryOptions(dataDirectory: dataDirectory.path))
            let revocation = CertificateRevocation(store: store, audit: try audited.auditLog(store: store, token: hierarchy.token))
            let identities = try fleet.meters.map { try Certificate(derEncoded: $0.identity) }
            let revokedCount = certificates / 10
            let toRevoke = identities.suffix(revokedCount).map { RevocationTarget(issuer: manufacturer.name, serial: $0.serialHex) }
            for start in stride(from: 0, to: toRevoke.count, by: CertificateRevocation.chunkSize) {
                _ = try await revocation.revoke(Array(toRevoke[start..<min(start + CertificateRevocation.chunkSize, toRevoke.count)]), reason: .keyCompromise, by: .officer(actor: "bench"))
            }
            try manufacturer.certificate.pem.write(toFile: file("ca.pem"), atomically: true, encoding: .utf8)
            try identities[0].pem.write(toFile: file("good.pem"), atomically: true, encoding: .utf8)
            for (name, nonce) in [("request.der", "-no_nonce"), ("request-nonce.der", "-nonce")] {
                try Self.tool("openssl", ["ocsp", "-issuer", file("ca.pem"), "-cert", file("good.pem"), nonce, "-reqout", file(name)])
            }

            // The reference: openssl ocsp over an index of the same certificates, a software signer.
            var index = ""
            let revokedSerials = Set(toRevoke.map(\.serial))
            let stamp = Self.indexTime(Date())
            for certificate in identities {
                let serial = certificate.serialHex.uppercased()
                let expiry = "99991231235959Z"
                index += revokedSerials.contains(certificate.serialHex)
                    ? "R\t\(expiry)\t\(stamp),keyCompromise\t\(serial)\tunknown\t/CN=\(serial)\n" : "V\t\(expiry)\t\t\(serial)\tunknown\t/CN=\(serial)\n"
            }
            try index.write(toFile: file("index.txt"), atomically: true, encoding: .utf8)
            try Self.tool("openssl", [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", file("rkey.pem"), "-out", file("rsigner.pem"),
                "-subj", "/CN=openssl OCSP signer", "-days", "30", "-addext", "extendedKeyUsage=OCSPSigning",
            ])
            let opensslArguments = [
                "ocsp", "-index", file("index.txt"), "-rsigner", file("rsigner.pem"), "-rkey", file("rkey.pem"), "-CA", file("ca.pem"), "-nmin", "60",
                "-multi", "\(multi ?? ProcessInfo.processInfo.activeProcessorCount)",
            ]

            // Ours.
            let server = try ESTServerProcess.start(dataDirectory: dataDirectory, log: directory.appendingPathComponent("serve.log"), role: OCSPRole.name)
            defer { server.stop() }

            let request = try Data(contentsOf: URL(fileURLWithPath: file("request.der")))
            let getPath = "/" + request.base64EncodedString().addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            var runs: [Run] = []
            for target in ["openssl ocsp", "metertrust ocsp"] {
                for variant in ["POST keep-alive", "POST new connection", "GET keep-alive", "POST nonce"] {
                    // openssl ocsp's children spin once a client drops a connection they are reading (wrk does at the
                    // end of every run): each run gets a fresh reference.
                    var reference: ReferenceProcess?
                    defer { reference?.stop() }
                    let port: Int
                    if target == "openssl ocsp" {
                        port = try LoopbackPort.free()
                        try? FileManager.default.removeItem(atPath: file("openssl.log"))
                        reference = try ReferenceProcess.start(arguments: opensslArguments + ["-port", "\(port)"], log: file("openssl.log"))
                        try Self.waitForListening(log: file("openssl.log"))
                    } else {
                        port = server.port
                    }
                    // Each answers the fixed request good before it is loaded.
                    try Self.tool("curl", ["-sS", "--data-binary", "@" + file("request.der"), "-H", "Content-Type: application/ocsp-request", "-o", file("answer.der"), "http://127.0.0.1:\(port)/"])
                    let text = try Self.tool("openssl", ["ocsp", "-respin", file("answer.der"), "-resp_text", "-noverify"])
                    guard text.contains("Cert Status: good") else { throw CLIError(code: .internalError, "\(target) did not answer good: \(Output.oneLine(String(text.prefix(300))))") }
                    log("\(target): \(variant)")
                    let body = variant == "POST nonce" ? file("request-nonce.der") : file("request.der")
                    runs.append(try Self.wrk(
                        target: target, variant: variant, url: "http://127.0.0.1:\(port)" + (variant.hasPrefix("GET") ? getPath : "/"),
                        body: variant.hasPrefix("GET") ? nil : body, close: variant.contains("new connection"), connections: connections, threads: loadThreads, seconds: seconds,
                        script: file("wrk-\(runs.count).lua")
                    ))
                }
            }
            var ratios: [String: Double] = [:]
            for run in runs where run.target == "metertrust ocsp" {
                if let reference = runs.first(where: { $0.target == "openssl ocsp" && $0.variant == run.variant }), reference.responsesPerSecond > 0 {
                    ratios[run.variant] = run.responsesPerSecond / max(reference.responsesPerSecond, 1e-9)
                }
            }

            // From a revocation's return to the responder answering revoked (what a relying party sees).
            var latencies: [Double] = []
            for index in 0..<min(revocations, identities.count - revokedCount - 1) {
                let certificate = identities[index + 1]
                try certificate.pem.write(toFile: file("victim.pem"), atomically: true, encoding: .utf8)
                try Self.tool("openssl", ["ocsp", "-issuer", file("ca.pem"), "-cert", file("victim.pem"), "-no_nonce", "-reqout", file("victim.der")])
                // Kept as good first, so the revocation must replace a kept response.
                _ = try Self.tool("curl", ["-sS", "--data-binary", "@" + file("victim.der"), "-o", file("victim-answer.der"), "http://127.0.0.1:\(server.port)/"])
                _ = try await revocation.revoke([RevocationTarget(issuer: manufacturer.name, serial: certificate.serialHex)], reason: .keyCompromise, by: .officer(actor: "bench"))
                let returned = ContinuousClock.now
                while ContinuousClock.now - returned < .seconds(5) {
                    _ = try Self.tool("curl", ["-sS", "--data-binary", "@" + file("victim.der"), "-o", file("victim-answer.der"), "http://127.0.0.1:\(server.port)/"])
                    if try Self.tool("openssl", ["ocsp", "-respin", file("victim-answer.der"), "-resp_text", "-noverify"]).contains("Cert Status: revoked") { break }
                }
                latencies.append(CRL.seconds(since: returned) * 1000)
            }
            latencies.sort()
            if runs.contains(where: { $0.target == "openssl ocsp" && $0.responsesPerSecond == 0 }) {
                log("warning: openssl ocsp answered nothing under wrk in some runs: no ratio for those")
            }
            let report = Report(
                cores: ProcessInfo.processInfo.activeProcessorCount, connections: connections, loadThreads: loadThreads, seconds: seconds, runs: runs, ratios: ratios,
                revocationToRevokedP50Milliseconds: latencies.isEmpty ? 0 : latencies[latencies.count / 2],
                revocationToRevokedP99Milliseconds: latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int((Double(latencies.count) * 0.99).rounded(.up)) - 1)]
            )
            if output.json { return try Output.json(report) }
            Output.line("OCSP, \(connections) connections (wrk -t\(loadThreads)), \(seconds) s per run, \(report.cores) cores:")
            for run in runs {
                Output.line(String(format: "  %-16@ %-20@ %9.0f/s  p50 %6.2f ms  p99 %6.2f ms  errors %d", run.target as NSString, run.variant as NSString, run.responsesPerSecond, run.p50Milliseconds, run.p99Milliseconds, run.errors))
            }
            for (variant, ratio) in ratios.sorted(by: { $0.key < $1.key }) { Output.line(String(format: "  ratio %@: %.2f", variant as NSString, ratio)) }
            Output.line(String(format: "  revoke → answered revoked: p50 %.0f ms, p99 %.0f ms", report.revocationToRevokedP50Milliseconds, report.revocationToRevokedP99Milliseconds))
        }

        /// openssl's index time: YYMMDDHHMMSSZ.
        static func indexTime(_ date: Date) -> String {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "UTC")
            formatter.dateFormat = "yyMMddHHmmss'Z'"
            return formatter.string(from: date)
        }

        @discardableResult
        static func tool(_ executable: String, _ arguments: [String], check: Bool = true) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/\(executable)")
            process.arguments = arguments
            let out = Pipe()
            process.standardOutput = out
            process.standardError = out
            try process.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let text = String(decoding: data, as: UTF8.self)
            if check, process.terminationStatus != 0 {
                throw CLIError(code: .internalError, "\(executable) \(arguments.prefix(2).joined(separator: " ")) failed: \(Output.oneLine(String(text.suffix(300))))")
            }
            return text
        }

        /// Waits for openssl ocsp's `ACCEPT` line. Not by connecting: a connection dropped unread leaves one of its
        /// children spinning (openssl 3.0), which would halve the reference.
        static func waitForListening(log: String) throws {
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                if let text = try? String(contentsOfFile: log, encoding: .utf8), text.contains("ACCEPT") { return }
                usleep(50_000)
            }
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw CLIError(code: .unreachable, "openssl ocsp did not start: \(Output.oneLine(String(text.suffix(300))))")
        }

        /// One wrk run: responses/s, p50/p99 (from --latency), non-2xx and socket errors.
        static func wrk(
            target: String, variant: String, url: String, body: String?, close: Bool, connections: Int, threads: Int, seconds: Int, script: String
        ) throws -> Run {
            var lua = ""
            if let body {
                lua += "local f = io.open(\"\(body)\", \"rb\")\nwrk.body = f:read(\"*a\")\nf:close()\nwrk.method = \"POST\"\n"
                lua += "wrk.headers[\"Content-Type\"] = \"application/ocsp-request\"\n"
            }
            if close { lua += "wrk.headers[\"Connection\"] = \"close\"\n" }
            try lua.write(toFile: script, atomically: true, encoding: .utf8)
            let text = try tool("wrk", ["-t\(threads)", "-c\(connections)", "-d\(seconds)s", "--latency", "-s", script, url])
            func number(after label: String) -> Double? {
                guard let line = text.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) }) else { return nil }
                return line.split(separator: " ").dropFirst(label.split(separator: " ").count).first.flatMap { latency(String($0)) ?? Double($0) }
            }
            var errors = 0
            if let line = text.split(separator: "\n").first(where: { $0.contains("Non-2xx or 3xx responses:") }) {
                errors += Int(line.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) ?? 0
            }
            if let line = text.split(separator: "\n").first(where: { $0.contains("Socket errors:") }) {
                for part in line.split(separator: ",") { errors += Int(part.split(separator: " ").last ?? "") ?? 0 }
            }
            guard let rate = number(after: "Requests/sec:") else {
                throw CLIError(code: .internalError, "wrk against \(target) (\(variant)) reported no rate: \(Output.oneLine(String(text.suffix(400))))")
            }
            return Run(
                target: target, variant: variant, responsesPerSecond: rate, p50Milliseconds: number(after: "50%") ?? 0,
                p99Milliseconds: number(after: "99%") ?? 0, errors: errors
            )
        }

        /// wrk's latency text (`812.00us`, `1.23ms`, `2.01s`) in milliseconds.
        static func latency(_ text: String) -> Double? {
            for (unit, scale) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] where text.hasSuffix(unit) {
                return Double(text.dropLast(unit.count)).map { $0 * scale }
            }
            return nil
        }
    }
}

/// A reference server the benchmarks start (openssl ocsp), in its own process group with SIGPIPE at its default
/// (this process ignores it, and an exec'd child would inherit that: openssl's children then spin on a dropped
/// connection instead of dying and being replaced). Stopped with SIGKILL to the whole group: `openssl ocsp -multi`'s
/// children do not all leave on SIGTERM.
struct ReferenceProcess {
    let pid: pid_t

    static func start(arguments: [String], log: String, executable: String = "/usr/bin/openssl") throws -> ReferenceProcess {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var files = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&files)
        defer { posix_spawn_file_actions_destroy(&files) }
        posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&files, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&files, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &files, &attributes, argv, environ)
        guard status == 0 else { throw CLIError(code: .internalError, "could not start \(executable): \(String(cString: strerror(status)))") }
        return ReferenceProcess(pid: pid)
    }

    func stop() {
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
