"""Unit tests of the staple evaluation, on OCSP responses built here for each case."""

from __future__ import annotations

import datetime as dt

import pytest
from bench import staples
from bench.pki import Pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.ocsp.stapling.plugins.module_utils._ocsp import DEFAULT_MAX_AGE, evaluate_staple, format_duration, has_must_staple, ocsp_urls

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), "http://127.0.0.1:9/")
    pki.issue_leaf("good.test")
    pki.issue_leaf("other.test")
    pki.issue_leaf("strict.test", must_staple=True)
    pki.issue_leaf("nourl.test", ocsp_url=None)
    return pki


def make_signer(subject: str, issuer_cert, issuer_key, *, ocsp_eku: bool = True, days: int = 30):
    """A certificate that may sign OCSP responses, issued by whoever the test wants."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=abs(days) + 1))
        .not_valid_after(NOW + dt.timedelta(days=days))
    )
    if ocsp_eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def staple(pki: Pki, name: str = "good.test", *, status=ocsp.OCSPCertStatus.GOOD, this_update=None, next_update=HOUR,
           signer=None, issuer=None, include_signer=True, revoked_at=None, reason=None, algorithm=None) -> bytes:
    """DER of a response about leaf ``name``; ``signer`` is (cert, key), the issuer by default."""
    cert = pki.leaf(name).cert
    this_update = NOW - dt.timedelta(minutes=10) if this_update is None else this_update
    signer_cert, signer_key = signer or (pki.intermediate_cert, pki.intermediate_key)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer or pki.intermediate_cert,
        algorithm=algorithm or hashes.SHA1(),
        cert_status=status,
        this_update=this_update,
        next_update=None if next_update is None else this_update + next_update,
        revocation_time=revoked_at,
        revocation_reason=reason,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
    if include_signer and signer is not None:
        builder = builder.certificates([signer_cert])
    return builder.sign(signer_key, hashes.SHA256()).public_bytes(Encoding.DER)


def judge(pki: Pki, data: bytes | None, name: str = "good.test", issuer="intermediate", now=NOW):
    issuer_cert = pki.intermediate_cert if issuer == "intermediate" else issuer
    return evaluate_staple(data, pki.leaf(name).cert, issuer_cert, now=now)


def test_good_staple_signed_by_issuer(pki):
    result = judge(pki, staple(pki))
    assert result.ok and result.fresh and result.signature_valid and result.names_certificate
    assert result.cert_status == "good" and result.response_status == "successful"
    assert result.signer_kind == "issuer" and result.signer == "Bench Intermediate CA"
    assert result.seconds_to_expiry == 3000
    assert result.reason.startswith("good, fresh staple signed by the issuer 'Bench Intermediate CA'; next update in")


def test_good_staple_signed_by_authorised_delegated_responder(pki):
    result = judge(pki, staple(pki, signer=(pki.responder_cert, pki.responder_key)))
    assert result.ok
    assert result.signer_kind == "delegated" and result.signer == "Bench OCSP Responder"


def test_sha256_cert_id_is_understood(pki):
    assert judge(pki, staple(pki, algorithm=hashes.SHA256())).ok


def test_revoked_reports_time_and_reason(pki):
    revoked_at = NOW - dt.timedelta(days=1)
    result = judge(pki, staple(pki, status=ocsp.OCSPCertStatus.REVOKED, revoked_at=revoked_at, reason=x509.ReasonFlags.key_compromise))
    assert not result.ok and not result.retryable
    assert result.cert_status == "revoked"
    assert result.revocation_reason == "keyCompromise"
    assert result.revocation_time == revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "revoked" in result.reason and "keyCompromise" in result.reason


def test_unknown_status(pki):
    result = judge(pki, staple(pki, status=ocsp.OCSPCertStatus.UNKNOWN))
    assert not result.ok and result.cert_status == "unknown" and "unknown" in result.reason


def test_expired_response_is_stale(pki):
    result = judge(pki, staple(pki, this_update=NOW - dt.timedelta(days=2), next_update=dt.timedelta(days=1)))
    assert not result.ok and not result.fresh
    assert result.seconds_to_expiry < -80000
    assert "stale" in result.reason and "1d00h ago" in result.reason


def test_not_yet_valid_response(pki):
    result = judge(pki, staple(pki, this_update=NOW + HOUR))
    assert not result.ok and "not valid yet" in result.reason and "check the clocks" in result.reason


def test_clock_skew_allowance_accepts_a_response_just_past_next_update(pki):
    data = staple(pki, this_update=NOW - HOUR, next_update=dt.timedelta(minutes=58))
    assert judge(pki, data).ok
    assert not evaluate_staple(data, pki.leaf("good.test").cert, pki.intermediate_cert, now=NOW, clock_skew=dt.timedelta(0)).ok


def test_response_without_next_update_is_accepted_and_says_so(pki):
    result = judge(pki, staple(pki, next_update=None))
    assert result.ok and result.seconds_to_expiry is None and "no nextUpdate" in result.reason


def test_wrong_serial(pki):
    result = judge(pki, staple(pki, "other.test"))
    assert not result.ok and not result.names_certificate
    assert "serial" in result.reason and "%X" % pki.leaf("good.test").serial in result.reason


def test_wrong_issuer(pki):
    # Same serial, but the CertID hashes name the root instead of the intermediate.
    result = judge(pki, staple(pki, issuer=pki.root_cert))
    assert not result.ok and not result.names_certificate and "different issuer" in result.reason


def test_bad_signature(pki):
    data = staple(pki)
    signature = ocsp.load_der_ocsp_response(data).signature
    # Flip the last byte of the ECDSA "s" value: still well-formed DER, no longer a valid signature.
    tampered = data.replace(signature, signature[:-1] + bytes([signature[-1] ^ 0x01]))
    result = judge(pki, tampered)
    assert not result.ok and not result.signature_valid
    assert result.signer_kind == "issuer" and "signature does not verify" in result.reason


def test_responder_not_issued_by_the_issuer_is_unauthorised(pki, tmp_path):
    other_ca = Pki.create(tmp_path / "other", None)
    rogue = make_signer("Rogue Responder", other_ca.intermediate_cert, other_ca.intermediate_key)
    result = judge(pki, staple(pki, signer=rogue))
    assert not result.ok and result.signer_kind == "unauthorised" and "did not issue" in result.reason


def test_responder_without_ocsp_signing_eku_is_unauthorised(pki):
    result = judge(pki, staple(pki, signer=make_signer("Plain Cert", pki.intermediate_cert, pki.intermediate_key, ocsp_eku=False)))
    assert not result.ok and result.signer_kind == "unauthorised" and "OCSP Signing" in result.reason


def test_expired_delegated_responder_is_unauthorised(pki):
    result = judge(pki, staple(pki, signer=make_signer("Old Responder", pki.intermediate_cert, pki.intermediate_key, days=-3)))
    assert not result.ok and "not valid now" in result.reason


def test_signer_missing_from_the_response(pki):
    result = judge(pki, staple(pki, signer=(pki.responder_cert, pki.responder_key), include_signer=False))
    assert not result.ok and result.signer_kind == "unknown" and "neither the issuer" in result.reason


@pytest.mark.parametrize("status, name", [
    (ocsp.OCSPResponseStatus.TRY_LATER, "tryLater"),
    (ocsp.OCSPResponseStatus.INTERNAL_ERROR, "internalError"),
])
def test_unsuccessful_responses_are_retryable(pki, status, name):
    result = judge(pki, ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER))
    assert result.stapled and not result.ok and result.retryable
    assert result.response_status == name and name in result.reason


def test_unauthorized_response_is_a_definite_failure(pki):
    data = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(Encoding.DER)
    result = judge(pki, data)
    assert not result.ok and not result.retryable and result.response_status == "unauthorized"


@pytest.mark.parametrize("garbage", [b"not an OCSP response", b"\x30\x03\x0a\x01", bytes(range(256))])
def test_bytes_that_are_not_ocsp(pki, garbage):
    result = judge(pki, garbage)
    assert result.stapled and not result.ok and not result.retryable
    assert "not an OCSP response" in result.reason


@pytest.mark.parametrize("nothing", [None, b""])
def test_no_staple_is_retryable(pki, nothing):
    result = judge(pki, nothing)
    assert not result.stapled and not result.ok and result.retryable
    assert result.reason == "no OCSP response stapled"


def test_no_staple_with_must_staple_says_browsers_will_refuse(pki):
    result = judge(pki, None, name="strict.test")
    assert result.must_staple and "Must-Staple" in result.reason and "Firefox" in result.reason


def test_issuer_missing_from_the_chain(pki):
    result = judge(pki, staple(pki), issuer=None)
    assert not result.ok and "not in the served chain" in result.reason


def test_certificate_facts(pki):
    assert has_must_staple(pki.leaf("strict.test").cert)
    assert not has_must_staple(pki.leaf("good.test").cert)
    assert ocsp_urls(pki.leaf("good.test").cert) == ["http://127.0.0.1:9/"]
    assert ocsp_urls(pki.leaf("nourl.test").cert) == []


@pytest.mark.parametrize("seconds, text", [(42, "42s"), (-750, "-12m30s"), (3 * 3600 + 300, "3h05m"), (6 * 86400 + 23 * 3600, "6d23h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_as_dict_leaves_out_internal_fields(pki):
    assert "retryable" not in judge(pki, None).as_dict()


# --- issue 13: as strict as RFC 6960 / RFC 5019 and a careful client --------------------------------


def test_next_update_before_this_update_fails_whatever_the_status(pki):
    result = judge(pki, staple(pki, this_update=NOW - dt.timedelta(minutes=10), next_update=-HOUR))
    assert not result.ok and not result.fresh and result.cert_status is None
    assert "validity interval is inverted" in result.reason and "never valid" in result.reason


def test_a_delegated_responder_expired_inside_the_clock_skew_still_fails(pki):
    # Expired 2 minutes before NOW: the 5-minute allowance is for thisUpdate/nextUpdate, not for the signer's certificate.
    signer = staples.delegated_responder(pki, not_before=NOW - dt.timedelta(days=3), not_after=NOW - dt.timedelta(minutes=2))
    result = judge(pki, staple(pki, signer=signer))
    assert not result.ok and result.signer_kind == "unauthorised"
    assert "is not valid now: it expired 2m00s ago" in result.reason


def test_a_delegated_responder_not_yet_valid_fails(pki):
    signer = staples.delegated_responder(pki, not_before=NOW + dt.timedelta(minutes=2), not_after=NOW + dt.timedelta(days=3))
    result = judge(pki, staple(pki, signer=signer))
    assert not result.ok and "becomes valid in 2m00s" in result.reason


@pytest.mark.parametrize("age, max_age, ok", [
    (dt.timedelta(hours=23), dt.timedelta(days=1), True),
    (dt.timedelta(days=2), dt.timedelta(days=1), False),
    # Within max_age + clock_skew (5 minutes) still passes: the skew applies to this implied nextUpdate too.
    (dt.timedelta(days=1, minutes=4), dt.timedelta(days=1), True),
    (dt.timedelta(hours=2), dt.timedelta(hours=1), False),
])
def test_a_response_without_next_update_is_fresh_for_max_age_only(pki, age, max_age, ok):
    data = staple(pki, this_update=NOW - age, next_update=None)
    result = evaluate_staple(data, pki.leaf("good.test").cert, pki.intermediate_cert, now=NOW, max_age=max_age)
    assert result.ok is ok, result.reason
    if not ok:
        assert result.retryable and "it has no nextUpdate and its thisUpdate" in result.reason
    else:
        assert "no nextUpdate, accepted until" in result.reason


def test_the_default_max_age_is_one_day():
    assert DEFAULT_MAX_AGE == dt.timedelta(days=1)


@pytest.mark.parametrize("first, second", [
    (ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED),
    (ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.GOOD),
    (ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.UNKNOWN),
])
def test_answers_that_contradict_each_other_fail_in_either_order(pki, first, second):
    result = judge(pki, staples.two_answers(pki, pki.leaf("good.test").cert, first, second))
    assert not result.ok and result.names_certificate and result.signature_valid
    assert "2 answers about the served certificate that contradict each other (%s and %s)" % (
        first.name.lower(), second.name.lower()) in result.reason


def test_answers_that_agree_pass(pki):
    result = judge(pki, staples.two_answers(pki, pki.leaf("good.test").cert, ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.GOOD))
    assert result.ok, result.reason


def test_an_unknown_cert_id_hash_is_a_verdict_not_an_exception(pki):
    result = judge(pki, staples.unknown_cert_id_hash(pki, pki.leaf("good.test").cert))
    assert not result.ok and result.stapled and not result.retryable
    assert "CertID hash algorithm that cannot be computed here" in result.reason


def test_an_unknown_signature_algorithm_is_a_verdict_not_an_exception(pki):
    data = staple(pki)
    # ecdsa-with-SHA256 (1.2.840.10045.4.3.2) -> an unassigned arc of the same length: the algorithm is unknown.
    known = bytes.fromhex("06082a8648ce3d040302")
    assert data.count(known) == 1
    result = judge(pki, data.replace(known, bytes.fromhex("06082a8648ce3d04037f")))
    assert not result.ok and result.stapled and "an algorithm that cannot be checked here" in result.reason
