"""Forges OCSP answers with Python cryptography for the meter's OCSP check (OCSPStatusCheckTests).

Usage: forge_ocsp_answers.py DIRECTORY NONCE_HEX

Writes issuer.der and server.der (the certificate asked about), and one DER answer per case: a man-in-the-middle or
a confused responder answering the meter. Each case's name says what the meter must make of it.
"""
import datetime
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

directory, nonce = sys.argv[1], bytes.fromhex(sys.argv[2])
now = datetime.datetime.now(datetime.timezone.utc)


def name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def certificate(subject, issuer, key, signer, ca, eku=None, days=1):
    builder = (
        x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(signer, hashes.SHA256())


def key():
    return ec.generate_private_key(ec.SECP256R1())


issuer_key = key()
issuer = certificate("Test Service CA", "Test Service CA", issuer_key, issuer_key, True)
server = certificate("est.example", "Test Service CA", key(), issuer_key, False)
other = certificate("other.example", "Test Service CA", key(), issuer_key, False)
responder_key = key()
responder = certificate("Test OCSP Signer", "Test Service CA", responder_key, issuer_key, False, [ExtendedKeyUsageOID.OCSP_SIGNING])
plain_key = key()
plain = certificate("Not an OCSP Signer", "Test Service CA", plain_key, issuer_key, False, [ExtendedKeyUsageOID.SERVER_AUTH])
stranger_key = key()
stranger_ca = certificate("Test Service CA", "Test Service CA", stranger_key, stranger_key, True)
stranger = certificate("Stranger OCSP Signer", "Test Service CA", stranger_key, stranger_key, False, [ExtendedKeyUsageOID.OCSP_SIGNING])


def answer(case, subject=server, status=ocsp.OCSPCertStatus.GOOD, signer=(responder, responder_key), answer_nonce=nonce,
           this_update=None, next_update=None):
    this_update = this_update or now - datetime.timedelta(minutes=1)
    next_update = next_update or now + datetime.timedelta(hours=4)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=subject, issuer=issuer, algorithm=hashes.SHA256(), cert_status=status, this_update=this_update, next_update=next_update,
        revocation_time=now - datetime.timedelta(minutes=5) if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=x509.ReasonFlags.key_compromise if status == ocsp.OCSPCertStatus.REVOKED else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer[0]).certificates([signer[0]])
    if answer_nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(answer_nonce), critical=False)
    with open(f"{directory}/{case}.der", "wb") as out:
        out.write(builder.sign(signer[1], hashes.SHA256()).public_bytes(serialization.Encoding.DER))


answer("good")
answer("revoked", status=ocsp.OCSPCertStatus.REVOKED)
answer("unknown", status=ocsp.OCSPCertStatus.UNKNOWN)
answer("by-issuer", signer=(issuer, issuer_key))
answer("replayed-other-nonce", answer_nonce=b"\x00" * 32)
answer("replayed-no-nonce", answer_nonce=None)
answer("stranger", signer=(stranger, stranger_key))
answer("not-for-ocsp-signing", signer=(plain, plain_key))
answer("stale", this_update=now - datetime.timedelta(days=2), next_update=now - datetime.timedelta(days=1))
answer("future", this_update=now + datetime.timedelta(days=1), next_update=now + datetime.timedelta(days=2))
answer("other-certificate", subject=other)
with open(f"{directory}/unauthorized.der", "wb") as out:
    out.write(ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER))
for label, value in (("issuer", issuer), ("server", server)):
    with open(f"{directory}/{label}.der", "wb") as out:
        out.write(value.public_bytes(serialization.Encoding.DER))
