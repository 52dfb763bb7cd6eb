"""Checks a MeterTrust enrollment manifest with Python `cryptography`, holding only the manufacturer CA
certificate: the detached signature (DER ECDSA over the exact bytes of the JSON file) must verify with the CA's
public key. Prints the manifest's batch and meters as JSON.

usage: python verify_enrollment_manifest.py MANUFACTURER-CA.pem enrollment-manifest.json enrollment-manifest.json.sig
"""
import json
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ca = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
document = open(sys.argv[2], "rb").read()
signature = open(sys.argv[3], "rb").read()
manifest = json.loads(document)
algorithm = {"ecdsa-with-SHA256": hashes.SHA256(), "ecdsa-with-SHA384": hashes.SHA384()}[manifest["signatureAlgorithm"]]
try:
    ca.public_key().verify(signature, document, ec.ECDSA(algorithm))
except InvalidSignature:
    print("signature does not verify", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"batch": manifest["batch"], "count": manifest["count"], "meters": manifest["meters"]}))
