import MeterTrustCore

/// How MeterTrust names the objects it creates on a token: `metertrust/<part>/…/<8 random hex digits>`. The random
/// tail keeps a new key's label unique although an earlier one of the same name may still be on the token (a
/// destroyed CA's key awaiting removal, an earlier backup key).
public enum KeyLabel {
    public static let prefix = "metertrust"

    /// The parts that name the PSK keys: per-batch master keys, the key sealing imported PSKs, and the onboarding
    /// key (key agreement only; ``HSMToken/harden(labelPrefix:)`` leaves its CKA_DERIVE, which is its one use).
    public static let pskMaster = "psk-master"
    public static let pskSealing = "psk-sealing"
    public static let pskOnboarding = "psk-onboarding"

    /// `metertrust/<parts joined by />/<8 random hex digits>`.
    public static func unique(_ parts: String...) -> String {
        ([prefix] + parts + [hexString((0..<4).map { _ in UInt8.random(in: 0 ... 255) })]).joined(separator: "/")
    }
}
