import Crypto
import Foundation
import MeterTrustCore
import MeterTrustStore
import X509

/// Bounds of one upload. The defaults take a 1,000,000-meter batch with room to spare.
public struct EnrollmentLimits: Sendable, Hashable {
    public var maximumMeters: Int
    public var maximumBytes: Int
    /// Entries staged per store transaction.
    public var chunkSize: Int
    /// Problems named in a refusal (the first one decides its code).
    public var problemsReported: Int

    public init(maximumMeters: Int = 1_100_000, maximumBytes: Int = 256 << 20, chunkSize: Int = 10_000, problemsReported: Int = 10) {
        self.maximumMeters = maximumMeters
        self.maximumBytes = maximumBytes
        self.chunkSize = max(1, chunkSize)
        self.problemsReported = max(1, problemsReported)
    }
}

/// What an upload did.
public struct EnrollmentUploadResult: Sendable, Hashable, Codable {
    public var upload: String
    public var account: String
    public var manufacturer: String
    public var format: EnrollmentUploadRecord.Format
    public var batch: String?
    /// Entries the upload listed.
    public var meters: Int64
    public var claimed: Int64
    public var alreadyHeld: Int64
    public var conflicts: Int64
    /// The first conflicting meters (at most ``Onboarding/conflictsNamed``), each held by another account.
    public var conflictingMeters: [String]
}

/// Progress of an upload: the phase (`staging`, `checking`, `committing`) and the entries done so far.
public typealias EnrollmentProgress = @Sendable (_ phase: String, _ done: Int64) -> Void

/// One upload in progress: fed the body in pieces of any size (``append(_:)``), parsed as it streams, staged in
/// chunks of ``EnrollmentLimits/chunkSize``; ``finish()`` verifies (signature, header, then the store's checks over
/// the staged rows) and commits, or discards and throws. A refused or abandoned upload leaves no claim.
public actor EnrollmentUploadSession {
    public nonisolated let id: String
    public nonisolated let account: String
    public nonisolated let manufacturer: String
    public nonisolated let format: EnrollmentUploadRecord.Format

    /// The registered Manufacturer Device CA a manifest must be signed by.
    struct Signer: Sendable {
        let certificate: Certificate
        let certificateSerial: String
        let certificateSHA256: String
        let signature: [UInt8]
    }

    private enum Parser {
        case list(PlainListParser)
        case manifest(ManifestStreamParser)
    }

    private let onboarding: Onboarding
    private let actor: String
    private let signer: Signer?
    private let progress: EnrollmentProgress?
    private var parser: Parser
    private var sha256 = SHA256()
    private var sha384: SHA384?
    private var pending: [ParsedEnrollmentEntry] = []
    private var parsed: Int64 = 0
    private var bytes = 0
    private var closed = false

    init(onboarding: Onboarding, record: EnrollmentUploadRecord, signer: Signer?, progress: EnrollmentProgress?) {
        self.onboarding = onboarding
        self.id = record.id
        self.account = record.account
        self.manufacturer = record.manufacturer
        self.format = record.format
        self.actor = record.actor
        self.signer = signer
        self.progress = progress
        switch record.format {
        case .list: parser = .list(PlainListParser())
        case .manifest: parser = .manifest(ManifestStreamParser())
        }
        if let signer, P384.Signing.PublicKey(signer.certificate.publicKey) != nil { sha384 = SHA384() }
        pending.reserveCapacity(onboarding.limits.chunkSize)
    }

    /// Feeds the next piece of the body. A refusal (malformed entry, too large) discards the upload and throws.
    public func append(_ chunk: [UInt8]) async throws {
        guard !closed else { throw OnboardingError(.invalidArgument, "upload \(id) is finished: begin a new upload") }
        do {
            bytes += chunk.count
            guard bytes <= onboarding.limits.maximumBytes else {
                throw OnboardingError(
                    .uploadTooLarge, "the upload is larger than \(onboarding.limits.maximumBytes >> 20) MiB: split the list into several uploads"
                )
            }
            if signer != nil {
                if sha384 != nil { sha384!.update(data: chunk) } else { sha256.update(data: chunk) }
            }
            try chunk.withUnsafeBufferPointer { buffer in
                switch parser {
                case .list(var list):
                    try list.feed(buffer, into: &pending)
                    parser = .list(list)
                case .manifest(var manifest):
                    try manifest.feed(buffer, into: &pending)
                    parser = .manifest(manifest)
                }
            }
            if pending.count >= onboarding.limits.chunkSize { try await stagePending() }
        } catch {
            await refuse(error)
            throw error
        }
    }

    /// Feeds a whole body (a convenience for callers holding it in memory or a file), in pieces of 1 MiB.
    public func append(contentsOf data: Data) async throws {
        var start = data.startIndex
        while start < data.endIndex {
            let end = data.index(start, offsetBy: 1 << 20, limitedBy: data.endIndex) ?? data.endIndex
            try await append([UInt8](data[start..<end]))
            start = end
        }
    }

    /// Ends the body: verifies and commits, or discards and throws the refusal.
    public func finish() async throws -> EnrollmentUploadResult {
        guard !closed else { throw OnboardingError(.invalidArgument, "upload \(id) is finished: begin a new upload") }
        do {
            switch parser {
            case .list(var list):
                try list.finish(into: &pending)
                parser = .list(list)
            case .manifest(var manifest):
                try manifest.finish(into: &pending)
                parser = .manifest(manifest)
            }
            try await stagePending()
            var batch: String?
            if case .manifest(let manifest) = parser { batch = try verify(manifest) }
            guard parsed > 0 else { throw OnboardingError(.malformedList, "the upload lists no meter") }
            progress?("checking", parsed)
            let problems = try await onboarding.store.check(upload: id, limit: onboarding.limits.problemsReported)
            if let first = problems.first { throw refusal(first, more: problems.count - 1) }
            progress?("committing", parsed)
            let counts = try await onboarding.store.commit(upload: id, at: onboarding.clock.now())
            closed = true
            return try await onboarding.committed(upload: id, account: account, manufacturer: manufacturer, format: format, batch: batch, meters: parsed, counts: counts, actor: actor)
        } catch {
            await refuse(error)
            throw error
        }
    }

    /// Gives the upload up: its staged entries are discarded, nothing is claimed.
    public func abandon() async {
        await refuse(OnboardingError(.invalidArgument, "the upload was abandoned"))
    }

    private func stagePending() async throws {
        guard !pending.isEmpty else { return }
        guard parsed + Int64(pending.count) <= Int64(onboarding.limits.maximumMeters) else {
            throw OnboardingError(
                .uploadTooLarge, "the upload lists more than \(onboarding.limits.maximumMeters) meters: split it into several uploads"
            )
        }
        // The store's position of an entry is its place: the line of a list, the 1-based index in a manifest.
        for start in stride(from: 0, to: pending.count, by: onboarding.limits.chunkSize) {
            let slice = pending[start..<min(start + onboarding.limits.chunkSize, pending.count)]
            let entries = slice.map { EnrollmentEntry(eui64: $0.eui64, certificateSHA256: $0.certificateSHA256, position: Int64($0.place)) }
            try await onboarding.store.stage(upload: id, entries: entries)
        }
        parsed += Int64(pending.count)
        pending.removeAll(keepingCapacity: true)
        progress?("staging", parsed)
    }

    /// The manifest's header and detached signature against the registered CA; returns the batch it names.
    private func verify(_ manifest: ManifestStreamParser) throws -> String? {
        guard let signer else { throw OnboardingError(.badManifestSignature, "an enrollment manifest needs its detached signature (enrollment-manifest.json.sig)") }
        let header = manifest.header
        guard header["format"]?.string == EnrollmentManifest.formatName, header["version"]?.integer == 1 else {
            throw OnboardingError(.malformedManifest, "this is not a \(EnrollmentManifest.formatName) version 1 document: upload the factory's enrollment-manifest.json")
        }
        guard manifest.sawMeters else { throw OnboardingError(.malformedManifest, "the enrollment manifest has no meters array") }
        guard header["count"]?.integer == manifest.meterCount else {
            throw OnboardingError(
                .malformedManifest, "the enrollment manifest says count \(header["count"]?.integer.map(String.init) ?? "none") but lists \(manifest.meterCount) meters: upload the file the factory wrote, unchanged"
            )
        }
        guard header["manufacturer"]?.string == manufacturer else {
            throw OnboardingError(
                .manufacturerNotAccepted, "the enrollment manifest is of manufacturer \(header["manufacturer"]?.string ?? "none"), not \(manufacturer): name the manufacturer that made the batch"
            )
        }
        guard manifest.authority["serial"]?.string?.lowercased() == signer.certificateSerial,
            manifest.authority["certificateSHA256"]?.string?.lowercased() == signer.certificateSHA256
        else {
            throw OnboardingError(
                .badManifestSignature, "the enrollment manifest names another manufacturer CA certificate than the one registered for \(manufacturer): it was not made by this platform's CA"
            )
        }
        guard Self.isValid(signature: signer.signature, sha256: sha256, sha384: sha384, key: signer.certificate.publicKey) else {
            throw OnboardingError(
                .badManifestSignature, "the enrollment manifest's signature does not verify with manufacturer CA \(manufacturer)'s key: the file was changed or signed by another key; upload the factory's files unchanged"
            )
        }
        return header["batch"]?.string
    }

    static func isValid(signature: [UInt8], sha256: SHA256, sha384: SHA384?, key: Certificate.PublicKey) -> Bool {
        if let sha384, let key = P384.Signing.PublicKey(key), let signature = try? P384.Signing.ECDSASignature(derRepresentation: signature) {
            return key.isValidSignature(signature, for: sha384.finalize())
        }
        if let key = P256.Signing.PublicKey(key), let signature = try? P256.Signing.ECDSASignature(derRepresentation: signature) {
            return key.isValidSignature(signature, for: sha256.finalize())
        }
        return false
    }

    private func place(_ position: Int64) -> String {
        format == .list ? "line \(position)" : "meters[\(position - 1)]"
    }

    private func refusal(_ problem: EnrollmentProblem, more: Int) -> OnboardingError {
        let tail = more > 0 ? " (and \(more) more problem\(more == 1 ? "" : "s"))" : ""
        let at = "\(place(problem.position)): meter \(problem.eui64)"
        switch problem.kind {
        case .unknownMeter:
            return OnboardingError(.unknownMeter, "\(at) has no device identity certificate on this platform (mistyped, or not made by a registered manufacturer): correct or remove it\(tail); nothing was claimed")
        case .otherManufacturer:
            return OnboardingError(.otherManufacturer, "\(at) was made by \(problem.detail ?? "another manufacturer"), not \(manufacturer): list it in an upload for its own manufacturer\(tail); nothing was claimed")
        case .fingerprintMismatch:
            return OnboardingError(.fingerprintMismatch, "\(at): the listed certificateSHA256 is not the stored device identity certificate's: upload the factory's manifest unchanged\(tail); nothing was claimed")
        case .listedTwice:
            return OnboardingError(.meterListedTwice, "\(at) is listed twice: list each meter once\(tail); nothing was claimed")
        }
    }

    /// Discards the staged entries (once) and audits the refusal.
    private func refuse(_ error: any Error) async {
        guard !closed else { return }
        closed = true
        try? await onboarding.store.discard(upload: id, at: onboarding.clock.now())
        await onboarding.refused(upload: id, account: account, manufacturer: manufacturer, format: format, error: error, actor: actor)
    }
}
