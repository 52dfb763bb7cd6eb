import Crypto
import Foundation
import MeterTrustCore
import MeterTrustPKI
import Testing

@Suite("ECDSA signatures: raw r‖s ↔ DER ECDSA-Sig-Value (MeterTrustCore)")
struct ECDSASignatureEncodingTests {
    typealias Code = ECDSASignatureEncoding.Error.Code

    /// RFC 6979 §A.2.5, P-256, SHA-256, message "sample": the public key U and the signature (r, s).
    static let rfc6979Point = hexBytes(
        "0460FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
            + "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
    )!
    static let rfc6979Raw = hexBytes(
        "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
            + "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
    )!
    /// The DER of that (r, s) as OpenSSL 3.0.19 writes it: `openssl asn1parse -genconf sig.cnf -out sig.der` with
    /// `asn1=SEQUENCE:sig`, `r=INTEGER:0xEFD4…3716`, `s=INTEGER:0xF7CB…CDA8`; `openssl dgst -sha256 -verify` accepts it
    /// for U over "sample". Both r and s have the high bit set, so each INTEGER carries a leading zero octet.
    static let rfc6979DER = hexBytes(
        "3046022100EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
            + "022100F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
    )!

    @Test("the RFC 6979 §A.2.5 signature encodes to OpenSSL's DER, decodes back, and verifies")
    func rfc6979Vector() throws {
        #expect(try ECDSASignatureEncoding.der(raw: Self.rfc6979Raw) == Self.rfc6979DER)
        #expect(try ECDSASignatureEncoding.raw(der: Self.rfc6979DER, coordinateLength: 32) == Self.rfc6979Raw)
        let publicKey = try P256.Signing.PublicKey(x963Representation: Self.rfc6979Point)
        let signature = try P256.Signing.ECDSASignature(derRepresentation: try ECDSASignatureEncoding.der(raw: Self.rfc6979Raw))
        #expect(publicKey.isValidSignature(signature, for: Array("sample".utf8)))
        #expect(!publicKey.isValidSignature(signature, for: Array("samplf".utf8)))
    }

    @Test("a high first octet gets one leading zero octet; leading zero octets are dropped")
    func integerMinimality() throws {
        // r = 00 00 7F 11…: two zero octets dropped, no pad (7F has the high bit clear); s = 80 00…01: one zero added.
        let r = [0x00, 0x00, 0x7F] + [UInt8](repeating: 0x11, count: 29)
        let s = [0x80] + [UInt8](repeating: 0x00, count: 30) + [0x01]
        let der = try ECDSASignatureEncoding.der(raw: r + s)
        var expected: [UInt8] = [0x30, 2 + 30 + 2 + 33, 0x02, 30]
        expected += r.dropFirst(2)
        expected += [0x02, 33, 0x00]
        expected += s
        #expect(der == expected)
        #expect(try ECDSASignatureEncoding.raw(der: der, coordinateLength: 32) == r + s)
        // r = 1: one content octet, 31 zero octets restored on the way back.
        let one = [UInt8](repeating: 0, count: 31) + [1] + s
        let oneDER = try ECDSASignatureEncoding.der(raw: one)
        #expect(oneDER.prefix(5) == [0x30, 3 + 2 + 33, 0x02, 0x01, 0x01])
        #expect(try ECDSASignatureEncoding.raw(der: oneDER, coordinateLength: 32) == one)
    }

    @Test("raw → DER equals swift-crypto's derRepresentation and DER → raw inverts it (P-256 and P-384)", arguments: [32, 48])
    func agreesWithSwiftCrypto(coordinateLength: Int) throws {
        var random = ParserRobustnessTests.SplitMix(state: 0xD5A + UInt64(coordinateLength))
        let n = coordinateLength
        var cases: [[UInt8]] = (0..<500).map { _ in (0..<(2 * n)).map { _ in UInt8.random(in: 0...255, using: &random) } }
        cases.append([0x00, 0x00, 0x80] + [UInt8](repeating: 0x11, count: n - 3) + [0x80] + [UInt8](repeating: 0, count: n - 1))
        cases.append([UInt8](repeating: 0, count: n - 1) + [1] + [0xFF] + [UInt8](repeating: 0xFF, count: n - 1))
        cases.append([UInt8](repeating: 0xFF, count: 2 * n))
        for raw in cases {
            let expected: [UInt8]
            switch n {
            case 32: expected = Array(try P256.Signing.ECDSASignature(rawRepresentation: raw).derRepresentation)
            default: expected = Array(try P384.Signing.ECDSASignature(rawRepresentation: raw).derRepresentation)
            }
            let der = try ECDSASignatureEncoding.der(raw: raw)
            #expect(der == expected)
            #expect(try ECDSASignatureEncoding.raw(der: der, coordinateLength: n) == raw)
        }
    }

    /// A DER signature with one defect each; the valid base they start from is accepted (checked below).
    static let base: [UInt8] = [0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07]
    static let refusedDER: [(name: String, der: [UInt8], coordinateLength: Int, code: Code)] = [
        ("wrong outer tag (SET)", [0x31] + base.dropFirst(), 32, .malformedDER),
        ("wrong inner tag (OCTET STRING for r)", [0x30, 0x06, 0x04, 0x01, 0x05, 0x02, 0x01, 0x07], 32, .malformedDER),
        ("a trailing octet", base + [0x00], 32, .malformedDER),
        ("a second SEQUENCE after the first", base + base, 32, .malformedDER),
        ("one INTEGER", [0x30, 0x03, 0x02, 0x01, 0x05], 32, .malformedDER),
        ("three INTEGERs", [0x30, 0x09, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07, 0x02, 0x01, 0x09], 32, .malformedDER),
        ("an empty SEQUENCE", [0x30, 0x00], 32, .malformedDER),
        ("nothing", [], 32, .malformedDER),
        ("a length beyond the input", [0x30, 0x07] + base.dropFirst(2), 32, .malformedDER),
        ("BER indefinite length", [0x30, 0x80] + base.dropFirst(2) + [0x00, 0x00], 32, .malformedDER),
        ("a non-minimal INTEGER (00 05)", [0x30, 0x07, 0x02, 0x02, 0x00, 0x05, 0x02, 0x01, 0x07], 32, .malformedDER),
        ("an INTEGER of no octets", [0x30, 0x05, 0x02, 0x00, 0x02, 0x01, 0x07], 32, .malformedDER),
        ("a negative r", [0x30, 0x06, 0x02, 0x01, 0x85, 0x02, 0x01, 0x07], 32, .negativeInteger),
        ("a negative s", [0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0xFF], 32, .negativeInteger),
        ("r zero", [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x07], 32, .zeroInteger),
        ("s zero", [0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x00], 32, .zeroInteger),
        (
            "r of 33 octets for a 32-octet coordinate",
            [0x30, 0x26, 0x02, 0x21] + [UInt8](repeating: 0x01, count: 33) + [0x02, 0x01, 0x07], 32, .integerTooLong
        ),
        (
            "s of 33 octets (with its sign octet: 34) for a 32-octet coordinate",
            [0x30, 0x27, 0x02, 0x01, 0x05, 0x02, 0x22, 0x00] + [UInt8](repeating: 0x80, count: 33), 32, .integerTooLong
        ),
        ("r of 2 octets for a 1-octet coordinate", [0x30, 0x07, 0x02, 0x02, 0x01, 0x00, 0x02, 0x01, 0x07], 1, .integerTooLong),
        ("a coordinate size of zero", base, 0, .rawLength),
    ]

    @Test("the valid base of the refusal table is accepted")
    func baseIsAccepted() throws {
        #expect(try ECDSASignatureEncoding.raw(der: Self.base, coordinateLength: 32) == [UInt8](repeating: 0, count: 31) + [5] + [UInt8](repeating: 0, count: 31) + [7])
        #expect(try ECDSASignatureEncoding.raw(der: Self.base, coordinateLength: 1) == [5, 7])
        // 32 octets with the high bit set fit a 32-octet coordinate, with the sign octet.
        let wide: [UInt8] = [0x30, 0x26, 0x02, 0x01, 0x05, 0x02, 0x21, 0x00] + [UInt8](repeating: 0x80, count: 32)
        #expect(try ECDSASignatureEncoding.raw(der: wide, coordinateLength: 32) == [UInt8](repeating: 0, count: 31) + [5] + [UInt8](repeating: 0x80, count: 32))
    }

    @Test("malformed DER signatures are refused with their code", arguments: refusedDER)
    func rejectMalformedDER(name: String, der: [UInt8], coordinateLength: Int, code: Code) {
        let error = #expect(throws: ECDSASignatureEncoding.Error.self, "\(name)") {
            try ECDSASignatureEncoding.raw(der: der, coordinateLength: coordinateLength)
        }
        #expect(error?.code == code, "\(name): \(error.map { "\($0)" } ?? "accepted")")
    }

    static let refusedRaw: [(name: String, raw: [UInt8], code: Code)] = [
        ("empty", [], .rawLength),
        ("odd length", [UInt8](repeating: 0x01, count: 63), .rawLength),
        ("r zero", [UInt8](repeating: 0, count: 32) + [UInt8](repeating: 0x01, count: 32), .zeroInteger),
        ("s zero", [UInt8](repeating: 0x01, count: 32) + [UInt8](repeating: 0, count: 32), .zeroInteger),
    ]

    @Test("raw signatures that are not two non-zero halves are refused with their code", arguments: refusedRaw)
    func rejectMalformedRaw(name: String, raw: [UInt8], code: Code) {
        let error = #expect(throws: ECDSASignatureEncoding.Error.self, "\(name)") { try ECDSASignatureEncoding.der(raw: raw) }
        #expect(error?.code == code, "\(name)")
    }
}
