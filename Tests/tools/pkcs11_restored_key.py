#!/usr/bin/env python3
"""A key restored from a MeterTrust backup, examined on its token with PyKCS11 (an independent client).

As the holder of the user PIN (ATTACK_USER_PIN in the environment, never argv): finds the private key labelled
--label, reads its protection attributes, tries to read its value (the token must refuse), and signs the SHA-256 of
--message with CKM_ECDSA, writing the DER signature to --signature for openssl to verify against the CA certificate.
Prints one JSON object: {"sensitive", "extractable", "wrapWithTrusted", "valueRead": "refused:<CKR>"|"succeeded"}.
"""
import argparse
import hashlib
import json
import os

import PyKCS11
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--message", required=True)
    parser.add_argument("--signature", required=True)
    args = parser.parse_args()

    library = PyKCS11.PyKCS11Lib()
    library.load(args.module)
    slot = next(s for s in library.getSlotList(tokenPresent=True) if library.getTokenInfo(s).label.strip() == args.token)
    session = library.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    session.login(os.environ["ATTACK_USER_PIN"])
    keys = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_LABEL, args.label)])
    if len(keys) != 1:
        raise SystemExit(f"expected one private key labelled {args.label}, found {len(keys)}")
    key = keys[0]
    sensitive, extractable, trusted = session.getAttributeValue(
        key, [PyKCS11.CKA_SENSITIVE, PyKCS11.CKA_EXTRACTABLE, PyKCS11.CKA_WRAP_WITH_TRUSTED]
    )
    try:
        value = session.getAttributeValue(key, [PyKCS11.CKA_VALUE])[0]
        value_read = "succeeded" if value else "refused:empty"
    except PyKCS11.PyKCS11Error as error:
        value_read = "refused:" + PyKCS11.CKR.get(error.value, str(error.value))

    with open(args.message, "rb") as handle:
        digest = hashlib.sha256(handle.read()).digest()
    raw = bytes(session.sign(key, digest, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)))
    half = len(raw) // 2
    der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
    with open(args.signature, "wb") as handle:
        handle.write(der)
    session.logout()
    session.closeSession()
    print(json.dumps({"sensitive": bool(sensitive), "extractable": bool(extractable), "wrapWithTrusted": bool(trusted), "valueRead": value_read}))


if __name__ == "__main__":
    main()
