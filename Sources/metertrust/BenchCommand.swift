import ArgumentParser
import Foundation
import MeterTrustFactory
import MeterTrustHSM
import MeterTrustOnboarding
import MeterTrustPKI
import MeterTrustStore
import MeterTrustStorePostgres
import MeterTrustStoreSQLite

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks that measure their own limits in the same run.", subcommands: [Issuance.self, Enroll.self, PSK.self, EST.self, CRL.self, OCSP.self]
    )

    struct Issuance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issuance",
            abstract: "Issue N device certificates from N pre-made CSRs through the real path; report rate, ratio to the measured limit, peak memory.",
            discussion: """
                Works in a temporary store on the HSM token named by --token-label (default $METERTRUST_HSM_TOKEN or \
                metertrust-bench), PIN in $METERTRUST_HSM_PIN; the bench CA keys are destroyed afterwards. Build with \
                -c release for meaningful figures (make bench does).

                With --store postgres://… the run issues into that PostgreSQL database instead (password from \
                $METERTRUST_STORE_PASSWORD or --store-password-file): the server's durability settings are the ones \
                measured. Several bench processes may share one database and token: each makes its own manufacturer CA \
                under one bench root; start them a few seconds apart (make bench-postgres does).

                EXAMPLES:
                  swift build -c release
                  .build/release/metertrust bench issuance --count 100000 --json
                  .build/release/metertrust bench issuance --count 1000000 --store 'postgres://metertrust@127.0.0.1:55432/bench?sslmode=require'
                """
        )
        @Option(help: "Number of certificates.") var count = 100_000
        @Option(help: "Threads = PKCS#11 sessions (default: number of cores).") var threads: Int?
        @Option(name: .customLong("limit-seconds"), help: "Seconds per measurement of each raw limit (each is measured twice).") var limitSeconds = 2.0
        @Option(help: "PKCS#11 module.")
        var module = ProcessInfo.processInfo.environment["METERTRUST_HSM_MODULE"] ?? HSMConfiguration.defaultModulePath
        @Option(name: .customLong("token-label"), help: "HSM token label.")
        var tokenLabel = ProcessInfo.processInfo.environment["METERTRUST_HSM_TOKEN"] ?? "metertrust-bench"
        @Option(name: .customLong("work-dir"), help: "Directory for the temporary store and CSRs (default: a new temporary directory).")
        var workDirectory: String?
        @Option(name: .customLong("store"), help: "A postgres:// URL to issue into (default: a temporary SQLite file).") var storeURL: String?
        @Option(name: .customLong("store-password-file"), help: "File (mode 0600) holding the PostgreSQL password.") var storePasswordFile: String?
        @Flag(name: .customLong("keep-store"), help: "Keep the temporary SQLite store (its path is printed), e.g. to measure its size.") var keepStore = false
        @OptionGroup var output: OutputOptions

        func validate() throws {
            guard (1...50_000_000).contains(count) else { throw ValidationError("--count must be between 1 and 50000000") }
        }

        func run() async throws {
            let threads = self.threads ?? ProcessInfo.processInfo.activeProcessorCount
            let directory = try BenchCommand.makeWorkDirectory(in: workDirectory)
            defer {
                if keepStore && storeURL == nil {
                    try? FileManager.default.removeItem(at: directory.appendingPathComponent("csrs.txt"))
                    Output.warning("kept the bench store \(directory.appendingPathComponent("bench.sqlite").path)")
                } else {
                    try? FileManager.default.removeItem(at: directory)
                }
            }
            let token = try HSMToken.open(HSMConfiguration(modulePath: module, tokenLabel: tokenLabel, sessionCount: threads))
            let (store, backend) = try await BenchCommand.openStore(storeURL, passwordFile: storePasswordFile, directory: directory)
            let hierarchy = CAHierarchy(token: token, store: store, settings: PKISettings())
            // One bench root per store: made by the first run, used by the others that share the store and the token.
            var created: [String] = []
            if (try? await hierarchy.authority(named: "bench-root")) == nil {
                _ = try await hierarchy.createRoot(name: "bench-root", organization: "Bench")
                created.append("bench-root")
            }
            let manufacturer = "bench-mfr-\(UUID().uuidString.prefix(8).lowercased())"
            let outcome = await Result(catching: {
                try await IssuanceBenchmark(hierarchy: hierarchy, store: store, threads: threads, limitSeconds: limitSeconds, manufacturerName: manufacturer)
                    .run(count: count, workDirectory: directory, progress: TerminalProgress())
            })
            // Leave no bench keys on the token (a shared root stays for the runs still using it).
            for name in [manufacturer] + (storeURL == nil ? created : []) {
                if let authority = try? await hierarchy.authority(named: name, toIssue: false) { try? token.destroy(authority.signingKey.key) }
            }
            let result = try outcome.get()
            if output.json {
                try Output.json(result, adding: ["version": MeterTrustCommand.version, "store": backend])
            } else {
                Output.line("issuance benchmark (metertrust \(MeterTrustCommand.version), \(backend) store): \(result.count) device identity certificates, \(result.threads) threads, \(result.sessions) PKCS#11 sessions, \(result.cores) cores")
                Output.line(String(format: "  issued:              %.0f certificates/s (%.2f s)", result.certificatesPerSecond, result.issuanceSeconds))
                Output.line(String(format: "  raw C_Sign (S):      %.0f /s", result.rawSignPerSecond))
                Output.line(String(format: "  raw CSR verify (V):  %.0f /s", result.rawCSRVerifyPerSecond))
                Output.line(String(format: "  limit 1/(1/S+1/V):   %.0f /s", result.combinedLimitPerSecond))
                Output.line(String(format: "  ratio:               %.3f", result.ratio))
                Output.line(String(format: "  peak memory:         %.1f MB", result.peakMemoryMB))
                Output.line(String(format: "  CPU per operation:   %.1f µs per certificate; %.1f µs per raw sign; %.1f µs per raw CSR verify", result.cpuMicrosecondsPerCertificate, result.cpuMicrosecondsPerRawSign, result.cpuMicrosecondsPerRawCSRVerify))
            }
        }
    }
}

extension BenchCommand {
    /// A new directory `metertrust-bench-XXXXXXXX` for a run's temporary files, in `parent` (default: the system's
    /// temporary directory).
    static func makeWorkDirectory(in parent: String?) throws -> URL {
        let base = parent.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
        let directory = base.appendingPathComponent("metertrust-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// The bench's store: the PostgreSQL database `url` names, or a new SQLite file `bench.sqlite` in `directory`; migrated.
    static func openStore(_ url: String?, passwordFile: String?, directory: URL) async throws -> (any MeterTrustStore, String) {
        if let url {
            guard PostgresStoreLocation.isPostgresURL(url) else { throw CLIError(code: .usage, "--store takes a postgres:// URL, not \(url)") }
            let postgres = try await StoreOpening.openPostgres(PostgresSettings(url: url, passwordFile: passwordFile))
            try await postgres.migrate()
            return (postgres, "PostgreSQL")
        }
        let sqlite = try SQLiteStore(path: directory.appendingPathComponent("bench.sqlite").path)
        try await sqlite.migrate()
        return (sqlite, "SQLite")
    }

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enroll",
            abstract: "Upload an enrollment list of N meters through the real path (stream, stage, check, claim); report meters/s and peak memory.",
            discussion: """
                Sets up, untimed, a manufacturer CA with a software key, N device identity records stored directly (no \
                HSM signing) and an account, then times one upload from the first byte read to the commit: a plain \
                list (--format list) or a signed enrollment manifest (--format manifest). Works in a temporary SQLite \
                store, or in the PostgreSQL database --store names (password from $METERTRUST_STORE_PASSWORD or \
                --store-password-file). Build with -c release for meaningful figures.

                EXAMPLES:
                  swift build -c release
                  .build/release/metertrust bench enroll --count 1000000
                  .build/release/metertrust bench enroll --count 1000000 --format manifest --json
                """
        )
        @Option(help: "Number of meters.") var count = 1_000_000
        @Option(help: "list or manifest.") var format = "list"
        @Option(name: .customLong("work-dir"), help: "Directory for the temporary store and body (default: a new temporary directory).")
        var workDirectory: String?
        @Option(name: .customLong("store"), help: "A postgres:// URL to upload into (default: a temporary SQLite file).") var storeURL: String?
        @Option(name: .customLong("store-password-file"), help: "File (mode 0600) holding the PostgreSQL password.") var storePasswordFile: String?
        @OptionGroup var output: OutputOptions

        func validate() throws {
            guard (1...10_000_000).contains(count) else { throw ValidationError("--count must be between 1 and 10000000") }
            guard EnrollmentUploadRecord.Format(rawValue: format) != nil else { throw ValidationError("--format is list or manifest") }
        }

        func run() async throws {
            let directory = try BenchCommand.makeWorkDirectory(in: workDirectory)
            defer { try? FileManager.default.removeItem(at: directory) }
            let (store, backend) = try await BenchCommand.openStore(storeURL, passwordFile: storePasswordFile, directory: directory)
            let bar = TerminalProgress(quiet: output.json)
            let total = count
            let progress: EnrollmentProgress = { phase, done in bar.update(phase: phase, done: Int(done), total: total) }
            let result = try await EnrollmentBenchmark(store: store, workDirectory: directory).run(
                count: count, format: EnrollmentUploadRecord.Format(rawValue: format) ?? .list, progress: progress
            )
            bar.finish(phase: "committing")
            if output.json {
                try Output.json(result, adding: ["version": MeterTrustCommand.version, "store": backend])
            } else {
                Output.line("enrollment benchmark (metertrust \(MeterTrustCommand.version), \(backend) store): \(result.count) meters, \(result.format), \(result.bodyBytes) bytes, \(result.cores) cores")
                Output.line(String(format: "  upload → commit:     %.0f meters/s (%.2f s: staging %.2f s, checks and commit %.2f s)", result.metersPerSecond, result.uploadSeconds, result.stagingSeconds, result.finishSeconds))
                Output.line("  claimed:             \(result.claimed)")
                Output.line(String(format: "  peak memory:         %.1f MB during the upload (%.1f MB with the set-up)", result.uploadPeakMemoryMB, result.peakMemoryMB))
                Output.line(String(format: "  set-up (untimed):    %.2f s", result.setupSeconds))
            }
        }
    }
}

extension BenchCommand {
    struct PSK: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "psk",
            abstract: "Find N meters' PSKs as the PSK listener does (store reads, HSM derivation); report resolutions/s beside raw HSM derivations/s.",
            discussion: """
                Sets up, untimed, a PSK master key in the HSM (destroyed at the end), a batch naming it and N device identity \
                records of that batch (no signing), in a temporary SQLite store or the PostgreSQL database --store names. \
                Then times raw derivations (C_SignInit + C_Sign with CKM_SHA256_HMAC, the limit) and PSKResolver for every \
                meter (what each PSK handshake waits for), --threads at a time, and reports the ratio. Build with -c release.

                EXAMPLES:
                  .build/release/metertrust bench psk --count 100000
                  .build/release/metertrust bench psk --count 100000 --threads 2 --json
                """
        )
        @Option(help: "Number of meters.") var count = 100_000
        @Option(help: "Resolutions in flight and PKCS#11 sessions (default: the number of cores).") var threads: Int?
        @Option(help: "PKCS#11 module.") var module = ProcessInfo.processInfo.environment["METERTRUST_HSM_MODULE"] ?? HSMConfiguration.defaultModulePath
        @Option(name: .customLong("token-label"), help: "HSM token label (PIN from $METERTRUST_HSM_PIN).")
        var tokenLabel = ProcessInfo.processInfo.environment["METERTRUST_HSM_TOKEN"] ?? "metertrust-bench"
        @Option(name: .customLong("work-dir"), help: "Directory for the temporary store (default: a new temporary directory).")
        var workDirectory: String?
        @Option(name: .customLong("store"), help: "A postgres:// URL (default: a temporary SQLite file).") var storeURL: String?
        @Option(name: .customLong("store-password-file"), help: "File (mode 0600) holding the PostgreSQL password.") var storePasswordFile: String?
        @OptionGroup var output: OutputOptions

        func validate() throws {
            guard (1...10_000_000).contains(count) else { throw ValidationError("--count must be between 1 and 10000000") }
        }

        func run() async throws {
            let threads = self.threads ?? ProcessInfo.processInfo.activeProcessorCount
            let directory = try BenchCommand.makeWorkDirectory(in: workDirectory)
            defer { try? FileManager.default.removeItem(at: directory) }
            let token = try HSMToken.open(HSMConfiguration(modulePath: module, tokenLabel: tokenLabel, sessionCount: threads))
            let (store, backend) = try await BenchCommand.openStore(storeURL, passwordFile: storePasswordFile, directory: directory)
            let bar = TerminalProgress(quiet: output.json)
            let total = count
            let result = try await PSKBenchmark(store: store, token: token, threads: threads).run(count: count) { phase, done in
                bar.update(phase: phase, done: done, total: total)
            }
            bar.finish(phase: "resolving")
            if output.json {
                try Output.json(result, adding: ["version": MeterTrustCommand.version, "store": backend])
            } else {
                Output.line("PSK benchmark (metertrust \(MeterTrustCommand.version), \(backend) store): \(result.count) meters, \(result.threads) threads, \(result.sessions) PKCS#11 sessions, \(result.cores) cores")
                Output.line(String(format: "  resolved (R):        %.0f PSKs/s (mean %.2f ms each: store reads + HSM derivation)", result.resolutionsPerSecond, result.meanResolutionMilliseconds))
                Output.line(String(format: "  raw derivation (D):  %.0f /s (CKM_SHA256_HMAC C_Sign)", result.rawDerivationsPerSecond))
                Output.line(String(format: "  ratio R/D:           %.3f", result.ratio))
                Output.line(String(format: "  set-up (untimed):    %.2f s", result.setupSeconds))
            }
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
