import Foundation
import FuzzMain
import FuzzSupport
import MeterTrustCore
import MeterTrustDevice
import SwiftASN1

// The provisioning bundle as the meter's configurator receives it (stages 3 and 4): `FactoryConfigurator.install`,
// which decodes the document and validates every field, certificate and chain before storing anything. Each input
// goes to two configurators of the fixed meters the seeds were made for, both pinning the seeds' root: one at
// stage 1 (imaged; a factory-key bundle brings its key) and one at stage 2 (keyed; its own key). A refusal is a ConfiguratorError and leaves the
// configurator as it was; an accepted bundle reads back from storage as installed.

let root = Fuzz.scratchDirectory.appendingPathComponent("meters")

struct Meter: Sendable {
    let directory: URL
    let eui64: EUI64
    let keyed: Bool

    /// A fresh configurator of the fixed meter at its stage.
    func reset() -> FactoryConfigurator {
        try? FileManager.default.removeItem(at: directory)
        do {
            let configurator = try FactoryConfigurator.injectImage(
                FuzzFixture.image, eui64: eui64, trustAnchorSHA256: FuzzFixture.trustAnchorSHA256, into: directory)
            if keyed { _ = try configurator.generateIdentity(hardwareType: try ASN1ObjectIdentifier(dotRepresentation: FuzzFixture.deviceType)) }
            return configurator
        } catch {
            Fuzz.violated("cannot set up the configurator in \(directory.path): \(error)")
        }
    }
}

let meters = [
    Meter(directory: root.appendingPathComponent("imaged"), eui64: FuzzFixture.factoryKeyMeter, keyed: false),
    Meter(directory: root.appendingPathComponent("keyed"), eui64: FuzzFixture.meter, keyed: true),
]
let configurators = meters.map { $0.reset() }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Data(Fuzz.bytes(start, count))
    for (meter, configurator) in zip(meters, configurators) {
        let outcome: Result<ProvisioningBundle, any Error> = Fuzz.blocking {
            do { return .success(try await configurator.install(bundle: input)) } catch { return .failure(error) }
        }
        switch outcome {
        case .failure(let error):
            Fuzz.note("meter \(meter.eui64) (\(meter.keyed ? "keyed" : "imaged")): \(error)")
            guard let refusal = error as? ConfiguratorError, refusal.code == .invalidBundle else {
                Fuzz.violated("install threw \(type(of: error)) \(error), not an invalid-bundle ConfiguratorError")
            }
            let stage = try? configurator.state().stage
            Fuzz.require(stage == (meter.keyed ? .keyed : .imaged), "a refused bundle moved the configurator to \(String(describing: stage))")
        case .success(let installed):
            Fuzz.note("meter \(meter.eui64) (\(meter.keyed ? "keyed" : "imaged")): installed")
            Fuzz.require((try? configurator.state().stage) == .provisioned, "an installed bundle left the configurator short of provisioned")
            Fuzz.require((try? configurator.installedBundle()) == installed, "the stored bundle does not read back as installed")
            Fuzz.require(installed.eui64 == meter.eui64.description, "installed a bundle for meter \(installed.eui64)")
            _ = meter.reset()
        }
    }
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzBundle_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
