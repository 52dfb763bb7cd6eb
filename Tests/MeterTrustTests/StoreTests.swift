import Foundation
import MeterTrustCore
import MeterTrustStore
@testable import MeterTrustStoreSQLite
import Testing

/// What only the SQLite backend does: its file, WAL, migrating files written by earlier versions, and the mapping of
/// SQLite's constraint codes for constraints the store API never lets a caller reach. What every backend does is in
/// ``StoreConformanceTests``.
@Suite("SQLite store")
struct StoreTests {
    static let migrations = [
        "0001-certificates-and-authorities", "0002-factory-batches", "0003-audit-log", "0004-quorum", "0005-key-custody",
        "0006-certificate-kind", "0007-device-keys", "0008-certificate-listing-indexes", "0009-certificate-shards", "0010-onboarding",
        "0011-preshared-keys",
    ]

    /// SQL that turns a migrated store back into what the migrations before `identifier` left, undoing each later one.
    static let undo: [String: String] = [
        "0005-key-custody": """
            DELETE FROM grdb_migrations WHERE identifier = '0005-key-custody';
            ALTER TABLE backup_key DROP COLUMN so_pin_shares;
            """,
        "0006-certificate-kind": """
            DELETE FROM grdb_migrations WHERE identifier = '0006-certificate-kind';
            DROP INDEX device_identity_per_meter_by_kind;
            ALTER TABLE certificates DROP COLUMN kind;
            CREATE UNIQUE INDEX device_identity_per_meter ON certificates (eui64) WHERE profile = 'device-identity';
            """,
        "0007-device-keys": """
            DELETE FROM grdb_migrations WHERE identifier = '0007-device-keys';
            DROP TABLE device_keys;
            """,
        "0008-certificate-listing-indexes": """
            DELETE FROM grdb_migrations WHERE identifier = '0008-certificate-listing-indexes';
            DROP INDEX certificates_other_per_meter;
            DROP INDEX certificates_by_creation;
            """,
        "0009-certificate-shards": """
            DELETE FROM grdb_migrations WHERE identifier = '0009-certificate-shards';
            ALTER TABLE certificates DROP COLUMN shard;
            ALTER TABLE certificate_authorities DROP COLUMN shard_count;
            """,
        "0010-onboarding": """
            DELETE FROM grdb_migrations WHERE identifier = '0010-onboarding';
            DROP TABLE meter_history; DROP TABLE pending_revocations; DROP TABLE claim_conflicts; DROP TABLE claims;
            DROP TABLE enrollment_staging_repeats; DROP TABLE enrollment_staging; DROP TABLE enrollment_uploads;
            DROP TABLE account_operators; DROP TABLE account_manufacturers; DROP TABLE accounts;
            """,
        "0011-preshared-keys": """
            DELETE FROM grdb_migrations WHERE identifier = '0011-preshared-keys';
            DROP TABLE sealed_psks;
            ALTER TABLE batches DROP COLUMN psk_master_key_label;
            """,
    ]

    /// A store file at the state before migration `identifier`, holding what `rows` inserts (old schema), then closed.
    static func oldStore(before identifier: String, rows: String) async throws -> String {
        let path = TestEnvironment.temporaryDirectory().appendingPathComponent("old.sqlite").path
        do {
            let store = try SQLiteStore(path: path)
            try await store.migrate()
        }
        let later = migrations.drop(while: { $0 != identifier }).reversed()
        let sql = try later.map { try #require(undo[$0], "no undo for \($0)") }.joined(separator: "\n") + "\n" + rows
        let downgraded = try TestEnvironment.run("sqlite3", [path, sql])
        try #require(downgraded.status == 0, "\(downgraded.stderr)")
        return path
    }

    @Test("a new store is migrated and in WAL mode")
    func migratedAndWAL() async throws {
        let store = try await TestEnvironment.makeStore()
        #expect(try await store.appliedMigrations() == Self.migrations)
        #expect(try await store.journalMode() == "wal")
        try await store.migrate()  // idempotent
        #expect(try await store.appliedMigrations() == Self.migrations)
    }

    @Test("migration 0005 removes the backup documents that earlier versions kept in executed backup.export requests, and keeps the rest of each outcome")
    func migrationRemovesStoredBackups() async throws {
        // A store at 0004 holding what 0004 stored: the backup document inside the outcome.
        let path = try await Self.oldStore(
            before: "0005-key-custody",
            rows: """
                INSERT INTO admin_requests (id, document, operation, requester, created_at, expires_at, state, outcome)
                    VALUES ('r1', x'7b7d', 'backup.export', 'alice', 0, 1, 'executed', '{"backup":"{\\"keys\\":[{\\"wrapped\\":\\"AAAA\\"}]}","keys":"north"}'),
                           ('r2', x'7b7d', 'ca.create', 'alice', 0, 1, 'executed', '{"backup":"kept: not an export","ca":"x"}');
                """
        )
        let store = try SQLiteStore(path: path)
        try await store.migrate()
        let export = try #require(try await store.adminRequest(id: "r1"))
        #expect(export.outcome == #"{"keys":"north"}"#)
        #expect(try await store.adminRequest(id: "r2")?.outcome == #"{"backup":"kept: not an export","ca":"x"}"#)
        #expect(try await store.backupKey() == nil)
        #expect(try await store.appliedMigrations() == Self.migrations)
    }

    @Test("migration 0006 gives the certificates of an existing store their kind, and one device identity per meter holds by kind")
    func migrationFillsCertificateKinds() async throws {
        let columns = "(issuer, serial, profile, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at)"
        let path = try await Self.oldStore(
            before: "0006-certificate-kind",
            rows: """
                INSERT INTO certificates \(columns) VALUES
                    ('root', 'r1', 'root', 'CN=Root', NULL, 0, 1, 'f', x'30', 0),
                    ('root', 'a1', 'manufacturer-ca', 'CN=Acme', NULL, 0, 1, 'f', x'30', 0),
                    ('root', 'x1', 'some-future-ca-profile', 'CN=X', NULL, 0, 1, 'f', x'30', 0),
                    ('acme', 'd1', 'device-identity', '', '0024befffe800001', 0, 1, 'f', x'30', 0),
                    ('north', 'o1', 'device-operational', 'CN=urn:dev:mac:0024befffe800001', '0024befffe800001', 0, 1, 'f', x'30', 0),
                    ('admin', 'c1', 'custodian', 'CN=alice', NULL, 0, 1, 'f', x'30', 0);
                INSERT INTO certificate_authorities (name, role, parent, key_label, key_id, curve, certificate_serial, created_at) VALUES
                    ('root', 'root', NULL, 'k-root', '01', 'P-256', 'r1', 0),
                    ('acme', 'manufacturer', 'root', 'k-acme', '02', 'P-256', 'a1', 0),
                    ('x', 'operational', 'root', 'k-x', '03', 'P-256', 'x1', 0);
                """
        )
        let store = try SQLiteStore(path: path)
        try await store.migrate()
        #expect(try await store.appliedMigrations() == Self.migrations)
        let kinds: [(String, String, CertificateRecord.Kind)] = [
            ("root", "r1", .authority), ("root", "a1", .authority), ("root", "x1", .authority), ("acme", "d1", .deviceIdentity),
            ("north", "o1", .deviceOperational), ("admin", "c1", .service),
        ]
        for (issuer, serial, kind) in kinds {
            #expect(try await store.certificate(issuer: issuer, serial: serial)?.kind == kind, "\(issuer) \(serial)")
        }
        #expect(try await store.deviceIdentities(eui64s: ["0024befffe800001"])["0024befffe800001"]?.serial == "d1")
        let second = CertificateRecord(
            issuer: "acme", serial: "d2", profile: "device-identity", kind: .deviceIdentity, subject: "", eui64: "0024befffe800001",
            notBefore: Date(timeIntervalSince1970: 0), notAfter: Date(timeIntervalSince1970: 1), fingerprintSHA256: "f", der: [0x30]
        )
        #expect(try await store.insertDeviceIdentities([second]) == [.meterProvisioned])
        let error = await #expect(throws: StoreError.self) { try await store.insertCertificate(second) }
        #expect(error?.code == .meterProvisioned)
    }

    @Test("migration 0009 gives an existing store's CAs 256 shards and its certificates their shard by the serial rule; the rebuilt table keeps its constraints, indexes and references")
    func migrationFillsShards() async throws {
        let columns = "(issuer, serial, profile, kind, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at, batch, batch_position)"
        // Serials as MeterTrust draws them (6 octets of time, 10 random), a short one, one that is not hex, and a
        // certificate whose issuer is no CA of the store.
        let serials = ["0193a1b2c3d4e5f60718293a4b5c6d7e", "0193a1b2c3d4ffffffffffffffffffff", "0193a1b2c3d40000000000000000ab12", "7f"]
        let path = try await Self.oldStore(
            before: "0009-certificate-shards",
            rows: """
                INSERT INTO certificate_authorities (name, role, parent, key_label, key_id, curve, certificate_serial, created_at) VALUES
                    ('root', 'root', NULL, 'k-root', '01', 'P-256', '\(serials[0])', 0),
                    ('acme', 'manufacturer', 'root', 'k-acme', '02', 'P-256', '\(serials[1])', 0);
                INSERT INTO certificates \(columns) VALUES
                    ('root', '\(serials[0])', 'root', 'ca', 'CN=Root', NULL, 0, 1, 'f', x'30', 10, NULL, NULL),
                    ('root', '\(serials[1])', 'manufacturer-ca', 'ca', 'CN=Acme', NULL, 0, 1, 'f', x'30', 11, NULL, NULL),
                    ('acme', '\(serials[2])', 'device-identity', 'device-identity', '', '0024befffe800001', 0, 1, 'f', x'30', 12, 'b1', 1),
                    ('acme', '\(serials[3])', 'device-operational', 'device-operational', '', '0024befffe800001', 0, 1, 'f', x'30', 13, NULL, NULL),
                    ('acme', 'not-hex', 'service', 'service', 'CN=x', NULL, 0, 1, 'f', x'30', 14, NULL, NULL),
                    ('gone', '\(serials[2])', 'service', 'service', 'CN=y', NULL, 0, 1, 'f', x'30', 15, NULL, NULL);
                INSERT INTO batches (id, manufacturer, manifest_sha256, meter_count, created_at) VALUES ('b1', 'acme', 'aa', 1, 0);
                INSERT INTO revocations (issuer, serial, reason, revoked_at) VALUES ('acme', '\(serials[3])', 1, 20);
                """
        )
        let store = try SQLiteStore(path: path)
        try await store.migrate()
        #expect(try await store.appliedMigrations() == Self.migrations)
        #expect(try await store.certificateAuthorities().map(\.shardCount) == [256, 256])
        let expected: [(String, String, Int)] = [
            ("root", serials[0], ShardTests.expectedShard(hexBytes(serials[0])!, count: 256)),
            ("root", serials[1], 255),
            ("acme", serials[2], 0x12),
            ("acme", serials[3], 0x7f),
            ("acme", "not-hex", 0),
            ("gone", serials[2], 0x12),
        ]
        #expect(expected[0].2 == 0x7e)
        for (issuer, serial, shard) in expected {
            let record = try #require(try await store.certificate(issuer: issuer, serial: serial), "\(issuer) \(serial)")
            #expect(record.shard == shard, "\(issuer) \(serial)")
        }
        // Everything else as it was: batch, position, kind, order of creation; the revocation still references its row.
        let identity = try #require(try await store.certificate(issuer: "acme", serial: serials[2]))
        #expect(identity.batch == "b1" && identity.batchPosition == 1 && identity.kind == .deviceIdentity && identity.eui64 == "0024befffe800001")
        #expect(try await store.revocation(issuer: "acme", serial: serials[3]) != nil)
        #expect(try await store.certificates(matching: CertificateFilter(eui64: "0024befffe800001"), after: nil, limit: 10).certificates.count == 2)
        // The constraints and indexes of the rebuilt table hold: one identity per meter, the serial per issuer, the
        // shard required (no default to fall back on) and never negative, the listing served by its indexes.
        let second = CertificateRecord(
            issuer: "acme", serial: "d2", profile: "device-identity", kind: .deviceIdentity, subject: "", eui64: "0024befffe800001",
            notBefore: Date(timeIntervalSince1970: 0), notAfter: Date(timeIntervalSince1970: 1), fingerprintSHA256: "f", der: [0x30]
        )
        #expect(try await store.insertDeviceIdentities([second]) == [.meterProvisioned])
        let noShard = await #expect(throws: StoreError.self) {
            try await store.execute(rawSQL: """
                INSERT INTO certificates (issuer, serial, profile, kind, subject, not_before, not_after, fingerprint_sha256, der, created_at)
                    VALUES ('acme', '99', 'service', 'service', '', 0, 1, 'f', x'30', 0)
                """)
        }
        #expect(noShard?.code == .notNull)
        let negative = await #expect(throws: StoreError.self) {
            try await store.execute(rawSQL: "UPDATE certificates SET shard = -1 WHERE serial = 'not-hex'")
        }
        #expect(negative?.code == .checkViolation)
        let duplicate = await #expect(throws: StoreError.self) {
            try await store.execute(rawSQL: "UPDATE certificates SET serial = '\(serials[3])' WHERE serial = 'not-hex'")
        }
        #expect(duplicate?.code == .serialInUse)
        let plan = try await store.listingPlan(CertificateFilter(issuedSince: Date(timeIntervalSince1970: 0)))
        #expect(plan.contains { $0.contains("certificates_by_creation") }, "\(plan)")
    }

    /// Each kind of constraint the schema enforces, reached with raw SQL where the API itself never lets a caller
    /// reach it, and the code SQLite's extended result code maps to.
    static let rawViolations: [(name: String, sql: String, code: StoreError.Code)] = [
        (
            "not null",
            """
            INSERT INTO certificates (issuer, serial, profile, kind, subject, not_before, not_after, fingerprint_sha256, der, created_at, shard)
                VALUES ('acme', '01', 'service', 'service', '', 0, 1, 'f', NULL, 0, 0)
            """,
            .notNull
        ),
        (
            "check: a certificate kind outside the closed set",
            """
            INSERT INTO certificates (issuer, serial, profile, kind, subject, not_before, not_after, fingerprint_sha256, der, created_at, shard)
                VALUES ('acme', '01', 'service', 'meter', '', 0, 1, 'f', x'30', 0, 0)
            """,
            .checkViolation
        ),
        (
            "check: a request state outside the closed set",
            "INSERT INTO admin_requests (id, document, operation, requester, created_at, expires_at, state) VALUES ('r', x'00', 'op', 'alice', 0, 1, 'done')",
            .checkViolation
        ),
        (
            "trigger",
            """
            CREATE TEMP TRIGGER refuse_checkpoints BEFORE INSERT ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END;
            INSERT INTO audit_checkpoints (size, note, created_at) VALUES (1, 'n', 0)
            """,
            .checkViolation
        ),
        ("foreign key", "INSERT INTO approvals (request_id, custodian, document, received_at) VALUES ('nowhere', 'nobody', x'00', 0)", .foreignKey),
        ("unique", "INSERT INTO certificate_authorities (name, role, key_label, key_id, curve, certificate_serial, created_at) VALUES ('a', 'admin', 'k', '01', 'P-256', 's', 0), ('b', 'admin', 'k', '02', 'P-256', 't', 0)", .duplicate),
        ("primary key", "INSERT INTO audit_checkpoints (size, note, created_at) VALUES (1, 'n', 0), (1, 'm', 0)", .duplicate),
        // The uniqueness constraints the domain tells apart, each by its own code (issue 12: a meter provisioned twice
        // was drawn new serials as if its serial had collided).
        (
            "unique: a serial per issuer",
            """
            INSERT INTO certificates (issuer, serial, profile, kind, subject, not_before, not_after, fingerprint_sha256, der, created_at, shard)
                VALUES ('acme', '01', 'service', 'service', '', 0, 1, 'f', x'30', 0, 0), ('acme', '01', 'service', 'service', '', 0, 1, 'g', x'30', 0, 0)
            """,
            .serialInUse
        ),
        (
            "unique: one device identity per meter",
            """
            INSERT INTO certificates (issuer, serial, profile, kind, subject, eui64, not_before, not_after, fingerprint_sha256, der, created_at, shard)
                VALUES ('acme', '01', 'device-identity', 'device-identity', '', '0024befffe800001', 0, 1, 'f', x'30', 0, 0),
                       ('acme', '02', 'device-identity', 'device-identity', '', '0024befffe800001', 0, 1, 'g', x'30', 0, 0)
            """,
            .meterProvisioned
        ),
        (
            "unique: one meter per device key",
            "INSERT INTO device_keys (key, eui64) VALUES (x'00112233445566778899aabbccddeeff', '0024befffe800001'), (x'00112233445566778899aabbccddeeff', '0024befffe800002')",
            .keyReused
        ),
        ("check: a device key is 16 octets", "INSERT INTO device_keys (key, eui64) VALUES (x'0011', '0024befffe800001')", .checkViolation),
    ]

    @Test("each constraint kind is its own code, never another's", arguments: rawViolations.indices)
    func constraintCodes(_ index: Int) async throws {
        let violation = Self.rawViolations[index]
        let store = try await TestEnvironment.makeStore()
        let error = await #expect(throws: StoreError.self, "\(violation.name)") { try await store.execute(rawSQL: violation.sql) }
        #expect(error?.code == violation.code, "\(violation.name): \(error.map { "\($0.code): \($0.message)" } ?? "no error")")
        // Nothing of a refused transaction stays.
        #expect(try await store.auditCheckpoints().isEmpty)
        #expect(try await store.certificateAuthorities().isEmpty)
    }

    @Test("each listing filter is served by an index: the primary key for the order and a CA, the per-meter, batch and time indexes for theirs")
    func listingUsesIndexes() async throws {
        let store = try await TestEnvironment.makeStore()
        let position = CertificateListPosition(issuer: "acme", serial: "01")
        // A first page (no position) and a later one: each is a search of an index, never a scan of the table.
        let expected: [(CertificateFilter, CertificateListPosition?, [String])] = [
            (CertificateFilter(), position, ["SEARCH certificates USING INDEX sqlite_autoindex_certificates_1 ((issuer,serial)>(?,?))"]),
            (CertificateFilter(issuer: "acme"), nil, ["SEARCH certificates USING INDEX sqlite_autoindex_certificates_1 (issuer=?)"]),
            (CertificateFilter(issuer: "acme"), position, ["SEARCH certificates USING INDEX sqlite_autoindex_certificates_1 (issuer=? AND serial>?)"]),
            (CertificateFilter(eui64: "0024befffe800001"), position, [
                "SEARCH certificates USING INDEX device_identity_per_meter_by_kind (eui64=?)",
                "SEARCH certificates USING INDEX certificates_other_per_meter (eui64=?)",
            ]),
            (CertificateFilter(batch: "b1"), position, ["SEARCH certificates USING INDEX certificates_batch (batch=?)"]),
            (CertificateFilter(issuedSince: Date()), nil, ["SEARCH certificates USING INDEX certificates_by_creation (created_at>?)"]),
            (CertificateFilter(issuedSince: Date()), position, ["SEARCH certificates USING INDEX certificates_by_creation (created_at>?)"]),
        ]
        for (filter, position, searches) in expected {
            let plan = try await store.listingPlan(filter, after: position)
            for search in searches { #expect(plan.contains(search), "\(filter): \(plan)") }
            #expect(!plan.contains { $0.hasPrefix("SCAN") }, "\(filter): \(plan)")
        }
    }
}
