// swift-tools-version: 6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "MeterTrust",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "metertrust", targets: ["metertrust"]),
        .library(name: "MeterTrustCore", targets: ["MeterTrustCore"]),
        .library(name: "MeterTrustHSM", targets: ["MeterTrustHSM"]),
        .library(name: "MeterTrustStore", targets: ["MeterTrustStore"]),
        .library(name: "MeterTrustStoreSQLite", targets: ["MeterTrustStoreSQLite"]),
        .library(name: "MeterTrustStorePostgres", targets: ["MeterTrustStorePostgres"]),
        .library(name: "MeterTrustPKI", targets: ["MeterTrustPKI"]),
        .library(name: "MeterTrustDevice", targets: ["MeterTrustDevice"]),
        .library(name: "MeterTrustFactory", targets: ["MeterTrustFactory"]),
        .library(name: "MeterTrustOnboarding", targets: ["MeterTrustOnboarding"]),
        .library(name: "MeterTrustAudit", targets: ["MeterTrustAudit"]),
        .library(name: "MeterTrustQuorum", targets: ["MeterTrustQuorum"]),
        .library(name: "MeterTrustAdmin", targets: ["MeterTrustAdmin"]),
        .library(name: "MeterTrustAdminAPI", targets: ["MeterTrustAdminAPI"]),
        .library(name: "MeterTrustAccountAPI", targets: ["MeterTrustAccountAPI"]),
        .library(name: "MeterTrustRevocation", targets: ["MeterTrustRevocation"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C header of the PKCS#11 API as shipped by p11-kit; the vendor module itself is dlopen'ed at run time.
        .systemLibrary(
            name: "CPKCS11",
            pkgConfig: "p11-kit-1",
            providers: [.apt(["libp11-kit-dev"])]
        ),
        // The vocabulary platform and meter share; depends on no other MeterTrust module, only swift-asn1, swift-certificates
        // and swift-crypto.
        .target(
            name: "MeterTrustCore",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // PKCS#11 module loading, token login, session pool, key generation and signing. Knows nothing of X.509.
        .target(
            name: "MeterTrustHSM",
            dependencies: [
                "MeterTrustCore",
                "CPKCS11",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // Persistence as protocols (one per view) and records; no database library. Backends are their own targets.
        .target(
            name: "MeterTrustStore",
            dependencies: ["MeterTrustCore"],
            swiftSettings: strict
        ),
        // The embedded backend: SQLite through GRDB. Only what opens a store (the CLI, tests) depends on it.
        .target(
            name: "MeterTrustStoreSQLite",
            dependencies: [
                "MeterTrustCore",
                "MeterTrustStore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        // The scale-out backend: PostgreSQL through postgres-nio (no ORM), for several nodes on one database.
        .target(
            name: "MeterTrustStorePostgres",
            dependencies: [
                "MeterTrustCore",
                "MeterTrustStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Certificate profiles, CSR validation, issuance, the CA hierarchy. Uses HSM and Store, never servers.
        .target(
            name: "MeterTrustPKI",
            dependencies: [
                "MeterTrustCore",
                "MeterTrustHSM",
                "MeterTrustStore",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The meter's side: identity key and CSR, the factory configurator, the EST client (swift-nio + swift-nio-ssl:
        // no platform code, no AsyncHTTPClient).
        .target(
            name: "MeterTrustDevice",
            dependencies: [
                "MeterTrustCore",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // Tamper-evident audit log: RFC 6962 Merkle tree, C2SP checkpoints signed in the HSM.
        .target(
            name: "MeterTrustAudit",
            dependencies: [
                "MeterTrustCore",
                "MeterTrustHSM",
                "MeterTrustStore",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Custodians, M-of-N policies, canonical requests and approvals, Shamir shares of the backup key.
        .target(
            name: "MeterTrustQuorum",
            dependencies: [
                "MeterTrustCore",
                "MeterTrustAudit",
                "MeterTrustStore",
                "MeterTrustPKI",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Operations under quorum (requests, approvals, execution) and key backup under split knowledge.
        .target(
            name: "MeterTrustAdmin",
            dependencies: [
                "MeterTrustCore",
                "MeterTrustHSM",
                "MeterTrustStore",
                "MeterTrustPKI",
                "MeterTrustQuorum",
                "MeterTrustAudit",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The admin API's wire messages (plain Codable structs), shared by the server and its clients; Foundation only.
        .target(
            name: "MeterTrustAdminAPI",
            swiftSettings: strict
        ),
        // Factory provisioning: batch manifests, the issuance engine, bundles, signed enrollment manifests.
        .target(
            name: "MeterTrustFactory",
            dependencies: [
                "MeterTrustCore",
                "MeterTrustHSM",
                "MeterTrustStore",
                "MeterTrustPKI",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Utility accounts, enrollment uploads (streamed, verified, staged), claims, conflicts, change of supplier.
        .target(
            name: "MeterTrustOnboarding",
            dependencies: [
                "MeterTrustCore",
                "MeterTrustHSM",
                "MeterTrustStore",
                "MeterTrustPKI",
                "MeterTrustAudit",
                "MeterTrustQuorum",
                "MeterTrustAdmin",
                "MeterTrustRevocation",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Revocation: revoking certificates (bound to the audit log), partitioned CRLs, the OCSP responder.
        .target(
            name: "MeterTrustRevocation",
            dependencies: [
                "MeterTrustCore",
                "MeterTrustHSM",
                "MeterTrustStore",
                "MeterTrustPKI",
                "MeterTrustAudit",
                "MeterTrustQuorum",
                "MeterTrustAdmin",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The account API's wire messages that are not store records (plain Codable structs); Foundation only.
        .target(
            name: "MeterTrustAccountAPI",
            swiftSettings: strict
        ),
        // Servers: the HTTPS admin API (Hummingbird on swift-nio-ssl). Thin over the domain modules.
        .target(
            name: "MeterTrustServer",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                "MeterTrustCore",
                "MeterTrustAudit",
                "MeterTrustHSM",
                "MeterTrustStore",
                "MeterTrustPKI",
                "MeterTrustQuorum",
                "MeterTrustAdmin",
                "MeterTrustAdminAPI",
                "MeterTrustOnboarding",
                "MeterTrustAccountAPI",
                "MeterTrustRevocation",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "metertrust",
            dependencies: [
                .product(name: "SwiftASN1", package: "swift-asn1"),
                "MeterTrustCore",
                "MeterTrustHSM",
                "MeterTrustStore",
                "MeterTrustStoreSQLite",
                "MeterTrustStorePostgres",
                "MeterTrustPKI",
                "MeterTrustDevice",
                "MeterTrustFactory",
                "MeterTrustOnboarding",
                "MeterTrustAudit",
                "MeterTrustQuorum",
                "MeterTrustAdmin",
                "MeterTrustAdminAPI",
                "MeterTrustAccountAPI",
                "MeterTrustRevocation",
                "MeterTrustServer",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "MeterTrustTests",
            dependencies: [
                "MeterTrustCore",
                "CPKCS11",
                "MeterTrustHSM",
                "MeterTrustStore",
                "MeterTrustStoreSQLite",
                "MeterTrustStorePostgres",
                "MeterTrustPKI",
                "MeterTrustDevice",
                "MeterTrustFactory",
                "MeterTrustOnboarding",
                "MeterTrustAudit",
                "MeterTrustQuorum",
                "MeterTrustAdmin",
                "MeterTrustRevocation",
                "MeterTrustServer",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
