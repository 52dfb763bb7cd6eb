import Foundation
import MeterTrustCore
import MeterTrustHSM
import MeterTrustPKI
import MeterTrustStore
import SwiftASN1
import X509

/// Writes a batch's bundles and signed enrollment manifest from the certificates the store holds for it. Only
/// stored certificates are ever written, so an output can never contain a certificate the store does not know.
struct BatchOutput {
    let manifest: BatchManifest
    let authority: CertificateAuthority
    let store: any ProvisioningStore
    let directory: URL
    /// `factory-keys.txt` in factory-key mode.
    let factoryKeys: String?
    /// The batch's PSK master key, for a `psk` batch: each bundle then carries its meter's PSK, derived in the HSM.
    let pskMaster: HSMSecretKey?
    let hardwareType: ASN1ObjectIdentifier

    static let bundlesFile = "bundles.jsonl"
    static let manifestFile = "enrollment-manifest.json"
    static let signatureFile = "enrollment-manifest.json.sig"

    /// Writes every output; returns the number of meters provisioned.
    func write(progress: any BatchProgress) async throws -> Int {
        let chainPEM = try authority.chain.dropLast().map { try $0.pem }
        let rootPEM = try authority.root.pem
        try write(Data(try authority.certificate.pem.utf8), to: "manufacturer-ca.pem")
        try write(Data(rootPEM.utf8), to: "root-ca.pem")

        let total = try await store.batchCertificateCount(batch: manifest.batch)
        let bundlesTemporary = directory.appendingPathComponent(Self.bundlesFile + ".tmp").path
        guard FileManager.default.createFile(atPath: bundlesTemporary, contents: nil, attributes: [.posixPermissions: factoryKeys == nil && pskMaster == nil ? 0o644 : 0o600]) else {
            throw FactoryError(.output, "cannot write \(bundlesTemporary)")
        }
        let bundles = try FileHandle(forWritingTo: URL(fileURLWithPath: bundlesTemporary))
        let useSHA384 = authority.signingKey.key.curve == .p384
        let manufacturerCA = EnrollmentManifest.Authority(
            subject: authority.certificate.subject.description, serial: authority.certificate.serialHex,
            certificateSHA256: try authority.certificate.fingerprintSHA256
        )
        let header: [(String, String)] = [
            ("format", EnrollmentManifestWriter.quote(EnrollmentManifest.formatName)),
            ("version", "1"),
            ("batch", EnrollmentManifestWriter.quote(manifest.batch)),
            ("manufacturer", EnrollmentManifestWriter.quote(manifest.manufacturer)),
            ("manufacturerCA", String(decoding: try JSONEncoder.sorted.encode(manufacturerCA), as: UTF8.self)),
            ("deviceType", EnrollmentManifestWriter.quote(hardwareType.dotted)),
            ("signatureAlgorithm", EnrollmentManifestWriter.quote(useSHA384 ? "ecdsa-with-SHA384" : "ecdsa-with-SHA256")),
            ("created", EnrollmentManifestWriter.quote(ISO8601DateFormatter().string(from: Date()))),
        ]
        let manifestTemporary = directory.appendingPathComponent(Self.manifestFile + ".tmp").path
        var enrollment = try EnrollmentManifestWriter(path: manifestTemporary, header: header, useSHA384: useSHA384)
        var keys = try factoryKeys.map { path -> LineReader in
            guard let reader = LineReader(path: path, maximumLineLength: 4096) else { throw FactoryError(.input, "cannot read \(path)") }
            return reader
        }

        var position: Int64 = 0
        var written = 0
        progress.update(phase: "writing bundles", done: 0, total: total)  // the phase's clock starts now
        var buffer = Data()
        while true {
            let page = try await store.batchCertificates(batch: manifest.batch, afterPosition: position, limit: 1000)
            guard let last = page.last else { break }
            let psks = try await presharedKeys(of: page)
            for record in page {
                guard let eui64 = record.eui64 else { continue }
                let certificatePEM = PEMDocument(type: "CERTIFICATE", derBytes: record.der).pemString + "\n"
                var bundle = ProvisioningBundle(
                    batch: manifest.batch, eui64: eui64, endpointName: EUI64.deviceURNPrefix + eui64,
                    bootstrapServerURI: manifest.bootstrapServerURI,
                    imageDigest: .init(value: manifest.firmware.sha256.lowercased()), parameters: manifest.parameters ?? [:],
                    deviceCertificate: certificatePEM, chain: chainPEM, trustAnchor: rootPEM
                )
                if keys != nil { bundle.privateKey = try privateKey(line: record.batchPosition ?? 0, eui64: eui64, from: &keys!) }
                bundle.presharedKey = psks[eui64]?.hex
                buffer.append(try bundle.encoded())
                buffer.append(UInt8(ascii: "\n"))
                try enrollment.add(.init(eui64: eui64, certificateSHA256: record.fingerprintSHA256))
                written += 1
            }
            if buffer.count > 1 << 20 {
                try bundles.write(contentsOf: buffer)
                buffer.removeAll(keepingCapacity: true)
            }
            position = last.batchPosition ?? Int64.max
            progress.update(phase: "writing bundles", done: written, total: total)
        }
        try bundles.write(contentsOf: buffer)
        try bundles.close()
        let digest = try enrollment.finish(count: written)
        let signingKey = authority.signingKey
        let signature = try await signingKey.token.perform { _ in try signingKey.sign(digest: digest) }
        try replace(bundlesTemporary, with: Self.bundlesFile)
        try replace(manifestTemporary, with: Self.manifestFile)
        try write(Data(signature), to: Self.signatureFile)
        progress.finish(phase: "writing bundles")
        return written
    }

    /// The PSKs of a page's meters, derived in the HSM in one trip to its queue (a `psk` batch; none otherwise). They
    /// go into the bundles and nowhere else.
    private func presharedKeys(of page: [CertificateRecord]) async throws -> [String: PresharedKey] {
        guard let master = pskMaster else { return [:] }
        let meters = try page.compactMap(\.eui64).map { try EUI64($0) }
        return try await authority.signingKey.token.perform { token in
            var keys: [String: PresharedKey] = [:]
            for eui in meters { keys[eui.description] = try token.derivePSK(for: eui, master: master) }
            return keys
        }
    }

    /// The PKCS#8 PEM of the factory-generated key on `line` of `factory-keys.txt`.
    private func privateKey(line: Int64, eui64: String, from reader: inout LineReader) throws -> String {
        while let (number, text) = try reader.next() {
            guard number == line else { continue }
            let fields = text.map { String(decoding: $0, as: UTF8.self) }?.split(separator: " ") ?? []
            guard fields.count == 2, fields[0] == eui64, let der = Data(base64Encoded: String(fields[1])) else { break }
            return PEMDocument(type: "PRIVATE KEY", derBytes: Array(der)).pemString + "\n"
        }
        throw FactoryError(.input, "factory-keys.txt has no key for meter \(eui64) on line \(line): remove the output directory's csrs.txt to start the batch's keys over")
    }

    private func write(_ data: Data, to name: String) throws {
        do {
            try data.write(to: directory.appendingPathComponent(name), options: .atomic)
        } catch {
            throw FactoryError(.output, "cannot write \(directory.appendingPathComponent(name).path): \(error.localizedDescription)")
        }
    }

    private func replace(_ temporary: String, with name: String) throws {
        let target = directory.appendingPathComponent(name).path
        _ = try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.moveItem(atPath: temporary, toPath: target)
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
