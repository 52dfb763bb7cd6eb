import Crypto
import Foundation
import MeterTrustCore
import MeterTrustCore
import MeterTrustPKI
import SwiftASN1

/// The weaker mode: the factory tool, not the meter, generates each meter's key, makes its CSR, and later writes
/// the key into the meter's bundle.
///
/// The keys are written to `factory-keys.txt` (mode 0600, `<eui64> <base64 PKCS#8>` per line) and the CSRs to
/// `csrs.txt` in the output directory, in the batch's meter order; a resumed batch reuses them (`csrs.complete`
/// marks them whole). Keys live outside the meters in this mode: the output directory must be protected and
/// destroyed once the meters are provisioned.
enum FactoryKeys {
    static let keyFile = "factory-keys.txt"
    static let csrFile = "csrs.txt"
    static let completeMarker = "csrs.complete"

    static func prepare(
        meters: BatchMeters, hardwareType: ASN1ObjectIdentifier, in directory: URL, workers: Int, progress: any BatchProgress
    ) async throws -> String {
        let csrPath = directory.appendingPathComponent(csrFile).path
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent(completeMarker).path) { return csrPath }
        let keyPath = directory.appendingPathComponent(keyFile).path
        // The keys file is 0600 from its creation (a new file renamed into place when whole; an old one, whatever
        // its mode, is replaced, never reused).
        var keys: SecretFile
        do {
            keys = try SecretFile(creating: keyPath)
        } catch {
            throw FactoryError(.output, "cannot create \(keyPath): \(error)")
        }
        guard FileManager.default.createFile(atPath: csrPath, contents: nil) else {
            throw FactoryError(.output, "cannot create \(csrPath)")
        }
        let csrs = try FileHandle(forWritingTo: URL(fileURLWithPath: csrPath))
        let round = 4096
        var position = 0
        progress.update(phase: "generating factory keys", done: 0, total: meters.total)  // the phase's clock starts now
        while position < meters.total {
            let range = position..<min(position + round, meters.total)
            let lines = try await generate(range: range, meters: meters, hardwareType: hardwareType, workers: workers)
            try keys.write(Array(lines.map(\.key).joined().utf8))
            try csrs.write(contentsOf: Data(lines.map(\.csr).joined().utf8))
            position = range.upperBound
            progress.update(phase: "generating factory keys", done: position, total: meters.total)
        }
        try keys.commit()
        try csrs.close()
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent(completeMarker).path, contents: nil)
        progress.finish(phase: "generating factory keys")
        return csrPath
    }

    /// Key and CSR lines for the meters in `range`, generated on `workers` threads. A malformed EUI-64 in the
    /// manifest gets no line in either file (the batch reports it), so line k of both files is the same meter.
    private static func generate(range: Range<Int>, meters: BatchMeters, hardwareType: ASN1ObjectIdentifier, workers: Int) async throws -> [(key: String, csr: String)] {
        let results = await parallelMap(count: range.count, workers: workers) { index -> Result<(key: String, csr: String), any Error> in
            guard let eui = meters.eui(at: range.lowerBound + index) else { return .success(("", "")) }
            return Result {
                let key = P256.Signing.PrivateKey()
                let csr = try DeviceIdentityRequest.der(eui64: eui, privateKey: key, hardwareType: hardwareType)
                return ("\(eui) \(key.derRepresentation.base64EncodedString())\n", CSRListReader.line(eui64: eui, csr: csr))
            }
        }
        return try results.map { try $0.get() }
    }
}
