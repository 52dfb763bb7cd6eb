import ArgumentParser
import AsyncHTTPClient
import Crypto
import Foundation
import MeterTrustCore
import X509
import MeterTrustPKI
import MeterTrustAdminAPI
import MeterTrustAudit
import MeterTrustQuorum
import NIOCore
import NIOHTTP1
import NIOSSL

/// How a custodian reaches the admin API: URL, their admin certificate and key, and the trust anchor (the root
/// certificate) for the server's certificate. Each defaults to an environment variable.
struct AdminClientOptions: ParsableArguments {
    @Option(help: "Admin API URL (default $METERTRUST_ADMIN_URL).") var server: String?
    @Option(help: "Your admin certificate, PEM (default $METERTRUST_ADMIN_CERT).") var cert: String?
    @Option(help: "Your admin private key, PEM, mode 0600 (default $METERTRUST_ADMIN_KEY).") var key: String?
    @Option(help: "Trust anchor for the server certificate, PEM (default $METERTRUST_ADMIN_TRUST).") var trust: String?

    func resolved(_ value: String?, _ variable: String, _ what: String) throws -> String {
        if let value { return value }
        if let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { return value }
        throw CLIError(code: .usage, "\(what) is not set: pass it or export \(variable)")
    }

    var serverURL: String { get throws { try resolved(server, "METERTRUST_ADMIN_URL", "--server") } }
    var certificatePath: String { get throws { try resolved(cert, "METERTRUST_ADMIN_CERT", "--cert") } }
    var keyPath: String { get throws { try resolved(key, "METERTRUST_ADMIN_KEY", "--key") } }
    var trustPath: String { get throws { try resolved(trust, "METERTRUST_ADMIN_TRUST", "--trust") } }

    /// The custodian's signing key and certificate fingerprint, for approvals.
    func signingIdentity() throws -> (key: P256.Signing.PrivateKey, certificateFingerprint: String) {
        let key = try CustodianKeyFile.load(try keyPath)
        let certificatePEM = try String(contentsOfFile: try certificatePath, encoding: .utf8)
        let der = try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem).toDERBytes()
        return (key, hexString(SHA256.hash(data: der)))
    }
}

/// A person's client key pair for the platform's APIs (a custodian's, an operator's): `NAME.key` (P-256, 0600 PEM,
/// never overwritten) and `NAME.csr` (CN=NAME) in `directory`.
enum ClientKeyPair {
    static func make(name: String, directory: String) throws -> (keyPath: String, csrPath: String) {
        let key = P256.Signing.PrivateKey()
        let keyPath = URL(fileURLWithPath: directory).appendingPathComponent("\(name).key").path
        let csrPath = URL(fileURLWithPath: directory).appendingPathComponent("\(name).csr").path
        guard !FileManager.default.fileExists(atPath: keyPath) else { throw CLIError("\(keyPath) exists; refusing to overwrite a key") }
        try CustodianKeyFile.write(key, to: keyPath)
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(name) }, privateKey: Certificate.PrivateKey(key),
            attributes: CertificateSigningRequest.Attributes()
        )
        try (try csr.serializeAsPEM().pemString + "\n").write(toFile: csrPath, atomically: true, encoding: .utf8)
        return (keyPath, csrPath)
    }

    /// Makes the pair and reports it (`--json`: `{"key","csr"}`), the text line ending with what to do next.
    static func makeAndReport(name: String, directory: String, json: Bool, next: String) throws {
        let (keyPath, csrPath) = try make(name: name, directory: directory)
        if json {
            try Output.json(["key": keyPath, "csr": csrPath])
        } else {
            Output.line("wrote \(keyPath) (mode 0600) and \(csrPath); \(next)")
        }
    }
}

/// A custodian's private key file: PEM (PKCS#8 or SEC1), readable by its owner only.
enum CustodianKeyFile {
    static func load(_ path: String) throws -> P256.Signing.PrivateKey {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let attributes else { throw CLIError(code: .fileSystem, "cannot read the key file \(path)") }
        let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
        guard mode & 0o077 == 0 else {
            throw CLIError("the key file \(path) is readable by others (mode \(String(mode, radix: 8))): run chmod 600 \(path)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let key = try? P256.Signing.PrivateKey(pemRepresentation: text) else {
            throw CLIError("the key file \(path) is not a PEM P-256 private key")
        }
        return key
    }

    static func write(_ key: P256.Signing.PrivateKey, to path: String) throws {
        try SecretFile.write(Array((key.pemRepresentation + "\n").utf8), to: path)
    }
}

/// HTTPS client of the admin API, authenticating with the custodian's admin certificate (TLS 1.3 only).
struct AdminClient {
    let api: APIClient

    var baseURL: String { api.baseURL }

    /// A client whose custodian has first witnessed the audit log (``AuditWitness``): every remote command starts
    /// by checking that the log the server shows extends the one this custodian saw last, and refuses to go on if not.
    static func witnessed(_ options: AdminClientOptions) async throws -> AdminClient {
        let client = try AdminClient(options)
        try await AuditWitness(trustPath: try options.trustPath).check(client)
        return client
    }

    init(_ options: AdminClientOptions) throws {
        api = try APIClient(
            api: "admin API", url: try options.serverURL, certificatePath: try options.certificatePath, keyPath: try options.keyPath,
            trustPath: try options.trustPath
        )
    }

    func send(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil) async throws -> [UInt8] {
        try await api.send(method, path, body: body)
    }

    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try await api.get(path, as: type)
    }

    static func decode<T: Decodable>(_ bytes: [UInt8], as type: T.Type) throws -> T {
        try APIClient.decode(bytes, as: type, api: "admin API")
    }
}

/// HTTPS client of one of the platform's APIs (admin, account), authenticating with a client certificate whose key
/// is a 0600 PEM file (TLS 1.3 only; the server's certificate checked against `trustPath`, the root).
struct APIClient {
    /// The API's name in messages: `admin API`, `account API`.
    let api: String
    let configuration: HTTPClient.Configuration
    let baseURL: String

    init(api: String, url: String, certificatePath: String, keyPath: String, trustPath: String) throws {
        self.api = api
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .file(trustPath)
        do {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) }
        } catch {
            throw CLIError(code: .fileSystem, "cannot read the certificate \(certificatePath): it must be a PEM file (your certificate first, then its chain)")
        }
        let key = try CustodianKeyFile.load(keyPath)
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(600))
        self.configuration = configuration
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        baseURL = url
    }

    /// Sends a request; a non-2xx answer becomes a CLIError carrying the server's problem document.
    func send(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return try await execute(request)
    }

    /// Streams `file` as the body of a POST to `path`, reporting bytes sent against the file's size.
    func upload(
        _ path: String, file: String, headers: [(String, String)], progress: @escaping @Sendable (_ sent: Int, _ total: Int) -> Void
    ) async throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: file) else { throw CLIError(code: .fileSystem, "cannot read \(file)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.intValue ?? 0
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let chunks = FileChunks(handle: handle, size: size, progress: progress)
        request.body = .stream(chunks, length: .known(Int64(size)))
        defer { try? handle.close() }
        return try await execute(request)
    }

    private func execute(_ request: HTTPClientRequest) async throws -> [UInt8] {
        // One client per call, always shut down: the CLI makes a handful of calls.
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let status: HTTPResponseStatus
        let bytes: [UInt8]
        do {
            let response = try await client.execute(request, timeout: .seconds(600))
            status = response.status
            bytes = Array(try await response.body.collect(upTo: 64 << 20).readableBytesView)
            try? await client.shutdown()
        } catch let error as CLIError {
            try? await client.shutdown()
            throw error
        } catch {
            try? await client.shutdown()
            throw CLIError(code: .unreachable, "cannot reach the \(api) at \(baseURL): \(error)")
        }
        guard (200..<300).contains(status.code) else {
            if let error = try? JSONDecoder().decode(AdminAPIMessage.ErrorBody.self, from: Data(bytes)) {
                throw CLIError(code: ErrorCode(rawValue: error.code) ?? .internalError, "the \(api) refused (\(status.code), \(error.code)): \(error.message)")
            }
            throw CLIError(code: .internalError, "the \(api) answered \(status)")
        }
        return bytes
    }

    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try Self.decode(try await send(.GET, path), as: type, api: api)
    }

    static func decode<T: Decodable>(_ bytes: [UInt8], as type: T.Type, api: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch {
            throw CLIError(code: .internalError, "the \(api) sent an answer this metertrust does not understand (\(JSONInput.problem(error, in: "the answer"))): is the server the same version?")
        }
    }
}

/// A file read in 1 MiB pieces, as an upload's body.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let handle: FileHandle
    let size: Int
    let progress: @Sendable (Int, Int) -> Void

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle
        let size: Int
        let progress: @Sendable (Int, Int) -> Void
        var sent = 0

        mutating func next() async throws -> ByteBuffer? {
            guard let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else { return nil }
            sent += data.count
            progress(sent, size)
            return ByteBuffer(bytes: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: handle, size: size, progress: progress) }
}

/// The custodian's CLI as a witness of the audit log (the C2SP witness model; our witnesses are the custodians): it
/// keeps the latest checkpoint it verified, keyed by the log's origin and key (several nodes serve one log), and
/// refuses to go on when the server shows a log that is not consistent with it.
///
/// Checked: the audit signer's certificate chains to the custodian's own trust anchor (the root PEM they were given,
/// never the server's word); the checkpoint is signed by that certificate's key under the log's origin; an RFC 9162
/// consistency proof leads from the saved checkpoint to the new one. Kept in `$METERTRUST_WITNESS_DIR` or
/// `~/.metertrust/witness/`.
struct AuditWitness {
    let trustPath: String

    var directory: URL {
        if let path = ProcessInfo.processInfo.environment["METERTRUST_WITNESS_DIR"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".metertrust/witness")
    }

    func check(_ client: AdminClient) async throws {
        let latest = try AdminClient.decode(try await client.send(.GET, "/v1/audit/checkpoint"), as: AdminAPIMessage.AuditCheckpoint.self)
        let (key, signed) = try await verifiedCheckpoint(latest)
        let file = directory.appendingPathComponent(Self.fileName(origin: signed.checkpoint.origin, key: key))
        if let text = try? String(contentsOf: file, encoding: .utf8) {
            guard let saved = try? SignedCheckpoint(text: text), saved.isValid(for: key, keyName: signed.keyName) else {
                throw CLIError(code: .auditTampered, "the checkpoint you saved in \(file.path) is not signed by this log's audit key: remove it only if you know why it changed")
            }
            let m = saved.checkpoint.size, n = signed.checkpoint.size
            guard m <= n else { throw Self.inconsistent(saved: m, shown: n, "it is shorter than what you verified before: it was truncated") }
            if m == n {
                guard saved.checkpoint.rootHash == signed.checkpoint.rootHash else {
                    throw Self.inconsistent(saved: m, shown: n, "two different signed trees of the same size: it was rewritten")
                }
            } else if m > 0 {
                let evidence = try AdminClient.decode(try await client.send(.GET, "/v1/audit/checkpoint?since=\(m)"), as: AdminAPIMessage.AuditCheckpoint.self)
                let (_, proven) = try await verifiedCheckpoint(evidence)
                let proof = evidence.consistency.compactMap { Data(base64Encoded: $0).map(Array.init) }
                guard proven.checkpoint.size >= n, proof.count == evidence.consistency.count,
                    MerkleTree.verifyConsistency(
                        size1: m, size2: proven.checkpoint.size, root1: saved.checkpoint.rootHash, root2: proven.checkpoint.rootHash, proof: proof
                    )
                else {
                    throw Self.inconsistent(saved: m, shown: proven.checkpoint.size, "no consistency proof leads from yours to it: it was rewritten")
                }
                return try save(proven, to: file)
            }
        }
        try save(signed, to: file)
    }

    private func verifiedCheckpoint(_ message: AdminAPIMessage.AuditCheckpoint) async throws -> (P256.Signing.PublicKey, SignedCheckpoint) {
        guard let der = Data(base64Encoded: message.signerCertificate), let signer = try? Certificate(derEncoded: Array(der)),
            let key = P256.Signing.PublicKey(signer.publicKey)
        else {
            throw CLIError(code: .auditMalformed, "the admin API sent no usable audit-signer certificate")
        }
        let anchor: Certificate
        do {
            anchor = try Certificate(pemEncoded: try String(contentsOfFile: trustPath, encoding: .utf8))
        } catch {
            throw CLIError(code: .fileSystem, "cannot read your trust anchor \(trustPath)")
        }
        do {
            try await ChainVerification.verify(leaf: signer, intermediates: [], root: anchor)
        } catch {
            throw CLIError(code: .auditTampered, "the audit log's signer certificate does not chain to your trust anchor: the server's log cannot be trusted; do not approve anything and tell the other custodians")
        }
        guard let signed = try? SignedCheckpoint(text: message.checkpoint), signed.keyName == signed.checkpoint.origin, signed.isValid(for: key, keyName: signed.keyName) else {
            throw CLIError(code: .auditTampered, "the audit checkpoint the server shows is not signed by the audit key: do not approve anything and tell the other custodians")
        }
        return (key, signed)
    }

    private func save(_ checkpoint: SignedCheckpoint, to file: URL) throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try Data(checkpoint.text.utf8).write(to: file, options: .atomic)
    }

    static func fileName(origin: String, key: P256.Signing.PublicKey) -> String {
        let safe = origin.unicodeScalars.map { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "." || $0 == "-") ? String($0) : "_" }.joined()
        return "\(safe)+\(hexString(SignedCheckpoint.keyID(for: key))).checkpoint"
    }

    static func inconsistent(saved: Int, shown: Int, _ why: String) -> CLIError {
        CLIError(
            code: .auditTampered,
            "the audit log the admin API shows (\(shown) entries) is not consistent with the checkpoint you verified before (\(saved) entries): \(why). Do not approve anything; tell the other custodians"
        )
    }
}
