import SwiftASN1

extension ASN1ObjectIdentifier {
    /// Dotted decimal form.
    ///
    /// swift-asn1 1.7.4 splits the first subidentifier `(X*40)+Y` by dividing by 40, so OIDs under `2` with a second
    /// arc of 40 or more (such as the example arc 2.999) come out wrong ("26.39.1.2"). X.690 §8.19.4: a first
    /// subidentifier of 80 or more belongs to X = 2, with Y = value - 80.
    public var dotted: String {
        let components = oidComponents
        guard components.count >= 2 else { return components.map(String.init).joined(separator: ".") }
        let first = components[0] * 40 + components[1]
        let head: [UInt] = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80]
        return (head + components.dropFirst(2)).map(String.init).joined(separator: ".")
    }
}
