import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustDevice
import MeterTrustOnboarding
import MeterTrustPKI
import MeterTrustStore
import SwiftASN1
import Testing
import X509

/// EST's rules in the domain (``OperationalEnrollment``) on a real SoftHSM2 token, store and HSM-signed audit log,
/// for what the server cannot be made to show through curl: time (an expired certificate, through an injected clock),
/// a revocation recorded only in the signed audit log, keyAgreement-only meters, the PSK credential, change of
/// supplier. And CsrAttrs against an independent parser.
@Suite("EST in the domain: credentials, time, revocation in the audit log, change of supplier", .serialized)
struct EstDomainTests {
    /// The onboarding fixture (acme meters, accounts north and south) with meters 0 to 3 claimed by north.
    static func fixture(_ backend: StoreBackend = .sqlite) async throws -> OnboardingFixture {
        let fixture = try await OnboardingFixture.make(backend)
        let claimed = try await fixture.upload(fixture.list(Array(fixture.meters[0...3])), to: "north", format: .list)
        try #require(claimed.claimed == 4)
        return fixture
    }

    static func enrollment(_ fixture: OnboardingFixture, clock: any WallClock = SystemClock()) -> OperationalEnrollment {
        OperationalEnrollment(
            store: fixture.store, hierarchy: fixture.hierarchy, audit: fixture.audit, state: VerifiedStateCache(audit: fixture.audit, maximumAge: .zero),
            clock: clock
        )
    }

    /// The meter's factory certificate, DER, from the store.
    static func factoryCertificate(_ fixture: OnboardingFixture, _ eui64: String) async throws -> CertificateRecord {
        let page = try await fixture.store.certificates(matching: CertificateFilter(profile: "device-identity", eui64: eui64), after: nil, limit: 1)
        return try #require(page.certificates.first)
    }

    /// A CSR for the meter (CN=urn:dev:mac:…) with a fresh key, or `key`.
    static func request(_ eui64: String, key: P256.Signing.PrivateKey = P256.Signing.PrivateKey()) throws -> [UInt8] {
        try PKIFixture.csr(key: key, subject: try DistinguishedName { CommonName(try EUI64(eui64).deviceURN) }, extensions: [])
    }

    static func code(_ body: () async throws -> Void) async -> (ErrorCode, String)? {
        do {
            try await body()
            return nil
        } catch let error as any CodedError {
            return (error.errorCode, error.message)
        } catch {
            return (.internalError, "\(error)")
        }
    }

    @Test("attacker: a meter whose factory certificate is revoked only in the HSM-signed audit log (no store row) is refused; so is every meter of a destroyed Manufacturer Device CA")
    func revokedInTheAuditLog() async throws {
        let fixture = try await Self.fixture()
        let meter = fixture.meters[0]
        let identity = try await Self.factoryCertificate(fixture, meter)
        let enrollment = Self.enrollment(fixture)
        _ = try await enrollment.enroll(.factoryCertificate(identity.der), csr: try Self.request(meter), label: nil)
        let revoked = SecurityState.Change.revoked(issuer: "acme", serial: identity.serial, reason: 1)
        _ = try await fixture.audit.record(AuditEvent(actor: "revocation:test", action: "certificate.revoke", subject: meter, details: [revoked.0: revoked.1]))
        #expect(try await fixture.store.revocation(issuer: "acme", serial: identity.serial) == nil)
        let refusal = await Self.code { _ = try await enrollment.enroll(.factoryCertificate(identity.der), csr: try Self.request(meter), label: nil) }
        #expect(refusal?.0 == .estRevokedCertificate && refusal?.1.contains("revoked") == true, "\(String(describing: refusal))")
        // A PSK meter is judged on the same factory certificate.
        #expect(await Self.code { _ = try await enrollment.enroll(.presharedKey(try EUI64(meter)), csr: try Self.request(meter), label: nil) }?.0 == .estRevokedCertificate)

        // The manufacturer's CA destroyed: none of its meters passes, nothing is issued.
        let other = fixture.meters[1]
        try await fixture.hierarchy.destroyAuthority(named: "acme")
        let destroyed = await Self.code {
            _ = try await enrollment.enroll(.factoryCertificate(try await Self.factoryCertificate(fixture, other).der), csr: try Self.request(other), label: nil)
        }
        #expect(destroyed?.0 == .unregisteredManufacturer && destroyed?.1.contains("acme") == true, "\(String(describing: destroyed))")
        let page = try await fixture.store.certificates(matching: CertificateFilter(profile: "device-operational", eui64: other), after: nil, limit: 10)
        #expect(page.certificates.isEmpty)
    }

    @Test("attacker: a meter presenting an expired operational certificate to simplereenroll, or a factory certificate not yet valid, is refused as not valid now (the domain's clock moved)")
    func expiredCertificates() async throws {
        let fixture = try await Self.fixture()
        let meter = fixture.meters[0]
        let identity = try await Self.factoryCertificate(fixture, meter)
        let issued = try await Self.enrollment(fixture).enroll(.factoryCertificate(identity.der), csr: try Self.request(meter), label: nil)
        let operational = try issued.certificate.derBytes
        // Three years on: the two-year operational certificate has expired.
        let later = ManualClock(Date().addingTimeInterval(3 * 365 * 86400))
        let expired = await Self.code { _ = try await Self.enrollment(fixture, clock: later).enroll(.operationalCertificate(operational), csr: try Self.request(meter), label: nil) }
        #expect(expired?.0 == .estExpiredCertificate && expired?.1.contains("not valid now") == true, "\(String(describing: expired))")
        // An hour before the factory certificate's notBefore.
        let factory = try Certificate(derEncoded: identity.der)
        let earlier = ManualClock(factory.notValidBefore.addingTimeInterval(-3600))
        let early = await Self.code { _ = try await Self.enrollment(fixture, clock: earlier).enroll(.factoryCertificate(identity.der), csr: try Self.request(meter), label: nil) }
        #expect(early?.0 == .estExpiredCertificate, "\(String(describing: early))")
        // Still fine now: renewal with the same certificate.
        _ = try await Self.enrollment(fixture).enroll(.operationalCertificate(operational), csr: try Self.request(meter), label: "north")
    }

    @Test("a keyAgreement-only factory certificate is refused with the reason (such meters enroll by PSK); the PSK credential enrolls it, with its HardwareModuleName from the store's factory certificate")
    func keyAgreementMetersEnrollByPSK() async throws {
        let fixture = try await Self.fixture()
        let meter = EUI64(0x0024_BEFF_FE77_0001)
        let identity = try await CertificateIssuer(hierarchy: fixture.hierarchy).issue(
            IssuanceRequest(
                csr: try MeterIdentity(eui64: meter).certificateSigningRequestDER(hardwareType: PKIFixture.deviceType, keyAgreement: true),
                profile: "device-identity", authority: "acme"
            )
        )
        let enrollment = Self.enrollment(fixture)
        let viaCertificate = await Self.code {
            _ = try await enrollment.enroll(.factoryCertificate(identity.record.der), csr: try Self.request(meter.description), label: nil)
        }
        #expect(viaCertificate?.0 == .estPSKRequired && viaCertificate?.1.contains("enroll by PSK") == true, "\(String(describing: viaCertificate))")
        // Unclaimed, the PSK meter is refused as any other; claimed, it is issued.
        #expect(await Self.code { _ = try await enrollment.enroll(.presharedKey(meter), csr: try Self.request(meter.description), label: nil) }?.0 == .estNotClaimed)
        _ = try await fixture.upload(fixture.list([meter.description]), to: "south", format: .list)
        let issued = try await enrollment.enroll(.presharedKey(meter), csr: try Self.request(meter.description), label: "south")
        #expect(issued.account == "south" && issued.record.issuer == "south" && issued.meter.credential == .presharedKey)
        #expect(try issued.certificate.hardwareModuleName == HardwareModuleName(hardwareType: PKIFixture.deviceType, serialNumber: meter.bytes))
        // A CSR naming another device type than the factory certificate's is refused.
        let otherType = try PKIFixture.csr(extensions: [try PKIFixture.hardwareModuleNameSAN(meter, type: [2, 999, 9, 9])])
        #expect(await Self.code { _ = try await enrollment.enroll(.presharedKey(meter), csr: otherType, label: nil) }?.0 == .estIdentityMismatch)
        // A CSR naming no meter at all is refused too: a meter enrolls itself by name.
        let anonymous = try PKIFixture.csr(extensions: [])
        #expect(await Self.code { _ = try await enrollment.enroll(.presharedKey(meter), csr: anonymous, label: nil) }?.0 == .estIdentityMismatch)
    }

    @Test("change of supplier: a released meter cannot renew with its old account's certificate (revoked, superseded); claimed by south, it enrolls again with its factory certificate from south's CA only", arguments: StoreBackend.all)
    func releasedMeterCannotRenew(_ backend: StoreBackend) async throws {
        let fixture = try await Self.fixture(backend)
        let meter = fixture.meters[0]
        let identity = try await Self.factoryCertificate(fixture, meter)
        let enrollment = Self.enrollment(fixture)
        let north = try await enrollment.enroll(.factoryCertificate(identity.der), csr: try Self.request(meter), label: "north")
        _ = try await fixture.onboarding.release(eui64: meter, account: "north", actor: "operator:north")
        // The release revoked north's operational certificate (superseded): renewing with it is refused as revoked,
        // before and after south claims the meter.
        let released = await Self.code { _ = try await enrollment.enroll(.operationalCertificate(try north.certificate.derBytes), csr: try Self.request(meter), label: nil) }
        #expect(released?.0 == .estRevokedCertificate, "\(String(describing: released))")
        #expect(try await fixture.onboarding.audit.verifiedState().revocation(issuer: "north", serial: north.record.serial)?.reason == 4, "not revoked as superseded")
        _ = try await fixture.upload(fixture.list([meter]), to: "south", format: .list)
        let moved = await Self.code { _ = try await enrollment.enroll(.operationalCertificate(try north.certificate.derBytes), csr: try Self.request(meter), label: nil) }
        #expect(moved?.0 == .estRevokedCertificate, "\(String(describing: moved))")
        let south = try await enrollment.enroll(.factoryCertificate(identity.der), csr: try Self.request(meter), label: "south")
        #expect(south.record.issuer == "south" && south.account == "south")
    }

    @Test("the enrollment queue refuses beyond its limit with est.busy while enrollments are in flight, and admits again once they finish")
    func queueLimit() async throws {
        let queue = EnrollmentQueue(limit: 2)
        let gate = AsyncStream<Void>.makeStream()
        async let first: Void = queue.admit { for await _ in gate.stream { break } }
        async let second: Void = queue.admit { for await _ in gate.stream { break } }
        while queue.inFlight < 2 { try await Task.sleep(for: .milliseconds(5)) }
        let refused = await Self.code { try await queue.admit {} }
        #expect(refused?.0 == .estBusy && queue.refused == 1)
        gate.continuation.yield()
        gate.continuation.yield()
        gate.continuation.finish()
        _ = try await (first, second)
        #expect(queue.inFlight == 0)
        try await queue.admit {}
    }

    // MARK: Wire formats

    @Test("CsrAttrs for device-operational: DER read back the same and by openssl asn1parse as the OIDs it names")
    func csrAttributes() throws {
        var serializer = DER.Serializer()
        try serializer.serialize(CsrAttrs.deviceOperational)
        let der = serializer.serializedBytes
        #expect(try CsrAttrs(derEncoded: der) == .deviceOperational)
        let file = TestEnvironment.temporaryDirectory().appendingPathComponent("csrattrs.der")
        try Data(der).write(to: file)
        let parsed = try TestEnvironment.run("openssl", ["asn1parse", "-inform", "DER", "-in", file.path])
        for name in ["ecdsa-with-SHA256", "id-ecPublicKey", "prime256v1", "Extension Request", "X509v3 Subject Alternative Name", "1.3.6.1.5.5.7.8.4"] {
            #expect(parsed.stdout.contains(name), "\(name): \(parsed.stdout)")
        }
        #expect(throws: (any Error).self) { try CsrAttrs(derEncoded: [0x30, 0x03, 0x02, 0x01, 0x01]) }
    }
}
