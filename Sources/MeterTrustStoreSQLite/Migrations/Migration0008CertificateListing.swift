import GRDB

/// Indexes for listing certificates (`cert list`, `meter show`): by meter for every certificate that is not a device
/// identity (those already have their unique per-meter index, so the factory's hot path gains no index by meter),
/// and by issuance time. Listings page on the primary key (issuer, serial), which needs no index of its own; the
/// time index grows at its end, as certificates are stored in time order.
enum Migration0008CertificateListing: SQLiteMigration {
    static let identifier = "0008-certificate-listing-indexes"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE INDEX certificates_other_per_meter ON certificates (eui64) WHERE kind <> 'device-identity' AND eui64 IS NOT NULL;
            CREATE INDEX certificates_by_creation ON certificates (created_at);
            """)
    }
}
