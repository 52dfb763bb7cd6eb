"""HardwareModuleName (RFC 4108 §5) for the Python verifiers, decoded with pyasn1:

    HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }
"""
from cryptography import x509
from pyasn1.codec.der import decoder
from pyasn1.type import namedtype, univ

HARDWARE_MODULE_NAME = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.4")


class HardwareModuleName(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("hwType", univ.ObjectIdentifier()),
        namedtype.NamedType("hwSerialNum", univ.OctetString()),
    )


def hardware_module_name(san):
    """The (hwType, hwSerialNum) of the one HardwareModuleName otherName in a SubjectAlternativeName value."""
    names = [n for n in san if isinstance(n, x509.OtherName) and n.type_id == HARDWARE_MODULE_NAME]
    decoded, rest = decoder.decode(names[0].value, asn1Spec=HardwareModuleName())
    assert rest == b""
    return str(decoded["hwType"]), bytes(decoded["hwSerialNum"])
