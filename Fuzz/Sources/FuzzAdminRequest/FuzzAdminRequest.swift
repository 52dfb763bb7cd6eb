import Crypto
import FuzzMain
import FuzzSupport
import MeterTrustQuorum

// A request for an operation under quorum, as the admin API, the quorum gate and the CLI parse it (its structure:
// the registry then resolves its operation and checks the parameters). An accepted document is canonical: its own canonical bytes, so one request has one id (the SHA-256 of those bytes), and it
// parses again as the same request.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)
    guard let request = try? AdminRequest.parse(input) else { return 0 }
    Fuzz.require(request.canonicalBytes == input, "an accepted request is not its own canonical form")
    Fuzz.require(request.id == SHA256.hash(data: input).map { String(format: "%02x", $0) }.joined(), "the id is not the SHA-256 of the document")
    Fuzz.require((try? AdminRequest.parse(request.canonicalBytes)) == request, "the canonical bytes parse as another request")
    do {
        Fuzz.require(try request.expiresDate > request.createdDate, "an accepted request expires before it was created")
    } catch {
        Fuzz.violated("an accepted request fails its own checks: \(error)")
    }
    // Whether the deployment runs the operation with these parameters is the registry's to say (the module that
    // declares it); a built-in operation's parameter check refuses or accepts, never traps.
    if let operation = AdminOperation.builtIn.first(where: { $0.rawValue == request.operation }) {
        _ = try? operation.check(request.parameters)
    }
    return 0
}

/// The executable's entry point as SwiftPM links it: libFuzzer's driver, after one empty input has set up this
/// target's globals and the runtime's caches (so LeakSanitizer does not count them against the first input).
@_cdecl("FuzzAdminRequest_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    Fuzz.warmUp(fuzz)
    return metertrust_fuzz_main(argc, argv)
}
