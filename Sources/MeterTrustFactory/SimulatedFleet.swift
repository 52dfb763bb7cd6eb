import Crypto
import Foundation
import MeterTrustCore
import MeterTrustPKI
import MeterTrustStore
import SwiftASN1

/// The simulated meters of `metertrust bench est`: N factory identities issued through the factory's own issuance
/// engine (checked, signed in the HSM with a session copy of the manufacturer CA key, stored in rounds, as
/// `factory run` does), and for each meter its identity key and a pre-made operational CSR
/// (``MeterTrustCore/DeviceOperationalRequest``, for a new key of its own), so that the benchmark times enrollment
/// only.
///
/// The meters are kept in memory, compactly (DER, raw keys): about 1 KB each, 100 MB for 100,000.
public struct SimulatedFleet: Sendable {
    public struct Meter: Sendable {
        public let eui64: EUI64
        /// The factory identity certificate (IDevID), DER.
        public let identity: [UInt8]
        public let identityKey: P256.Signing.PrivateKey
        /// A CSR for the device-operational profile, DER.
        public let operationalRequest: [UInt8]
    }

    public let meters: [Meter]
    public let batch: String

    /// Issues `count` meters from EUI-64 `first` upwards under `manufacturer` in batch `batch` of `store`; with
    /// `pskMasterKeyLabel`, a `keyMode: psk` batch whose meters' PSKs that HSM key derives.
    public static func make(
        count: Int, first: UInt64, batch: String, manufacturer: CertificateAuthority, hierarchy: CAHierarchy, store: any ProvisioningStore,
        threads: Int, progress: any BatchProgress, pskMasterKeyLabel: String? = nil
    ) async throws -> SimulatedFleet {
        let hardwareType = try hierarchy.settings.defaultDeviceType()
        struct Made: Sendable {
            var eui64: EUI64
            var key: P256.Signing.PrivateKey
            var identityRequest: [UInt8]
            var operationalRequest: [UInt8]
        }
        progress.update(phase: "making meters", done: 0, total: count)
        var made: [Made] = []
        made.reserveCapacity(count)
        while made.count < count {
            let start = made.count
            let round = await parallelMap(count: min(4096, count - start), workers: threads) { index -> Result<Made, any Error> in
                Result {
                    let eui = EUI64(first + UInt64(start + index))
                    let key = P256.Signing.PrivateKey()
                    return Made(
                        eui64: eui, key: key,
                        identityRequest: try DeviceIdentityRequest.der(eui64: eui, privateKey: key, hardwareType: hardwareType),
                        operationalRequest: try DeviceOperationalRequest.der(eui64: eui, privateKey: P256.Signing.PrivateKey(), hardwareType: hardwareType)
                    )
                }
            }
            made += try round.map { try $0.get() }
            progress.update(phase: "making meters", done: made.count, total: count)
        }
        progress.finish(phase: "making meters")

        let session = try manufacturer.withSessionKey()
        defer { try? session.releaseSessionKey() }
        _ = try await store.beginBatch(BatchRecord(id: batch, manufacturer: manufacturer.name, manifestSHA256: "bench-est", meterCount: Int64(count), pskMasterKeyLabel: pskMasterKeyLabel))
        let signer = try CertificateSigner(authority: session, profile: .deviceIdentity, settings: hierarchy.settings, hardwareType: hardwareType)
        var position = 0
        let items = made
        let counts = try await IssuanceEngine(signer: signer, store: store, workers: threads).run(
            batch: batch,
            next: {
                guard position < items.count else { return nil }
                defer { position += 1 }
                return IssuanceItem(position: Int64(position + 1), eui64: items[position].eui64, csr: items[position].identityRequest)
            },
            refused: { throw FactoryError(.input, "bench meter refused: \($0.description)") },
            progress: { progress.update(phase: "issuing identities", done: $0.done, total: count) }
        )
        progress.finish(phase: "issuing identities")
        guard counts.issued == count else { throw FactoryError(.output, "issued \(counts.issued) of \(count) bench meters") }

        // The identities as stored, matched to their keys by EUI-64.
        var identities: [EUI64: [UInt8]] = [:]
        identities.reserveCapacity(count)
        var after: CertificateListPosition?
        repeat {
            let page = try await store.certificates(matching: CertificateFilter(batch: batch), after: after, limit: 10_000)
            for record in page.certificates { if let eui = record.eui64.flatMap({ try? EUI64($0) }) { identities[eui] = record.der } }
            after = page.next
        } while after != nil
        let meters = try made.map { meter -> Meter in
            guard let identity = identities[meter.eui64] else { throw FactoryError(.output, "bench meter \(meter.eui64) has no stored identity") }
            return Meter(eui64: meter.eui64, identity: identity, identityKey: meter.key, operationalRequest: meter.operationalRequest)
        }
        return SimulatedFleet(meters: meters, batch: batch)
    }
}
