import Crypto

/// The Merkle tree hash of RFC 6962 §2.1 (as restated in RFC 9162 §2.1.1), over SHA-256:
///
/// ```
/// MTH({})      = SHA-256()
/// MTH({d(0)})  = SHA-256(0x00 || d(0))
/// MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k: the largest power of two smaller than n
/// ```
/// with inclusion (audit) paths and consistency proofs (RFC 6962 §2.1.1, §2.1.2) and their verification
/// (RFC 9162 §2.1.3.2, §2.1.4.2).
public enum MerkleTree {
    public typealias Hash = [UInt8]

    public static func leafHash(_ data: some Sequence<UInt8>) -> Hash {
        var hasher = SHA256()
        hasher.update(data: [0x00])
        hasher.update(data: Array(data))
        return Array(hasher.finalize())
    }

    public static func nodeHash(_ left: Hash, _ right: Hash) -> Hash {
        var hasher = SHA256()
        hasher.update(data: [0x01])
        hasher.update(data: left)
        hasher.update(data: right)
        return Array(hasher.finalize())
    }

    /// MTH over leaf hashes.
    public static func root(_ leaves: ArraySlice<Hash>) -> Hash {
        switch leaves.count {
        case 0: return Array(SHA256.hash(data: [UInt8]()))
        case 1: return leaves.first!
        default:
            let k = largestPowerOfTwo(below: leaves.count)
            return nodeHash(root(leaves.prefix(k)), root(leaves.dropFirst(k)))
        }
    }

    /// PATH(m, D[n]): the audit path of leaf `index` in the tree of `leaves`.
    public static func inclusionProof(index: Int, _ leaves: ArraySlice<Hash>) -> [Hash] {
        precondition(index >= 0 && index < leaves.count)
        if leaves.count == 1 { return [] }
        let k = largestPowerOfTwo(below: leaves.count)
        if index < k {
            return inclusionProof(index: index, leaves.prefix(k)) + [root(leaves.dropFirst(k))]
        }
        return inclusionProof(index: index - k, leaves.dropFirst(k)) + [root(leaves.prefix(k))]
    }

    /// PROOF(m, D[n]): consistency between the first `m` leaves and all of `leaves`.
    public static func consistencyProof(from m: Int, _ leaves: ArraySlice<Hash>) -> [Hash] {
        precondition(m > 0 && m <= leaves.count)
        return subproof(m, leaves, complete: true)
    }

    private static func subproof(_ m: Int, _ leaves: ArraySlice<Hash>, complete: Bool) -> [Hash] {
        let n = leaves.count
        if m == n { return complete ? [] : [root(leaves)] }
        let k = largestPowerOfTwo(below: n)
        if m <= k {
            return subproof(m, leaves.prefix(k), complete: complete) + [root(leaves.dropFirst(k))]
        }
        return subproof(m - k, leaves.dropFirst(k), complete: false) + [root(leaves.prefix(k))]
    }

    /// RFC 9162 §2.1.3.2: does `proof` show leaf `index` with hash `leaf` in the tree of `size` with `root`?
    public static func verifyInclusion(leaf: Hash, index: Int, size: Int, proof: [Hash], root: Hash) -> Bool {
        guard index >= 0, index < size else { return false }
        var fn = index
        var sn = size - 1
        var r = leaf
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// RFC 9162 §2.1.4.2: does `proof` show the tree of `size2` (`root2`) extends the tree of `size1` (`root1`)?
    public static func verifyConsistency(size1: Int, size2: Int, root1: Hash, root2: Hash, proof: [Hash]) -> Bool {
        guard size1 > 0, size1 <= size2 else { return false }
        if size1 == size2 { return proof.isEmpty && root1 == root2 }
        var path = proof
        if size1 & (size1 - 1) == 0 { path.insert(root1, at: 0) }  // size1 a power of two
        guard !path.isEmpty else { return false }
        var fn = size1 - 1
        var sn = size2 - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && fr == root1 && sr == root2
    }

    static func largestPowerOfTwo(below n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }
}
