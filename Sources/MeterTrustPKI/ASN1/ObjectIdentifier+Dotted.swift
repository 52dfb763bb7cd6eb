import SwiftASN1

extension ASN1ObjectIdentifier {
    /// Dotted decimal form.
    ///
    /// swift-asn1 1.7.4's `description` splits the first subidentifier as `(X*40)+Y` with X < 3 assumed for every
    /// value, so OIDs under `2` with a second arc of 40 or more (such as the example arc 2.999) print wrongly
    /// ("26.39.1.2"). X.690 §8.19.4: values from 80 up belong to X = 2 with Y = value - 80.
    public var dotted: String {
        let components = oidComponents
        guard let first = components.first else { return "" }
        let head: [UInt] = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80]
        return (head + components.dropFirst()).map(String.init).joined(separator: ".")
    }
}
