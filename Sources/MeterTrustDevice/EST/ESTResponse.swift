import Foundation
import MeterTrustCore
import SwiftASN1
import X509

/// One EST answer as the server sent it (status, the headers that matter, body), and what it means for the meter:
/// every rule of RFC 7030 §4 the client keeps, in one pure function (fuzzed: `FuzzESTResponse`).
///
/// - 200 to `cacerts`, `simpleenroll`, `simplereenroll`: `application/pkcs7-mime` (RFC 7030 §4.1.3, §4.2.3), a
///   base64 body (RFC 8951 §3: line breaks allowed, the Content-Transfer-Encoding header optional) of a certs-only
///   CMS SignedData (RFC 5272 §4.2), decoded by Core's bounded ``MeterTrustCore/CertsOnlyCMS``.
/// - 200 to `csrattrs`: `application/csrattrs`, base64 of Core's ``MeterTrustCore/CsrAttrs`` (§4.5.2); 204 or 404 mean none.
/// - 202, or 503, with Retry-After (§4.2.3; RFC 9110 §10.2.3: delta-seconds or an HTTP-date): try again later.
/// - Any other status: refused. An `application/problem+json` body (RFC 9457) gives the reason and its code.
public struct ESTResponse: Sendable {
    /// No EST answer a meter needs is larger (a certs-only CMS of a short chain is a few KiB).
    public static let maximumBodySize = 64 * 1024

    public var status: Int
    public var contentType: String?
    public var retryAfter: String?
    public var body: [UInt8]

    public init(status: Int, contentType: String?, retryAfter: String?, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.retryAfter = retryAfter
        self.body = body
    }

    /// What the answer means.
    public enum Meaning: Sendable, Equatable {
        /// The certificates of a certs-only CMS, in its order.
        case certificates([Certificate])
        case attributes(CsrAttrs)
        /// 202 or 503 with Retry-After: ask again after this many seconds.
        case retry(after: Int)
    }

    /// What the answer to `operation` means, or the one-line error a refusal or a malformed answer is. `server` only
    /// names the server in messages; `now` is for an HTTP-date Retry-After.
    public func meaning(of operation: ESTOperation, from server: String, now: Date = Date()) throws -> Meaning {
        let what = "EST \(operation.rawValue) at \(server)"
        guard body.count <= Self.maximumBodySize else {
            throw ESTClientError(.estBadResponse, "\(what): the answer is larger than \(Self.maximumBodySize) bytes", status: status)
        }
        let mediaType = contentType.map(Self.mediaType) ?? ""
        switch status {
        case 200:
            if operation == .csrattrs {
                guard mediaType == "application/csrattrs" else { throw badType(what, expected: "application/csrattrs") }
                let der = try base64(what)
                do {
                    return .attributes(try CsrAttrs(derEncoded: der))
                } catch {
                    throw ESTClientError(.estBadResponse, "\(what): the CSR attributes are not a DER CsrAttrs (RFC 7030 §4.5.2)", status: status)
                }
            }
            guard mediaType == "application/pkcs7-mime" else { throw badType(what, expected: "application/pkcs7-mime") }
            let der = try base64(what)
            let certificates: [Certificate]
            do {
                certificates = try CertsOnlyCMS(derEncoded: der).certificates
            } catch let error as any CodedError {
                throw ESTClientError(.estBadResponse, "\(what): the answer is not a certs-only CMS: \(error.message)", status: status)
            } catch {
                throw ESTClientError(.estBadResponse, "\(what): the answer is not a certs-only CMS", status: status)
            }
            guard !certificates.isEmpty else {
                throw ESTClientError(.estBadResponse, "\(what): the certs-only CMS holds no certificate", status: status)
            }
            return .certificates(certificates)
        case 204 where operation == .csrattrs, 404 where operation == .csrattrs:
            return .attributes(CsrAttrs([]))
        case 202, 503:
            if let retryAfter, let seconds = Self.seconds(retryAfter: retryAfter, now: now) {
                return .retry(after: seconds)
            }
            throw refusal(what, mediaType: mediaType)
        default:
            throw refusal(what, mediaType: mediaType)
        }
    }

    /// `type/subtype` of a Content-Type, lowercased, parameters dropped (RFC 9110 §8.3.1).
    static func mediaType(_ value: String) -> String {
        String(value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            .trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// Retry-After as seconds from now: delta-seconds, or an IMF-fixdate (RFC 9110 §5.6.7); nil if it is neither.
    static func seconds(retryAfter value: String, now: Date) -> Int? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) { return Int(text) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        guard text.utf8.count <= 40, let date = formatter.date(from: text) else { return nil }
        return max(0, Int(date.timeIntervalSince(now).rounded(.up)))
    }

    /// The body's base64 (Core's ``MeterTrustCore/Base64Body``: the line breaks and spaces RFC 8951 allows, and
    /// nothing else).
    private func base64(_ what: String) throws -> [UInt8] {
        do {
            return try Base64Body.decode(body, maximumLength: Self.maximumBodySize)
        } catch {
            throw ESTClientError(.estBadResponse, "\(what): the body is not base64 (RFC 7030 §4, RFC 8951)", status: status)
        }
    }

    private func badType(_ what: String, expected: String) -> ESTClientError {
        let shown = contentType.map { DisplayText.escaped($0, asciiOnly: true, limit: 80) } ?? "none"
        return ESTClientError(.estBadResponse, "\(what): the answer's Content-Type is \(shown), not \(expected)", status: status)
    }

    /// A refusal in one line: the problem document's detail and code if there is one, else the status alone.
    private func refusal(_ what: String, mediaType: String) -> ESTClientError {
        struct Problem: Decodable {
            var code: String?
            var title: String?
            var detail: String?
        }
        let problem = mediaType == "application/problem+json" ? try? JSONDecoder().decode(Problem.self, from: Data(body)) : nil
        let serverCode = problem?.code.map { DisplayText.escaped($0, asciiOnly: true, limit: 64) }
        let reason = (problem?.detail ?? problem?.title).map { ": " + DisplayText.escaped($0, limit: 300) } ?? ""
        let code = serverCode.flatMap(ErrorCode.init(rawValue:)) ?? .estRefused
        let busy = status == 503 || status == 202 ? " (no usable Retry-After)" : ""
        return ESTClientError(
            code, "\(what) refused: HTTP \(status)\(serverCode.map { ", \($0)" } ?? "")\(busy)\(reason)", status: status, serverCode: serverCode
        )
    }
}
