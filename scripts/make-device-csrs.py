# Writes N device CSRs for a factory batch (used by scripts/bench-enroll-http.sh): make-device-csrs.py N FIRST_EUI64_HEX OUT
# Writes N device CSRs (P-256, empty subject) as a metertrust-csr-list: "<eui64> <base64 DER>" per line.
import base64, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
n, start, out = int(sys.argv[1]), int(sys.argv[2], 16), sys.argv[3]
with open(out, "w") as f:
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
        f.write("%016x %s\n" % (start + i, base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()))
