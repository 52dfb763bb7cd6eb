import MeterTrustPKI
import X509

/// The URLs a server prints for its clients: ones they can use as they are, that is whose host the server's
/// certificate names (a client checks the host it dialled against the SAN: an IP address against iPAddress names,
/// a name against dNSNames).
public enum ServerURLs {
    /// The names in `certificate`'s subjectAltName, in order; none if it has no SAN it can read.
    public static func names(in certificate: Certificate) -> [ServerName] {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return names.compactMap { name in
            switch name {
            case .dnsName(let dns): return .dns(dns)
            case .ipAddress(let octets): return IPAddress(octets: Array(octets.bytes)).map { .ip($0) }
            default: return nil
            }
        }
    }

    /// `https://HOST:PORT` URLs for a listener bound to `bindHost`:
    /// - bound to every address (0.0.0.0, ::): one URL per name of the certificate;
    /// - bound to an address the certificate names: that address;
    /// - bound to a name the certificate names: that name;
    /// - otherwise the certificate's first DNS name (else its first name), which must lead to this listener.
    public static func urls(certificate: Certificate, bindHost: String, port: Int) -> [String] {
        let names = names(in: certificate)
        func url(_ host: String) -> String { "https://\(host):\(port)" }
        if let address = IPAddress(bindHost) {
            if address.isUnspecified { return names.map { url($0.urlHost) } }
            if names.contains(.ip(address)) { return [url(address.urlHost)] }
        } else if names.contains(.dns(bindHost.lowercased())) {
            return [url(bindHost.lowercased())]
        }
        let fallback = names.first { if case .dns = $0 { true } else { false } } ?? names.first
        return [url(fallback?.urlHost ?? bindHost)]
    }
}

extension AdminServer {
    /// The URLs clients can use for this server once bound to `port` (see ``ServerURLs/urls(certificate:bindHost:port:)``).
    public func clientURLs(port: Int) -> [String] {
        guard let certificate = configuration.certificateChain.first else { return ["https://\(configuration.host):\(port)"] }
        return ServerURLs.urls(certificate: certificate, bindHost: configuration.host, port: port)
    }
}
