import GRDB

/// Certificates get a typed `kind` (``CertificateRecord/Kind``'s raw values, a closed set by CHECK) so the store's
/// queries and its one-device-identity-per-meter constraint no longer read a profile's name. Existing rows are filled
/// from the profile they were issued under (the last time the schema reads profile names), a CA's own certificate
/// from the CA table itself.
enum Migration0006CertificateKind: SQLiteMigration {
    static let identifier = "0006-certificate-kind"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE certificates ADD COLUMN kind TEXT NOT NULL DEFAULT 'service'
                CHECK (kind IN ('device-identity', 'device-operational', 'ca', 'service'));
            UPDATE certificates SET kind = CASE
                WHEN profile = 'device-identity' THEN 'device-identity'
                WHEN profile = 'device-operational' THEN 'device-operational'
                WHEN profile IN ('root', 'manufacturer-ca', 'operational-ca', 'admin-ca') THEN 'ca'
                WHEN EXISTS (
                    SELECT 1 FROM certificate_authorities a
                    WHERE a.certificate_serial = certificates.serial AND coalesce(a.parent, a.name) = certificates.issuer
                ) THEN 'ca'
                ELSE 'service' END;
            DROP INDEX device_identity_per_meter;
            CREATE UNIQUE INDEX device_identity_per_meter_by_kind ON certificates (eui64) WHERE kind = 'device-identity';
            """)
    }
}
