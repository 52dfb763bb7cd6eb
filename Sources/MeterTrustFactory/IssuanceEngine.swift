import Foundation
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore

/// One meter's request in a batch: its position (line of the CSR list), its EUI-64, its CSR.
public struct IssuanceItem: Sendable {
    public var position: Int64
    public var eui64: EUI64
    public var csr: [UInt8]

    public init(position: Int64, eui64: EUI64, csr: [UInt8]) {
        self.position = position
        self.eui64 = eui64
        self.csr = csr
    }
}

/// Running totals of a batch.
public struct IssuanceCounts: Sendable, Codable, Hashable {
    /// Requests read (lines of the CSR list that name a meter).
    public var requests = 0
    /// Certificates issued and stored by this run.
    public var issued = 0
    /// Meters a previous run of the same batch already issued (a resumed batch).
    public var alreadyIssued = 0
    public var refused = 0

    public init() {}
    public var done: Int { issued + alreadyIssued + refused }
}

/// The issuance engine: checks CSRs and signs on all cores through the PKCS#11 session pool, and stores each round
/// of certificates in one transaction while the next round is being signed.
///
/// A certificate leaves the engine only by being stored: a crash loses at most the signed-but-unstored rounds,
/// which never left the process, and a re-run issues exactly those meters again. A meter is issued at most once
/// because the store keeps device identity certificates unique per EUI-64, and a key serves at most one meter
/// because the store keeps each device key for one EUI-64 (a clone's request is refused, naming the meter).
public struct IssuanceEngine: Sendable {
    public let signer: CertificateSigner
    public let store: any ProvisioningStore
    /// Parallel signers; at most the token's session count is useful.
    public let workers: Int
    public let roundSize: Int

    public init(signer: CertificateSigner, store: any ProvisioningStore, workers: Int, roundSize: Int = 2048) {
        self.signer = signer
        self.store = store
        self.workers = max(1, workers)
        self.roundSize = max(1, roundSize)
    }

    /// Issues every item `next` yields (nil: the end), in rounds. Refusals go to `refused` as they happen; progress
    /// after each round.
    ///
    /// Three things overlap: while the workers sign rounds k and k+1 (queued one after the other, so they never
    /// wait at a round's end), this task reads and pre-checks round k+2, and the store commits round k-1.
    public func run(
        batch: String,
        next: () throws -> IssuanceItem?,
        refused: (Refusal) throws -> Void,
        progress: (IssuanceCounts) -> Void
    ) async throws -> IssuanceCounts {
        var counts = IssuanceCounts()
        /// The round the store is committing: its meters, their certificates, and which the store took.
        var pendingWrite: (items: [IssuanceItem], records: [CertificateRecord], stored: Task<[DeviceIdentityOutcome], any Error>)?
        var templates: TemplateIssuer?

        func settle(_ write: (items: [IssuanceItem], records: [CertificateRecord], stored: Task<[DeviceIdentityOutcome], any Error>)) async throws {
            for (index, outcome) in try await write.stored.value.enumerated() {
                let (item, record) = (write.items[index], write.records[index])
                let reason: String
                switch outcome {
                case .stored:
                    counts.issued += 1
                    continue
                case .meterProvisioned:
                    reason = "EUI-64 \(item.eui64) already has a device identity certificate (it appears twice in this batch); serial \(record.serial) was not stored or released"
                case .keyReused(let owner):
                    // The database's one meter per key: a cloned meter, or one claiming another meter's identity.
                    reason = "the CSR's public key already belongs to meter \(owner) (a cloned meter, or one claiming another's identity): each meter needs its own key; serial \(record.serial) was not stored or released"
                }
                counts.refused += 1
                try refused(Refusal(line: item.position, meter: item.eui64.description, reason: reason))
            }
        }

        /// Reads the next round, sorts out the meters that must not be signed, and lays out the round's certificate
        /// templates (while the workers sign the previous round, so neither costs them time).
        func prepareRound() async throws -> Round? {
            var round: [IssuanceItem] = []
            round.reserveCapacity(roundSize)
            while round.count < roundSize, let item = try next() { round.append(item) }
            if round.isEmpty { return nil }
            counts.requests += round.count
            // Meters already holding a certificate: this batch's own (a resumed run) or another's.
            let existing = try await store.deviceIdentities(eui64s: round.map(\.eui64.description))
            var firstInRound: [EUI64: Int64] = [:]
            var toSign: [IssuanceItem] = []
            toSign.reserveCapacity(round.count)
            for item in round {
                if let entry = existing[item.eui64.description] {
                    if entry.batch == batch && entry.batchPosition == item.position {
                        counts.alreadyIssued += 1
                    } else {
                        counts.refused += 1
                        let reason = entry.batch == batch
                            ? "EUI-64 \(item.eui64) appears twice in this batch; line \(entry.batchPosition ?? 0) was issued"
                            : "EUI-64 \(item.eui64) is already provisioned (batch \(entry.batch ?? "none"), CA \(entry.issuer), serial \(entry.serial))"
                        try refused(Refusal(line: item.position, meter: item.eui64.description, reason: reason))
                    }
                } else if let first = firstInRound[item.eui64] {
                    counts.refused += 1
                    try refused(Refusal(
                        line: item.position, meter: item.eui64.description,
                        reason: "EUI-64 \(item.eui64) appears twice in this batch; line \(first) is issued"
                    ))
                } else {
                    firstInRound[item.eui64] = item.position
                    toSign.append(item)
                }
            }
            // Templates are laid out once per second (their notBefore); rounds within it share them.
            let now = Date()
            if !toSign.isEmpty, !(templates?.isCurrent(at: now) ?? false) {
                templates = try TemplateIssuer.make(signer: signer, now: now)
            }
            return Round(items: toSign, templates: templates)
        }

        progress(counts)  // the progress clock starts now, not after the first round
        // Two rounds queued for the workers at any time: when they finish one, the next is already there.
        let pool = WorkerPool(threads: workers)
        defer { pool.shutdown() }
        var signing: [(items: [IssuanceItem], results: PoolJobResults<Result<CertificateRecord, any Error>>)] = []
        func submit(_ round: Round) { signing.append((round.items, sign(round, batch: batch, on: pool))) }
        while signing.count < 2, let round = try await prepareRound() { submit(round) }

        while !signing.isEmpty {
            let (toSign, job) = signing.removeFirst()
            if let next = try await prepareRound() { submit(next) }
            let results = await job.values()

            var signedItems: [IssuanceItem] = []
            var records: [CertificateRecord] = []
            signedItems.reserveCapacity(toSign.count)
            records.reserveCapacity(toSign.count)
            for (item, result) in zip(toSign, results) {
                switch result {
                case .success(let record):
                    signedItems.append(item)
                    records.append(record)
                case .failure(let error as PKIError):
                    counts.refused += 1
                    try refused(Refusal(line: item.position, meter: item.eui64.description, reason: error.message))
                case .failure(let error):
                    throw error  // an HSM failure stops the batch; a re-run resumes it
                }
            }
            // Store: wait for the previous round, then start this one's transaction.
            if let pendingWrite { try await settle(pendingWrite) }
            let (store, toStore) = (self.store, records)
            pendingWrite = (signedItems, records, Task { try await store.insertDeviceIdentities(toStore) })
            progress(counts)
        }
        if let pendingWrite { try await settle(pendingWrite) }
        progress(counts)
        return counts
    }

    /// The meters of one round that are to be signed, and the certificate templates laid out for it (nil where the
    /// profile has none).
    private struct Round {
        var items: [IssuanceItem]
        var templates: TemplateIssuer?
    }

    /// Queues a round for the workers, each using its own HSM session for the signature: from the
    /// round's certificate templates where the profile has them (device profiles), else through the signer's model
    /// path.
    private func sign(_ round: Round, batch: String, on pool: WorkerPool) -> PoolJobResults<Result<CertificateRecord, any Error>> {
        let signer = self.signer
        let (items, templates) = (round.items, round.templates)
        return pool.submit(count: items.count) { index in
            let item = items[index]
            return Result {
                if let templates {
                    return try templates.signUnstored(csr: item.csr, for: item.eui64, batch: batch, position: item.position)
                }
                return try signer.signUnstored(csr: item.csr, for: item.eui64, batch: batch, position: item.position)
            }
        }
    }
}
