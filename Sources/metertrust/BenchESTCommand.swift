import ArgumentParser
import Crypto
import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustHSM
import MeterTrustOnboarding
import MeterTrustPKI
import MeterTrustServer
import MeterTrustStore
import NIOPosix
import X509

extension BenchCommand {
    struct EST: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "est",
            abstract: "N simulated meters each enroll once over EST (a full TLS 1.3 handshake + simpleenroll), against nginx as the reference and against our EST server.",
            discussion: """
                Sets up, untimed, a deployment in a temporary data directory on the HSM token named by --token-label \
                (default $METERTRUST_HSM_TOKEN or metertrust-bench; PIN in $METERTRUST_HSM_PIN): root, manufacturer, \
                operational and Service CAs, N meters whose factory identities the issuance engine issues, each with a \
                pre-made operational CSR. Then, with the same client (the meter's ESTClient, a new TLS context and \
                connection per meter, concurrency C), the same certificate types and the same trust store, it runs \
                every meter against nginx (Debian's package, installed if missing; its key in software; mutual TLS \
                1.3, no session cache, no tickets, one small static certs-only answer), then against our EST server \
                (`server-cert --role est`, `serve --roles est` as children, its key in the HSM, every meter claimed by \
                one account), and reports enrollments/s, p50/p99 latency, the server's peak memory (VmHWM of its \
                processes, from /proc), CPU per enrollment of server and client, and the ratio to nginx. Then the same \
                meters enroll again by PSK (the batch is a keyMode psk batch whose master key is in the HSM; each \
                meter's PSK derived beforehand, as its bundle carried it) against `serve --roles est-psk` (TLS 1.2 \
                ECDHE-PSK-CHACHA20-POLY1305, the key re-derived in the HSM at every handshake), reported beside it; \
                --no-psk skips that run. Build with -c release for meaningful figures.

                EXAMPLES:
                  swift build -c release
                  .build/release/metertrust bench est --meters 10000 --concurrency 32
                  .build/release/metertrust bench est --meters 100000 --concurrency 32 --json
                """
        )
        @Option(help: "Number of simulated meters.") var meters = 10_000
        @Option(help: "Enrollments in flight at once.") var concurrency = 32
        @Option(help: "Threads of the client's event loops and of the set-up (default: number of cores).") var threads: Int?
        @Option(help: "PKCS#11 module.")
        var module = ProcessInfo.processInfo.environment["METERTRUST_HSM_MODULE"] ?? HSMConfiguration.defaultModulePath
        @Option(name: .customLong("token-label"), help: "HSM token label.")
        var tokenLabel = ProcessInfo.processInfo.environment["METERTRUST_HSM_TOKEN"] ?? "metertrust-bench"
        @Option(name: .customLong("work-dir"), help: "Directory for the temporary deployment (default: a new temporary directory).")
        var workDirectory: String?
        @Flag(name: .customLong("no-psk"), help: "Skip the PSK enrollment run.") var noPSK = false
        @OptionGroup var output: OutputOptions

        func validate() throws {
            guard (1...2_000_000).contains(meters) else { throw ValidationError("--meters must be between 1 and 2000000") }
            guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be between 1 and 4096") }
        }

        struct Report: Codable {
            var version = MeterTrustCommand.version
            var cores: Int
            var meters: Int
            var concurrency: Int
            var setupSeconds: Double
            /// nginx: the reference's full-handshake rate.
            var nginx: ESTLoad.Run
            /// Our EST server (`serve --roles est`, key in the HSM), when this build has it.
            var est: ESTLoad.Run?
            /// PSK enrollments (TLS 1.2), when this build has the PSK listener.
            var psk: ESTLoad.Run?
            /// est.enrollmentsPerSecond / nginx.enrollmentsPerSecond.
            var ratio: Double?
            /// The client process's own peak memory (the fleet is held in it), MB.
            var clientPeakMemoryMB: Double
        }

        func run() async throws {
            let threads = self.threads ?? ProcessInfo.processInfo.activeProcessorCount
            let progress = TerminalProgress(quiet: output.json)
            let log: (String) -> Void = { message in if !output.json || isatty(STDERR_FILENO) == 1 { FileHandle.standardError.write(Data("bench est: \(message)\n".utf8)) } }
            try ReferenceNginx.installIfMissing(log: log)
            let base = workDirectory.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
            let directory = base.appendingPathComponent("metertrust-bench-est-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }

            // The deployment, untimed.
            let setupStarted = Date()
            let dataDirectory = directory.appendingPathComponent("data")
            let configuration = Configuration(hsm: HSMConfiguration(modulePath: module, tokenLabel: tokenLabel, sessionCount: threads), pki: PKISettings())
            _ = try await InitCommand.initialize(at: dataDirectory, configuration: configuration, force: false)
            let context = try Context(DataDirectoryOptions(dataDirectory: dataDirectory.path))
            let (store, hierarchy) = try await context.platform()
            let suffix = UUID().uuidString.prefix(8).lowercased()
            var created: [CertificateAuthority] = []
            defer { for authority in created { try? hierarchy.token.destroy(authority.signingKey.key) } }
            let root = try await hierarchy.createRoot(name: "bench-est-root-\(suffix)", organization: "Bench")
            created.append(root)
            let manufacturer = try await hierarchy.createAuthority(role: .manufacturer, name: "bench-est-mfr-\(suffix)", organization: "Bench Meters")
            created.append(manufacturer)
            let operational = try await hierarchy.createAuthority(role: .operational, name: "bench-est-north-\(suffix)", organization: "Bench Utility")
            created.append(operational)
            let service = try await hierarchy.createAuthority(role: .service, name: "bench-est-service-\(suffix)", organization: "Bench")
            created.append(service)
            log("deployment in \(dataDirectory.path); making \(meters) meters")
            let batch = "bench-est-\(suffix)"
            // The batch's PSK master key, in the HSM (destroyed at the end).
            let masterLabel = KeyLabel.unique(KeyLabel.pskMaster, batch)
            let master = try await hierarchy.token.perform { try $0.generatePSKMasterKey(label: masterLabel) }
            defer { try? hierarchy.token.destroy(master) }
            let fleet = try await SimulatedFleet.make(
                count: meters, first: 0x0024_BE00_0000_0000 | (UInt64.random(in: 0..<(1 << 16)) << 32), batch: batch,
                manufacturer: manufacturer, hierarchy: hierarchy, store: store, threads: threads, progress: progress, pskMasterKeyLabel: masterLabel
            )
            // What each meter's bundle would carry: its PSK, derived now (untimed) as the factory run does.
            let presharedKeys = noPSK ? [:] : try Self.derive(fleet, master: master, token: hierarchy.token)
            // The audit log (every issuance is audited), one account claiming every meter (a plain list, uploaded as a
            // utility would), as our server needs them.
            _ = try await AuditCommand.Init.initialize(
                data: DataDirectoryOptions(dataDirectory: dataDirectory.path), name: root.name, keyName: "bench.metertrust.example/est-\(suffix)", interval: 1000
            )
            let audited = try Context(DataDirectoryOptions(dataDirectory: dataDirectory.path))
            let onboarding = Onboarding(store: store, audit: try audited.auditLog(store: store, token: hierarchy.token))
            _ = try await onboarding.createAccount(
                id: Self.account, displayName: "Bench Utility", operationalCA: operational.name, manufacturers: [manufacturer.name], actor: "bench"
            )
            let upload = try await onboarding.beginUpload(account: Self.account, format: .list, manufacturer: manufacturer.name, actor: "bench")
            for start in stride(from: 0, to: fleet.meters.count, by: 10_000) {
                try await upload.append(Array(fleet.meters[start..<min(start + 10_000, fleet.meters.count)].map { $0.eui64.description + "\n" }.joined().utf8))
            }
            let claimed = try await upload.finish()
            log("\(claimed.claimed) meters claimed by account \(Self.account)")

            // The static answer: a certs-only CMS of one real operational certificate, as our server's answer holds.
            let sample = try await CertificateIssuer(hierarchy: hierarchy).issue(
                IssuanceRequest(csr: fleet.meters[0].operationalRequest, profile: "device-operational", authority: operational.name)
            )
            // One line of base64 (RFC 8951 allows it), which nginx's `return` carries as it is.
            let answer = Data(try CertsOnlyCMS(certificates: [sample.certificate]).derBytes()).base64EncodedString()
            let setupSeconds = Date().timeIntervalSince(setupStarted)

            let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
            let load = ESTLoad(fleet: fleet, concurrency: concurrency, group: group, progress: progress)
            let chain = [manufacturer.certificate]

            // The reference: nginx, its key in software, a certificate of the same type from the same Service CA.
            let nginxKey = P256.Signing.PrivateKey()
            let nginxCertificate = try await Self.serverCertificate(for: nginxKey, service: service, hierarchy: hierarchy)
            var settings = ReferenceNginx.Settings(
                serverChainPEM: try nginxCertificate.pem + service.certificate.pem, serverKeyPEM: nginxKey.pemRepresentation + "\n",
                clientCAsPEM: try manufacturer.certificate.pem + root.certificate.pem,
                answers: ["/.well-known/est/simpleenroll": .certsOnly(base64: answer)]
            )
            settings.workers = ProcessInfo.processInfo.activeProcessorCount
            let nginx = try ReferenceNginx.start(in: directory.appendingPathComponent("nginx"), settings)
            let nginxRun = await load.run(
                target: "nginx", server: try ESTServerAddress(url: "https://127.0.0.1:\(nginx.port)"),
                credential: .identity(chain: chain, trustAnchor: root.certificate), serverPID: nginx.pid
            )
            nginx.stop()

            // Ours: `serve --roles est` on the same deployment, its TLS key in the HSM, the meters claimed by one account.
            let estServer = try ESTServerProcess.start(dataDirectory: dataDirectory, log: directory.appendingPathComponent("serve.log"))
            let estRun = await load.run(
                target: "metertrust est", server: try ESTServerAddress(url: "https://127.0.0.1:\(estServer.port)", label: Self.account),
                credential: .identity(chain: chain, trustAnchor: root.certificate), serverPID: estServer.pid
            )
            estServer.stop()

            // PSK: the same meters, their PSKs, `serve --roles est-psk` (a process of its own, so its memory is its own).
            var pskRun: ESTLoad.Run?
            if !noPSK {
                let pskServer = try ESTServerProcess.start(dataDirectory: dataDirectory, log: directory.appendingPathComponent("serve-psk.log"), role: PSKRole.name)
                pskRun = await load.run(
                    target: "metertrust est-psk", server: try ESTServerAddress(url: "https://127.0.0.1:\(pskServer.port)", label: Self.account),
                    credential: .preSharedKey { presharedKeys[$0]! }, serverPID: pskServer.pid
                )
                pskServer.stop()
            }
            try? await group.shutdownGracefully()

            let report = Report(
                cores: ProcessInfo.processInfo.activeProcessorCount, meters: meters, concurrency: concurrency, setupSeconds: setupSeconds,
                nginx: nginxRun, est: estRun, psk: pskRun, ratio: estRun.enrollmentsPerSecond / max(nginxRun.enrollmentsPerSecond, 1e-9),
                clientPeakMemoryMB: IssuanceBenchmark.peakMemoryMB()
            )
            try Self.print(report, json: output.json)
        }

        static let account = "bench"

        /// Every meter's PSK from `master`, derived in the HSM (about 30 µs each: seconds for 100,000).
        static func derive(_ fleet: SimulatedFleet, master: HSMSecretKey, token: HSMToken) throws -> [EUI64: PresharedKey] {
            var keys: [EUI64: PresharedKey] = [:]
            keys.reserveCapacity(fleet.meters.count)
            for meter in fleet.meters { keys[meter.eui64] = try token.derivePSK(for: meter.eui64, master: master) }
            return keys
        }

        /// A tls-server certificate for 127.0.0.1 from the Service CA, for a key the caller holds (nginx's, in software).
        static func serverCertificate(for key: P256.Signing.PrivateKey, service: CertificateAuthority, hierarchy: CAHierarchy) async throws -> Certificate {
            let signer = try CertificateSigner(authority: service, profile: .tlsServer, settings: hierarchy.settings)
            let publicKey = try PublicKeyInfo(publicKey: Certificate.PublicKey(key.publicKey))
            let (certificate, record) = try await hierarchy.token.perform { _ in
                try signer.signNamed(publicKey, commonName: "127.0.0.1", organizationalUnit: nil, ipAddresses: [IPAddress("127.0.0.1")!])
            }
            try await hierarchy.store.insertCertificate(record)
            return certificate
        }

        static func print(_ report: Report, json: Bool) throws {
            if json {
                try Output.json(report)
                return
            }
            Output.line("EST benchmark (metertrust \(report.version)): \(report.meters) meters, concurrency \(report.concurrency), \(report.cores) cores; set-up \(String(format: "%.1f", report.setupSeconds)) s (untimed)")
            for run in [report.nginx, report.est, report.psk].compactMap({ $0 }) {
                Output.line(String(format: "  %-20@ %8.0f enrollments/s  p50 %6.1f ms  p99 %6.1f ms  server peak %6.1f MB  (%d ok, %d failed, %.1f s)", run.target as NSString, run.enrollmentsPerSecond, run.p50Milliseconds, run.p99Milliseconds, run.serverPeakMemoryMB, run.succeeded, run.failed, run.seconds))
                Output.line(String(format: "  %-20@ CPU per enrollment: server %.0f µs, client %.0f µs", "" as NSString, run.serverCPUMicrosecondsPerEnrollment, run.clientCPUMicrosecondsPerEnrollment))
                if let failure = run.firstFailure { Output.line("    first failure: \(failure)") }
            }
            if let ratio = report.ratio { Output.line(String(format: "  ratio to nginx:        %.2f", ratio)) }
            Output.line(String(format: "  client peak memory: %.1f MB", report.clientPeakMemoryMB))
        }
    }
}
