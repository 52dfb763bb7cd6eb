#!/usr/bin/env python3
"""Makes the objects MeterTrust made before key custody (issue 9), with PyKCS11, so the migration can be tested on a
token like an existing deployment's.

  --as so     the backup key as `backup init-key` made it: generated trusted, wrap AND unwrap, modifiable, copyable,
              read once, then sealed; prints its value (hex) so the test can store its shares as the old code did
  --as user   an EC key pair whose public half is a public object, as every key pair was

PINs from the environment: LEGACY_SO_PIN, LEGACY_USER_PIN.
"""
import argparse
import os

import PyKCS11


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--as", dest="who", choices=["so", "user"], required=True)
    parser.add_argument("--label", required=True)
    args = parser.parse_args()
    library = PyKCS11.PyKCS11Lib()
    library.load(args.module)
    slot = [s for s in library.getSlotList(tokenPresent=True) if library.getTokenInfo(s).label.strip() == args.token][0]
    session = library.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    if args.who == "so":
        session.login(os.environ["LEGACY_SO_PIN"], PyKCS11.CKU_SO)
        template = [
            (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES), (PyKCS11.CKA_VALUE_LEN, 32),
            (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_PRIVATE, False), (PyKCS11.CKA_SENSITIVE, False), (PyKCS11.CKA_EXTRACTABLE, True),
            (PyKCS11.CKA_TRUSTED, True), (PyKCS11.CKA_WRAP, True), (PyKCS11.CKA_UNWRAP, True), (PyKCS11.CKA_ENCRYPT, False),
            (PyKCS11.CKA_DECRYPT, False), (PyKCS11.CKA_LABEL, args.label),
        ]
        key = session.generateKey(template, PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_GEN, None))
        value = bytes(session.getAttributeValue(key, [PyKCS11.CKA_VALUE])[0])
        session.setAttributeValue(key, [(PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_EXTRACTABLE, False)])
        session.logout()
        print(value.hex())
    else:
        session.login(os.environ["LEGACY_USER_PIN"])
        p256 = bytes.fromhex("06082a8648ce3d030107")
        public = [
            (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC), (PyKCS11.CKA_TOKEN, True),
            (PyKCS11.CKA_PRIVATE, False), (PyKCS11.CKA_VERIFY, True), (PyKCS11.CKA_EC_PARAMS, p256), (PyKCS11.CKA_LABEL, args.label),
            (PyKCS11.CKA_ID, b"\x01\x02"),
        ]
        private = [
            (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC), (PyKCS11.CKA_TOKEN, True),
            (PyKCS11.CKA_PRIVATE, True), (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_EXTRACTABLE, False), (PyKCS11.CKA_SIGN, True),
            (PyKCS11.CKA_LABEL, args.label), (PyKCS11.CKA_ID, b"\x01\x02"),
        ]
        session.generateKeyPair(public, private, PyKCS11.Mechanism(PyKCS11.CKM_EC_KEY_PAIR_GEN, None))
        session.logout()
        print("ok")


if __name__ == "__main__":
    main()
