#!/usr/bin/env python3
"""Attacks on a MeterTrust token through PKCS#11, with PyKCS11 (an independent client nobody here wrote).

Two attackers, each in its own process (PKCS#11 login state is per application, so they cannot share one):
  --as pinless   someone who can open the token without any PIN
  --as user      the holder of the user PIN on the server host, without k custodians

Secrets come from the environment, never argv: ATTACK_USER_PIN (user attacker), ATTACK_OLD_SO_PIN (an SO PIN the
attacker once knew, optional). Prints one JSON object: attack name -> {"outcome": "refused"|"succeeded", "ckr": ...}.
An attack "succeeded" when the token did what the attacker wanted; the test suite expects every one refused.
"""
import argparse
import base64
import ctypes
import json
import os
import sys

import PyKCS11
from PyKCS11 import LowLevel

results = {}


def ckr_name(error):
    value = error.value if isinstance(error, PyKCS11.PyKCS11Error) else None
    return PyKCS11.CKR.get(value, str(value)) if value is not None else type(error).__name__


def attempt(name, action):
    """Runs one attack; records whether the token refused it (and with which CKR_) or let it through."""
    try:
        detail = action()
        results[name] = {"outcome": "succeeded", "detail": detail}
    except PyKCS11.PyKCS11Error as error:
        results[name] = {"outcome": "refused", "ckr": ckr_name(error)}


def find(session, **attributes):
    template = []
    for key, value in attributes.items():
        template.append((getattr(PyKCS11, key), value))
    return session.findObjects(template)


def label_of(session, handle):
    value = session.getAttributeValue(handle, [PyKCS11.CKA_LABEL])[0]
    return value if isinstance(value, str) else bytes(value).decode()


def one(handles, what):
    if len(handles) != 1:
        raise SystemExit(f"expected one {what}, found {len(handles)}")
    return handles[0]


def unwrap_weak(session, backup_key, blob):
    """C_UnwrapKey of a wrapped CA key into a session object that is neither sensitive nor private, then read it."""
    template = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
        (PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE),
        (PyKCS11.CKA_PRIVATE, PyKCS11.CK_FALSE),
        (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_FALSE),
        (PyKCS11.CKA_EXTRACTABLE, PyKCS11.CK_TRUE),
    ]
    handle = session.unwrapKey(backup_key, blob, template, PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_WRAP_PAD, None))
    value = bytes(session.getAttributeValue(handle, [PyKCS11.CKA_VALUE])[0])
    return {"privateKeyLength": len(value)}


def set_attribute(session, handle, attribute, value):
    session.setAttributeValue(handle, [(attribute, value)])
    return "changed"


class CKAttribute(ctypes.Structure):
    _fields_ = [("type", ctypes.c_ulong), ("pValue", ctypes.c_void_p), ("ulValueLen", ctypes.c_ulong)]


MODULE = None  # ctypes handle on the same (already loaded) PKCS#11 module, for what PyKCS11 lacks: C_CopyObject


def copy(session, handle, template):
    """C_CopyObject with boolean attributes in `template` (PyKCS11 has no copyObject; the module exports it)."""
    values = [ctypes.c_ubyte(1 if value else 0) for _, value in template]
    attributes = (CKAttribute * len(template))(
        *[CKAttribute(kind, ctypes.cast(ctypes.byref(value), ctypes.c_void_p), 1) for (kind, _), value in zip(template, values)]
    )
    new = ctypes.c_ulong(0)
    rv = MODULE.C_CopyObject(
        ctypes.c_ulong(session.session.value()), ctypes.c_ulong(handle.value()), attributes, ctypes.c_ulong(len(template)), ctypes.byref(new)
    )
    if rv != 0:
        raise PyKCS11.PyKCS11Error(rv)
    return {"copy": new.value}


def handle_value(handle):
    return handle.value()


def read_value(session, handle):
    """C_GetAttributeValue(CKA_VALUE) straight from the module (PyKCS11 turns a refusal into None, hiding its CKR_)."""
    attribute = CKAttribute(PyKCS11.CKA_VALUE, None, 0)
    rv = MODULE.C_GetAttributeValue(ctypes.c_ulong(session.session.value()), ctypes.c_ulong(handle.value()), ctypes.byref(attribute), ctypes.c_ulong(1))
    if rv != 0:
        raise PyKCS11.PyKCS11Error(rv)
    return {"length": attribute.ulValueLen}


def attack_backup_key(session, prefix, backup_label, blob):
    backup_key = one(find(session, CKA_CLASS=PyKCS11.CKO_SECRET_KEY, CKA_LABEL=backup_label), "backup key")
    if blob is not None:
        attempt(f"{prefix}-unwrap-backup-blob", lambda: unwrap_weak(session, backup_key, blob))
    attempt(f"{prefix}-set-backup-key-unwrap", lambda: set_attribute(session, backup_key, PyKCS11.CKA_UNWRAP, PyKCS11.CK_TRUE))
    attempt(f"{prefix}-set-backup-key-unsensitive", lambda: set_attribute(session, backup_key, PyKCS11.CKA_SENSITIVE, PyKCS11.CK_FALSE))
    attempt(f"{prefix}-set-backup-key-extractable", lambda: set_attribute(session, backup_key, PyKCS11.CKA_EXTRACTABLE, PyKCS11.CK_TRUE))
    attempt(f"{prefix}-copy-backup-key-with-unwrap", lambda: copy(session, backup_key, [(PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_UNWRAP, PyKCS11.CK_TRUE)]))
    attempt(f"{prefix}-copy-backup-key", lambda: copy(session, backup_key, [(PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE)]))
    attempt(f"{prefix}-read-backup-key-value", lambda: read_value(session, backup_key))
    return backup_key


def pinless(session, args, blob):
    # What a session without a login can see at all.
    visible = [label_of(session, handle) for handle in session.findObjects([])]
    results["pinless-visible-objects"] = {"outcome": "info", "labels": sorted(visible)}
    if find(session, CKA_CLASS=PyKCS11.CKO_SECRET_KEY, CKA_LABEL=args.backup_label):
        attack_backup_key(session, "pinless", args.backup_label, blob)
    # Destroying objects it cannot see: every handle the module might have given out.
    destroyed = []
    codes = set()
    backup_handles = {handle_value(h) for h in find(session, CKA_CLASS=PyKCS11.CKO_SECRET_KEY, CKA_LABEL=args.backup_label)}
    for handle in range(1, args.handles + 1):
        if handle in backup_handles:
            continue
        target = PyKCS11.CK_OBJECT_HANDLE(session)
        target.assign(handle)
        try:
            session.destroyObject(target)
            destroyed.append(handle)
        except PyKCS11.PyKCS11Error as error:
            codes.add(ckr_name(error))
    results["pinless-destroy-any-object"] = {
        "outcome": "succeeded" if destroyed else "refused", "destroyed": destroyed, "ckr": sorted(codes)
    }
    if args.old_so_pin:
        def so_login():
            session.login(args.old_so_pin, PyKCS11.CKU_SO)
            session.logout()
            return "logged in as security officer"
        attempt("old-so-pin-login", so_login)


def user(session, args, blob):
    backup_key = attack_backup_key(session, "user", args.backup_label, blob)
    for ca_label in args.backup_ca:
        ca_key = one(find(session, CKA_CLASS=PyKCS11.CKO_PRIVATE_KEY, CKA_LABEL=ca_label), f"private key {ca_label}")
        mechanism = PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_WRAP_PAD, None)

        def wrap_then_unwrap():
            wrapped = session.wrapKey(backup_key, ca_key, mechanism)
            return unwrap_weak(session, backup_key, bytes(wrapped))
        attempt(f"user-wrap-then-unwrap:{ca_label}", wrap_then_unwrap)

        def own_wrapping_key():
            template = [
                (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
                (PyKCS11.CKA_VALUE_LEN, 32), (PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_FALSE),
                (PyKCS11.CKA_EXTRACTABLE, PyKCS11.CK_TRUE), (PyKCS11.CKA_WRAP, PyKCS11.CK_TRUE), (PyKCS11.CKA_UNWRAP, PyKCS11.CK_TRUE),
            ]
            own = session.generateKey(template, PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_GEN, None))
            wrapped = session.wrapKey(own, ca_key, mechanism)
            return unwrap_weak(session, own, bytes(wrapped))
        attempt(f"user-own-wrapping-key:{ca_label}", own_wrapping_key)

    def trusted_key_of_known_value():
        template = [
            (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
            (PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_VALUE, bytes(32)), (PyKCS11.CKA_TRUSTED, PyKCS11.CK_TRUE),
            (PyKCS11.CKA_WRAP, PyKCS11.CK_TRUE), (PyKCS11.CKA_UNWRAP, PyKCS11.CK_TRUE),
        ]
        return {"handle": handle_value(session.createObject(template))}
    attempt("user-trusted-key-of-known-value", trusted_key_of_known_value)

    for ca_label in args.ca:
        ca_key = one(find(session, CKA_CLASS=PyKCS11.CKO_PRIVATE_KEY, CKA_LABEL=ca_label), f"private key {ca_label}")
        attempt(f"user-copy-ca-key-public:{ca_label}", lambda: copy(session, ca_key, [(PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_PRIVATE, PyKCS11.CK_FALSE)]))
        attempt(f"user-copy-ca-key-unsensitive:{ca_label}", lambda: copy(session, ca_key, [(PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_FALSE)]))
        attempt(f"user-copy-ca-key-extractable:{ca_label}", lambda: copy(session, ca_key, [(PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_EXTRACTABLE, PyKCS11.CK_TRUE)]))
        attempt(f"user-set-ca-key-extractable:{ca_label}", lambda: set_attribute(session, ca_key, PyKCS11.CKA_EXTRACTABLE, PyKCS11.CK_TRUE))
        attempt(f"user-read-ca-key-value:{ca_label}", lambda: read_value(session, ca_key))
        attempt(f"user-wrap-under-backup-key:{ca_label}", lambda: {"length": len(session.wrapKey(backup_key, ca_key, PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_WRAP_PAD, None)))})
        # What the key may do, as the token reports it.
        names = ["CKA_PRIVATE", "CKA_SENSITIVE", "CKA_EXTRACTABLE", "CKA_MODIFIABLE", "CKA_COPYABLE", "CKA_DECRYPT", "CKA_UNWRAP", "CKA_DERIVE"]
        values = session.getAttributeValue(ca_key, [getattr(PyKCS11, name) for name in names])
        results[f"attributes:{ca_label}"] = {"outcome": "info", **{name: bool(value) for name, value in zip(names, values)}}
        public = find(session, CKA_CLASS=PyKCS11.CKO_PUBLIC_KEY, CKA_LABEL=ca_label)
        if public:
            results[f"public-attributes:{ca_label}"] = {
                "outcome": "info", "CKA_PRIVATE": bool(session.getAttributeValue(public[0], [PyKCS11.CKA_PRIVATE])[0]),
                "CKA_MODIFIABLE": bool(session.getAttributeValue(public[0], [PyKCS11.CKA_MODIFIABLE])[0]),
            }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--as", dest="attacker", choices=["pinless", "user"], required=True)
    parser.add_argument("--backup-label", required=True)
    parser.add_argument("--backup-file", help="a backup document; its first wrapped key is attacked")
    parser.add_argument("--backup-ca", action="append", default=[], help="label of a backup-enabled CA key")
    parser.add_argument("--ca", action="append", default=[], help="label of a CA key to copy and inspect")
    parser.add_argument("--handles", type=int, default=400)
    args = parser.parse_args()
    args.old_so_pin = os.environ.get("ATTACK_OLD_SO_PIN")

    blob = None
    if args.backup_file:
        with open(args.backup_file) as handle:
            blob = base64.b64decode(json.load(handle)["keys"][0]["wrapped"])

    global MODULE
    library = PyKCS11.PyKCS11Lib()
    library.load(args.module)
    MODULE = ctypes.CDLL(args.module)
    slots = [slot for slot in library.getSlotList(tokenPresent=True) if library.getTokenInfo(slot).label.strip() == args.token]
    if len(slots) != 1:
        raise SystemExit(f"no single token labelled {args.token}")
    session = library.openSession(slots[0], PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    if args.attacker == "pinless":
        pinless(session, args, blob)
    else:
        session.login(os.environ["ATTACK_USER_PIN"])
        user(session, args, blob)
    json.dump(results, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
