import Crypto
import Foundation
import MeterTrustCore
import MeterTrustHSM
import Testing

@Suite("PKCS#11 layer on a real SoftHSM2 token")
struct HSMTests {
    @Test("generated keys stay on the token: CKA_VALUE unreadable, never extractable")
    func keysCannotBeReadOut() throws {
        let token = try TestEnvironment.openToken()
        for curve in ECCurve.allCases {
            let key = try token.generateKeyPair(curve: curve, label: "ca-key-\(curve.rawValue)")
            let error = #expect(throws: HSMError.self) { try token.readPrivateValue(of: key) }
            #expect(error?.code == .pkcs11)
            #expect(error?.operation == "C_GetAttributeValue")
            #expect(error?.returnValueName == "CKR_ATTRIBUTE_SENSITIVE")
            let protection = try token.protection(of: key)
            #expect(protection.isToken && protection.isPrivate && protection.isSensitive)
            #expect(!protection.isExtractable)
            #expect(protection.neverExtractable)
            #expect(protection.alwaysSensitive)
        }
    }

    @Test("C_Sign over a software digest yields signatures swift-crypto verifies", arguments: ECCurve.allCases)
    func signaturesVerify(curve: ECCurve) throws {
        let token = try TestEnvironment.openToken()
        let key = try token.generateKeyPair(curve: curve, label: "signer")
        let message = Array("meter reading 42".utf8)
        let der = try token.sign(message: message, with: key)
        switch curve {
        case .p256:
            let publicKey = try P256.Signing.PublicKey(x963Representation: key.publicPoint)
            #expect(publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: message))
            #expect(!publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: message + [0]))
        case .p384:
            let publicKey = try P384.Signing.PublicKey(x963Representation: key.publicPoint)
            #expect(publicKey.isValidSignature(try P384.Signing.ECDSASignature(derRepresentation: der), for: message))
        }
    }

    @Test("keys are found again by label and by CKA_ID")
    func findKeys() throws {
        let token = try TestEnvironment.openToken()
        let key = try token.generateKeyPair(curve: .p256, label: "findable", id: [1, 2, 3, 4])
        #expect(try token.findKey(label: "findable") == key)
        #expect(try token.findKey(id: [1, 2, 3, 4]) == key)
        let error = #expect(throws: HSMError.self) { try token.findKey(label: "absent") }
        #expect(error?.code == .keyNotFound)
    }

    @Test("concurrent signers share the session pool without interfering")
    func concurrentSigning() async throws {
        let token = try TestEnvironment.openToken(sessions: 2)
        let key = try token.generateKeyPair(curve: .p256, label: "busy")
        let publicKey = try P256.Signing.PublicKey(x963Representation: key.publicPoint)
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<64 {
                group.addTask {
                    let message = Array("message \(index)".utf8)
                    let der = try await token.perform { try $0.sign(message: message, with: key) }
                    return publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: message)
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 64 && results.allSatisfy { $0 })
    }

    @Test("a wrong PIN is a typed error naming C_Login and CKR_PIN_INCORRECT, without the PIN")
    func rejectWrongPIN() throws {
        var configuration = try TestEnvironment.makeToken()
        let wrongPINFile = TestEnvironment.temporaryDirectory().appendingPathComponent("pin").path
        _ = FileManager.default.createFile(atPath: wrongPINFile, contents: Data("wrong-pin-1234".utf8), attributes: [.posixPermissions: 0o600])
        configuration.pinFile = wrongPINFile
        let error = #expect(throws: HSMError.self) { try HSMToken.open(configuration) }
        #expect(error?.operation == "C_Login")
        #expect(error?.returnValueName == "CKR_PIN_INCORRECT")
        #expect(error?.message.contains("wrong-pin-1234") == false)
    }

    @Test("a PIN file others can read is refused")
    func rejectWorldReadablePINFile() throws {
        var configuration = try TestEnvironment.makeToken()
        let path = configuration.pinFile!
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        let error = #expect(throws: HSMError.self) { try HSMToken.open(configuration) }
        #expect(error?.code == .pinUnavailable)
        #expect(error?.message.contains("chmod 600") == true)
        configuration.pinFile = nil
        configuration.pinEnvironmentVariable = "METERTRUST_TEST_UNSET_PIN_VARIABLE"
        let missing = #expect(throws: HSMError.self) { try HSMToken.open(configuration) }
        #expect(missing?.code == .pinUnavailable)
    }

    @Test("an unknown token label and a missing module are clear errors")
    func rejectUnknownTokenAndModule() throws {
        var configuration = try TestEnvironment.makeToken()
        configuration.tokenLabel = "no-such-token"
        let error = #expect(throws: HSMError.self) { try HSMToken.open(configuration) }
        #expect(error?.code == .tokenNotFound)
        #expect(error?.message.contains("no-such-token") == true)
        configuration.modulePath = "/nonexistent/libpkcs11.so"
        let moduleError = #expect(throws: HSMError.self) { try HSMToken.open(configuration) }
        #expect(moduleError?.code == .moduleLoad)
    }

    @Test("a session copy of a key stays sensitive and unextractable inside the HSM, signs, and is destroyed on request")
    func sessionCopy() throws {
        let token = try TestEnvironment.openToken()
        let key = try token.generateKeyPair(curve: .p256, label: "batch-ca", policy: HSMKeyPolicy(sessionCopies: true))
        let copy = try token.sessionCopy(of: key)
        let protection = try token.protection(of: copy)
        #expect(!protection.isToken && protection.isSensitive && !protection.isExtractable && protection.neverExtractable)
        let error = #expect(throws: HSMError.self) { try token.readPrivateValue(of: copy) }
        #expect(error?.returnValueName == "CKR_ATTRIBUTE_SENSITIVE")
        let message = Array("batch".utf8)
        let der = try token.sign(message: message, with: copy)
        let publicKey = try P256.Signing.PublicKey(x963Representation: key.publicPoint)
        #expect(publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: message))
        try token.destroySessionCopy(copy)
        #expect(throws: HSMError.self) { try token.sign(message: message, with: copy) }
        #expect(try token.findKey(label: "batch-ca") == key)
    }

    @Test("destroyed keys are gone from the token")
    func destroyKey() throws {
        let token = try TestEnvironment.openToken()
        let key = try token.generateKeyPair(curve: .p256, label: "short-lived")
        try token.destroy(key)
        #expect(throws: HSMError.self) { try token.findKey(label: "short-lived") }
    }

    @Test("an HSMSigner's signatures verify with swift-crypto: DER over a message, raw over a digest, on the HSM queue", arguments: ECCurve.allCases)
    func signerSignaturesVerify(curve: ECCurve) async throws {
        let token = try TestEnvironment.openToken()
        let key = try token.generateKeyPair(curve: curve, label: "signer-\(curve.rawValue)")
        let signer = token.signer(for: key)
        let message = Array("meter reading 43".utf8)
        let der = try signer.signature(for: message)
        let queued = try await signer.signatureOnHSMQueue(for: message)
        let raw = try signer.rawSignature(digest: signer.digest(of: message))
        #expect(raw.count == 2 * curve.coordinateLength)
        #expect(try ECDSASignatureEncoding.der(raw: ECDSASignatureEncoding.raw(der: der, coordinateLength: curve.coordinateLength)) == der)
        switch (curve, try signer.publicKey()) {
        case (.p256, .p256(let publicKey)):
            #expect(publicKey.x963Representation == Data(key.publicPoint))
            #expect(publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: message))
            #expect(publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: queued), for: message))
            #expect(publicKey.isValidSignature(try P256.Signing.ECDSASignature(rawRepresentation: raw), for: message))
            #expect(!publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: message + [0]))
        case (.p384, .p384(let publicKey)):
            #expect(publicKey.x963Representation == Data(key.publicPoint))
            #expect(publicKey.isValidSignature(try P384.Signing.ECDSASignature(derRepresentation: der), for: message))
            #expect(publicKey.isValidSignature(try P384.Signing.ECDSASignature(derRepresentation: queued), for: message))
            #expect(publicKey.isValidSignature(try P384.Signing.ECDSASignature(rawRepresentation: raw), for: message))
            #expect(!publicKey.isValidSignature(try P384.Signing.ECDSASignature(derRepresentation: der), for: message + [0]))
        default:
            Issue.record("a \(curve.rawValue) key's signer has a public key of another curve")
        }
        // HSMToken.sign(message:with:) is the same signer.
        let viaToken = try token.sign(message: message, with: key)
        if case .p256(let publicKey) = try signer.publicKey() {
            #expect(publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: viaToken), for: message))
        }
    }

    @Test("the KeyManager view generates, finds, signs with and destroys a key on the token")
    func keyManagerView() throws {
        let manager: any KeyManager = try TestEnvironment.openToken()
        let key = try manager.generateKeyPair(curve: .p256, label: "managed", id: [9, 8, 7], policy: .signingOnly)
        #expect(try manager.findKey(label: "managed") == key)
        #expect(try manager.findKey(id: [9, 8, 7]) == key)
        let message = Array("managed".utf8)
        let publicKey = try P256.Signing.PublicKey(x963Representation: key.publicPoint)
        let der = try manager.signer(for: key).signature(for: message)
        #expect(publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: message))
        try manager.destroy(key)
        let error = #expect(throws: HSMError.self) { try manager.findKey(label: "managed") }
        #expect(error?.code == .keyNotFound)
    }
}
