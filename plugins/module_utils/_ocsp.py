# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evaluate a stapled OCSP response against the certificate a server presented.

Plain Python on top of ``cryptography``; nothing here knows about Ansible, so the
rules can be unit tested on responses the tests build themselves.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from ._crypto import (
    ExtendedKeyUsageOID,
    InvalidSignature,
    UnsupportedAlgorithm,
    dsa,
    ec,
    ed448,
    ed25519,
    hashes,
    ocsp,
    padding,
    rsa,
    serialization,
    x509,
)

UTC = datetime.timezone.utc

# RFC 6960 names, as operators read them in server logs and in `openssl ocsp` output.
_RESPONSE_STATUS_NAMES = {
    "SUCCESSFUL": "successful",
    "MALFORMED_REQUEST": "malformedRequest",
    "INTERNAL_ERROR": "internalError",
    "TRY_LATER": "tryLater",
    "SIG_REQUIRED": "sigRequired",
    "UNAUTHORIZED": "unauthorized",
}
# What each unsuccessful response status tells the operator (RFC 6960 section 2.3).
_RESPONSE_STATUS_MEANINGS = {
    "malformedRequest": "it could not read the request",
    "internalError": "it failed inside",
    "tryLater": "it is busy or not ready: ask again later",
    "sigRequired": "it only answers signed requests",
    "unauthorized": "it will not answer for this certificate: the certificate names the wrong responder, "
                    "or the responder does not serve this issuer",
}
# Who is judged: the response a server stapled, or the one the responder gave when asked directly.
STAPLE = "staple"
RESPONSE = "response"
# How long after its thisUpdate a response without nextUpdate counts as fresh. RFC 6960 (4.2.2.1) allows such a
# response ("newer information is always available"), RFC 5019 (section 4) has clients reject it outright: a day is
# the middle way, an answer refreshed daily passes and an old one never passes as fresh.
DEFAULT_MAX_AGE = datetime.timedelta(days=1)


@dataclass
class StapleEvaluation:
    """What a client can conclude from one handshake's stapled response."""

    stapled: bool = False
    response_status: str | None = None
    cert_status: str | None = None
    revocation_time: str | None = None
    revocation_reason: str | None = None
    produced_at: str | None = None
    this_update: str | None = None
    next_update: str | None = None
    seconds_to_expiry: int | None = None
    signer: str | None = None
    signer_kind: str | None = None
    names_certificate: bool = False
    signature_valid: bool = False
    fresh: bool = False
    must_staple: bool = False
    ok: bool = False
    reason: str = ""
    # Failures that another attempt may cure (an nginx worker with a cold cache,
    # a responder that said tryLater) as opposed to a definite verdict.
    retryable: bool = False

    def as_dict(self) -> dict:
        result = dict(self.__dict__)
        result.pop("retryable")
        return result


def iso_time(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_attr(obj, name: str) -> datetime.datetime | None:
    """Read an aware timestamp from cryptography objects old and new (``*_utc`` came in 42)."""
    if hasattr(obj, name + "_utc"):
        return getattr(obj, name + "_utc")
    naive = getattr(obj, name)
    return None if naive is None else naive.replace(tzinfo=UTC)


def format_duration(seconds: float) -> str:
    """Compact and signed, for people: 6d23h, 3h05m, -12m30s, 42s."""
    sign = "-" if seconds < 0 else ""
    seconds = int(abs(seconds))
    if seconds >= 86400:
        return "%s%dd%02dh" % (sign, seconds // 86400, seconds % 86400 // 3600)
    if seconds >= 3600:
        return "%s%dh%02dm" % (sign, seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%s%dm%02ds" % (sign, seconds // 60, seconds % 60)
    return "%s%ds" % (sign, seconds)


def short_name(name: x509.Name) -> str:
    """The CN of a name when it has one, else the whole RFC 4514 string."""
    common_names = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if common_names:
        return str(common_names[0].value)
    return name.rfc4514_string()


def load_pem_certificates(data: bytes) -> list:
    """Every certificate of a PEM bundle; ValueError when there is none."""
    return x509.load_pem_x509_certificates(data)


def has_must_staple(cert: x509.Certificate) -> bool:
    """True when the certificate carries the TLS Feature status_request (OCSP Must-Staple)."""
    try:
        features = cert.extensions.get_extension_for_class(x509.TLSFeature).value
    except x509.ExtensionNotFound:
        return False
    return x509.TLSFeatureType.status_request in features


def ocsp_urls(cert: x509.Certificate) -> list:
    """The OCSP responder URLs of the certificate's Authority Information Access."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        desc.access_location.value
        for desc in aia
        if desc.access_method == x509.AuthorityInformationAccessOID.OCSP
        and isinstance(desc.access_location, x509.UniformResourceIdentifier)
    ]


def is_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key signed ``cert`` and the names chain up."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def find_issuer(cert: x509.Certificate, candidates) -> x509.Certificate | None:
    """The first candidate that really signed ``cert``."""
    for candidate in candidates:
        if is_issued_by(cert, candidate):
            return candidate
    return None


def _verify_signature(public_key, signature: bytes, data: bytes, hash_algorithm) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, dsa.DSAPublicKey):
            public_key.verify(signature, data, hash_algorithm)
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _key_hash(public_key) -> bytes:
    # RFC 6960 ResponderID byKey: SHA-1 of the subjectPublicKey BIT STRING, which is
    # exactly the RFC 5280 method-1 key identifier.
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest


def _is_responder(cert: x509.Certificate, response) -> bool:
    if response.responder_name is not None:
        return cert.subject == response.responder_name
    return _key_hash(cert.public_key()) == response.responder_key_hash


def _cert_id_hashes(cert: x509.Certificate, issuer: x509.Certificate, algorithm) -> tuple:
    # cryptography computes the CertID hashes when it builds a request; reuse that
    # rather than digging the key BIT STRING out of the DER by hand.
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
    return request.issuer_name_hash, request.issuer_key_hash


def request_der(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """A DER OCSP request for ``cert``, with the SHA-1 CertID every responder understands."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    return request.public_bytes(serialization.Encoding.DER)


def _single_responses(response) -> list:
    responses = getattr(response, "responses", None)
    if responses is not None:
        return list(responses)
    return [response]


def _matching_singles(response, cert: x509.Certificate, issuer: x509.Certificate, what: str = STAPLE):
    """Return (every single response naming this certificate, why none matched when the list is empty).

    A response may hold several answers; all of those about the served certificate are returned so that
    the caller can refuse answers that contradict each other instead of trusting whichever comes first.
    """
    singles = _single_responses(response)
    serial_seen = False
    unknown_hash = False
    matching = []
    for single in singles:
        if single.serial_number != cert.serial_number:
            continue
        serial_seen = True
        try:
            name_hash, key_hash = _cert_id_hashes(cert, issuer, single.hash_algorithm)
        except UnsupportedAlgorithm:
            # A CertID hash this library cannot compute: whom the answer names cannot be checked.
            unknown_hash = True
            continue
        except (ValueError, TypeError, x509.UnsupportedGeneralNameType):
            continue
        if single.issuer_name_hash == name_hash and single.issuer_key_hash == key_hash:
            matching.append(single)
    if matching:
        return matching, ""
    if not serial_seen:
        serials = ", ".join("%X" % single.serial_number for single in singles)
        return [], "the %s is about another certificate: serial %s, not the served certificate's serial %X" % (
            what, serials, cert.serial_number)
    if unknown_hash:
        return [], ("the %s names the served serial %X with a CertID hash algorithm that cannot be computed here, so whether it is about "
                    "the served certificate cannot be checked: the responder must use SHA-1 or SHA-2 CertIDs (RFC 6960, RFC 5019)") % (
            what, cert.serial_number)
    return [], "the %s names the served serial %X but a different issuer (issuer name/key hash mismatch)" % (what, cert.serial_number)


def _conflict(singles: list, what: str) -> str:
    """Why several answers about the served certificate cannot all hold, or '' when they agree."""
    statuses = []
    for single in singles:
        status = single.certificate_status.name.lower()
        if status not in statuses:
            statuses.append(status)
    if len(statuses) < 2:
        return ""
    return "the %s holds %d answers about the served certificate that contradict each other (%s): no client can tell which holds" % (
        what, len(singles), " and ".join(statuses))


def _check_signer(response, issuer: x509.Certificate, now: datetime.datetime, what: str = STAPLE):
    """Return (signer certificate, kind, problem or '').

    A delegated responder's certificate must be valid at ``now`` exactly: the clock-skew allowance is for
    thisUpdate and nextUpdate, which a responder sets itself, not for a certificate that has run out.
    """
    if _is_responder(issuer, response):
        return issuer, "issuer", ""
    for candidate in response.certificates:
        if not _is_responder(candidate, response):
            continue
        if not is_issued_by(candidate, issuer):
            return candidate, "unauthorised", "the %s is signed by an unauthorised key: %r, which the issuer %r did not issue" % (
                what, short_name(candidate.subject), short_name(issuer.subject))
        try:
            usages = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = []
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            return candidate, "unauthorised", "the %s is signed by an unauthorised key: %r lacks the OCSP Signing extended key usage" % (
                what, short_name(candidate.subject))
        not_before = utc_attr(candidate, "not_valid_before")
        not_after = utc_attr(candidate, "not_valid_after")
        if now > not_after:
            return candidate, "unauthorised", (
                "the %s's delegated responder certificate %r is not valid now: it expired %s ago (valid %s to %s); "
                "the responder must sign with a current certificate") % (
                what, short_name(candidate.subject), format_duration((now - not_after).total_seconds()), iso_time(not_before), iso_time(not_after))
        if now < not_before:
            return candidate, "unauthorised", "the %s's delegated responder certificate %r is not valid now: it becomes valid in %s (valid %s to %s)" % (
                what, short_name(candidate.subject), format_duration((not_before - now).total_seconds()), iso_time(not_before), iso_time(not_after))
        return candidate, "delegated", ""
    return None, "unknown", "the %s is signed by a responder that is neither the issuer %r nor a certificate it authorised" % (
        what, short_name(issuer.subject))


def evaluate_staple(
    staple: bytes | None,
    cert: x509.Certificate,
    issuer: x509.Certificate | None,
    now: datetime.datetime | None = None,
    clock_skew: datetime.timedelta = datetime.timedelta(minutes=5),
    what: str = STAPLE,
    max_age: datetime.timedelta = DEFAULT_MAX_AGE,
) -> StapleEvaluation:
    """Judge one stapled OCSP response as a careful TLS client would.

    ``staple`` is the raw response from the handshake (``None`` or empty when the
    server sent none), ``cert`` the served leaf and ``issuer`` its issuer, when known.
    ``what`` is RESPONSE when the bytes came from the responder itself rather than from a
    server: the verdict is the same, the reason then speaks of the responder's answer.
    ``max_age`` is how long after its thisUpdate a response without nextUpdate stays fresh.
    """
    now = now or datetime.datetime.now(UTC)
    result = StapleEvaluation(must_staple=has_must_staple(cert))
    must_staple_note = " (the certificate requires OCSP Must-Staple: Firefox refuses this site)" if result.must_staple else ""

    if not staple:
        result.reason = ("no OCSP response stapled" + must_staple_note) if what == STAPLE else "an empty body, not an OCSP response"
        result.retryable = True
        return result
    result.stapled = True

    # Only what was judged goes into the reason, never the bytes: they are the peer's and may be anything
    # (a page of an internal site, text made to look like a verdict).
    try:
        response = ocsp.load_der_ocsp_response(staple)
    except ValueError:
        if what == STAPLE:
            result.reason = "the stapled bytes are not an OCSP response (%d bytes; they do not parse as DER OCSP)" % len(staple)
        else:
            result.reason = "something that is not an OCSP response (%d bytes; it does not parse as DER OCSP)" % len(staple)
        return result
    try:
        return _judge(response, result, cert, issuer, now, (clock_skew, max_age), what, must_staple_note)
    except ValueError:
        # cryptography parses the parts of a response when they are read: a response that loads may still
        # hold a part that does not parse.
        verdict = StapleEvaluation(stapled=True, must_staple=result.must_staple, response_status=result.response_status)
        verdict.reason = "the %s is not a well-formed OCSP response (%d bytes; a part of it does not parse)" % (what, len(staple))
        return verdict
    except UnsupportedAlgorithm:
        # A signature or hash algorithm this library does not know, read lazily like the parts above: a verdict
        # on this response, never an exception that would end the other targets' checks too.
        verdict = StapleEvaluation(stapled=True, must_staple=result.must_staple, response_status=result.response_status)
        verdict.reason = "the %s uses an algorithm that cannot be checked here (%d bytes): the responder must sign with a common algorithm" % (
            what, len(staple))
        return verdict


def _judge(response, result: StapleEvaluation, cert, issuer, now, windows: tuple, what: str, must_staple_note: str) -> StapleEvaluation:
    """The verdict on a response that loaded: its status, whom it names, who signed it, and when.

    ``windows`` is (clock skew, max age of a response without nextUpdate).
    """
    clock_skew, max_age = windows
    result.response_status = _RESPONSE_STATUS_NAMES.get(response.response_status.name, response.response_status.name)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        meaning = _RESPONSE_STATUS_MEANINGS.get(result.response_status, "an error status")
        if what == STAPLE:
            result.reason = "the stapled response carries no certificate status, only %s (%s)" % (result.response_status, meaning)
            if response.response_status == ocsp.OCSPResponseStatus.TRY_LATER:
                # Apache (SSLStaplingFakeTryLater, on by default) staples a tryLater of its own when its query fails.
                result.reason += "; the responder said so, or the server could not get an answer and made it up (Apache does)"
            result.reason += must_staple_note
        else:
            result.reason = "%s, with no certificate status (%s)" % (result.response_status, meaning)
        result.retryable = response.response_status in (ocsp.OCSPResponseStatus.TRY_LATER, ocsp.OCSPResponseStatus.INTERNAL_ERROR)
        return result

    result.produced_at = iso_time(utc_attr(response, "produced_at"))
    if issuer is None:
        result.reason = "the issuer of %r is not in the served chain, so the staple cannot be checked: serve the intermediate certificate" % (
            short_name(cert.subject),)
        return result

    singles, mismatch = _matching_singles(response, cert, issuer, what)
    if not singles:
        result.reason = mismatch
        return result
    result.names_certificate = True
    single = singles[0]

    signer, kind, problem = _check_signer(response, issuer, now, what)
    result.signer_kind = kind
    if signer is not None:
        result.signer = short_name(signer.subject)
    if problem:
        result.reason = problem
        return result
    result.signature_valid = _verify_signature(
        signer.public_key(), response.signature, response.tbs_response_bytes, response.signature_hash_algorithm)
    if not result.signature_valid:
        result.reason = "the %s's signature does not verify with the key of %r" % (what, result.signer)
        return result
    conflict = _conflict(singles, what)
    if conflict:
        result.reason = conflict
        return result

    this_update = utc_attr(single, "this_update")
    next_update = utc_attr(single, "next_update")
    result.this_update = iso_time(this_update)
    result.next_update = iso_time(next_update)
    if next_update is not None:
        result.seconds_to_expiry = int((next_update - now).total_seconds())
    if next_update is not None and next_update < this_update:
        # No instant lies in such a validity interval: the response is broken, whatever status it claims.
        result.reason = "the %s's validity interval is inverted: nextUpdate %s is before thisUpdate %s, so it is never valid; " \
                        "the responder signs broken responses" % (what, result.next_update, result.this_update)
        return result

    status = single.certificate_status
    result.cert_status = status.name.lower()
    if status == ocsp.OCSPCertStatus.REVOKED:
        result.revocation_time = iso_time(utc_attr(single, "revocation_time"))
        reason_flag = single.revocation_reason
        result.revocation_reason = reason_flag.value if reason_flag is not None else None
        result.reason = "the certificate is revoked (since %s%s): replace it" % (
            result.revocation_time, ", " + result.revocation_reason if result.revocation_reason else "")
        return result
    if status == ocsp.OCSPCertStatus.UNKNOWN:
        result.reason = "the responder does not know the certificate (status unknown)"
        return result

    if this_update > now + clock_skew:
        result.reason = "the %s is not valid yet (thisUpdate %s is %s ahead): check the clocks" % (
            what, result.this_update, format_duration((this_update - now).total_seconds()))
        return result
    if next_update is not None and next_update < now - clock_skew:
        result.reason = "the %s is stale: it expired %s ago (nextUpdate %s)" % (
            what, format_duration((now - next_update).total_seconds()), result.next_update)
        result.reason += ": the server keeps an expired response" if what == STAPLE else ": the responder signs out-of-date responses"
        result.retryable = True
        return result
    if next_update is None and this_update + max_age < now - clock_skew:
        result.reason = "the %s is stale: it has no nextUpdate and its thisUpdate %s is %s old, more than the %s such a response is accepted" % (
            what, result.this_update, format_duration((now - this_update).total_seconds()), format_duration(max_age.total_seconds()))
        result.reason += ": the server keeps an old response" if what == STAPLE else ": the responder signs out-of-date responses"
        result.retryable = True
        return result
    result.fresh = True
    result.ok = True
    if next_update is None:
        expiry = "no nextUpdate, accepted until %s" % iso_time(this_update + max_age)
    else:
        expiry = "next update in %s" % format_duration(result.seconds_to_expiry)
    result.reason = "good, fresh staple signed by %s %r; %s" % (
        "the issuer" if kind == "issuer" else "delegated responder", result.signer, expiry)
    return result
