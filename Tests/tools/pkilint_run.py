"""Runs one of pkilint's linters (lint_pkix_cert, lint_pkix_signer_signee_cert_chain, lint_crl, lint_ocsp_response) with pyasn1's DER
decoder.

pkilint decodes DER with pyasn1-fasder, whose OID parser (Rust const-oid) refuses OIDs under arc 2 whose second
arc is 40 or more ("OID contains out-of-range arc"), such as the example arc 2.999 that MeterTrust's default policy
and device-type OIDs use. X.690 §8.19.4 allows such OIDs and pyasn1 decodes them, so this wrapper hands pkilint
pyasn1's decoder; every validator pkilint runs is unchanged.

usage: python pkilint_run.py LINTER [linter arguments], e.g. pkilint_run.py lint_pkix_cert lint -s WARNING cert.pem
"""
import sys

from pyasn1.codec.der import decoder as pyasn1_der

import pkilint.document

pkilint.document.decode_der = lambda substrate, asn1Spec: pyasn1_der.decode(substrate, asn1Spec=asn1Spec)

import importlib  # noqa: E402

linter = sys.argv[1]
if linter not in ("lint_pkix_cert", "lint_pkix_signer_signee_cert_chain", "lint_crl", "lint_ocsp_response"):
    sys.exit(f"unknown linter {linter}")
sys.exit(importlib.import_module(f"pkilint.bin.{linter}").main(sys.argv[2:]))
