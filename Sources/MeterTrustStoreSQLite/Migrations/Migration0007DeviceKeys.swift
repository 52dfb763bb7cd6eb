import Foundation
import GRDB
import MeterTrustCore

/// Device keys: each subject key of a device certificate belongs to one meter, by the database's own key, so a
/// cloned meter presenting another meter's key is refused on every node and under partitioning. Keyed by Core's
/// `SubjectKeyDigest` (16 octets) in a table without rowid, so the index is the table: one compact B-tree insert per
/// certificate. Filled from the device certificates already stored (their DER parsed once, here); where old data holds
/// one key for several meters, the earliest-issued meter keeps it; a row whose DER is no certificate claims nothing.
enum Migration0007DeviceKeys: SQLiteMigration {
    static let identifier = "0007-device-keys"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE device_keys (
                key BLOB NOT NULL PRIMARY KEY CHECK (length(key) = 16),
                eui64 TEXT NOT NULL
            ) WITHOUT ROWID;
            """)
        let insert = try db.makeStatement(sql: "INSERT INTO device_keys (key, eui64) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT eui64, der FROM certificates
                WHERE eui64 IS NOT NULL AND kind IN ('device-identity', 'device-operational')
                ORDER BY created_at, rowid
                """
        )
        while let row = try rows.next() {
            let eui64: String = row["eui64"]
            // A row whose DER holds no certificate has no key to claim (no client could use it either).
            guard let digest = try? SubjectKeyDigest.of(certificate: Array(row["der"] as Data)) else { continue }
            try insert.execute(arguments: [Data(digest), eui64])
        }
    }
}
