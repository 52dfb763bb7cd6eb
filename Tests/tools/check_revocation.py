"""Checks MeterTrust's CRLs and OCSP responses with Python `cryptography`, which no one here wrote.

usage:
  check_revocation.py crl CRL.der ISSUER.pem [SERIAL_HEX]
      parses the CRL, verifies its signature with the issuer's key, and prints JSON: number, thisUpdate, nextUpdate,
      the issuing distribution point (URI, onlyContainsUserCerts, critical), the entries (serial, reason,
      invalidityDate), and whether SERIAL_HEX is listed.
  check_revocation.py ocsp RESPONSE.der ISSUER.pem
      parses the OCSP response; if successful, verifies the responder certificate was issued by ISSUER (signature),
      carries id-kp-OCSPSigning and id-pkix-ocsp-nocheck, and signed the response; prints JSON with the status, each
      single response's status/reason/revocation time, thisUpdate/nextUpdate and the nonce.
"""
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID


def iso(value):
    return value.isoformat() if value is not None else None


def check_crl(path, issuer_path, serial=None):
    crl = x509.load_der_x509_crl(open(path, "rb").read())
    issuer = x509.load_pem_x509_certificate(open(issuer_path, "rb").read())
    out = {
        "signatureValid": crl.is_signature_valid(issuer.public_key()),
        "issuerMatches": crl.issuer == issuer.subject,
        "number": crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number,
        "thisUpdate": iso(crl.last_update_utc),
        "nextUpdate": iso(crl.next_update_utc),
        "version": crl.extensions and 2,
        "entries": [],
    }
    aki = crl.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    ski = issuer.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    out["authorityKeyIdentifierMatches"] = aki.key_identifier == ski.digest
    try:
        idp = crl.extensions.get_extension_for_oid(ExtensionOID.ISSUING_DISTRIBUTION_POINT)
        out["issuingDistributionPoint"] = {
            "critical": idp.critical,
            "uris": [n.value for n in (idp.value.full_name or [])],
            "onlyContainsUserCerts": idp.value.only_contains_user_certs,
        }
    except x509.ExtensionNotFound:
        out["issuingDistributionPoint"] = None
    for entry in crl:
        item = {"serial": format(entry.serial_number, "x"), "revocationDate": iso(entry.revocation_date_utc)}
        for extension in entry.extensions:
            if extension.oid == x509.oid.CRLEntryExtensionOID.CRL_REASON:
                item["reason"] = extension.value.reason.name
            if extension.oid == x509.oid.CRLEntryExtensionOID.INVALIDITY_DATE:
                item["invalidityDate"] = iso(extension.value.invalidity_date_utc)
        out["entries"].append(item)
    if serial is not None:
        wanted = int(serial, 16)
        out["listed"] = crl.get_revoked_certificate_by_serial_number(wanted) is not None
    return out


def check_ocsp(path, issuer_path):
    response = ocsp.load_der_ocsp_response(open(path, "rb").read())
    out = {"status": response.response_status.name}
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return out
    issuer = x509.load_pem_x509_certificate(open(issuer_path, "rb").read())
    responders = response.certificates
    out["responderCertificates"] = len(responders)
    responder = responders[0]
    responder.verify_directly_issued_by(issuer)
    eku = responder.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    out["responderEKU"] = [oid.dotted_string for oid in eku]
    out["responderOCSPSigning"] = ExtendedKeyUsageOID.OCSP_SIGNING in eku
    out["responderNoCheck"] = any(e.oid == ExtensionOID.OCSP_NO_CHECK for e in responder.extensions)
    responder.public_key().verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
    out["signatureValid"] = True
    out["responderKeyHashMatches"] = response.responder_key_hash is not None
    out["producedAt"] = iso(response.produced_at_utc)
    singles = []
    for single in response.responses:
        singles.append({
            "serial": format(single.serial_number, "x"),
            "status": single.certificate_status.name,
            "reason": single.revocation_reason.name if single.revocation_reason else None,
            "revocationTime": iso(single.revocation_time_utc),
            "thisUpdate": iso(single.this_update_utc),
            "nextUpdate": iso(single.next_update_utc),
        })
    out["responses"] = singles
    try:
        out["nonce"] = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce.hex()
    except x509.ExtensionNotFound:
        out["nonce"] = None
    return out


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "crl":
        print(json.dumps(check_crl(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)))
    elif kind == "ocsp":
        print(json.dumps(check_ocsp(sys.argv[2], sys.argv[3])))
    else:
        sys.exit(f"unknown check {kind}")
