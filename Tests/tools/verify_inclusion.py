"""Checks a MeterTrust audit inclusion proof (`metertrust audit prove N`) independently, holding only the
audit-signer certificate: the checkpoint is a C2SP signed note with an ECDSA (type 0x02) signature whose key ID is
SHA-256 of the key's DER SubjectPublicKeyInfo; the entry's RFC 6962 leaf hash, climbed up the audit path with the
RFC 9162 section 2.1.3.2 algorithm, must give the checkpoint's root hash.

usage: python verify_inclusion.py AUDIT-SIGNER.pem PROOF.json    -> prints "OK index size", exits 1 otherwise
"""
import base64
import hashlib
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
proof = json.load(open(sys.argv[2]))

note = proof["checkpoint"]
body, _, signatures = note.partition("\n\n")
body += "\n"
origin, size, root_b64 = body.splitlines()[:3]
name, blob_b64 = signatures.splitlines()[0].removeprefix("\u2014 ").split(" ")
blob = base64.b64decode(blob_b64)
spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
if blob[:4] != hashlib.sha256(spki).digest()[:4]:
    fail("checkpoint key ID does not match the audit-signer certificate")
cert.public_key().verify(blob[4:], body.encode(), ec.ECDSA(hashes.SHA256()))

entry = proof["entry"].encode()
leaf = hashlib.sha256(b"\x00" + entry).digest()
if base64.b64encode(leaf).decode() != proof["leafHash"]:
    fail("leaf hash does not match the entry")
index, tree_size = proof["index"], int(size)
if tree_size != proof["treeSize"] or not 0 <= index < tree_size:
    fail("index or size out of range")
fn, sn, r = index, tree_size - 1, leaf
for p in (base64.b64decode(h) for h in proof["proof"]):
    if sn == 0:
        fail("proof too long")
    if fn & 1 or fn == sn:
        r = hashlib.sha256(b"\x01" + p + r).digest()
        if not fn & 1:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
    else:
        r = hashlib.sha256(b"\x01" + r + p).digest()
    fn >>= 1
    sn >>= 1
if sn != 0 or r != base64.b64decode(root_b64):
    fail("the audit path does not lead to the checkpoint's root hash")
print(f"OK {index} {tree_size}")
