import Crypto
import Foundation
import Logging
import MeterTrustAudit
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore
import X509

/// One published CRL: its DER and what a server says of it (ETag, caching).
public struct PublishedCRL: Sendable {
    public let der: [UInt8]
    /// cRLNumber, hex of its INTEGER content octets.
    public let number: String
    public let thisUpdate: Date
    public let nextUpdate: Date
    /// How many revoked certificates it lists.
    public let entries: Int
    /// A strong ETag: the CRL's number (one number, one document).
    public var etag: String { "\"\(number)\"" }
}

/// Which CRL of a CA: the complete one, or one shard's (the shard its certificates name in their distribution point).
public enum CRLScope: Sendable, Hashable, CustomStringConvertible {
    case complete
    case shard(Int)

    public var description: String {
        switch self {
        case .complete: "complete"
        case .shard(let shard): "shard \(shard)"
        }
    }
}

/// The CRLs of every CA but the root (whose CRL is signed under quorum): the complete CRL and one per shard, each
/// built from the **verified audit log's** revocations (never from revocation rows alone) and signed in the HSM by the
/// CA's own key.
///
/// - **Published on change:** a CRL is rebuilt when its scope gained a revocation since it was built, at most once per
///   ``coalescing`` interval per scope (a million revocations in a row rebuild each shard about once a second, not a
///   million times), so a revocation is in its shard's CRL within ``coalescing`` plus the state's age.
/// - **And on schedule:** rebuilt once half its validity has passed, so a CRL past its nextUpdate is never served.
/// - **Shards fixed at issuance:** a revoked certificate is listed in the shard of its serial under the CA's shard
///   count (``ShardCount``), the same shard whose URI it names: nothing here chooses a shard.
public final class CRLPublisher: @unchecked Sendable {
    public let hierarchy: CAHierarchy
    public let state: VerifiedStateCache
    /// thisUpdate to nextUpdate.
    public let validity: TimeInterval
    public let coalescing: TimeInterval
    let logger: Logger

    private struct Key: Hashable {
        let authority: String
        let scope: CRLScope
    }

    private struct Built {
        let crl: PublishedCRL
        /// The scope's revocation count when built (revocations are only ever added: the count is the scope's version).
        let revocations: Int
        let builtAt: Date
    }

    /// One CA's revocations grouped by shard: the first `count` of its ``SecurityState/revoked`` in log order.
    private struct Grouped {
        var count = 0
        var shards: [Int: [CertificateRevocationList.Entry]] = [:]
    }

    private let lock = NSLock()
    private var built: [Key: Built] = [:]
    private var grouped: [String: Grouped] = [:]
    private var lastNumber: [Key: CRLNumber] = [:]
    private let building = RefreshGateway()

    public init(
        hierarchy: CAHierarchy, state: VerifiedStateCache, validity: TimeInterval = 86_400, coalescing: TimeInterval = 1,
        logger: Logger = Logger(label: "metertrust.crl")
    ) {
        self.hierarchy = hierarchy
        self.state = state
        self.validity = validity
        self.coalescing = coalescing
        self.logger = logger
    }

    /// The current CRL of `authority` for `scope`, rebuilt first if it is missing, stale (see the type) or its scope
    /// changed. ``RevocationError`` if there is no such CA or shard, or the CA is the root.
    public func crl(authority name: String, scope: CRLScope) async throws -> PublishedCRL {
        let key = Key(authority: name, scope: scope)
        let now = Date()
        let state = try await self.state.state()
        if try await isRoot(name) { return try Self.rootCRL(state: state, scope: scope, now: now) }
        if let current = lock.withLock({ built[key] }), now < current.crl.thisUpdate.addingTimeInterval(validity / 2) {
            if now.timeIntervalSince(current.builtAt) < coalescing { return current.crl }
            if try await scopeCount(authority: name, scope: scope, state: state) == current.revocations { return current.crl }
        }
        return try await building.run(key: "\(name)/\(scope)") { [self] in
            // Another request may have rebuilt it meanwhile.
            if let current = lock.withLock({ built[key] }), Date().timeIntervalSince(current.builtAt) < coalescing {
                return current.crl
            }
            return try await rebuild(authority: name, scope: scope, state: state)
        }
    }

    /// Builds and signs `authority`'s CRL for `scope` from `state` now, whatever was built before.
    public func rebuild(authority name: String, scope: CRLScope, state: SecurityState) async throws -> PublishedCRL {
        let authority = try await loadAuthority(name)
        let groups = try group(authority: authority, state: state)
        let entries: [CertificateRevocationList.Entry]
        let crlScope: CertificateRevocationList.Scope?
        switch scope {
        case .complete:
            entries = groups.shards.keys.sorted().flatMap { groups.shards[$0]!.sortedBySerial() }
            crlScope = nil
        case .shard(let shard):
            guard (0..<authority.shardCount.value).contains(shard) else {
                throw RevocationError(.notFound, "CA \(name) has shards 0 to \(authority.shardCount.value - 1), not \(shard)")
            }
            entries = (groups.shards[shard] ?? []).sortedBySerial()
            crlScope = .init(distributionPoint: "\(hierarchy.settings.crlBaseURL)\(name)/\(shard).crl", onlyContainsUserCertificates: true)
        }
        let key = Key(authority: name, scope: scope)
        let thisUpdate = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let number = lock.withLock { () -> CRLNumber in
            var number = CRLNumber(auditSize: state.verifiedSize, thisUpdate: thisUpdate)
            if let last = lastNumber[key], number <= last { number = last.successor }
            lastNumber[key] = number
            return number
        }
        let list = CertificateRevocationList(
            issuer: authority.certificate.subject, authorityKeyIdentifier: try authority.keyIdentifier, number: number, thisUpdate: thisUpdate,
            nextUpdate: thisUpdate.addingTimeInterval(validity), scope: crlScope, entries: entries
        )
        let signingKey = authority.signingKey
        let algorithm: SignatureAlgorithmIdentifier = signingKey.key.curve == .p256 ? .ecdsaWithSHA256 : .ecdsaWithSHA384
        let started = ContinuousClock.now
        let der = try await hierarchy.token.perform { _ in
            try list.signed(algorithm: algorithm) { tbs in try signingKey.signer.signature(for: tbs) }
        }
        let crl = PublishedCRL(der: der, number: number.description, thisUpdate: thisUpdate, nextUpdate: list.nextUpdate, entries: entries.count)
        lock.withLock { built[key] = Built(crl: crl, revocations: entries.count, builtAt: Date()) }
        logger.info(
            "published CRL",
            metadata: [
                "ca": "\(name)", "scope": "\(scope)", "number": "\(number)", "entries": "\(entries.count)", "bytes": "\(der.count)",
                "elapsed": "\(ContinuousClock.now - started)",
            ]
        )
        return crl
    }

    private func scopeCount(authority name: String, scope: CRLScope, state: SecurityState) async throws -> Int {
        let authority = try await loadAuthority(name)
        let groups = try group(authority: authority, state: state)
        switch scope {
        case .complete: return groups.count
        case .shard(let shard): return groups.shards[shard]?.count ?? 0
        }
    }

    /// `authority`'s revocations by shard in `state`: only those recorded since the last call are added (a
    /// revocation is final, so what was grouped stays), so one more revocation costs one insertion, not a regrouping.
    private func group(authority: CertificateAuthority, state: SecurityState) throws -> Grouped {
        let revoked = state.revoked[authority.name] ?? RevokedSerials()
        var groups = lock.withLock { grouped[authority.name] } ?? Grouped()
        // A state older than what was grouped (another cache's): group it afresh.
        if groups.count > revoked.count { groups = Grouped() }
        guard groups.count < revoked.count else { return groups }
        revoked.forEach(from: groups.count) { serial, revocation in
            guard let octets = hexBytes(serial) else { return }
            let entry = CertificateRevocationList.Entry(
                serial: octets, revocationDate: revocation.revokedAt, reason: RevocationReason(rawValue: revocation.reason) ?? .unspecified,
                invalidityDate: revocation.invalidityDate
            )
            groups.shards[authority.shardCount.shard(ofSerial: octets), default: []].append(entry)
        }
        groups.count = revoked.count
        let result = groups
        lock.withLock {
            if (grouped[authority.name]?.count ?? -1) < result.count { grouped[authority.name] = result }
        }
        return result
    }

    private var authorities: [String: CertificateAuthority] = [:]
    private var rootName: String?

    private func isRoot(_ name: String) async throws -> Bool {
        if let rootName = lock.withLock({ rootName }) { return rootName == name }
        guard let root = try await hierarchy.store.certificateAuthorities().first(where: { $0.parent == nil }) else { return false }
        lock.withLock { rootName = root.name }
        return root.name == name
    }

    /// The root's CRL: the one the custodians signed under quorum, as the verified log carries it.
    static func rootCRL(state: SecurityState, scope: CRLScope, now: Date) throws -> PublishedCRL {
        guard case .complete = scope else { throw RevocationError(.notFound, "the root has one CRL, /<root>.crl, not shards") }
        guard let root = state.rootCRL else {
            throw RevocationError(.notFound, "the root's CRL has not been signed yet: custodians sign it under quorum (metertrust admin request crl.sign-root)")
        }
        guard root.nextUpdate > now else {
            throw RevocationError(
                .notFound, "the root's CRL passed its nextUpdate on \(ISO8601DateFormatter().string(from: root.nextUpdate)): custodians must sign a new one (crl.sign-root)"
            )
        }
        return PublishedCRL(der: root.der, number: root.number, thisUpdate: root.thisUpdate, nextUpdate: root.nextUpdate, entries: root.entries)
    }

    private func loadAuthority(_ name: String) async throws -> CertificateAuthority {
        if let loaded = lock.withLock({ authorities[name] }) { return loaded }
        guard let record = try await hierarchy.store.certificateAuthority(named: name) else {
            throw RevocationError(.notFound, "there is no CA named \(DisplayText.escaped(name, limit: 64))")
        }
        guard record.parent != nil else {
            throw RevocationError(.notFound, "the root's CRL is signed under quorum, not published online")
        }
        // A revoked or destroyed CA still publishes (its key may be gone: then it cannot, and says so).
        let authority = try await hierarchy.authority(named: name, toIssue: false)
        lock.withLock { authorities[name] = authority }
        return authority
    }
}

/// One body at a time per key; callers of a key that is busy wait for it.
actor RefreshGateway {
    private var busy: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func run<T: Sendable>(key: String, _ body: @Sendable () async throws -> T) async throws -> T {
        if busy.contains(key) {
            await withCheckedContinuation { waiters[key, default: []].append($0) }
        } else {
            busy.insert(key)
        }
        defer {
            if var queue = waiters[key], !queue.isEmpty {
                let next = queue.removeFirst()
                waiters[key] = queue
                next.resume()
            } else {
                busy.remove(key)
            }
        }
        return try await body()
    }
}

extension [CertificateRevocationList.Entry] {
    /// By serial: the same revocations always give the same list.
    func sortedBySerial() -> [CertificateRevocationList.Entry] {
        sorted { $0.serial.lexicographicallyPrecedes($1.serial) }
    }
}
