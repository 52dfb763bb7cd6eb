// swift-tools-version: 6.0
// libFuzzer targets for MeterTrust's input parsers: a package of its own, so the main package's `swift build` and
// `swift test` never see it. Build and run with `make fuzz` (see scripts/fuzz.sh); the targets need
// `-sanitize=fuzzer,address -parse-as-library`, since libFuzzer supplies `main`.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

// A path dependency's identity is the last component of its path: the checkout's directory name, whatever it is.
let metertrust: String = {
    let parent = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "MeterTrust"
    return parent
}()

func library(_ name: String) -> Target.Dependency { .product(name: name, package: metertrust) }

let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
    ("FuzzCSR", [library("MeterTrustPKI"), .product(name: "X509", package: "swift-certificates"),
                 .product(name: "SwiftASN1", package: "swift-asn1"), .product(name: "Crypto", package: "swift-crypto")]),
    ("FuzzCSRList", [library("MeterTrustCore"), library("MeterTrustFactory"), library("MeterTrustPKI")]),
    ("FuzzBatchManifest", [library("MeterTrustFactory")]),
    ("FuzzBundle", [library("MeterTrustCore"), library("MeterTrustDevice")]),
    ("FuzzAdminRequest", [library("MeterTrustQuorum"), .product(name: "Crypto", package: "swift-crypto")]),
    ("FuzzApproval", [library("MeterTrustQuorum")]),
    ("FuzzBackupFile", [library("MeterTrustAdmin"), library("MeterTrustQuorum")]),
    ("FuzzAuditEntry", [library("MeterTrustAudit")]),
    ("FuzzCheckpoint", [library("MeterTrustAudit")]),
    ("FuzzEnrollmentList", [library("MeterTrustOnboarding")]),
    ("FuzzCertsOnlyCMS", [library("MeterTrustCore")]),
    ("FuzzCsrAttrs", [library("MeterTrustCore"), .product(name: "SwiftASN1", package: "swift-asn1")]),
    ("FuzzPSKImport", [library("MeterTrustCore"), library("MeterTrustOnboarding")]),
    ("FuzzESTResponse", [library("MeterTrustCore"), library("MeterTrustDevice"), .product(name: "SwiftASN1", package: "swift-asn1")]),
    ("FuzzOCSPRequest", [library("MeterTrustPKI")]),
    ("FuzzOCSPAnswer", [library("MeterTrustDevice"), .product(name: "X509", package: "swift-certificates"),
                        .product(name: "SwiftASN1", package: "swift-asn1"), .product(name: "Crypto", package: "swift-crypto")]),
]

let package = Package(
    name: "MeterTrustFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        // The main package's own requirements, so both resolve to the same versions.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        // What the targets share: the fixed meter, image and audit key the seeds were made with, and helpers.
        .target(
            name: "FuzzSupport",
            dependencies: [library("MeterTrustCore"), library("MeterTrustPKI"), .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // Starts libFuzzer's driver from the entry point SwiftPM gives a debug executable (see FuzzMain.c).
        .target(name: "FuzzMain"),
        // Writes the seed corpora with the real code (`make fuzz-seeds`); built without the fuzzer, since it has a main.
        .executableTarget(
            name: "MakeSeeds",
            dependencies: [
                "FuzzSupport",
                library("MeterTrustCore"), library("MeterTrustHSM"), library("MeterTrustStore"), library("MeterTrustStoreSQLite"), library("MeterTrustPKI"), library("MeterTrustDevice"),
                library("MeterTrustFactory"), library("MeterTrustAudit"), library("MeterTrustQuorum"), library("MeterTrustAdmin"),
                .product(name: "X509", package: "swift-certificates"), .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
    ] + fuzzTargets.map { target in
        .executableTarget(name: target.name, dependencies: ["FuzzSupport", "FuzzMain"] + target.dependencies, swiftSettings: strict)
    },
    swiftLanguageModes: [.v6]
)
