"""OCSP responses built byte for byte, for the tests that hand a server exactly what it must staple.

`cryptography`'s OCSPResponseBuilder makes a well-formed response with one answer. What it will not make
(two answers in one response, a CertID hash nobody knows) is made here by editing the DER of a response it
made and signing the edited part again, so that every such response still carries a valid signature and
fails, if it fails, for the one reason a test is about.

    good = build(pki, leaf.cert)
    inverted = build(pki, leaf.cert, this_update=now, next_update=now - HOUR)   # the builder accepts it
    both = two_answers(pki, leaf.cert, ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED)
    unknown = unknown_cert_id_hash(pki, leaf.cert)
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOUR = dt.timedelta(hours=1)
# The AlgorithmIdentifier OID of SHA-1 in a CertID, and one of the same length that names no hash
# (1.3.14.3.2.127, unassigned in the OIW arc): swapping one for the other keeps every DER length.
SHA1_OID = bytes.fromhex("06052b0e03021a")
UNKNOWN_HASH_OID = bytes.fromhex("06052b0e03027f")
# What a server with a broken responder might staple: not DER at all.
GARBAGE = b"<html><body>502 Bad Gateway</body></html>\n"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def build(pki, cert: x509.Certificate, *, status=ocsp.OCSPCertStatus.GOOD, this_update: dt.datetime | None = None,
          next_update: dt.datetime | None | bool = True, signer: tuple | None = None, revoked_at: dt.datetime | None = None) -> bytes:
    """DER of a response about ``cert`` from the bench PKI's issuer.

    ``next_update`` True means an hour after thisUpdate, None leaves it out; ``signer`` is (certificate, key) of a
    delegated responder, sent in the response; the issuer signs by default.
    """
    this_update = this_update or now() - dt.timedelta(minutes=10)
    if next_update is True:
        next_update = this_update + HOUR
    if status == ocsp.OCSPCertStatus.REVOKED and revoked_at is None:
        revoked_at = this_update - HOUR
    signer_cert, signer_key = signer or (pki.intermediate_cert, pki.intermediate_key)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=pki.intermediate_cert, algorithm=hashes.SHA1(), cert_status=status,
        this_update=this_update, next_update=next_update, revocation_time=revoked_at, revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
    if signer is not None:
        builder = builder.certificates([signer_cert])
    return builder.sign(signer_key, hashes.SHA256()).public_bytes(Encoding.DER)


def delegated_responder(pki, *, not_before: dt.datetime, not_after: dt.datetime) -> tuple:
    """A responder certificate the issuer authorised (OCSP Signing), valid from ``not_before`` to ``not_after``, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Short-lived Responder")]))
        .issuer_name(pki.intermediate_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(pki.intermediate_key, hashes.SHA256())
    )
    return cert, key


def two_answers(pki, cert: x509.Certificate, first, second) -> bytes:
    """A response with two answers about ``cert`` (statuses ``first`` then ``second``), signed by the issuer."""
    one = build(pki, cert, status=first)
    other = build(pki, cert, status=second)

    def add_answer(tbs: bytes) -> bytes:
        fields, other_fields = _children(tbs), _children(_tbs(other))
        at, other_at = _answers_index(fields), _answers_index(other_fields)
        fields[at] = _tlv(0x30, _body(fields[at]) + _body(other_fields[other_at]))
        return _tlv(0x30, b"".join(fields))
    return _resign(one, add_answer, pki.intermediate_key)


def unknown_cert_id_hash(pki, cert: x509.Certificate) -> bytes:
    """A good response about ``cert`` whose CertID names a hash algorithm no library knows, signed by the issuer."""
    def swap(tbs: bytes) -> bytes:
        assert tbs.count(SHA1_OID) == 1
        return tbs.replace(SHA1_OID, UNKNOWN_HASH_OID)
    return _resign(build(pki, cert), swap, pki.intermediate_key)


# --- DER, as much as the edits above need ------------------------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _header(data: bytes, offset: int = 0) -> tuple:
    """(tag, start of the body, end) of the element at ``offset``."""
    tag, first = data[offset], data[offset + 1]
    if first < 0x80:
        return tag, offset + 2, offset + 2 + first
    count = first & 0x7F
    size = int.from_bytes(data[offset + 2:offset + 2 + count], "big")
    start = offset + 2 + count
    return tag, start, start + size


def _body(element: bytes) -> bytes:
    _tag, start, end = _header(element)
    return element[start:end]


def _children(element: bytes) -> list:
    """The encoded elements inside a constructed element, each with its tag and length."""
    body, items, offset = _body(element), [], 0
    while offset < len(body):
        _tag, _start, end = _header(body, offset)
        items.append(body[offset:end])
        offset = end
    return items


def _answers_index(fields: list) -> int:
    """Where the responses are among the fields of a ResponseData: [version], responderID, producedAt, responses, [extensions]."""
    return next(index for index, field in enumerate(fields) if field[0] == 0x18) + 1  # after producedAt, a GeneralizedTime


def _basic(response: bytes) -> bytes:
    # OCSPResponse: status, [0] { SEQUENCE { responseType, OCTET STRING { BasicOCSPResponse } } }
    response_bytes = _children(_children(response)[1])[0]
    return _body(_children(response_bytes)[1])


def _tbs(response: bytes) -> bytes:
    return _children(_basic(response))[0]


def _resign(response: bytes, edit, key) -> bytes:
    """``response`` with its tbsResponseData replaced by ``edit(tbs)`` and signed again by ``key`` (SHA-256)."""
    status, wrapper = _children(response)
    response_type = _children(_children(wrapper)[0])[0]
    parts = _children(_basic(response))
    tbs = edit(parts[0])
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    basic = _tlv(0x30, tbs + parts[1] + _tlv(0x03, b"\x00" + signature) + b"".join(parts[3:]))
    return _tlv(0x30, status + _tlv(0xA0, _tlv(0x30, response_type + _tlv(0x04, basic))))
