import Foundation
import MeterTrustStore
import MeterTrustStorePostgres
import MeterTrustStoreSQLite
import Testing

/// A store backend under test: a name and a factory of fresh, empty, migrated stores. Every backend in ``all`` must
/// pass ``StoreConformanceTests``; a new backend (PostgreSQL) adds itself here and to nothing else.
struct StoreBackend: Sendable, CustomTestStringConvertible {
    let name: String
    let make: @Sendable () async throws -> any MeterTrustStore
    /// A second, independent handle on the same database (its own connections): what another MeterTrust node sees.
    let reopen: @Sendable (any MeterTrustStore) async throws -> any MeterTrustStore

    var testDescription: String { name }

    static let sqlite = StoreBackend(name: "SQLite") {
        try await TestEnvironment.makeStore()
    } reopen: { store in
        try SQLiteStore(path: (store as! SQLiteStore).path)
    }

    static let postgres = StoreBackend(name: "PostgreSQL") {
        try await TestPostgres.makeStore()
    } reopen: { store in
        try PostgresStore(
            location: (store as! PostgresStore).location, password: TestPostgres.cluster.password,
            options: .init(maximumConnections: 4, operationTimeout: .seconds(300))
        )
    }

    static let all: [StoreBackend] = [.sqlite, .postgres]
}

/// What every store must do, whatever its database: the constraints the domain relies on (serial per issuer, one
/// device identity per meter, one approval per custodian per request, run once), each constraint kind reported by its
/// own code, and the same answers under concurrency. Backend-specific behaviour (files, WAL, migrating old files, raw
/// SQL) is in ``StoreTests``.
@Suite("Store conformance")
struct StoreConformanceTests {
    static let notBefore = Date(timeIntervalSince1970: 1_800_000_000)

    static func certificate(
        issuer: String = "acme", serial: String, kind: CertificateRecord.Kind = .deviceIdentity, eui64: String? = nil,
        batch: String? = nil, position: Int64? = nil, shard: Int? = nil
    ) -> CertificateRecord {
        CertificateRecord(
            issuer: issuer, serial: serial, profile: kind == .authority ? "manufacturer-ca" : kind.rawValue, kind: kind, subject: "",
            eui64: eui64, notBefore: notBefore, notAfter: Date(timeIntervalSince1970: 253_402_300_799),
            fingerprintSHA256: String(repeating: "ab", count: 32), der: [0x30, 0x03, 0x02, 0x01, 0x01], batch: batch, batchPosition: position,
            shard: shard
        )
    }

    /// Registers CA `name` (issued by itself) with its own certificate.
    static func register(_ name: String, role: String = "manufacturer", parent: String? = nil, in store: any MeterTrustStore) async throws {
        let authority = CertificateAuthorityRecord(
            name: name, roleName: role, parent: parent, keyLabel: "k-\(name)", keyID: "01", curve: "P-256", certificateSerial: "ca-\(name)"
        )
        try await store.insertCertificateAuthority(authority, certificate: certificate(issuer: parent ?? name, serial: "ca-\(name)", kind: .authority))
    }

    static func custodian(_ name: String, role: String = "security-officer") -> CustodianRecord {
        CustodianRecord(
            name: name, role: role, certificateDER: Array(name.utf8),
            fingerprintSHA256: name.utf8.map { String(format: "%02x", $0) }.joined().padding(toLength: 64, withPad: "0", startingAt: 0)
        )
    }

    static func request(_ id: String, operation: String = "ca.create") -> AdminRequestRecord {
        AdminRequestRecord(
            id: id, document: Array("{\"id\":\"\(id)\"}".utf8), operation: operation, requester: "alice", createdAt: notBefore,
            expiresAt: notBefore.addingTimeInterval(3600)
        )
    }

    /// A store with the quorum bootstrapped: custodians alice, bob, carol (security officers) and one policy.
    static func bootstrapped(_ backend: StoreBackend) async throws -> any MeterTrustStore {
        let store = try await backend.make()
        try await store.bootstrapQuorum(
            custodians: ["alice", "bob", "carol"].map { custodian($0) },
            policies: [QuorumPolicyRecord(operationClass: "ca-key-create", required: 2, approverRoles: ["security-officer"], requesterMayApprove: false)]
        )
        return store
    }

    /// The code of the store error `body` throws; nil (and a recorded issue) if it throws none or another error.
    static func code(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> StoreError.Code? {
        let error = await #expect(throws: StoreError.self, sourceLocation: sourceLocation) { try await body() }
        return error?.code
    }

    // MARK: Certificates

    @Test("a certificate is stored and found again as it was, dates and the year-9999 notAfter included", arguments: StoreBackend.all)
    func certificateRoundTrip(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("acme", in: store)
        let record = Self.certificate(serial: "0102", eui64: "0024befffe800001")
        try await store.insertCertificate(record)
        let read = try #require(try await store.certificate(issuer: "acme", serial: "0102"))
        #expect(read.eui64 == record.eui64 && read.kind == .deviceIdentity && read.profile == record.profile)
        #expect(read.notBefore == record.notBefore && read.notAfter == record.notAfter)
        #expect(read.der == record.der && read.fingerprintSHA256 == record.fingerprintSHA256)
        #expect(try await store.certificates(serial: "0102").map(\.issuer) == ["acme"])
        #expect(try await store.certificate(issuer: "acme", serial: "0103") == nil)
        #expect(try await store.certificate(issuer: "other", serial: "0102") == nil)
        #expect(try await store.certificateCount(issuer: "acme") == 2)  // its own certificate and this one
        #expect(try await store.certificateCount(issuer: nil) == 2)
    }

    @Test("shards survive the round trip: each certificate's shard on every insert path and every read, each CA's shard count (default 256)", arguments: StoreBackend.all)
    func shardRoundTrip(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        // CAs with their counts: the default, the least and the most; their own certificates in given shards.
        try await store.insertCertificateAuthority(
            CertificateAuthorityRecord(name: "root", roleName: "root", parent: nil, keyLabel: "k-root", keyID: "01", curve: "P-256", certificateSerial: "01"),
            certificate: Self.certificate(issuer: "root", serial: "01", kind: .authority, shard: 1)
        )
        for (name, count, shard, serial) in [("acme", 4096, 255, "c1"), ("north", 1, 7, "c2")] {
            try await store.insertCertificateAuthority(
                CertificateAuthorityRecord(
                    name: name, roleName: name == "acme" ? "manufacturer" : "operational", parent: "root", keyLabel: "k-\(name)", keyID: "02",
                    curve: "P-256", certificateSerial: serial, shardCount: count
                ),
                certificate: Self.certificate(issuer: "root", serial: serial, kind: .authority, shard: shard)
            )
        }
        #expect(try await store.certificateAuthority(named: "root")?.shardCount == 256)
        #expect(try await store.certificateAuthority(named: "acme")?.shardCount == 4096)
        #expect(try await store.certificateAuthorities().map(\.shardCount).sorted() == [1, 256, 4096])
        // One certificate per insert path, each in a shard of its own (0, the largest a CA may have, others).
        try await store.insertCertificate(Self.certificate(serial: "a1", kind: .service, shard: 0))
        try await store.insertCertificates([Self.certificate(serial: "a2", kind: .service, shard: 4095), Self.certificate(serial: "a3", kind: .service, shard: 12)])
        _ = try await store.beginBatch(BatchRecord(id: "b1", manufacturer: "acme", manifestSHA256: "aa", meterCount: 2))
        let identities = [
            Self.certificate(serial: "a4", eui64: "0024befffe800001", batch: "b1", position: 1, shard: 4000),
            Self.certificate(serial: "a5", eui64: "0024befffe800002", batch: "b1", position: 2, shard: 3),
        ]
        #expect(try await store.insertDeviceIdentities(identities) == [.stored, .stored])
        for (serial, shard) in ["a1": 0, "a2": 4095, "a3": 12, "a4": 4000, "a5": 3] {
            #expect(try await store.certificate(issuer: "acme", serial: serial)?.shard == shard, "\(serial)")
            #expect(try await store.certificates(serial: serial).map(\.shard) == [shard], "\(serial)")
        }
        #expect(try await store.certificate(issuer: "root", serial: "01")?.shard == 1)
        #expect(try await store.certificate(issuer: "root", serial: "c1")?.shard == 255)
        #expect(try await store.certificate(issuer: "root", serial: "c2")?.shard == 7)
        let listed = try await store.certificates(matching: CertificateFilter(issuer: "acme"), after: nil, limit: 10).certificates
        #expect(listed.map(\.shard) == [0, 4095, 12, 4000, 3])
        #expect(try await store.batchCertificates(batch: "b1", afterPosition: 0, limit: 10).map(\.shard) == [4000, 3])
    }

    @Test("the schema keeps shards in range: a negative shard, a shard count of 0 or above 4096, are check violations", arguments: StoreBackend.all)
    func shardRange(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("acme", in: store)
        #expect(await Self.code { try await store.insertCertificate(Self.certificate(serial: "01", kind: .service, shard: -1)) } == .checkViolation)
        for count in [0, 4097] {
            let authority = CertificateAuthorityRecord(
                name: "x\(count)", roleName: "operational", parent: "acme", keyLabel: "k-x\(count)", keyID: "03", curve: "P-256",
                certificateSerial: "02", shardCount: count
            )
            #expect(await Self.code { try await store.insertCertificateAuthority(authority, certificate: Self.certificate(serial: "02", kind: .authority)) } == .checkViolation)
        }
        #expect(try await store.certificateCount(issuer: "acme") == 1)
        #expect(try await store.certificateAuthorities().map(\.name) == ["acme"])
    }

    @Test("a serial is unique per issuer, by constraint; the same serial under another issuer is allowed", arguments: StoreBackend.all)
    func serialUniquePerIssuer(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("acme", in: store)
        try await Self.register("north", role: "operational", in: store)
        try await store.insertCertificate(Self.certificate(serial: "7f01", kind: .service))
        #expect(await Self.code { try await store.insertCertificate(Self.certificate(serial: "7f01", kind: .service)) } == .serialInUse)
        try await store.insertCertificate(Self.certificate(issuer: "north", serial: "7f01", kind: .service))
        #expect(try await store.certificates(serial: "7f01").map(\.issuer) == ["acme", "north"])
    }

    @Test("several certificates are one transaction: a duplicate inside stores none of them", arguments: StoreBackend.all)
    func certificatesAllOrNone(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("acme", in: store)
        let records = [Self.certificate(serial: "01", kind: .service), Self.certificate(serial: "02", kind: .service), Self.certificate(serial: "01", kind: .service)]
        #expect(await Self.code { try await store.insertCertificates(records) } == .serialInUse)
        #expect(try await store.certificateCount(issuer: "acme") == 1)
    }

    @Test("one device identity per EUI-64; other kinds with the same EUI-64, and CA certificates without one, are not affected", arguments: StoreBackend.all)
    func oneDeviceIdentityPerMeter(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("acme", in: store)
        try await Self.register("globex", in: store)
        let eui = "0024befffe800001"
        try await store.insertCertificate(Self.certificate(serial: "01", eui64: eui))
        // A second identity for the meter, even from another manufacturer CA and with a fresh serial, is refused.
        let second = await #expect(throws: StoreError.self) {
            try await store.insertCertificate(Self.certificate(issuer: "globex", serial: "02", eui64: eui))
        }
        // Its own code (not a serial collision, which an issuer would draw again), and the certificate it has.
        #expect(second?.code == .meterProvisioned)
        #expect(second?.message == "EUI-64 \(eui) is already provisioned (batch none, CA acme, serial 01)")
        // An operational certificate of the same meter is another kind.
        try await store.insertCertificate(Self.certificate(serial: "03", kind: .deviceOperational, eui64: eui))
        // CA certificates carry no EUI-64: any number of them.
        try await Self.register("initech", in: store)
        try await Self.register("umbrella", in: store)
        let found = try await store.deviceIdentities(eui64s: [eui, "0024befffe800002"])
        #expect(found.count == 1)
        #expect(found[eui]?.issuer == "acme" && found[eui]?.serial == "01")
    }

    @Test("device identities in bulk: a meter that has one is skipped and said so, the others are stored", arguments: StoreBackend.all)
    func deviceIdentitiesInBulk(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("acme", in: store)
        try await store.insertCertificate(Self.certificate(serial: "01", eui64: "0024befffe800001"))
        let stored = try await store.insertDeviceIdentities([
            Self.certificate(serial: "02", eui64: "0024befffe800001"),
            Self.certificate(serial: "03", eui64: "0024befffe800002"),
            Self.certificate(serial: "04", eui64: "0024befffe800002"),
        ])
        #expect(stored == [.meterProvisioned, .stored, .meterProvisioned])
        #expect(try await store.certificate(issuer: "acme", serial: "02") == nil)
        #expect(try await store.deviceIdentities(eui64s: ["0024befffe800002"])["0024befffe800002"]?.serial == "03")
        // A serial used twice is not a meter that already has one: the whole call fails and stores nothing.
        #expect(
            await Self.code {
                _ = try await store.insertDeviceIdentities([
                    Self.certificate(serial: "05", eui64: "0024befffe800005"), Self.certificate(serial: "03", eui64: "0024befffe800006"),
                ])
            } == .serialInUse
        )
        #expect(try await store.deviceIdentities(eui64s: ["0024befffe800005"]).isEmpty)
    }

    // MARK: Device keys

    /// A device certificate record whose subject key has digest `key` (16 octets from one seed octet).
    static func keyed(
        _ key: UInt8, serial: String, eui64: String, kind: CertificateRecord.Kind = .deviceIdentity, issuer: String = "acme"
    ) -> CertificateRecord {
        var record = certificate(issuer: issuer, serial: serial, kind: kind, eui64: eui64)
        record.subjectKeyDigest = [UInt8](repeating: key, count: 16)
        return record
    }

    @Test("a device key belongs to one meter: the same meter keeps it (operational certificate, renewal), another meter is refused, naming the owner", arguments: StoreBackend.all)
    func deviceKeyBelongsToOneMeter(_ backend: StoreBackend) async throws {
        // Attacker: a cloned meter (or one lying about who it is) presenting meter 1's key under its own EUI-64.
        let store = try await backend.make()
        try await Self.register("acme", in: store)
        try await Self.register("north", role: "operational", in: store)
        let (owner, clone) = ("0024befffe800001", "0024befffe800002")
        try await store.insertCertificate(Self.keyed(1, serial: "01", eui64: owner))
        // The same meter keeps its key: its operational certificate for the factory key, and a renewal without rekey.
        try await store.insertCertificate(Self.keyed(1, serial: "02", eui64: owner, kind: .deviceOperational, issuer: "north"))
        try await store.insertCertificate(Self.keyed(1, serial: "03", eui64: owner, kind: .deviceOperational, issuer: "north"))
        // Another meter with that key: refused by its own code, naming the meter the key belongs to; nothing stored.
        for kind in [CertificateRecord.Kind.deviceIdentity, .deviceOperational] {
            let refused = await #expect(throws: StoreError.self) {
                try await store.insertCertificate(Self.keyed(1, serial: "04", eui64: clone, kind: kind, issuer: kind == .deviceIdentity ? "acme" : "north"))
            }
            #expect(refused?.code == .keyReused && refused?.message.contains(owner) == true, "\(refused.map(\.message) ?? "no error")")
        }
        #expect(try await store.certificate(issuer: "acme", serial: "04") == nil)
        #expect(try await store.certificate(issuer: "north", serial: "04") == nil)
        #expect(try await store.deviceIdentities(eui64s: [clone]).isEmpty)
        // In a batch: the clone alone is refused, naming the owner; a meter with its own key is stored beside it.
        let outcomes = try await store.insertDeviceIdentities([
            Self.keyed(1, serial: "05", eui64: clone), Self.keyed(3, serial: "06", eui64: "0024befffe800003"),
        ])
        #expect(outcomes == [.keyReused(owner: owner), .stored])
        // Two meters of one batch with one key: the first keeps it.
        let sameRound = try await store.insertDeviceIdentities([
            Self.keyed(7, serial: "07", eui64: "0024befffe800007"), Self.keyed(7, serial: "08", eui64: "0024befffe800008"),
        ])
        #expect(sameRound == [.stored, .keyReused(owner: "0024befffe800007")])
        // A certificate without a meter (a CA's, a server's) claims no key.
        var server = Self.keyed(1, serial: "09", eui64: owner, kind: .service)
        server.eui64 = nil
        try await store.insertCertificate(server)
    }

    @Test("a record skipped because its meter is provisioned claims no key; a refused single insert keeps none either", arguments: StoreBackend.all)
    func skippedRecordsClaimNoKey(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("acme", in: store)
        try await store.insertCertificate(Self.keyed(1, serial: "01", eui64: "0024befffe800001"))
        // Meter 1 again, with a new key 2: skipped, and key 2 stays free.
        #expect(try await store.insertDeviceIdentities([Self.keyed(2, serial: "02", eui64: "0024befffe800001")]) == [.meterProvisioned])
        #expect(await Self.code { try await store.insertCertificate(Self.keyed(4, serial: "03", eui64: "0024befffe800001")) } == .meterProvisioned)
        try await store.insertCertificate(Self.keyed(2, serial: "04", eui64: "0024befffe800002"))
        try await store.insertCertificate(Self.keyed(4, serial: "05", eui64: "0024befffe800004"))
        // A serial collision rolls back the key claim with the certificate.
        #expect(await Self.code { try await store.insertCertificate(Self.keyed(5, serial: "05", eui64: "0024befffe800005")) } == .serialInUse)
        try await store.insertCertificate(Self.keyed(5, serial: "06", eui64: "0024befffe800006"))
    }

    @Test("concurrent certificates of one key for different meters on two nodes: exactly one wins, on every path", arguments: StoreBackend.all)
    func concurrentKeyClaims(_ backend: StoreBackend) async throws {
        let first = try await backend.make()
        try await Self.register("acme", in: first)
        let nodes = [first, try await backend.reopen(first)]
        let store = first
        for round in 0..<16 {
            let key = UInt8(round + 1)
            let winners = try await withThrowingTaskGroup(of: String?.self) { group in
                for meter in 0..<4 {
                    let eui = String(format: "0024befffe%02x%04x", round, meter)
                    let record = Self.keyed(key, serial: String(format: "%02x%02x", round, meter), eui64: eui)
                    let store = nodes[(meter / 2) % 2]
                    group.addTask {
                        // Half through the single insert, half through the batch engine's bulk insert; each on both nodes.
                        if meter % 2 == 0 {
                            do {
                                try await store.insertCertificate(record)
                                return eui
                            } catch let error as StoreError where error.code == .keyReused {
                                return nil
                            }
                        }
                        let outcome = try await store.insertDeviceIdentities([record])
                        return outcome == [.stored] ? eui : nil
                    }
                }
                return try await group.reduce(into: [String]()) { if let eui = $1 { $0.append(eui) } }
            }
            #expect(winners.count == 1, "round \(round): \(winners)")
            // The winner is the meter the key belongs to from now on.
            let outcome = try await store.insertDeviceIdentities([Self.keyed(key, serial: String(format: "%02xff", round), eui64: "0024befffeffffff")])
            #expect(outcome == [.keyReused(owner: winners.first ?? "")])
        }
    }

    // MARK: Listing

    /// A populated store for listings: CAs acme (manufacturer) and north (operational); acme issued device identities
    /// of batches b1 and b2 and a service certificate; north an operational certificate for one of acme's meters.
    /// Certificate `n` was stored at `notBefore + n` hours.
    static func listed(_ backend: StoreBackend) async throws -> any MeterTrustStore {
        let store = try await backend.make()
        try await register("acme", in: store)
        try await register("north", role: "operational", in: store)
        _ = try await store.beginBatch(BatchRecord(id: "b1", manufacturer: "acme", manifestSHA256: "aa", meterCount: 3))
        _ = try await store.beginBatch(BatchRecord(id: "b2", manufacturer: "acme", manifestSHA256: "bb", meterCount: 2))
        func at(_ hours: Int, _ record: CertificateRecord) -> CertificateRecord {
            var record = record
            record.createdAt = notBefore.addingTimeInterval(TimeInterval(hours * 3600))
            return record
        }
        try await store.insertCertificates([
            at(1, certificate(serial: "a1", eui64: "0024befffe800001", batch: "b1", position: 1)),
            at(2, certificate(serial: "a2", eui64: "0024befffe800002", batch: "b1", position: 2)),
            at(3, certificate(serial: "a3", eui64: "0024befffe800003", batch: "b1", position: 3)),
            at(4, certificate(serial: "a4", eui64: "0024befffe800004", batch: "b2", position: 1)),
            at(5, certificate(serial: "a5", eui64: "0024befffe800005", batch: "b2", position: 2)),
            at(6, certificate(serial: "a6", kind: .service)),
            at(7, certificate(issuer: "north", serial: "n1", kind: .deviceOperational, eui64: "0024befffe800002")),
        ])
        return store
    }

    /// Every certificate a listing returns, page after page (`limit` a page), checking that a page never repeats one.
    static func all(
        in store: any MeterTrustStore, _ filter: CertificateFilter, limit: Int = 1000, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> [String] {
        var listed: [String] = []
        var position: CertificateListPosition?
        repeat {
            let page = try await store.certificates(matching: filter, after: position, limit: limit)
            #expect(page.certificates.count <= limit, sourceLocation: sourceLocation)
            listed += page.certificates.map { "\($0.issuer)/\($0.serial)" }
            position = page.next
            if page.next != nil { #expect(page.certificates.count == limit, sourceLocation: sourceLocation) }
        } while position != nil
        #expect(Set(listed).count == listed.count, "a certificate listed twice", sourceLocation: sourceLocation)
        return listed
    }

    @Test("listing certificates: each filter and their combinations select exactly what they name, in issuer-then-serial order", arguments: StoreBackend.all)
    func listingFilters(_ backend: StoreBackend) async throws {
        let store = try await Self.listed(backend)
        let everything = ["acme/a1", "acme/a2", "acme/a3", "acme/a4", "acme/a5", "acme/a6", "acme/ca-acme", "north/ca-north", "north/n1"]
        #expect(try await Self.all(in: store, CertificateFilter()) == everything)
        #expect(try await Self.all(in: store, CertificateFilter(issuer: "north")) == ["north/ca-north", "north/n1"])
        #expect(try await Self.all(in: store, CertificateFilter(issuer: "nobody")) == [])
        #expect(try await Self.all(in: store, CertificateFilter(profile: "device-identity")) == ["acme/a1", "acme/a2", "acme/a3", "acme/a4", "acme/a5"])
        // A meter: its device identity and its operational certificate from another CA.
        #expect(try await Self.all(in: store, CertificateFilter(eui64: "0024befffe800002")) == ["acme/a2", "north/n1"])
        #expect(try await Self.all(in: store, CertificateFilter(eui64: "0024befffe800009")) == [])
        #expect(try await Self.all(in: store, CertificateFilter(batch: "b2")) == ["acme/a4", "acme/a5"])
        let since = Self.notBefore.addingTimeInterval(5 * 3600)
        #expect(try await Self.all(in: store, CertificateFilter(issuedSince: since)) == ["acme/a5", "acme/a6", "north/n1"])
        #expect(try await Self.all(in: store, CertificateFilter(batch: "b1", issuedSince: Self.notBefore.addingTimeInterval(2 * 3600))) == ["acme/a2", "acme/a3"])
        #expect(try await Self.all(in: store, CertificateFilter(issuer: "acme", eui64: "0024befffe800002")) == ["acme/a2"])
        #expect(try await Self.all(in: store, CertificateFilter(issuer: "north", profile: "device-identity")) == [])
        // Listed records are the stored records.
        let page = try await store.certificates(matching: CertificateFilter(eui64: "0024befffe800002", batch: "b1"), after: nil, limit: 10)
        #expect(page.next == nil)
        #expect(page.certificates == [try #require(try await store.certificate(issuer: "acme", serial: "a2"))])
    }

    @Test("listing certificates pages by keyset: pages of any size cover everything once, in the same order, with or without filters", arguments: StoreBackend.all)
    func listingPages(_ backend: StoreBackend) async throws {
        let store = try await Self.listed(backend)
        for filter in [CertificateFilter(), CertificateFilter(issuer: "acme"), CertificateFilter(profile: "device-identity"), CertificateFilter(batch: "b1")] {
            let whole = try await Self.all(in: store, filter)
            for limit in 1...4 { #expect(try await Self.all(in: store, filter, limit: limit) == whole) }
        }
        // Exactly a page: no empty page follows it.
        let two = try await store.certificates(matching: CertificateFilter(batch: "b2"), after: nil, limit: 2)
        #expect(two.certificates.map(\.serial) == ["a4", "a5"] && two.next == nil)
        let first = try await store.certificates(matching: CertificateFilter(), after: nil, limit: 4)
        #expect(first.next == CertificateListPosition(issuer: "acme", serial: "a4"))
        #expect(first.next?.description == "acme/a4" && CertificateListPosition("acme/a4") == first.next)
        // A certificate stored after the first page was read shifts nothing: it appears once, in its place.
        try await store.insertCertificate(Self.certificate(serial: "a0", kind: .service))
        try await store.insertCertificate(Self.certificate(serial: "a45", kind: .service))
        let rest = try await store.certificates(matching: CertificateFilter(), after: first.next, limit: 100)
        #expect(rest.certificates.map(\.serial) == ["a45", "a5", "a6", "ca-acme", "ca-north", "n1"])
        // A position in another CA than the filter's: before it, the whole CA; after it, nothing.
        #expect(try await store.certificates(matching: CertificateFilter(issuer: "north"), after: CertificateListPosition(issuer: "acme", serial: "zz"), limit: 10).certificates.count == 2)
        #expect(try await store.certificates(matching: CertificateFilter(issuer: "acme"), after: CertificateListPosition(issuer: "north", serial: "00"), limit: 10).certificates.isEmpty)
        #expect(try await store.certificates(matching: CertificateFilter(), after: nil, limit: 0).certificates.isEmpty)
        #expect(CertificateListPosition("no-slash") == nil && CertificateListPosition("/01") == nil && CertificateListPosition("acme/") == nil)
    }

    @Test("listing batches: in id order, paged after an id", arguments: StoreBackend.all)
    func listingBatches(_ backend: StoreBackend) async throws {
        let store = try await Self.listed(backend)
        #expect(try await store.batches(after: nil, limit: 10).map(\.id) == ["b1", "b2"])
        #expect(try await store.batches(after: nil, limit: 1).map(\.id) == ["b1"])
        #expect(try await store.batches(after: "b1", limit: 10).map(\.id) == ["b2"])
        #expect(try await store.batches(after: "b2", limit: 10).isEmpty)
        #expect(try await store.batches(after: nil, limit: 10).first?.meterCount == 3)
    }

    // MARK: Authorities

    @Test("certificate authorities: unique names, one root, stored with their certificate or not at all", arguments: StoreBackend.all)
    func authorities(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("root", role: "root", in: store)
        try await Self.register("acme", parent: "root", in: store)
        let acme = try #require(try await store.certificateAuthority(named: "acme"))
        #expect(acme.parent == "root" && acme.keyLabel == "k-acme" && acme.destroyedAt == nil)
        #expect(try await store.certificate(issuer: "root", serial: "ca-acme")?.kind == .authority)
        #expect(await Self.code { try await Self.register("root2", role: "root", in: store) } == .duplicate)
        // The refused CA's certificate was rolled back with it.
        #expect(try await store.certificate(issuer: "root2", serial: "ca-root2") == nil)
        // The same name with a certificate of its own (the same certificate too would be a serial in use).
        let again = CertificateAuthorityRecord(
            name: "acme", roleName: "manufacturer", parent: "root", keyLabel: "k-acme-2", keyID: "02", curve: "P-256", certificateSerial: "ca-acme-2"
        )
        #expect(await Self.code { try await store.insertCertificateAuthority(again, certificate: Self.certificate(issuer: "root", serial: "ca-acme-2", kind: .authority)) } == .duplicate)
        #expect(await Self.code { try await Self.register("acme", parent: "root", in: store) } == .serialInUse)
        // A parent the store does not hold.
        #expect(await Self.code { try await Self.register("orphan", parent: "nowhere", in: store) } == .foreignKey)
        #expect(try await store.certificateAuthorities().map(\.name).sorted() == ["acme", "root"])
        #expect(try await store.certificateAuthority(named: "nowhere") == nil)
    }

    // MARK: Batches

    @Test("batches: begun once, resumed with the same manifest, refused with another; certificates by position", arguments: StoreBackend.all)
    func batches(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("acme", in: store)
        let batch = BatchRecord(id: "b1", manufacturer: "acme", manifestSHA256: "aa", meterCount: 3, createdAt: Self.notBefore)
        #expect(try await store.beginBatch(batch) == batch)
        #expect(try await store.beginBatch(BatchRecord(id: "b1", manufacturer: "acme", manifestSHA256: "aa", meterCount: 3)) == batch)
        #expect(await Self.code { _ = try await store.beginBatch(BatchRecord(id: "b1", manufacturer: "acme", manifestSHA256: "bb", meterCount: 3)) } == .duplicate)
        #expect(await Self.code { _ = try await store.beginBatch(BatchRecord(id: "b2", manufacturer: "nobody", manifestSHA256: "aa", meterCount: 1)) } == .foreignKey)
        #expect(try await store.batch(id: "b2") == nil)

        let records = (1...3).map { Self.certificate(serial: "0\($0)", eui64: "0024befffe80000\($0)", batch: "b1", position: Int64($0)) }
        #expect(try await store.insertDeviceIdentities(Array(records.reversed())) == [.stored, .stored, .stored])
        #expect(try await store.batchCertificateCount(batch: "b1") == 3)
        #expect(try await store.batchCertificates(batch: "b1", afterPosition: 0, limit: 2).map(\.serial) == ["01", "02"])
        #expect(try await store.batchCertificates(batch: "b1", afterPosition: 2, limit: 10).map(\.serial) == ["03"])
        #expect(try await store.deviceIdentities(eui64s: ["0024befffe800002"])["0024befffe800002"]?.batchPosition == 2)

        try await store.completeBatch(id: "b1", at: Self.notBefore.addingTimeInterval(60))
        #expect(try await store.batch(id: "b1")?.completedAt == Self.notBefore.addingTimeInterval(60))
    }

    // MARK: Audit

    @Test(
        "audit entries: concurrent appends from two nodes get unique, contiguous positions, each built on the entry before it",
        arguments: StoreBackend.all
    )
    func auditAppends(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        let nodes = [store, try await backend.reopen(store)]
        #expect(try await store.auditEntryCount() == 0)
        let count = 24
        let positions = try await withThrowingTaskGroup(of: Int64.self) { group in
            for index in 0..<count {
                let store = nodes[index % 2]
                group.addTask {
                    // Each entry records the position of the entry it was built on.
                    try await store.appendAuditEntry { last in Array("after \(last?.position ?? -1)".utf8) }
                }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        #expect(positions.sorted() == (0..<Int64(count)).map { $0 })
        let rows = try await store.auditEntries(after: -1, limit: 100)
        #expect(rows.map(\.position) == (0..<Int64(count)).map { $0 })
        for row in rows { #expect(String(decoding: row.entry, as: UTF8.self) == "after \(row.position - 1)") }
        #expect(try await store.auditEntries(after: 20, limit: 2).map(\.position) == [21, 22])
        #expect(try await store.auditEntryCount() == Int64(count))
        // A builder that refuses appends nothing.
        struct Refused: Error {}
        await #expect(throws: Refused.self) { _ = try await store.appendAuditEntry { _ in throw Refused() } }
        #expect(try await store.auditEntryCount() == Int64(count))
    }

    @Test("audit checkpoints: one per tree size, the first one kept, in size order", arguments: StoreBackend.all)
    func auditCheckpoints(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        #expect(try await store.insertAuditCheckpoint(size: 8, note: "eight") == "eight")
        #expect(try await store.insertAuditCheckpoint(size: 2, note: "two") == "two")
        // The second note for a size is not stored; the caller is handed the first.
        #expect(try await store.insertAuditCheckpoint(size: 8, note: "eight again") == "eight")
        #expect(try await store.auditCheckpoints() == [AuditCheckpointRow(size: 2, note: "two"), AuditCheckpointRow(size: 8, note: "eight")])
    }

    // MARK: Quorum

    @Test("quorum bootstrap happens once; custodians are unique by name and certificate", arguments: StoreBackend.all)
    func bootstrapAndCustodians(_ backend: StoreBackend) async throws {
        let empty = try await backend.make()
        #expect(try await empty.isQuorumBootstrapped() == false)
        let store = try await Self.bootstrapped(backend)
        #expect(try await store.isQuorumBootstrapped())
        #expect(await Self.code { try await store.bootstrapQuorum(custodians: [Self.custodian("dave")], policies: []) } == .duplicate)
        #expect(try await store.custodians().map(\.name) == ["alice", "bob", "carol"])
        #expect(await Self.code { try await store.insertCustodian(Self.custodian("alice")) } == .duplicate)
        var sameCertificate = Self.custodian("erin")
        sameCertificate.fingerprintSHA256 = Self.custodian("alice").fingerprintSHA256
        #expect(await Self.code { try await store.insertCustodian(sameCertificate) } == .duplicate)
        try await store.insertCustodian(Self.custodian("dave", role: "pki-officer"))
        #expect(try await store.custodians().first { $0.name == "dave" }?.role == "pki-officer")
    }

    @Test("policies are set by operation class and replaced; one needing no approval at all is refused by the schema", arguments: StoreBackend.all)
    func policies(_ backend: StoreBackend) async throws {
        let store = try await Self.bootstrapped(backend)
        try await store.setQuorumPolicy(QuorumPolicyRecord(operationClass: "ca-key-create", required: 3, approverRoles: ["security-officer", "pki-officer"], requesterMayApprove: true))
        let policy = try #require(try await store.quorumPolicies().first { $0.operationClass == "ca-key-create" })
        #expect(policy.required == 3 && policy.approverRoles == ["security-officer", "pki-officer"] && policy.requesterMayApprove)
        #expect(
            await Self.code {
                try await store.setQuorumPolicy(QuorumPolicyRecord(operationClass: "custodian", required: 0, approverRoles: ["security-officer"], requesterMayApprove: false))
            } == .checkViolation
        )
        #expect(try await store.quorumPolicies().map(\.operationClass) == ["ca-key-create"])
    }

    @Test("requests and approvals: one approval per custodian per request, none for a request or custodian the store does not hold", arguments: StoreBackend.all)
    func requestsAndApprovals(_ backend: StoreBackend) async throws {
        let store = try await Self.bootstrapped(backend)
        try await store.insertAdminRequest(Self.request("r1"))
        #expect(await Self.code { try await store.insertAdminRequest(Self.request("r1")) } == .duplicate)
        #expect(try await store.adminRequest(id: "r1")?.state == .pending)
        #expect(try await store.adminRequest(id: "r9") == nil)
        try await store.insertApproval(ApprovalRecord(requestID: "r1", custodian: "bob", document: [1]))
        #expect(await Self.code { try await store.insertApproval(ApprovalRecord(requestID: "r1", custodian: "bob", document: [2])) } == .duplicate)
        #expect(await Self.code { try await store.insertApproval(ApprovalRecord(requestID: "r9", custodian: "bob", document: [1])) } == .foreignKey)
        #expect(await Self.code { try await store.insertApproval(ApprovalRecord(requestID: "r1", custodian: "mallory", document: [1])) } == .foreignKey)
        try await store.insertApproval(ApprovalRecord(requestID: "r1", custodian: "carol", document: [3]))
        let approvals = try await store.approvals(requestID: "r1")
        #expect(approvals.map(\.custodian).sorted() == ["bob", "carol"])
        #expect(approvals.first { $0.custodian == "bob" }?.document == [1])

        var later = Self.request("r2")
        later.createdAt = Self.notBefore.addingTimeInterval(10)
        try await store.insertAdminRequest(later)
        #expect(try await store.adminRequests(state: nil, limit: 10).map(\.id) == ["r2", "r1"])
        #expect(try await store.adminRequests(state: .pending, limit: 1).map(\.id) == ["r2"])
        #expect(try await store.adminRequests(state: .executed, limit: 10).isEmpty)
    }

    @Test("a request is claimed once, then finished once; finishing one not being executed is not-found", arguments: StoreBackend.all)
    func claimAndFinish(_ backend: StoreBackend) async throws {
        let store = try await Self.bootstrapped(backend)
        try await store.insertAdminRequest(Self.request("r1"))
        #expect(await Self.code { try await store.finishAdminRequest(id: "r1", state: .executed, outcome: "{}") } == .notFound)
        #expect(try await store.claimAdminRequest(id: "r1", by: "alice", at: Self.notBefore))
        #expect(try await store.claimAdminRequest(id: "r1", by: "bob", at: Self.notBefore) == false)
        #expect(try await store.claimAdminRequest(id: "r9", by: "bob", at: Self.notBefore) == false)
        let claimed = try #require(try await store.adminRequest(id: "r1"))
        #expect(claimed.state == .executing && claimed.executedBy == "alice" && claimed.executedAt == Self.notBefore)
        try await store.finishAdminRequest(id: "r1", state: .executed, outcome: #"{"ca":"east"}"#)
        #expect(try await store.adminRequest(id: "r1")?.outcome == #"{"ca":"east"}"#)
        #expect(try await store.adminRequest(id: "r1")?.state == .executed)
        #expect(await Self.code { try await store.finishAdminRequest(id: "r1", state: .failed, outcome: "{}") } == .notFound)
        #expect(try await store.claimAdminRequest(id: "r1", by: "bob", at: Self.notBefore) == false)
    }

    @Test("concurrent claims of one request on two nodes: exactly one wins", arguments: StoreBackend.all)
    func concurrentClaims(_ backend: StoreBackend) async throws {
        let store = try await Self.bootstrapped(backend)
        let nodes = [store, try await backend.reopen(store)]
        try await store.insertAdminRequest(Self.request("r1"))
        let claimants = (0..<16).map { ["alice", "bob", "carol"][$0 % 3] }
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for (index, claimant) in claimants.enumerated() {
                let store = nodes[index % 2]
                group.addTask { try await store.claimAdminRequest(id: "r1", by: claimant, at: Self.notBefore) }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(wins.filter { $0 }.count == 1, "\(wins)")
        #expect(wins.count == claimants.count)
        #expect(try await store.adminRequest(id: "r1")?.state == .executing)
    }

    @Test("concurrent approvals by the same custodian: one is stored, every other is a duplicate", arguments: StoreBackend.all)
    func concurrentApprovals(_ backend: StoreBackend) async throws {
        let store = try await Self.bootstrapped(backend)
        try await store.insertAdminRequest(Self.request("r1"))
        let outcomes = await withTaskGroup(of: String.self) { group in
            for attempt in 0..<12 {
                group.addTask {
                    do {
                        try await store.insertApproval(ApprovalRecord(requestID: "r1", custodian: "bob", document: [UInt8(attempt)]))
                        return "stored"
                    } catch let error as StoreError {
                        return "\(error.code)"
                    } catch {
                        return "other: \(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(outcomes.sorted() == Array(repeating: "duplicate", count: 11) + ["stored"], "\(outcomes)")
        #expect(try await store.approvals(requestID: "r1").count == 1)
    }

    /// The check a quorum rule hands the store: refuse a removal that would leave fewer than `minimum` active.
    struct LockOut: Error {}

    @Test(
        "two concurrent custodian removals on two nodes that together would break the quorum: exactly one succeeds, the other gets the check's own error",
        arguments: StoreBackend.all
    )
    func concurrentRemovals(_ backend: StoreBackend) async throws {
        let store = try await Self.bootstrapped(backend)
        let nodes = [store, try await backend.reopen(store)]
        let removed = Self.notBefore.addingTimeInterval(5)
        let outcomes = await withTaskGroup(of: String.self) { group in
            for (node, name) in zip(nodes, ["bob", "carol"]) {
                group.addTask {
                    do {
                        try await node.removeCustodian(named: name, at: removed) { custodians in
                            // Slow enough that the two transactions overlap: each read happens before the other's
                            // write commits. Under plain READ COMMITTED both checks then pass and both removals land
                            // (a write skew); the store must not let them.
                            Thread.sleep(forTimeInterval: 0.3)
                            // Alone, each removal leaves two of three: allowed. After the other, it would leave one.
                            guard custodians.filter({ $0.removedAt == nil && $0.name != name }).count >= 2 else { throw LockOut() }
                        }
                        return "removed"
                    } catch is LockOut {
                        return "lock-out"
                    } catch {
                        return "other: \(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(outcomes.sorted() == ["lock-out", "removed"], "\(outcomes)")
        let active = try await store.custodians().filter { $0.removedAt == nil }.map(\.name)
        #expect(active.count == 2 && active.contains("alice"), "\(active)")
        // Every custodian ever registered stays on record.
        #expect(try await store.custodians().count == 3)
    }

    @Test("removing a custodian: not-found for one not registered or already removed; the check runs on the custodians as they are", arguments: StoreBackend.all)
    func removeCustodian(_ backend: StoreBackend) async throws {
        let store = try await Self.bootstrapped(backend)
        #expect(await Self.code { try await store.removeCustodian(named: "mallory", at: Self.notBefore) { _ in } } == .notFound)
        try await store.removeCustodian(named: "bob", at: Self.notBefore) { custodians in
            #expect(custodians.map(\.name) == ["alice", "bob", "carol"])
        }
        #expect(try await store.custodians().first { $0.name == "bob" }?.removedAt == Self.notBefore)
        #expect(await Self.code { try await store.removeCustodian(named: "bob", at: Self.notBefore) { _ in } } == .notFound)
    }

    @Test("the backup key: one per deployment, replaced only as the current one, deleted by label", arguments: StoreBackend.all)
    func backupKey(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        #expect(try await store.backupKey() == nil)
        let key = BackupKeyRecord(label: "backup-1", threshold: 2, shares: [1, 2, 3], keyCheckValue: "abcdef", createdAt: Self.notBefore, securityOfficerPINShares: [4])
        try await store.setBackupKey(key)
        #expect(try await store.backupKey() == key)
        #expect(await Self.code { try await store.setBackupKey(BackupKeyRecord(label: "backup-2", threshold: 2, shares: [], keyCheckValue: "00")) } == .duplicate)
        let next = BackupKeyRecord(label: "backup-2", threshold: 3, shares: [5], keyCheckValue: "012345", createdAt: Self.notBefore)
        #expect(await Self.code { try await store.replaceBackupKey(next, replacing: "backup-0") } == .notFound)
        try await store.replaceBackupKey(next, replacing: "backup-1")
        #expect(try await store.backupKey() == next)
        try await store.deleteBackupKey(label: "backup-1")  // not the current one: nothing happens
        #expect(try await store.backupKey() == next)
        try await store.deleteBackupKey(label: "backup-2")
        #expect(try await store.backupKey() == nil)
    }

    // MARK: Revocation

    @Test("revocation: of a certificate the store holds, once; CA destruction once, its certificates kept", arguments: StoreBackend.all)
    func revocationAndDestruction(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await Self.register("root", role: "root", in: store)
        try await Self.register("acme", parent: "root", in: store)
        try await store.insertCertificate(Self.certificate(serial: "01", eui64: "0024befffe800001"))
        let when = Self.notBefore.addingTimeInterval(100)
        #expect(try await store.revocation(issuer: "root", serial: "ca-acme") == nil)
        try await store.revokeCertificate(issuer: "root", serial: "ca-acme", reason: 1, at: when)
        let revoked = try #require(try await store.revocation(issuer: "root", serial: "ca-acme"))
        #expect(revoked.reason == 1 && revoked.date == when)
        #expect(await Self.code { try await store.revokeCertificate(issuer: "root", serial: "ca-acme", reason: 4, at: when) } == .duplicate)
        #expect(try await store.revocation(issuer: "root", serial: "ca-acme")?.reason == 1)
        #expect(await Self.code { try await store.revokeCertificate(issuer: "root", serial: "ff", reason: 1, at: when) } == .foreignKey)
        try await store.revokeCertificate(issuer: "acme", serial: "01", reason: 4, at: when)
        // Listed in (issuer, serial) order, paged.
        let all = try await store.revocations(after: nil, limit: 10)
        #expect(all == [
            RevocationRecord(issuer: "acme", serial: "01", reason: 4, revokedAt: when),
            RevocationRecord(issuer: "root", serial: "ca-acme", reason: 1, revokedAt: when),
        ])
        #expect(try await store.revocations(after: nil, limit: 1) == [all[0]])
        #expect(try await store.revocations(after: CertificateListPosition(issuer: "acme", serial: "01"), limit: 10) == [all[1]])

        // Bulk: one transaction; a revocation recorded before and a certificate the store does not hold are skipped.
        try await store.insertCertificate(Self.certificate(serial: "02", eui64: "0024befffe800002"))
        try await store.insertCertificate(Self.certificate(serial: "03", eui64: "0024befffe800003"))
        let later = when.addingTimeInterval(60)
        let recorded = try await store.recordRevocations([
            RevocationRecord(issuer: "acme", serial: "01", reason: 1, revokedAt: later),
            RevocationRecord(issuer: "acme", serial: "02", reason: 1, revokedAt: later),
            RevocationRecord(issuer: "acme", serial: "ee", reason: 1, revokedAt: later),
            RevocationRecord(issuer: "acme", serial: "03", reason: 5, revokedAt: later),
        ])
        #expect(recorded == 2)
        #expect(try await store.revocation(issuer: "acme", serial: "01")?.reason == 4, "an earlier revocation stands")
        #expect(try await store.revocation(issuer: "acme", serial: "03")?.reason == 5)
        #expect(try await store.revocation(issuer: "acme", serial: "ee") == nil)
        #expect(try await store.recordRevocations([]) == 0)

        try await store.markCertificateAuthorityDestroyed(named: "acme", at: when)
        #expect(try await store.certificateAuthority(named: "acme")?.destroyedAt == when)
        #expect(await Self.code { try await store.markCertificateAuthorityDestroyed(named: "acme", at: when) } == .notFound)
        #expect(await Self.code { try await store.markCertificateAuthorityDestroyed(named: "nobody", at: when) } == .notFound)
        #expect(try await store.certificate(issuer: "acme", serial: "01") != nil)
    }

    // MARK: Codes

    @Test("every store error code has its own stable name")
    func codeNames() {
        let names = StoreError.Code.allCases.map(\.description)
        #expect(Set(names).count == names.count)
        #expect(
            Set(names) == [
                "duplicate", "serial-in-use", "meter-provisioned", "key-reused", "foreign-key", "check", "not-null", "constraint", "not-found",
                "unavailable", "migration", "corrupt",
            ]
        )
    }
}
