"""Checks an EST simpleenroll/simplereenroll answer with Python `cryptography` (an independent CMS and X.509
parser): the certs-only PKCS#7 holds the meter's operational certificate; it is signed by an Operational CA of the
cacerts answer (another certs-only PKCS#7), and that CA by the root; it names the meter (HardwareModuleName, RFC 4108, and CN=urn:dev:mac:),
has EKU clientAuth only, keyUsage digitalSignature only, a CRL distribution point and an AIA OCSP URL. Prints JSON.

usage: python check_operational_certificate.py RESPONSE.der CACERTS.der ROOT.pem
"""
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, AuthorityInformationAccessOID, NameOID

from hardware_module_name import hardware_module_name

with open(sys.argv[1], "rb") as f:
    certificates = pkcs7.load_der_pkcs7_certificates(f.read())
with open(sys.argv[2], "rb") as f:
    cas = pkcs7.load_der_pkcs7_certificates(f.read())
with open(sys.argv[3], "rb") as f:
    root = x509.load_pem_x509_certificate(f.read())

leaves = [c for c in certificates
          if any(a.value.startswith("urn:dev:mac:") for a in c.subject.get_attributes_for_oid(NameOID.COMMON_NAME))]
leaf = leaves[0]
issuer = [c for c in cas if c.subject == leaf.issuer][0]
leaf.verify_directly_issued_by(issuer)
issuer.verify_directly_issued_by(root)

san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
hw_type, hw_serial = hardware_module_name(san.value)
eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
crl = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)
aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
print(json.dumps({
    "certificates": len(certificates),
    "issuer": issuer.subject.rfc4514_string(),
    "subject": leaf.subject.rfc4514_string(),
    "eui64": hw_serial.hex(),
    "hwType": hw_type,
    "sanCritical": san.critical,
    "sanNames": len(list(san.value)),
    "extendedKeyUsage": [u.dotted_string for u in eku.value],
    "clientAuth": list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH],
    "digitalSignatureOnly": ku.value.digital_signature and not (ku.value.key_agreement or ku.value.key_cert_sign
                                                                 or ku.value.crl_sign or ku.value.key_encipherment),
    "crlDistributionPoints": [n.value for p in crl.value for n in (p.full_name or [])],
    "ocsp": [d.access_location.value for d in aia.value if d.access_method == AuthorityInformationAccessOID.OCSP],
    "serial": format(leaf.serial_number, "x"),
    "notAfter": leaf.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ"),
    "notBefore": leaf.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ"),
    "publicKeyDER": leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ).hex(),
}))
