import Crypto
import Foundation
import MeterTrustAudit
import MeterTrustCore
import MeterTrustHSM
import MeterTrustStore
import MeterTrustStoreSQLite
import Testing

@Suite("Audit log")
struct AuditTests {
    /// Leaves and roots of the RFC 6962 test vectors used by Certificate Transparency implementations.
    /// Origin: the CT reference implementation's Merkle tree tests (google/certificate-transparency,
    /// cpp/merkletree/merkle_tree_test.cc, the same eight leaves and roots carried on in transparency-dev/merkle's
    /// testonly package). Regenerated independently of our code with Python's hashlib and RFC 6962 §2.1 (leaf hash
    /// SHA-256(0x00 ‖ d), node hash SHA-256(0x01 ‖ l ‖ r), split at the largest power of two below n):
    ///   python3 -c 'import hashlib as h
    ///   L=[b"",b"\0",b"\x10",b"\x20\x21",b"\x30\x31",bytes(range(0x40,0x44)),bytes(range(0x50,0x58)),bytes(range(0x60,0x70))]
    ///   def m(d):
    ///    if len(d)==1: return h.sha256(b"\0"+d[0]).digest()
    ///    k=1
    ///    while 2*k<len(d): k*=2
    ///    return h.sha256(b"\1"+m(d[:k])+m(d[k:])).digest()
    ///   [print(m(L[:n]).hex()) for n in range(1,9)]'
    static let vectorLeaves: [[UInt8]] = [
        [], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43],
        [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57], Array(0x60...0x6F),
    ]
    static let vectorRoots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    @Test("RFC 6962 roots match the CT test vectors; every inclusion and consistency proof verifies, wrong ones do not")
    func merkleTree() {
        let leaves = Self.vectorLeaves.map(MerkleTree.leafHash)
        for size in 1...8 {
            let root = MerkleTree.root(leaves[..<size])
            #expect(root.map { String(format: "%02x", $0) }.joined() == Self.vectorRoots[size - 1])
            for index in 0..<size {
                let proof = MerkleTree.inclusionProof(index: index, leaves[..<size])
                #expect(MerkleTree.verifyInclusion(leaf: leaves[index], index: index, size: size, proof: proof, root: root))
                // The leaf, its index, the root and every hash of the proof are bound: changing any one fails. (The
                // size is not always: a left-edge proof of 6 leaves also verifies for 7; the signed checkpoint binds it.)
                let at = "size \(size) index \(index)"
                #expect(!MerkleTree.verifyInclusion(leaf: leaves[(index + 1) % 8], index: index, size: size, proof: proof, root: root), "\(at): another leaf")
                var otherRoot = root
                otherRoot[0] ^= 0x01
                #expect(!MerkleTree.verifyInclusion(leaf: leaves[index], index: index, size: size, proof: proof, root: otherRoot), "\(at): another root")
                #expect(!MerkleTree.verifyInclusion(leaf: leaves[index], index: index, size: size, proof: proof + [leaves[0]], root: root), "\(at): a hash appended")
                #expect(!MerkleTree.verifyInclusion(leaf: leaves[index], index: size, size: size, proof: proof, root: root), "\(at): index out of the tree")
                if size > 1 {
                    #expect(proof.count > 0, "\(at): a tree of more than one leaf needs a non-empty proof")
                    #expect(!MerkleTree.verifyInclusion(leaf: leaves[index], index: (index + 1) % size, size: size, proof: proof, root: root), "\(at): another index")
                    #expect(!MerkleTree.verifyInclusion(leaf: leaves[index], index: index, size: size, proof: Array(proof.dropLast()), root: root), "\(at): a hash dropped")
                    var changed = proof
                    changed[changed.count - 1][31] ^= 0x80
                    #expect(!MerkleTree.verifyInclusion(leaf: leaves[index], index: index, size: size, proof: changed, root: root), "\(at): a hash changed")
                } else {
                    #expect(proof.isEmpty && root == leaves[0], "a one-leaf tree's root is its leaf hash, proved by the empty proof")
                }
            }
            for m in 1...size {
                let proof = MerkleTree.consistencyProof(from: m, leaves[..<size])
                #expect(MerkleTree.verifyConsistency(size1: m, size2: size, root1: MerkleTree.root(leaves[..<m]), root2: root, proof: proof))
                if m < size {
                    #expect(!MerkleTree.verifyConsistency(size1: m, size2: size, root1: leaves[7], root2: root, proof: proof))
                }
            }
        }
    }

    /// A log of `count` entries on a fresh store, checkpoints signed by an audit key on a fresh token.
    static func makeLog(count: Int, interval: Int = 1) async throws -> (SQLiteStore, AuditLog, AuditVerifier) {
        let token = try TestEnvironment.openToken()
        let key = try token.generateKeyPair(curve: .p256, label: "audit")
        let signer = try HSMCheckpointSigner(token: token, key: key, keyName: "test.example/audit")
        let store = try await TestEnvironment.makeStore()
        let log = AuditLog(store: store, signer: signer, origin: "test.example/audit", checkpointInterval: interval)
        for index in 0..<count {
            try await log.record(AuditEvent(actor: "tester", action: "ca.create", subject: "ca-\(index)", details: ["n": "\(index)"]))
        }
        return (store, log, AuditVerifier(publicKey: signer.publicKey, keyName: signer.keyName))
    }

    /// Runs SQL on the store's file with the sqlite3 shell, as an attacker with file access would.
    static func tamper(_ store: SQLiteStore, _ sql: String) throws {
        let result = try TestEnvironment.run("sqlite3", [store.path, sql])
        try #require(result.status == 0, "sqlite3: \(result.stderr)")
    }

    @Test("an intact log verifies: every checkpoint signed, consistent and matching")
    func intactLog() async throws {
        let (store, log, verifier) = try await Self.makeLog(count: 9, interval: 4)
        let result = try await verifier.verify(store)
        #expect(result.entries == 9 && result.checkpoints == 2 && result.latestCheckpointSize == 8 && result.uncheckpointedEntries == 1)
        _ = try await log.checkpoint()
        #expect(try await verifier.verify(store).latestCheckpointSize == 9)
    }

    @Test("each kind of tampering is detected and located", arguments: [
        ("alter entry 3", "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'ca-3', 'ca-X') AS BLOB) WHERE position = 3", "entry 3 was altered"),
        ("alter the last entry", "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'ca-7', 'ca-X') AS BLOB) WHERE position = 7", "entry 7 was altered"),
        ("remove entry 4", "DELETE FROM audit_entries WHERE position = 4", "entry 4 was removed"),
        ("remove the last entry", "DELETE FROM audit_entries WHERE position = 7", "entry 7 was removed"),
        ("insert an entry at 4", "UPDATE audit_entries SET position = position + 100 WHERE position >= 4; UPDATE audit_entries SET position = position - 99 WHERE position >= 100; INSERT INTO audit_entries SELECT 4, CAST(replace(CAST(entry AS TEXT), 'ca-4', 'forged') AS BLOB), created_at FROM audit_entries WHERE position = 5", "inserted at position 4"),
        ("reorder entries 2 and 3", "UPDATE audit_entries SET position = CASE position WHEN 2 THEN 3 WHEN 3 THEN 2 END + 100 WHERE position IN (2, 3); UPDATE audit_entries SET position = position - 100 WHERE position >= 100", "reordered at position 2"),
        ("forge a checkpoint", "UPDATE audit_checkpoints SET note = replace(note, 'test.example/audit' || char(10) || '8', 'evil.example/audit' || char(10) || '8') WHERE size = 8", "not signed by the audit key"),
        ("mangle a checkpoint", "UPDATE audit_checkpoints SET note = 'garbage' WHERE size = 5", "not a valid signed checkpoint"),
    ])
    func rejectTampering(_ tampering: (name: String, sql: String, located: String)) async throws {
        let (store, _, verifier) = try await Self.makeLog(count: 8)
        _ = try await verifier.verify(store)
        try Self.tamper(store, tampering.sql)
        let error = await #expect(throws: AuditError.self, "\(tampering.name)") { try await verifier.verify(store) }
        // The code says what kind of failure; the message (the feature here) says where.
        #expect(error?.code == (tampering.name == "forge a checkpoint" ? .signature : .tampered), "\(tampering.name): \(error?.code.description ?? "none")")
        #expect(error?.message.contains(tampering.located) == true, "\(tampering.name): \(error?.message ?? "no error")")
    }

    @Test("one signature per checkpoint: audit init prints the checkpoint stored for its size, and audit checkpoint at that size prints it again", arguments: [1, 2])
    func oneSignaturePerCheckpoint(interval: Int) throws {
        let deployment = try CLITests.Deployment.make()
        let data = deployment.dataDirectory
        func metertrust(_ arguments: [String]) throws -> TestEnvironment.ProcessResult { try deployment.run(arguments) }
        _ = try deployment.json(["ca", "create-root", "--name", "root"])
        let initialised = try metertrust(["audit", "init", "--interval", "\(interval)", "--json"])
        try #require(initialised.status == 0, "\(initialised.stderr)")
        let checkpoint = try #require((try JSONSerialization.jsonObject(with: Data(initialised.stdout.utf8)) as? [String: Any])?["checkpoint"] as? [String: Any])
        let printed = try #require(checkpoint["note"] as? String)
        // The note's second line is the tree size (C2SP tlog-checkpoint); the store's row for it, read by sqlite3.
        let size = try #require(Int(printed.split(separator: "\n")[1]))
        let stored = try TestEnvironment.run("sqlite3", [data.appendingPathComponent("metertrust.sqlite").path, "SELECT note FROM audit_checkpoints WHERE size = \(size)"])
        #expect(stored.stdout == printed + "\n", "printed:\n\(printed)\nstored:\n\(stored.stdout)")
        let text = try metertrust(["audit", "checkpoint"])
        #expect(text.status == 0 && text.stdout == printed, "\(text.stdout) \(text.stderr)")
        // What the HSM keeps as the log's head is that same signed note.
        let verified = try metertrust(["audit", "verify", "--json"])
        #expect(verified.status == 0, "\(verified.stderr)")
    }

    /// The store as a second node sees it in the instant between its look-up and its insert: the checkpoints another
    /// node signed are not visible yet (everything else is the store itself).
    struct StaleCheckpoints: AuditStore {
        let store: SQLiteStore
        func appendAuditEntry(_ make: @escaping @Sendable (AuditRow?) throws -> [UInt8]) async throws -> Int64 { try await store.appendAuditEntry(make) }
        func auditEntries(after position: Int64, limit: Int) async throws -> [AuditRow] { try await store.auditEntries(after: position, limit: limit) }
        func auditEntryCount() async throws -> Int64 { try await store.auditEntryCount() }
        func insertAuditCheckpoint(size: Int64, note: String) async throws -> String { try await store.insertAuditCheckpoint(size: size, note: note) }
        func auditCheckpoints() async throws -> [AuditCheckpointRow] { [] }
    }

    @Test("two nodes signing the same tree size at once: both answer with the one checkpoint the store kept, never an unstored signature")
    func oneSignaturePerSizeAcrossNodes() async throws {
        let fixture = try await PKIFixture.make()
        let first = try await fixture.auditLog()
        try await first.record(AuditEvent(actor: "tester", action: "ca.create", subject: "acme"))
        let stored = try #require(try await fixture.store.auditCheckpoints().last)
        // The second node signs the same size without seeing the first node's checkpoint (the race), with the same
        // key, head and entries.
        let reference = try await fixture.auditLog()
        let second = AuditLog(store: StaleCheckpoints(store: fixture.store), signer: reference.signer, origin: reference.origin, anchor: reference.anchor)
        let answered = try await second.checkpoint()
        #expect(answered.checkpoint.size == Int(stored.size))
        #expect(answered.text == stored.note, "the second node returned a signature the store does not hold")
        #expect(try await fixture.store.auditCheckpoints().filter { $0.size == stored.size } == [stored])
    }

    @Test("an inclusion proof from `audit prove` checks out with an independent verifier holding only the audit certificate")
    func inclusionProofIndependentlyVerified() throws {
        let hsm = try TestEnvironment.makeIsolatedToken()
        let data = TestEnvironment.temporaryDirectory().appendingPathComponent("data")
        func metertrust(_ arguments: [String]) throws -> TestEnvironment.ProcessResult {
            try TestEnvironment.run(TestEnvironment.metertrust, arguments + ["--data-dir", data.path], environment: hsm.environment)
        }
        try #require(try metertrust(["init", "--token-label", hsm.label, "--module", TestEnvironment.modulePath]).status == 0)
        try #require(try metertrust(["ca", "create-root", "--name", "root"]).status == 0)
        try #require(try metertrust(["audit", "init", "--interval", "2"]).status == 0)
        try #require(try metertrust(["ca", "create-manufacturer", "--name", "acme"]).status == 0)
        #expect(try metertrust(["ca", "create-manufacturer", "--name", "acme"]).status == 1)  // refused (it exists), and audited
        try #require(try metertrust(["audit", "checkpoint"]).status == 0)
        let verified = try metertrust(["audit", "verify", "--json"])
        try #require(verified.status == 0, "\(verified.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(verified.stdout.utf8)) as? [String: Any])
        #expect(result["entries"] as? Int == 7)
        let log = try metertrust(["audit", "log", "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(log.stdout.utf8)) as? [[String: Any]])
        // Every CLI operation records its intent before it runs, then its outcome.
        #expect(entries.map { $0["action"] as? String } == ["ca.create", "ca.create", "audit.init", "ca.create", "ca.create", "ca.create", "ca.create"])
        #expect(entries.map { $0["outcome"] as? String } == ["started", "success", "success", "started", "success", "started", "refused"])

        for index in 0..<7 {
            let proof = try metertrust(["audit", "prove", "\(index)"])
            try #require(proof.status == 0, "\(proof.stderr)")
            let proofPath = data.deletingLastPathComponent().appendingPathComponent("proof-\(index).json")
            try proof.stdout.write(to: proofPath, atomically: true, encoding: .utf8)
            let checked = try TestEnvironment.run(
                TestEnvironment.python, [TestEnvironment.tool("verify_inclusion.py"), data.appendingPathComponent("audit-signer.pem").path, proofPath.path]
            )
            #expect(checked.status == 0 && checked.stdout.hasPrefix("OK \(index) "), "\(checked.stdout) \(checked.stderr)")
            // A proof for another entry's bytes fails: with the old leaf hash, on the leaf hash; with the leaf hash
            // of the new bytes, on the audit path (each refusal by its own message, not by a crash of the verifier).
            var forged = try #require(try JSONSerialization.jsonObject(with: Data(proof.stdout.utf8)) as? [String: Any])
            let original = try #require(forged["entry"] as? String)
            let forgedEntry = original.replacingOccurrences(of: "\"index\":\(index)", with: "\"index\":9")
            try #require(forgedEntry != original, "entry \(index) does not name its index: \(original)")
            forged["entry"] = forgedEntry
            try JSONSerialization.data(withJSONObject: forged).write(to: proofPath)
            let staleLeaf = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("verify_inclusion.py"), data.appendingPathComponent("audit-signer.pem").path, proofPath.path])
            #expect(staleLeaf.status == 1 && staleLeaf.stderr.contains("leaf hash does not match the entry"), "\(staleLeaf.stdout) \(staleLeaf.stderr)")
            forged["leafHash"] = Data(SHA256.hash(data: [0x00] + Array(forgedEntry.utf8))).base64EncodedString()
            try JSONSerialization.data(withJSONObject: forged).write(to: proofPath)
            let wrongPath = try TestEnvironment.run(TestEnvironment.python, [TestEnvironment.tool("verify_inclusion.py"), data.appendingPathComponent("audit-signer.pem").path, proofPath.path])
            #expect(wrongPath.status == 1 && wrongPath.stderr.contains("does not lead to the checkpoint's root hash"), "\(wrongPath.stdout) \(wrongPath.stderr)")
        }
        #expect(try metertrust(["audit", "prove", "99"]).stderr.contains("there is no audit entry 99"))
    }

    /// A log with the HSM anchor, as deployments run it.
    static func anchoredLog(interval: Int) async throws -> (SQLiteStore, AuditLog) {
        let token = try TestEnvironment.openToken(sessions: 4)
        let key = try token.generateKeyPair(curve: .p256, label: "audit")
        let store = try await TestEnvironment.makeStore()
        let origin = "test.example/audit"
        let log = AuditLog(
            store: store, signer: try HSMCheckpointSigner(token: token, key: key, keyName: origin), origin: origin, checkpointInterval: interval,
            anchor: HSMAuditAnchor(token: token, origin: origin)
        )
        return (store, log)
    }

    @Test("an incremental verification (VerifiedStateCache) sees what a full one sees: a revocation appended later, state only from covered entries; and a rewrite under the verified prefix or a removed entry is refused")
    func incrementalVerification() async throws {
        let (store, log) = try await Self.anchoredLog(interval: 4)
        let cache = VerifiedStateCache(audit: log, maximumAge: .zero)
        for index in 0..<6 { try await log.record(AuditEvent(actor: "tester", action: "est.enroll", subject: "m-\(index)", details: ["n": "\(index)"])) }
        let before = try await cache.state()
        #expect(before.verifiedSize == 4 && before.revoked.isEmpty, "only the 4 entries a checkpoint covers: \(before.verifiedSize)")
        let (key, value) = SecurityState.Change.revoked(issuer: "acme", serial: "0a0b", reason: 1)
        try await log.record(AuditEvent(actor: "tester", action: "cert.revoke", subject: "0a0b", details: [key: value]))
        let after = try await cache.state()
        let full = try await log.verifiedState()
        #expect(after.isRevoked(issuer: "acme", serial: "0a0b") && full.isRevoked(issuer: "acme", serial: "0a0b"))
        #expect(after.verifiedSize == 7 && full.verifiedSize == 7)
        #expect(after.revoked == full.revoked && after.custodians == full.custodians && after.destroyedAuthorities == full.destroyedAuthorities)

        // Attacker with the database: appends an entry that does not chain onto the verified ones; the next
        // incremental refresh refuses it rather than believing it.
        let forged = #"{"action":"cert.unrevoke","actor":"x","details":{},"index":7,"outcome":"success","previous":"00","subject":"0a0b","time":0}"#
        try Self.tamper(store, "INSERT INTO audit_entries (position, entry, created_at) VALUES (7, CAST('\(forged)' AS BLOB), 0)")
        await #expect(throws: AuditError.self) { _ = try await cache.state() }
        // And one that deletes verified entries: refused too.
        try Self.tamper(store, "DELETE FROM audit_entries WHERE position >= 5")
        let removed = await #expect(throws: AuditError.self) { _ = try await cache.state() }
        #expect("\(String(describing: removed))".contains("removed"), "\(String(describing: removed))")
    }

    @Test("attacker with the database against a running node's checkpoints (it reads only what was appended since it last signed): a row rewritten under what it signed is never signed into a new checkpoint and a full verification finds it; an appended row that does not chain, a well-chained row without the audit key's seal, deleted rows: each stops the next checkpoint")
    func incrementalCheckpoints() async throws {
        let (store, log) = try await Self.anchoredLog(interval: 1)
        for index in 0..<4 { try await log.record(AuditEvent(actor: "tester", action: "est.enroll", subject: "m-\(index)", details: ["n": "\(index)"])) }
        func leaves() async throws -> [MerkleTree.Hash] { try await store.auditEntries(after: -1, limit: 1_000).map { MerkleTree.leafHash($0.entry) } }
        let genuine = try await leaves()

        // A rewrite of entry 2 after it was signed: the next entry is appended and signed over the genuine leaves,
        // never over the rewritten row, and a full verification (a new process, audit verify) refuses the log.
        try Self.tamper(store, "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'm-2', 'm-X') AS BLOB) WHERE position = 2")
        try await log.record(AuditEvent(actor: "tester", action: "est.enroll", subject: "m-4", details: ["n": "4"]))
        let signed = try await log.checkpoint()
        let now = try await leaves()
        #expect(signed.checkpoint.size == 5 && signed.checkpoint.rootHash == MerkleTree.root((genuine + [now[4]])[...]))
        #expect(signed.checkpoint.rootHash != MerkleTree.root(now[...]), "the rewritten row was signed into the tree")
        await #expect(throws: AuditError.self) { _ = try await AuditLog(store: store, signer: log.signer, origin: log.origin, anchor: log.anchor).verifiedState() }
        try Self.tamper(store, "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'm-X', 'm-2') AS BLOB) WHERE position = 2")

        // An appended row whose previous hash is not the last signed leaf's.
        let stray = #"{"action":"cert.unrevoke","actor":"x","details":{},"index":5,"outcome":"success","previous":"00","subject":"0a0b","time":"2026-12-04T00:00:00Z"}"#
        try Self.tamper(store, "INSERT INTO audit_entries (position, entry, created_at) VALUES (5, CAST('\(stray)' AS BLOB), 0)")
        let unchained = await #expect(throws: AuditError.self) { _ = try await log.checkpoint() }
        #expect(unchained?.message.contains("does not extend the 5 entries signed before") == true, "\(String(describing: unchained))")

        // The same row chained onto the last signed leaf, as someone who can hash would write it, but without the seal.
        let chained = stray.replacingOccurrences(of: #""previous":"00""#, with: "\"previous\":\"\(hexString(now[4]))\"")
        try Self.tamper(store, "UPDATE audit_entries SET entry = CAST('\(chained)' AS BLOB) WHERE position = 5")
        let unsealed = await #expect(throws: AuditError.self) { _ = try await log.checkpoint() }
        #expect(unsealed?.message.contains("entry 5 was not written by MeterTrust") == true, "\(String(describing: unsealed))")

        // Rows removed under what was signed.
        try Self.tamper(store, "DELETE FROM audit_entries WHERE position >= 3")
        let removed = await #expect(throws: AuditError.self) { _ = try await log.checkpoint() }
        #expect(removed?.message.contains("removed") == true, "\(String(describing: removed))")
        #expect(try await store.auditCheckpoints().map(\.size).max() == 5, "nothing was signed after the tampering")
    }

    @Test("concurrent writers signing checkpoints while readers verify: no reader ever sees tampering (the HSM's head, the checkpoints and the entries are read in that order)")
    func concurrentWritersAndReaders() async throws {
        let (_, log) = try await Self.anchoredLog(interval: 3)
        try await log.record(AuditEvent(actor: "tester", action: "start", subject: "log"))
        let cache = VerifiedStateCache(audit: log, maximumAge: .zero)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    for index in 0..<40 { try await log.record(AuditEvent(actor: "writer-\(writer)", action: "est.enroll", subject: "m-\(index)")) }
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    for _ in 0..<40 {
                        _ = try await log.verifiedState()
                        _ = try await cache.state()
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try await log.verifiedState()
        #expect(final.verifiedSize >= 159)
    }
}
