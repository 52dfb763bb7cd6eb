import Foundation
import MeterTrustStore
import Testing

/// The PSK view on every backend: a batch's master key label round-trips, sealed PSKs are one per meter (an import is
/// all or nothing and never replaces a meter's PSK), are read back as stored and paged in EUI-64 order, and store
/// copy carries them.
@Suite("Store conformance: PSK")
struct PSKStoreConformanceTests {
    @Test("batch PSK master key label, sealed PSKs one per meter (a duplicate stores none of the set), paging, copy", arguments: StoreBackend.all)
    func presharedKeys(_ backend: StoreBackend) async throws {
        let store = try await backend.make()
        try await StoreConformanceTests.register("acme", in: store)
        let begun = try await store.beginBatch(BatchRecord(id: "psk-b", manufacturer: "acme", manifestSHA256: "00", meterCount: 2, pskMasterKeyLabel: "metertrust/psk-master/psk-b/0a0b0c0d"))
        #expect(begun.pskMasterKeyLabel == "metertrust/psk-master/psk-b/0a0b0c0d")
        #expect(try await store.batch(id: "psk-b")?.pskMasterKeyLabel == "metertrust/psk-master/psk-b/0a0b0c0d")
        _ = try await store.beginBatch(BatchRecord(id: "plain", manufacturer: "acme", manifestSHA256: "01", meterCount: 1))
        #expect(try await store.batch(id: "plain")?.pskMasterKeyLabel == nil)

        let at = Date(timeIntervalSince1970: 1_800_000_000)
        func record(_ eui: String, _ byte: UInt8) -> SealedPSKRecord {
            SealedPSKRecord(eui64: eui, batch: "oem-1", sealingKeyLabel: "metertrust/psk-sealing/01020304", sealed: Array(repeating: byte, count: 60), importedAt: at)
        }
        try await store.insertSealedPSKs([record("0024befffe000002", 2), record("0024befffe000001", 1)])
        #expect(try await store.sealedPSK(eui64: "0024befffe000001") == record("0024befffe000001", 1))
        #expect(try await store.sealedPSK(eui64: "0024befffe000009") == nil)
        // A set holding a meter that already has one stores nothing of the set.
        await #expect(throws: StoreError.self) { try await store.insertSealedPSKs([record("0024befffe000003", 3), record("0024befffe000001", 9)]) }
        #expect(try await store.sealedPSK(eui64: "0024befffe000003") == nil)
        #expect(try await store.sealedPSK(eui64: "0024befffe000001")?.sealed.first == 1)
        // The schema refuses what is not a sealed value of a canonical meter.
        await #expect(throws: StoreError.self) { try await store.insertSealedPSKs([record("0024BEFFFE000004", 4)]) }
        await #expect(throws: StoreError.self) {
            try await store.insertSealedPSKs([SealedPSKRecord(eui64: "0024befffe000005", batch: "b", sealingKeyLabel: "k", sealed: [1, 2, 3], importedAt: at)])
        }
        #expect(try await store.sealedPSKs(after: nil, limit: 10).map(\.eui64) == ["0024befffe000001", "0024befffe000002"])
        #expect(try await store.sealedPSKs(after: "0024befffe000001", limit: 10).map(\.eui64) == ["0024befffe000002"])

        let target = try await backend.make()
        let counts = try await StoreCopy(source: store, target: target).run()
        #expect(counts.sealedPSKs == 2 && counts.batches == 2)
        #expect(try await target.sealedPSK(eui64: "0024befffe000002") == record("0024befffe000002", 2))
        #expect(try await target.batch(id: "psk-b")?.pskMasterKeyLabel == "metertrust/psk-master/psk-b/0a0b0c0d")
    }
}
