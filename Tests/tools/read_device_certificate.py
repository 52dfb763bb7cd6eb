"""Reads a MeterTrust device identity certificate with Python `cryptography` (an independent X.509 parser) and
prints what it found as JSON: the EUI-64 from the HardwareModuleName otherName (RFC 4108), its hwType, and the
profile-relevant fields.

usage: python read_device_certificate.py CERT.pem
"""
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hardware_module_name import hardware_module_name

with open(sys.argv[1], "rb") as f:
    cert = x509.load_pem_x509_certificate(f.read())

san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
hw_type, hw_serial = hardware_module_name(san.value)
ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
print(json.dumps({
    "eui64": hw_serial.hex(),
    "hwType": hw_type,
    "sanNames": len(list(san.value)),
    "sanCritical": san.critical,
    "subjectEmpty": len(cert.subject.rdns) == 0,
    "keyUsageCritical": ku.critical,
    "digitalSignature": ku.value.digital_signature,
    "keyAgreement": ku.value.key_agreement,
    "keyCertSign": ku.value.key_cert_sign,
    "policiesCritical": policies.critical,
    "policies": [p.policy_identifier.dotted_string for p in policies.value],
    "skiLength": len(ski.value.digest),
    "akiLength": len(aki.value.key_identifier),
    "notAfter": cert.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ"),
    "serialBits": cert.serial_number.bit_length(),
    "publicKeyDER": cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ).hex(),
}))
