#!/usr/bin/env python3
"""Attacks on MeterTrust's PSK keys through PKCS#11, with PyKCS11 (an independent client nobody here wrote).

The keys: a per-batch PSK master key (--master-label), the PSK onboarding key (--onboarding-label, HPKE recipient)
and, if given, the key sealing imported PSKs (--sealing-label). Two attackers, each in its own process:
  --as pinless   someone who can open the token without any PIN: may they find or use any of the keys?
  --as user      the holder of the user PIN on the server host: may they get a key's value out (read, wrap, copy,
                 weaken, derive a readable key from it) rather than only use it?
The user PIN comes from the environment (ATTACK_USER_PIN), never argv. Prints one JSON object: attack name ->
{"outcome": "refused"|"succeeded", ...}; "used" entries are uses the key is for (they must succeed).
"""
import argparse
import ctypes
import json
import os

import PyKCS11

# The attack helpers of the key-custody attacker: attempt/results, and C_CopyObject and C_GetAttributeValue through
# ctypes (PyKCS11 has no copyObject, and turns a refused read into None, hiding its CKR_).
import pkcs11_attack
from pkcs11_attack import attempt, copy, read_value, results


def find(session, klass, label):
    return session.findObjects([(PyKCS11.CKA_CLASS, klass), (PyKCS11.CKA_LABEL, label)])


def require_one(handles, what):
    if len(handles) != 1:
        raise SystemExit(f"expected one {what}, found {len(handles)}")
    return handles[0]


def home_made_wrapping_key(session):
    """An AES key the attacker makes (a session object that may wrap and unwrap) to try to wrap a key out."""
    return session.generateKey([
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
        (PyKCS11.CKA_VALUE_LEN, 32), (PyKCS11.CKA_TOKEN, False), (PyKCS11.CKA_WRAP, True), (PyKCS11.CKA_UNWRAP, True),
        (PyKCS11.CKA_ENCRYPT, True), (PyKCS11.CKA_DECRYPT, True), (PyKCS11.CKA_EXTRACTABLE, True), (PyKCS11.CKA_SENSITIVE, False),
    ], mecha=PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_GEN))


def extraction_attacks(session, name, key, klass):
    """Everything that would get the value of `key` out or widen what it can do."""
    attempt(f"{name}: read CKA_VALUE", lambda: read_value(session, key))
    wrapping = home_made_wrapping_key(session)
    attempt(f"{name}: wrap under a home-made key (AES key wrap pad)",
            lambda: bytes(session.wrapKey(wrapping, key, mecha=PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_WRAP_PAD))).hex())
    attempt(f"{name}: wrap under a home-made key (AES-CBC pad)",
            lambda: bytes(session.wrapKey(wrapping, key, mecha=PyKCS11.Mechanism(PyKCS11.CKM_AES_CBC_PAD, bytes(16)))).hex())
    attempt(f"{name}: set CKA_EXTRACTABLE true", lambda: session.setAttributeValue(key, [(PyKCS11.CKA_EXTRACTABLE, True)]))
    attempt(f"{name}: set CKA_SENSITIVE false", lambda: session.setAttributeValue(key, [(PyKCS11.CKA_SENSITIVE, False)]))
    attempt(f"{name}: copy into a session object that is not sensitive",
            lambda: copy(session, key, [(PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_FALSE)]))
    attempt(f"{name}: copy as it is", lambda: copy(session, key, [(PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE)]))
    if klass == PyKCS11.CKO_SECRET_KEY:
        attempt(f"{name}: turn CKA_DERIVE on", lambda: session.setAttributeValue(key, [(PyKCS11.CKA_DERIVE, True)]))
        # A derive that would yield a readable key computed from the key (CKM_AES_ECB_ENCRYPT_DATA, which SoftHSM 2.6.1
        # supports: the derived key is the encryption of the data under the base key, a readable oracle): refused
        # because the key may not derive (SoftHSM checks CKA_DERIVE before the key type).
        def derive_readable():
            derived = session.deriveKey(key, [
                (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_GENERIC_SECRET),
                (PyKCS11.CKA_TOKEN, False), (PyKCS11.CKA_SENSITIVE, False), (PyKCS11.CKA_EXTRACTABLE, True),
            ], PyKCS11.KEY_DERIVATION_STRING_DATA_MechanismBase(bytes(16), PyKCS11.CKM_AES_ECB_ENCRYPT_DATA))
            return read_value(session, derived)
        attempt(f"{name}: derive a readable key from it", derive_readable)
    else:
        attempt(f"{name}: turn CKA_SIGN on", lambda: session.setAttributeValue(key, [(PyKCS11.CKA_SIGN, True)]))
        attempt(f"{name}: sign with it (ECDSA)", lambda: bytes(session.sign(key, bytes(32), PyKCS11.Mechanism(PyKCS11.CKM_ECDSA))).hex())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--as", dest="attacker", choices=["pinless", "user"], required=True)
    parser.add_argument("--master-label", required=True)
    parser.add_argument("--onboarding-label", required=True)
    parser.add_argument("--sealing-label")
    arguments = parser.parse_args()

    library = PyKCS11.PyKCS11Lib()
    library.load(arguments.module)
    pkcs11_attack.MODULE = ctypes.CDLL(arguments.module)
    slot = next(s for s in library.getSlotList(tokenPresent=True) if library.getTokenInfo(s).label.strip() == arguments.token)
    session = library.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    targets = [("master", PyKCS11.CKO_SECRET_KEY, arguments.master_label),
               ("onboarding", PyKCS11.CKO_PRIVATE_KEY, arguments.onboarding_label)]
    if arguments.sealing_label:
        targets.append(("sealing", PyKCS11.CKO_SECRET_KEY, arguments.sealing_label))

    if arguments.attacker == "pinless":
        for name, klass, label in targets:
            found = find(session, klass, label)
            results[f"{name}: find without a PIN"] = {"outcome": "succeeded" if found else "refused", "found": len(found)}
        # Every object a session without a PIN sees (all MeterTrust PSK objects must be among the invisible).
        visible = []
        for handle in session.findObjects([]):
            value = session.getAttributeValue(handle, [PyKCS11.CKA_LABEL])[0]
            visible.append(value if isinstance(value, str) else bytes(value).decode(errors="replace"))
        results["pinless: visible labels"] = {"outcome": "listed", "labels": visible}
    else:
        session.login(os.environ["ATTACK_USER_PIN"])
        master = require_one(find(session, PyKCS11.CKO_SECRET_KEY, arguments.master_label), "master key")
        onboarding = require_one(find(session, PyKCS11.CKO_PRIVATE_KEY, arguments.onboarding_label), "onboarding key")
        # What the keys are for still works with the PIN: the master key computes an HMAC, nothing else.
        mac = bytes(session.sign(master, b"MeterTrust PSK v1\x00" + bytes(8), PyKCS11.Mechanism(PyKCS11.CKM_SHA256_HMAC)))
        results["master: used (HMAC-SHA256)"] = {"outcome": "used", "length": len(mac)}
        extraction_attacks(session, "master", master, PyKCS11.CKO_SECRET_KEY)
        extraction_attacks(session, "onboarding", onboarding, PyKCS11.CKO_PRIVATE_KEY)
        if arguments.sealing_label:
            sealing = require_one(find(session, PyKCS11.CKO_SECRET_KEY, arguments.sealing_label), "sealing key")
            extraction_attacks(session, "sealing", sealing, PyKCS11.CKO_SECRET_KEY)
        session.logout()
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
