import Foundation
import MeterTrustCore
import MeterTrustDevice
import MeterTrustHSM
import MeterTrustOnboarding
import MeterTrustStore

/// The demo's last part, after the accounts: the meters in the field. north releases one meter (its customer moved
/// away and nobody holds it now); `serve --roles est` starts on loopback; every meter then asks for its operational
/// certificate over EST with its factory identity (TLS 1.3), under the label of the account that holds it (or north's,
/// for a meter nobody holds): the claimed ones get one from their account's Operational CA, the one in conflict and
/// the unclaimed one are refused with the server's reason.
struct DemoEnrollment {
    struct Summary: Encodable {
        struct Enrolled: Encodable {
            var eui64: String
            var account: String
            var serial: String
            var issuer: String
            var notAfter: Date
            var crlDistributionPoints: [String]
            var ocsp: [String]
        }
        struct Refused: Encodable {
            var eui64: String
            var code: String
            var message: String
        }
        var server: String
        var released: String
        var enrolled: [Enrolled]
        var refused: [Refused]
    }

    let context: Context
    let store: any MeterTrustStore
    let token: HSMToken
    let meterDirectory: (String) -> URL
    let progress: (String) -> Void

    func run(meters: [String]) async throws -> Summary {
        let released = meters[meters.count - 1]
        let onboarding = Onboarding(store: store, audit: try context.auditLog(store: store, token: token))
        _ = try await onboarding.release(eui64: released, account: "north", actor: "operator:north/olive")
        progress("meter \(released) released by north: no account holds it now")

        let server = try ESTServerProcess.start(dataDirectory: context.dataDirectory, log: context.dataDirectory.appendingPathComponent("est-serve.log"))
        defer { server.stop() }
        progress("EST server (serve --roles est) listening on https://127.0.0.1:\(server.port)")
        var enrolled: [Summary.Enrolled] = []
        var refused: [Summary.Refused] = []
        for eui64 in meters {
            let holder = try await store.claim(eui64: eui64)?.account
            let address = try ESTServerAddress(url: "https://127.0.0.1:\(server.port)", label: holder ?? "north")
            do {
                let outcome = try await MeterEnrollment(directory: meterDirectory(eui64)).enroll(server: address, mode: .pki)
                enrolled.append(
                    Summary.Enrolled(
                        eui64: eui64, account: holder ?? "", serial: outcome.serial, issuer: outcome.issuer, notAfter: outcome.notAfter,
                        crlDistributionPoints: outcome.crlDistributionPoints, ocsp: outcome.ocsp
                    )
                )
            } catch let error as any CodedError {
                refused.append(Summary.Refused(eui64: eui64, code: error.errorCode.rawValue, message: error.message))
            }
        }
        progress("EST: \(enrolled.count) meters enrolled, \(refused.count) refused")
        return Summary(server: "https://127.0.0.1:\(server.port)", released: released, enrolled: enrolled, refused: refused)
    }
}
