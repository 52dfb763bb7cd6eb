import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustDevice
import MeterTrustFactory
import MeterTrustHSM
import MeterTrustOnboarding
import MeterTrustPKI
import MeterTrustStore
@testable import MeterTrustStoreSQLite
import Testing
import X509

/// A deployment on a SoftHSM2 token and a store of the given backend: root, manufacturers acme and globex,
/// operational CAs north and south, an audit log in the HSM, accounts `north` (north's CA) and `south` (south's),
/// both accepting acme; and a real factory batch `b1` of acme's, with its signed enrollment manifest.
struct OnboardingFixture {
    let token: HSMToken
    let store: any MeterTrustStore
    let hierarchy: CAHierarchy
    let audit: AuditLog
    let onboarding: Onboarding
    let batchOutput: URL
    let meters: [String]

    static let origin = "test.metertrust/audit"

    static func make(_ backend: StoreBackend, meters count: Int = 6, limits: EnrollmentLimits = EnrollmentLimits()) async throws -> OnboardingFixture {
        let token = try TestEnvironment.openToken()
        let store = try await backend.make()
        let hierarchy = CAHierarchy(token: token, store: store, settings: PKISettings())
        _ = try await hierarchy.createRoot(name: "test-root", organization: "MeterTrust Test")
        _ = try await hierarchy.createAuthority(role: .manufacturer, name: "acme", organization: "Acme Meters")
        _ = try await hierarchy.createAuthority(role: .manufacturer, name: "globex", organization: "Globex Meters")
        _ = try await hierarchy.createAuthority(role: .operational, name: "north", organization: "North Utility")
        _ = try await hierarchy.createAuthority(role: .operational, name: "south", organization: "South Utility")
        let key = try token.generateKeyPair(curve: .p256, label: "metertrust/audit/test")
        let audit = AuditLog(
            store: store, signer: try HSMCheckpointSigner(token: token, key: key, keyName: origin), origin: origin,
            anchor: HSMAuditAnchor(token: token, origin: origin)
        )
        let onboarding = Onboarding(store: store, audit: audit, limits: limits)
        for (id, ca) in [("north", "north"), ("south", "south")] {
            _ = try await onboarding.createAccount(id: id, displayName: "\(ca.capitalized) Utility", operationalCA: ca, manufacturers: ["acme"], actor: "admin:test")
        }
        let directory = TestEnvironment.temporaryDirectory()
        let manifest = try await FactoryFixture.generatedBatch("b1", count: count, in: directory)
        let output = directory.appendingPathComponent("out")
        _ = try await BatchRunner(hierarchy: hierarchy, store: store).run(manifestPath: manifest.path, outputDirectory: output)
        let meters = (0..<count).map { EUI64(0x0024_BEFF_FE00_0000 + UInt64($0)).description }
        return OnboardingFixture(token: token, store: store, hierarchy: hierarchy, audit: audit, onboarding: onboarding, batchOutput: output, meters: meters)
    }

    var manifest: [UInt8] { get throws { Array(try Data(contentsOf: batchOutput.appendingPathComponent("enrollment-manifest.json"))) } }
    var signature: [UInt8] { get throws { Array(try Data(contentsOf: batchOutput.appendingPathComponent("enrollment-manifest.json.sig"))) } }

    /// `bytes` signed with acme's CA key in the HSM, as the factory signs a manifest.
    func signedByAcme(_ bytes: [UInt8]) async throws -> [UInt8] {
        let signingKey = try await hierarchy.authority(named: "acme").signingKey
        let digest = Array(SHA256.hash(data: bytes))
        return try await signingKey.token.perform { _ in try signingKey.sign(digest: digest) }
    }

    /// Uploads `body` in pieces of `piece` bytes and finishes.
    func upload(
        _ body: [UInt8], to account: String, format: EnrollmentUploadRecord.Format, manufacturer: String = "acme", signature: [UInt8]? = nil,
        piece: Int = 4096
    ) async throws -> EnrollmentUploadResult {
        let session = try await onboarding.beginUpload(account: account, format: format, manufacturer: manufacturer, signature: signature, actor: "operator:\(account)")
        for start in stride(from: 0, to: body.count, by: piece) {
            try await session.append(Array(body[start..<min(start + piece, body.count)]))
        }
        return try await session.finish()
    }

    func list(_ lines: [String]) -> [UInt8] { Array(lines.joined(separator: "\n").utf8) }

    /// The audit log's entries, decoded, oldest first.
    func auditEntries() async throws -> [AuditEntry] {
        var entries: [AuditEntry] = []
        var after: Int64 = -1
        while true {
            let page = try await store.auditEntries(after: after, limit: 500)
            guard let last = page.last else { return entries }
            entries += page.compactMap { AuditEntry.decode($0.entry) }
            after = last.position
        }
    }

    /// An operational certificate for the meter from `ca`, issued through the PKI as `metertrust issue --profile
    /// device-operational` does.
    func issueOperational(_ eui64: String, ca: String) async throws -> CertificateRecord {
        let meter = MeterIdentity(eui64: try EUI64(eui64))
        return try await CertificateIssuer(hierarchy: hierarchy).issue(
            IssuanceRequest(csr: try meter.certificateSigningRequestDER(hardwareType: PKIFixture.deviceType), profile: "device-operational", authority: ca)
        ).record
    }
}

@Suite("Onboarding: accounts, enrollment uploads, claims, conflicts, change of supplier")
struct OnboardingTests {
    static func code(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> (ErrorCode, String)? {
        do {
            try await body()
            Issue.record("no error", sourceLocation: sourceLocation)
            return nil
        } catch let error as any CodedError {
            return (error.errorCode, error.message)
        } catch {
            Issue.record("not a coded error: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test("a real factory batch's signed enrollment manifest, streamed in pieces of any size, claims every meter; audited once with its counts", arguments: StoreBackend.all)
    func manifestClaimsEveryMeter(_ backend: StoreBackend) async throws {
        let fixture = try await OnboardingFixture.make(backend)
        let result = try await fixture.upload(try fixture.manifest, to: "north", format: .manifest, signature: try fixture.signature, piece: 7)
        #expect(result.claimed == Int64(fixture.meters.count) && result.meters == Int64(fixture.meters.count) && result.conflicts == 0)
        #expect(result.batch == "b1")
        #expect(try await fixture.onboarding.claims(account: "north").map(\.eui64) == fixture.meters)
        #expect(try await fixture.onboarding.claims(account: "south") == [])
        // The same manifest again: every meter already held, nothing new.
        let again = try await fixture.upload(try fixture.manifest, to: "north", format: .manifest, signature: try fixture.signature, piece: 1 << 20)
        #expect(again.claimed == 0 && again.alreadyHeld == Int64(fixture.meters.count))
        let uploads = try await fixture.auditEntries().filter { $0.action == "enrollment.upload" && $0.outcome == .success }
        #expect(uploads.count == 2)
        #expect(uploads.first?.subject == "north" && uploads.first?.details["claimed"] == "\(fixture.meters.count)" && uploads.first?.details["batch"] == "b1")
    }

    /// Each refusal leaves no claim, marks the upload refused and names the problem.
    static func expectNothingClaimed(_ fixture: OnboardingFixture, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        #expect(try await fixture.store.claimCount(account: "north") == 0, sourceLocation: sourceLocation)
        for meter in fixture.meters { #expect(try await fixture.store.claim(eui64: meter) == nil, sourceLocation: sourceLocation) }
        for upload in try await fixture.store.uploads(after: nil, limit: 100) { #expect(upload.state == .refused, sourceLocation: sourceLocation) }
    }

    @Test("someone altering the manifest in transit (one byte flipped) or signing it with another key: refused as a bad signature, no claim", arguments: StoreBackend.all)
    func badSignature(_ backend: StoreBackend) async throws {
        let fixture = try await OnboardingFixture.make(backend)
        var flipped = try fixture.manifest
        // The first hex digit of the first meter's fingerprint, changed to another hex digit (always signed content).
        let field = Array(#""certificateSHA256": ""#.utf8)
        let start = try #require((0...(flipped.count - field.count)).first { Array(flipped[$0..<($0 + field.count)]) == field }) + field.count
        flipped[start] = flipped[start] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        let altered = await Self.code { _ = try await fixture.upload(flipped, to: "north", format: .manifest, signature: try fixture.signature) }
        #expect(altered?.0 == .badManifestSignature && altered?.1.contains("acme") == true, "\(String(describing: altered))")
        let other = try P256.Signing.PrivateKey().signature(for: try fixture.manifest).derRepresentation
        #expect(await Self.code { _ = try await fixture.upload(try fixture.manifest, to: "north", format: .manifest, signature: Array(other)) }?.0 == .badManifestSignature)
        #expect(await Self.code { _ = try await fixture.upload(try fixture.manifest, to: "north", format: .manifest, signature: nil) }?.0 == .badManifestSignature)
        // A signature by another registered manufacturer's CA key is no better.
        let globexKey = try await fixture.hierarchy.authority(named: "globex").signingKey
        let digest = Array(SHA256.hash(data: try fixture.manifest))
        let globex = try await globexKey.token.perform { _ in try globexKey.sign(digest: digest) }
        #expect(await Self.code { _ = try await fixture.upload(try fixture.manifest, to: "north", format: .manifest, signature: globex) }?.0 == .badManifestSignature)
        try await Self.expectNothingClaimed(fixture)
    }

    @Test("a manifest signed by the manufacturer whose entry's fingerprint is not the stored factory certificate's: refused naming the meter, no claim", arguments: StoreBackend.all)
    func fingerprintMismatch(_ backend: StoreBackend) async throws {
        let fixture = try await OnboardingFixture.make(backend)
        // The attacker: whoever gets the manufacturer's signing step to sign an edited list (an insider at the OEM),
        // claiming a meter with a certificate the platform did not issue for it.
        let text = String(decoding: try fixture.manifest, as: UTF8.self)
        let document = try JSONDecoder().decode(EnrollmentManifest.self, from: Data(text.utf8))
        let victim = document.meters[2]
        let edited = Array(text.replacingOccurrences(of: victim.certificateSHA256, with: String(repeating: "0", count: 64)).utf8)
        let refusal = await Self.code {
            _ = try await fixture.upload(edited, to: "north", format: .manifest, signature: try await fixture.signedByAcme(edited))
        }
        #expect(refusal?.0 == .fingerprintMismatch)
        #expect(refusal?.1.contains("meters[2]: meter \(victim.eui64)") == true, "\(refusal?.1 ?? "")")
        try await Self.expectNothingClaimed(fixture)
    }

    @Test("an unregistered or not accepted manufacturer, a malformed EUI-64, a meter with no device identity, a manifest sent as a list, an oversize upload: each refused naming the problem, no claim", arguments: StoreBackend.all)
    func refusals(_ backend: StoreBackend) async throws {
        let fixture = try await OnboardingFixture.make(backend, limits: EnrollmentLimits(maximumMeters: 5, maximumBytes: 4096, chunkSize: 2))
        let good = fixture.meters
        #expect(await Self.code { _ = try await fixture.upload(fixture.list(good), to: "north", format: .list, manufacturer: "nobody") }?.0 == .unregisteredManufacturer)
        let notAccepted = await Self.code { _ = try await fixture.upload(fixture.list(good), to: "north", format: .list, manufacturer: "globex") }
        #expect(notAccepted?.0 == .manufacturerNotAccepted && notAccepted?.1.contains("globex") == true)
        let malformed = await Self.code { _ = try await fixture.upload(fixture.list([good[0], "# a comment", "0024befffe00zz01"]), to: "north", format: .list) }
        #expect(malformed?.0 == .malformedList && malformed?.1.hasPrefix("line 3: \"0024befffe00zz01\"") == true, "\(malformed?.1 ?? "")")
        let unknown = await Self.code { _ = try await fixture.upload(fixture.list([good[0], "", "00:24:be:ff:fe:99:99:99"]), to: "north", format: .list) }
        #expect(unknown?.0 == .unknownMeter && unknown?.1.contains("line 3: meter 0024befffe999999") == true, "\(unknown?.1 ?? "")")
        let twice = await Self.code { _ = try await fixture.upload(fixture.list([good[0], good[1], good[0]]), to: "north", format: .list) }
        #expect(twice?.0 == .meterListedTwice && twice?.1.contains("line 3") == true)
        let json = await Self.code { _ = try await fixture.upload(Array(try fixture.manifest.prefix(4000)), to: "north", format: .list) }
        #expect(json?.0 == .malformedList && json?.1.contains("format manifest") == true)
        let tooMany = await Self.code { _ = try await fixture.upload(fixture.list(good), to: "north", format: .list) }
        #expect(tooMany?.0 == .uploadTooLarge && tooMany?.1.contains("5 meters") == true)
        let tooBig = await Self.code { _ = try await fixture.upload(Array(String(repeating: "#\n", count: 2500).utf8), to: "north", format: .list, piece: 1000) }
        #expect(tooBig?.0 == .uploadTooLarge)
        #expect(await Self.code { _ = try await fixture.upload(fixture.list(good), to: "nowhere", format: .list) }?.0 == .unknownAccount)
        try await Self.expectNothingClaimed(fixture)
        let refused = try await fixture.auditEntries().filter { $0.action == "enrollment.upload" && $0.outcome == .refused }
        #expect(refused.map { $0.details["code"] ?? "" }.contains("onboarding.unknown-meter"))
    }

    @Test("a second account's list colliding on one meter: a conflict visible to both; release, re-claim by the other account: history complete in order and audited, the old operational certificate listed for revocation", arguments: StoreBackend.all)
    func conflictReleaseReclaim(_ backend: StoreBackend) async throws {
        let fixture = try await OnboardingFixture.make(backend, meters: 4)
        let meters = fixture.meters
        _ = try await fixture.upload(fixture.list(Array(meters[0...2])), to: "north", format: .list)
        let old = try await fixture.issueOperational(meters[2], ca: "north")
        let south = try await fixture.upload(fixture.list([meters[2], meters[3]]), to: "south", format: .list)
        #expect(south.claimed == 1 && south.conflicts == 1 && south.conflictingMeters == [meters[2]])
        for account in ["north", "south"] {
            let conflicts = try await fixture.onboarding.conflicts(account: account)
            #expect(conflicts.map(\.eui64) == [meters[2]] && conflicts.first?.holder == "north" && conflicts.first?.claimant == "south", "\(account)")
        }
        let release = try await fixture.onboarding.release(eui64: meters[2], account: "north", actor: "operator:north")
        #expect(release.revocations == [RevocationCandidate(issuer: "north", serial: old.serial)])
        #expect(try await fixture.onboarding.pendingRevocations().map { [$0.issuer, $0.serial, $0.account, "\($0.reason)"] } == [["north", old.serial, "north", "4"]])
        let reclaim = try await fixture.upload(fixture.list([meters[2]]), to: "south", format: .list)
        #expect(reclaim.claimed == 1)
        #expect(try await fixture.onboarding.claim(eui64: meters[2], account: "south") != nil)
        let history = try await fixture.onboarding.history(eui64: meters[2])
        #expect(history.map(\.kind) == [.claimed, .conflict, .released, .conflictClosed, .claimed])
        #expect(history.map(\.account) == ["north", "south", "north", "north", "south"])
        #expect(zip(history, history.dropFirst()).allSatisfy { $0.at <= $1.at && $0.id < $1.id })
        let audited = try await fixture.auditEntries().filter { $0.action.hasPrefix("enrollment.") && $0.outcome == .success }
        #expect(audited.map(\.action) == ["enrollment.upload", "enrollment.upload", "enrollment.conflict", "enrollment.release", "enrollment.upload"])
        #expect(audited[2].details["meters"] == meters[2] && audited[3].subject == meters[2] && audited[3].details["revocations"] == "north/\(old.serial)")
    }

    @Test("a utility operator reaching into another account: releasing, reading the claim or history of another account's meter is refused or empty, nothing changes", arguments: StoreBackend.all)
    func tenantIsolation(_ backend: StoreBackend) async throws {
        let fixture = try await OnboardingFixture.make(backend, meters: 3)
        let meters = fixture.meters
        _ = try await fixture.upload(fixture.list(meters), to: "south", format: .list)
        _ = try await fixture.issueOperational(meters[0], ca: "south")
        let before = try await fixture.store.onboardingCounts()
        let auditBefore = try await fixture.store.auditEntryCount()
        let release = await Self.code { _ = try await fixture.onboarding.release(eui64: meters[0], account: "north", actor: "operator:north") }
        #expect(release?.0 == .notClaimed && release?.1.contains("north does not hold") == true)
        #expect(try await fixture.onboarding.claim(eui64: meters[0], account: "north") == nil)
        #expect(await Self.code { _ = try await fixture.onboarding.history(eui64: meters[0], account: "north") }?.0 == .notClaimed)
        #expect(try await fixture.onboarding.claims(account: "north") == [])
        #expect(try await fixture.onboarding.conflicts(account: "north", openOnly: false) == [])
        #expect(try await fixture.store.onboardingCounts() == before)
        #expect(try await fixture.store.auditEntryCount() == auditBefore)
        #expect(try await fixture.onboarding.claim(eui64: meters[0], account: "south")?.account == "south")
        #expect(try await fixture.onboarding.pendingRevocations() == [])
    }

    @Test("resolving a conflict in favour of the claimant moves the claim and records the holder's operational certificate; in favour of the holder closes it", arguments: StoreBackend.all)
    func resolveConflict(_ backend: StoreBackend) async throws {
        let fixture = try await OnboardingFixture.make(backend, meters: 2)
        let meters = fixture.meters
        _ = try await fixture.upload(fixture.list(meters), to: "north", format: .list)
        let old = try await fixture.issueOperational(meters[0], ca: "north")
        _ = try await fixture.upload(fixture.list(meters), to: "south", format: .list)
        _ = try await fixture.onboarding.resolveConflict(eui64: meters[0], claimant: "south", inFavourOf: .claimant, actor: "quorum:r1")
        _ = try await fixture.onboarding.resolveConflict(eui64: meters[1], claimant: "south", inFavourOf: .holder, actor: "quorum:r2")
        #expect(try await fixture.store.claim(eui64: meters[0])?.account == "south")
        #expect(try await fixture.store.claim(eui64: meters[1])?.account == "north")
        #expect(try await fixture.onboarding.pendingRevocations().map(\.serial) == [old.serial])
        #expect(await Self.code { _ = try await fixture.onboarding.resolveConflict(eui64: meters[1], claimant: "south", inFavourOf: .claimant, actor: "x") }?.0 == .noOpenConflict)
        #expect(try await fixture.auditEntries().filter { $0.action == "enrollment.conflict.resolve" }.map { $0.details["inFavourOf"] ?? "" } == ["claimant", "holder"])
    }

    @Test("someone with write access to the database (and nothing else) forges a claim row: the store reports the claim, but no audited upload accounts for it and it carries no certificate")
    func forgedClaimRow() async throws {
        let fixture = try await OnboardingFixture.make(.sqlite, meters: 2)
        _ = try await fixture.upload(fixture.list([fixture.meters[0]]), to: "north", format: .list)
        let sqlite = try #require(fixture.store as? SQLiteStore)
        try await sqlite.execute(rawSQL: """
            INSERT INTO claims (eui64, account, upload, claimed_at, claimed_by) VALUES ('\(fixture.meters[1])', 'south', 'forged', 0, 'nobody')
            """)
        // What it gains: the database alone says south holds the meter (claims are not signed; the lead decides whether
        // they must be).
        #expect(try await fixture.onboarding.claim(eui64: fixture.meters[1], account: "south")?.upload == "forged")
        // What it does not: no enrollment.upload audit entry names that upload, while the genuine claim's upload is
        // named by one; nothing was issued for the meter by south's Operational CA.
        let audited = Set(try await fixture.auditEntries().filter { $0.action == "enrollment.upload" && $0.outcome == .success }.compactMap { $0.details["upload"] })
        let genuine = try #require(try await fixture.store.claim(eui64: fixture.meters[0])?.upload)
        #expect(audited.contains(genuine) && !audited.contains("forged"))
        #expect(try await fixture.store.certificates(matching: CertificateFilter(issuer: "south", eui64: fixture.meters[1]), after: nil, limit: 10).certificates.isEmpty)
    }

    @Test("accounts: an id outside [a-z0-9-]{1,63}, a CA that is not operational, an unregistered manufacturer, a taken id are refused; operators carry the account as their certificate's O")
    func accountRules() async throws {
        let fixture = try await OnboardingFixture.make(.sqlite, meters: 1)
        let o = fixture.onboarding
        #expect(await Self.code { _ = try await o.createAccount(id: "North", displayName: "x", operationalCA: "north", manufacturers: ["acme"], actor: "a") }?.0 == .invalidAccount)
        #expect(await Self.code { _ = try await o.createAccount(id: "east", displayName: "x", operationalCA: "acme", manufacturers: ["acme"], actor: "a") }?.0 == .invalidAccount)
        #expect(await Self.code { _ = try await o.createAccount(id: "east", displayName: "x", operationalCA: "north", manufacturers: ["nobody"], actor: "a") }?.0 == .unregisteredManufacturer)
        #expect(await Self.code { _ = try await o.createAccount(id: "north", displayName: "x", operationalCA: "north", manufacturers: ["acme"], actor: "a") }?.0 == .storeDuplicate)
        #expect(try await o.accounts().map(\.id) == ["north", "south"])
        #expect(try await fixture.auditEntries().filter { $0.action == "account.create" }.map(\.subject) == ["north", "south"])

        // An operator certificate names its account as O (issued here by the north CA as a stand-in for the Operator CA).
        func certificate(organization: String) throws -> [UInt8] {
            let key = P256.Signing.PrivateKey()
            let name = try DistinguishedName { OrganizationName(organization); CommonName("olga") }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey), notValidBefore: Date(), notValidAfter: Date().addingTimeInterval(3600),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: Certificate.Extensions(), issuerPrivateKey: .init(key)
            )
            return try certificate.derBytes
        }
        let der = try certificate(organization: "north")
        let added = try await o.addOperator(account: "north", name: "olga", certificateDER: der, issuer: "operators", actor: "admin:test")
        #expect(try await o.liveOperator(fingerprintSHA256: added.fingerprintSHA256)?.account == "north")
        #expect(await Self.code { _ = try await o.addOperator(account: "south", name: "olga", certificateDER: der, issuer: "operators", actor: "x") }?.0 == .invalidCertificate)
        #expect(await Self.code { try await o.removeOperator(account: "south", fingerprintSHA256: added.fingerprintSHA256, actor: "operator:south") }?.0 == .notFound)
        try await o.removeOperator(account: "north", fingerprintSHA256: added.fingerprintSHA256, actor: "operator:north")
        #expect(try await o.liveOperator(fingerprintSHA256: added.fingerprintSHA256) == nil)
        #expect(try await fixture.auditEntries().filter { $0.action.hasPrefix("account.operator.") }.map(\.action) == ["account.operator.add", "account.operator.remove"])
    }
}

@Suite("Enrollment list parsers")
struct EnrollmentParserTests {
    static func parse<P: EnrollmentStreamParser>(_ parser: P, _ text: String, piece: Int) throws -> [ParsedEnrollmentEntry] {
        var parser = parser
        var entries: [ParsedEnrollmentEntry] = []
        let bytes = Array(text.utf8)
        for start in stride(from: 0, to: bytes.count, by: piece) {
            try Array(bytes[start..<min(start + piece, bytes.count)]).withUnsafeBufferPointer { try parser.feed($0, into: &entries) }
        }
        try parser.finish(into: &entries)
        return entries
    }

    static let sha = String(repeating: "ab", count: 32)

    @Test("any valid JSON with the manifest's fields parses, fed in pieces of any size: keys in any order, meters first, escapes, unknown nested keys", arguments: [1, 3, 64, 100_000])
    func manifestShapes(_ piece: Int) throws {
        let text = """
            {"meters" : [ {"x": {"deep": [1, 2, {"y": null}]}, "certificateSHA256": "\(Self.sha.uppercased())", "eui64": "0024BEFFFE000001"},
              {"eui64":"0024befffe000002","certificateSHA256":"\(Self.sha)","note":"caf\\u00e9 \\ud83d\\ude00 \\"q\\""} ],
             "count": 2, "version": 1, "format": "metertrust-enrollment-manifest", "manufacturer": "ac\\u006de",
             "manufacturerCA": {"serial": "0a", "certificateSHA256": "\(Self.sha)", "extra": [true, false, -1.5e3]}, "batch": "b1"}
            """
        var parser = ManifestStreamParser()
        var entries: [ParsedEnrollmentEntry] = []
        let bytes = Array(text.utf8)
        for start in stride(from: 0, to: bytes.count, by: piece) {
            try Array(bytes[start..<min(start + piece, bytes.count)]).withUnsafeBufferPointer { try parser.feed($0, into: &entries) }
        }
        try parser.finish(into: &entries)
        #expect(entries.map(\.eui64) == ["0024befffe000001", "0024befffe000002"])
        #expect(entries.map(\.certificateSHA256) == [Self.sha, Self.sha] && entries.map(\.place) == [1, 2])
        #expect(parser.header["manufacturer"] == .string("acme") && parser.header["count"]?.integer == 2 && parser.authority["serial"] == .string("0a"))
        #expect(parser.meterCount == 2 && parser.sawMeters)
    }

    @Test("malformed JSON and malformed meters are refused with a coded error", arguments: [
        "{\"meters\": [", "{\"meters\": [1]}", "[1]", "{\"a\": tru}", "{\"a\": 01}", "{\"a\" 1}", "{\"a\": 1,}", "{} {}",
        "{\"meters\": [{\"eui64\": \"xyz\", \"certificateSHA256\": \"\(String(repeating: "ab", count: 32))\"}]}",
        "{\"meters\": [{\"eui64\": \"0024befffe000001\"}]}", "{\"batch\": \"\\ud800\"}", "{\"a\": \"tab\there\"}",
    ])
    func malformedManifest(_ text: String) throws {
        let error = #expect(throws: OnboardingError.self) { _ = try Self.parse(ManifestStreamParser(), text, piece: 2) }
        #expect(error?.errorCode == .malformedManifest)
    }

    @Test("the manifest parser keeps neither unknown strings nor more than one token: a 1 MiB ignored string parses, a 5 kB key does not")
    func manifestBounds() throws {
        let long = String(repeating: "x", count: 1 << 20)
        #expect(try Self.parse(ManifestStreamParser(), "{\"comment\": \"\(long)\", \"meters\": []}", piece: 4096).isEmpty)
        let key = String(repeating: "k", count: 5000)
        #expect(throws: OnboardingError.self) { _ = try Self.parse(ManifestStreamParser(), "{\"\(key)\": 1}", piece: 4096) }
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: OnboardingError.self) { _ = try Self.parse(ManifestStreamParser(), "{\"a\": \(deep)}", piece: 4096) }
    }

    @Test("plain lists: 16 hex digits or octets joined by - or :, comments, blank lines, CRLF, spaces; line numbers kept", arguments: [1, 5, 4096])
    func plainList(_ piece: Int) throws {
        let text = "# batch b1\r\n0024BEFFFE000001\r\n\n  00-24-be-ff-fe-00-00-02  # second\n\t00:24:be:ff:fe:00:00:03\n0024befffe000004"
        let entries = try Self.parse(PlainListParser(), text, piece: piece)
        #expect(entries.map(\.eui64) == (1...4).map { String(format: "0024befffe%06x", $0) })
        #expect(entries.map(\.place) == [2, 4, 5, 6] && entries.allSatisfy { $0.certificateSHA256 == nil })
    }

    @Test("plain lists refuse a malformed EUI-64 naming its line", arguments: ["0024befffe00000", "0024befffe0000011", "00-24:be-ff-fe-00-00-01", "0024befffe00000g", "ｆ024befffe000001", String(repeating: "0", count: 300)])
    func malformedList(_ line: String) throws {
        let error = #expect(throws: OnboardingError.self) { _ = try Self.parse(PlainListParser(), "0024befffe000001\n\(line)\n", piece: 7) }
        #expect(error?.errorCode == .malformedList && error?.message.hasPrefix("line 2") == true, "\(error?.message ?? "")")
    }
}
