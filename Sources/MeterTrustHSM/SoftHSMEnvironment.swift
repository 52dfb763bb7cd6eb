import CPKCS11
import Foundation

/// What SoftHSM2 is reading, for errors that name the real cause: SoftHSM2 finds its tokens through the
/// configuration file in `SOFTHSM2_CONF` (else its system-wide default). When that variable is unset or names a file
/// that is not there, "the token is not found" really means "the wrong token directory is being read", and creating
/// a token (what one would otherwise advise) would only make a second, empty one.
struct SoftHSMEnvironment {
    static let variable = "SOFTHSM2_CONF"
    static let systemConfiguration = "/etc/softhsm/softhsm2.conf"

    /// The value of SOFTHSM2_CONF in this process, if set and non-empty.
    let configuration: String?

    /// Nil unless `modulePath` is SoftHSM2's module (by its file name: `libsofthsm2.so` and its copies).
    init?(modulePath: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard (modulePath as NSString).lastPathComponent.lowercased().contains("softhsm") else { return nil }
        let value = environment[Self.variable] ?? ""
        configuration = value.isEmpty ? nil : value
    }

    private static let advice = "export SOFTHSM2_CONF=/path/to/softhsm2.conf (the file of your token's directory, e.g. .softhsm/softhsm2.conf) and run the command again"

    /// The diagnosis when no token carries `label`, or nil when the configuration SoftHSM2 reads is the one asked for.
    func tokenNotFound(label: String) -> HSMError? {
        guard let configuration else {
            return HSMError.make(
                .tokenNotFound,
                "no token labelled \"\(label)\": SOFTHSM2_CONF is unset, so SoftHSM2 read its system-wide tokens (\(Self.systemConfiguration)); \(Self.advice)"
            )
        }
        guard FileManager.default.fileExists(atPath: configuration) else { return missingFile(configuration) }
        return nil
    }

    /// The diagnosis when SoftHSM2's C_Initialize fails: almost always a configuration it cannot read.
    func initializationFailure(_ rv: CK_RV) -> HSMError? {
        let name = PKCS11ReturnValue.name(of: rv)
        guard let configuration else {
            guard !FileManager.default.fileExists(atPath: Self.systemConfiguration) else {
                return HSMError.make(
                    .configuration,
                    "SoftHSM2 cannot start (\(name)): SOFTHSM2_CONF is unset and the system-wide \(Self.systemConfiguration) is not usable by this account; \(Self.advice)"
                )
            }
            return HSMError.make(
                .configuration, "SoftHSM2 cannot start (\(name)): SOFTHSM2_CONF is unset and \(Self.systemConfiguration) does not exist; \(Self.advice)"
            )
        }
        guard FileManager.default.fileExists(atPath: configuration) else { return missingFile(configuration) }
        return HSMError.make(
            .configuration,
            "SoftHSM2 cannot start (\(name)) with SOFTHSM2_CONF=\(configuration): check that its directories.tokendir exists and this account can write it"
        )
    }

    private func missingFile(_ configuration: String) -> HSMError {
        HSMError.make(
            .configuration,
            "SOFTHSM2_CONF names \(configuration), which does not exist: \(Self.advice)"
        )
    }
}
