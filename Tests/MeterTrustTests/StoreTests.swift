import Foundation
import MeterTrustStore
import Testing

@Suite("SQLite store")
struct StoreTests {
    static func record(issuer: String = "acme", serial: String, eui64: String? = nil) -> CertificateRecord {
        CertificateRecord(
            issuer: issuer, serial: serial, profile: "device-identity", subject: "", eui64: eui64,
            notBefore: Date(timeIntervalSince1970: 1_800_000_000), notAfter: Date(timeIntervalSince1970: 253_402_300_799),
            fingerprintSHA256: String(repeating: "ab", count: 32), der: [0x30, 0x00]
        )
    }

    /// Registers CA `name` (serial look-ups search the certificates of registered CAs).
    static func register(_ name: String, role: CertificateAuthorityRole, in store: SQLiteStore) async throws {
        let authority = CertificateAuthorityRecord(
            name: name, role: role, parent: nil, keyLabel: "k-\(name)", keyID: "01", curve: "P-256", certificateSerial: "ca"
        )
        try await store.insertCertificateAuthority(authority, certificate: record(issuer: name, serial: "ca"))
    }

    @Test("a new store is migrated and in WAL mode")
    func migratedAndWAL() async throws {
        let store = try await TestEnvironment.makeStore()
        #expect(
            try await store.appliedMigrations()
                == ["0001-certificates-and-authorities", "0002-factory-batches", "0003-audit-log", "0004-quorum", "0005-key-custody"]
        )
        #expect(try await store.journalMode() == "wal")
        try await store.migrate()  // idempotent
        #expect(try await store.appliedMigrations().count == 5)
    }

    @Test("migration 0005 removes the backup documents that earlier versions kept in executed backup.export requests, and keeps the rest of each outcome")
    func migrationRemovesStoredBackups() async throws {
        let path = TestEnvironment.temporaryDirectory().appendingPathComponent("old.sqlite").path
        do {
            let store = try SQLiteStore(path: path)
            try await store.migrate()
        }
        // Turn it back into a store at 0004 holding what 0004 stored: the backup document inside the outcome.
        let old = """
            DELETE FROM grdb_migrations WHERE identifier = '0005-key-custody';
            ALTER TABLE backup_key DROP COLUMN so_pin_shares;
            INSERT INTO admin_requests (id, document, operation, requester, created_at, expires_at, state, outcome)
                VALUES ('r1', x'7b7d', 'backup.export', 'alice', 0, 1, 'executed', '{"backup":"{\\"keys\\":[{\\"wrapped\\":\\"AAAA\\"}]}","keys":"north"}'),
                       ('r2', x'7b7d', 'ca.create', 'alice', 0, 1, 'executed', '{"backup":"kept: not an export","ca":"x"}');
            """
        let downgraded = try TestEnvironment.run("sqlite3", [path, old])
        try #require(downgraded.status == 0, "\(downgraded.stderr)")
        let store = try SQLiteStore(path: path)
        try await store.migrate()
        let export = try #require(try await store.adminRequest(id: "r1"))
        #expect(export.outcome == #"{"keys":"north"}"#)
        #expect(try await store.adminRequest(id: "r2")?.outcome == #"{"backup":"kept: not an export","ca":"x"}"#)
        #expect(try await store.backupKey() == nil)
    }

    @Test("records round-trip, dates and the year-9999 notAfter included")
    func roundTrip() async throws {
        let store = try await TestEnvironment.makeStore()
        try await Self.register("acme", role: .manufacturer, in: store)
        let record = Self.record(serial: "0102", eui64: "0024befffe800001")
        try await store.insertCertificate(record)
        let read = try #require(try await store.certificate(issuer: "acme", serial: "0102"))
        #expect(read.eui64 == record.eui64)
        #expect(read.notAfter == record.notAfter)
        #expect(read.der == record.der)
        #expect(try await store.certificates(serial: "0102").count == 1)
    }

    @Test("a serial is unique per issuer, by constraint")
    func rejectDuplicateSerialPerIssuer() async throws {
        let store = try await TestEnvironment.makeStore()
        try await Self.register("acme", role: .manufacturer, in: store)
        try await Self.register("other-ca", role: .operational, in: store)
        try await store.insertCertificate(Self.record(serial: "7f01"))
        let error = await #expect(throws: StoreError.self) { try await store.insertCertificate(Self.record(serial: "7f01")) }
        #expect(error?.code == .duplicate)
        try await store.insertCertificate(Self.record(issuer: "other-ca", serial: "7f01"))
        #expect(try await store.certificates(serial: "7f01").count == 2)
    }

    @Test("a batch is one transaction: a duplicate inside stores nothing")
    func rejectBatchWithDuplicateAtomically() async throws {
        let store = try await TestEnvironment.makeStore()
        let batch = [Self.record(serial: "01"), Self.record(serial: "02"), Self.record(serial: "01")]
        let error = await #expect(throws: StoreError.self) { try await store.insertCertificates(batch) }
        #expect(error?.code == .duplicate, "\(error?.code.description ?? "no error"): \(error?.message ?? "")")
        #expect(try await store.certificateCount(issuer: nil) == 0)
    }

    @Test("certificate authorities: one root, unique names, stored with their certificate")
    func authorities() async throws {
        let store = try await TestEnvironment.makeStore()
        let root = CertificateAuthorityRecord(
            name: "root", role: .root, parent: nil, keyLabel: "k-root", keyID: "01", curve: "P-256", certificateSerial: "aa"
        )
        try await store.insertCertificateAuthority(root, certificate: Self.record(issuer: "root", serial: "aa"))
        #expect(try await store.certificateAuthority(named: "root")?.role == .root)
        let secondRoot = CertificateAuthorityRecord(
            name: "root2", role: .root, parent: nil, keyLabel: "k-root2", keyID: "02", curve: "P-256", certificateSerial: "bb"
        )
        let error = await #expect(throws: StoreError.self) {
            try await store.insertCertificateAuthority(secondRoot, certificate: Self.record(issuer: "root2", serial: "bb"))
        }
        // Refused by the one-root unique index.
        #expect(error?.code == .duplicate, "\(error?.code.description ?? "no error"): \(error?.message ?? "")")
        // The refused CA's certificate was rolled back with it.
        #expect(try await store.certificate(issuer: "root2", serial: "bb") == nil)
        #expect(try await store.certificateAuthorities().map(\.name) == ["root"])
    }
}
