#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A name a TLS server is reached by, as the tls-server profile certifies it: a DNS name (SAN dNSName) or an IP
/// address (SAN iPAddress, RFC 5280 §4.2.1.6: 4 octets for IPv4, 16 for IPv6).
public enum ServerName: Sendable, Hashable, CustomStringConvertible {
    case dns(String)
    case ip(IPAddress)

    /// A DNS name as given to `--host`: LDH labels of 1 to 63 characters, at most 253 in all, no wildcard, and not an
    /// IP address (that is `--ip`'s).
    public static func host(_ text: String) throws -> ServerName {
        if IPAddress(text) != nil {
            throw PKIError(.invalidArgument, "\(text) is an IP address, not a host name: give it with --ip")
        }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        let valid = !text.isEmpty && text.utf8.count <= 253 && labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" }
        }
        guard valid else {
            throw PKIError(.invalidArgument, "\"\(text)\" is not a host name (letters, digits and hyphens in dot-separated labels)")
        }
        return .dns(text.lowercased())
    }

    /// An IP address as given to `--ip`: IPv4 dotted quad or IPv6 text (RFC 4291 §2.2, optionally in brackets).
    public static func address(_ text: String) throws -> ServerName {
        guard let address = IPAddress(text) else {
            throw PKIError(.invalidArgument, "\"\(text)\" is not an IPv4 or IPv6 address")
        }
        guard !address.isUnspecified else {
            throw PKIError(.invalidArgument, "\(text) names no server (it is a listener's every address): give the address clients connect to")
        }
        return .ip(address)
    }

    public var description: String {
        switch self {
        case .dns(let name): name
        case .ip(let address): address.description
        }
    }

    /// The host part of an `https://` URL for this name (IPv6 in brackets, RFC 3986 §3.2.2).
    public var urlHost: String {
        switch self {
        case .dns(let name): name
        case .ip(let address): address.urlHost
        }
    }
}

/// An IPv4 or IPv6 address, by its octets.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 octets (IPv4) or 16 (IPv6), network order: the content of a SAN iPAddress.
    public let octets: [UInt8]

    public init?(octets: [UInt8]) {
        guard octets.count == 4 || octets.count == 16 else { return nil }
        self.octets = octets
    }

    /// Parses IPv4 dotted-quad or IPv6 text (inet_pton's grammar; brackets around IPv6 allowed).
    public init?(_ text: String) {
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        var v4 = in_addr()
        if inet_pton(AF_INET, String(text), &v4) == 1 {
            octets = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(text), &v6) == 1 {
            octets = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    public var isIPv6: Bool { octets.count == 16 }

    /// 0.0.0.0 or ::, a listener's "every address".
    public var isUnspecified: Bool { octets.allSatisfy { $0 == 0 } }

    /// The canonical text (inet_ntop: RFC 5952 for IPv6).
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = isIPv6 ? AF_INET6 : AF_INET
        let ok = octets.withUnsafeBytes { bytes in inet_ntop(family, bytes.baseAddress, &buffer, socklen_t(buffer.count)) != nil }
        guard ok else { return octets.map { String($0) }.joined(separator: ".") }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The host part of a URL: IPv6 in brackets.
    public var urlHost: String { isIPv6 ? "[\(description)]" : description }
}
