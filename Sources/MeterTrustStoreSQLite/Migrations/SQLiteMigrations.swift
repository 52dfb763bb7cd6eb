import GRDB

/// One schema migration: a shipped one is never edited (existing stores recorded its identifier), a change is a new
/// one appended to ``SQLiteMigrations/all``.
protocol SQLiteMigration {
    static var identifier: String { get }
    static func migrate(_ db: Database) throws
}

enum SQLiteMigrations {
    /// Every migration, in the order they apply.
    static let all: [any SQLiteMigration.Type] = [
        Migration0001Initial.self,
        Migration0002FactoryBatches.self,
        Migration0003AuditLog.self,
        Migration0004Quorum.self,
        Migration0005KeyCustody.self,
        Migration0006CertificateKind.self,
        Migration0007DeviceKeys.self,
        Migration0008CertificateListing.self,
        Migration0009CertificateShards.self,
        Migration0010Onboarding.self,
        Migration0011PresharedKeys.self,
    ]

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in all {
            migrator.registerMigration(migration.identifier) { db in try migration.migrate(db) }
        }
        return migrator
    }
}
