"""Unit tests: each way an OCSP responder fails gets a reason of its own, from a staple and from the responder.

The answers are what bench/faulty_responder.py sends (built here the same way), and the fetch errors
what _ocsp_http.fetch_ocsp raises for them (test_verify_hostile.py has it meet real sockets);
tests/integration/test_responder_faults.py runs the same faults through real nginx and Apache.
"""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from bench.faulty_responder import NOT_OCSP_BODY, ROGUE_NAME, rogue_signer
from bench.pki import Pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils._ocsp import RESPONSE, evaluate_staple
from ansible_collections.ocsp.stapling.plugins.module_utils._ocsp_http import MAX_BODY, FetchError, HttpStatusError, TooLargeError
from ansible_collections.ocsp.stapling.plugins.module_utils._verify import Policy, ask_responder

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
URL = "http://127.0.0.1:9/"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), URL)
    pki.issue_leaf("site.test")
    return pki


@pytest.fixture(scope="module")
def rogue(tmp_path_factory):
    cert_path, key_path = rogue_signer(tmp_path_factory.mktemp("rogue"))
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert, serialization.load_pem_private_key(key_path.read_bytes(), password=None)


def response(pki, *, signer=None, serial_offset=0, this_update=None, next_update=None, status=ocsp.OCSPCertStatus.GOOD) -> bytes:
    """A response about site.test (or serial + offset), signed by the delegated responder unless signer is given."""
    request = ocsp.OCSPRequestBuilder().add_certificate(pki.leaf("site.test").cert, pki.intermediate_cert, hashes.SHA1()).build()
    cert, key = signer or (pki.responder_cert, pki.responder_key)
    this_update = this_update or NOW - dt.timedelta(minutes=1)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number + serial_offset, algorithm=hashes.SHA1(), cert_status=status,
            this_update=this_update, next_update=next_update or this_update + dt.timedelta(hours=1),
            revocation_time=NOW - dt.timedelta(days=1) if status == ocsp.OCSPCertStatus.REVOKED else None,
            revocation_reason=x509.ReasonFlags.key_compromise if status == ocsp.OCSPCertStatus.REVOKED else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, cert)
        .certificates([cert])
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def unsuccessful(status) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


def answers(pki, rogue) -> dict:
    """fault -> what fetch returns or raises, as fetch_ocsp does for that responder."""
    return {
        "down": ConnectionRefusedError(111, "Connection refused"),
        # Connect, read and a drip past the deadline all end in the same socket timeout.
        "slow": socket.timeout("timed out"),
        "http-500": HttpStatusError(500),
        "redirect": HttpStatusError(302),
        "huge": TooLargeError(MAX_BODY),
        "not-http": FetchError("answers something that is not an HTTP response", reachable=True),
        "not-ocsp": NOT_OCSP_BODY,
        "empty": b"",
        "try-later": unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER),
        "unauthorized": unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED),
        "internal-error": unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR),
        "rogue-signer": response(pki, signer=rogue),
        "expired": response(pki, this_update=NOW - dt.timedelta(hours=2), next_update=NOW - dt.timedelta(hours=1)),
        "other-serial": response(pki, serial_offset=1),
        "revoked": response(pki, status=ocsp.OCSPCertStatus.REVOKED),
        "good": response(pki),
    }


EXPECTED = {
    "down": "cannot be reached from here (connection refused): nothing listens there, it is down",
    "slow": "cannot be reached from here (timed out): no answer within 3.0s, it hangs or is too slow",
    "http-500": "answers HTTP 500 instead of an OCSP response",
    "redirect": "answers HTTP 302 (a redirect, not followed) instead of an OCSP response",
    "huge": "answers a body of more than 65536 bytes, far more than an OCSP response (a few KiB): not read further",
    "not-http": "answers something that is not an HTTP response",
    "not-ocsp": "answers: something that is not an OCSP response (53 bytes; it does not parse as DER OCSP)",
    "empty": "answers: an empty body, not an OCSP response",
    "try-later": "answers: tryLater, with no certificate status (it is busy or not ready: ask again later)",
    "unauthorized": "answers: unauthorized, with no certificate status (it will not answer for this certificate",
    "internal-error": "answers: internalError, with no certificate status (it failed inside)",
    "rogue-signer": f"answers: the response is signed by an unauthorised key: {ROGUE_NAME!r}, which the issuer 'Bench Intermediate CA' did not issue",
    "expired": "answers: the response is stale: it expired 1h00m ago",
    "other-serial": "answers: the response is about another certificate: serial",
    "revoked": "answers: the certificate is revoked (since",
    "good": "answers good from here, so the server is not fetching or not serving it",
}


def ask(pki, outcome):
    def fetch(url, request, timeout):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    return ask_responder(pki.leaf("site.test").cert, pki.intermediate_cert, Policy(fetch=fetch, timeout=3))


@pytest.mark.parametrize("fault", list(EXPECTED))
def test_the_responder_is_named_for_its_fault(pki, rogue, fault):
    verdict = ask(pki, answers(pki, rogue)[fault])
    assert verdict["url"] == URL and EXPECTED[fault] in verdict["reason"], verdict["reason"]
    # Only what was judged: no byte of the answer.
    assert "html" not in verdict["reason"].lower()
    assert verdict["reason"].startswith(f"its responder {URL} ")
    # The responder was asked directly: nothing here speaks of a staple.
    assert "staple" not in verdict["reason"].replace("server is not fetching", "")
    assert verdict["reachable"] is (fault not in ("down", "slow"))


def test_no_two_faults_share_a_reason(pki, rogue):
    reasons = {fault: ask(pki, outcome)["reason"] for fault, outcome in answers(pki, rogue).items()}
    for fault, expected in EXPECTED.items():
        assert [other for other, reason in reasons.items() if expected in reason] == [fault], (fault, reasons)


def test_a_name_lookup_timeout_reads_like_a_read_timeout(pki):
    verdict = ask(pki, socket.timeout("name lookup timed out"))
    assert EXPECTED["slow"] in verdict["reason"]


def test_other_unreachable_responders_keep_the_general_reason(pki):
    verdict = ask(pki, OSError(113, "No route to host"))
    assert "cannot be reached from here ([Errno 113] No route to host): check that the server can reach it" in verdict["reason"]


def test_an_error_text_of_unknown_origin_is_not_repeated(pki):
    # The text of an error without an errno may quote the peer (a proxy's reason phrase): only its type is named.
    verdict = ask(pki, OSError("Tunnel connection failed: 403 <script>evil</script>"))
    assert "cannot be reached from here (OSError)" in verdict["reason"] and "evil" not in verdict["reason"]


@pytest.mark.parametrize("fault, expected", [
    ("rogue-signer", f"the staple is signed by an unauthorised key: {ROGUE_NAME!r}"),
    ("expired", "the staple is stale: it expired 1h00m ago"),
    ("other-serial", "the staple is about another certificate: serial"),
    ("revoked", "the certificate is revoked"),
    ("not-ocsp", "the stapled bytes are not an OCSP response (53 bytes; they do not parse as DER OCSP)"),
])
def test_a_bad_staple_is_named_as_a_staple(pki, rogue, fault, expected):
    result = evaluate_staple(answers(pki, rogue)[fault], pki.leaf("site.test").cert, pki.intermediate_cert)
    assert not result.ok and expected in result.reason, result.reason
    if fault == "expired":
        # A stale staple is the server's doing: it kept the response past its nextUpdate.
        assert "the server keeps an expired response" in result.reason


def test_a_stapled_try_later_says_the_server_may_have_made_it_up(pki):
    # Apache (SSLStaplingFakeTryLater, on by default) staples a tryLater of its own when it gets no answer.
    result = evaluate_staple(unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER), pki.leaf("site.test").cert, pki.intermediate_cert)
    assert result.retryable and result.response_status == "tryLater"
    assert result.reason.startswith("the stapled response carries no certificate status, only tryLater")
    assert "or the server could not get an answer and made it up (Apache does)" in result.reason


def test_a_stapled_unauthorized_is_not_blamed_on_the_server(pki):
    result = evaluate_staple(unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED), pki.leaf("site.test").cert, pki.intermediate_cert)
    assert not result.retryable and "only unauthorized (it will not answer for this certificate" in result.reason
    assert "made it up" not in result.reason


def test_the_verdict_does_not_depend_on_who_is_judged(pki, rogue):
    cert, issuer = pki.leaf("site.test").cert, pki.intermediate_cert
    for data in answers(pki, rogue).values():
        if isinstance(data, bytes):
            staple, direct = evaluate_staple(data, cert, issuer, NOW), evaluate_staple(data, cert, issuer, NOW, what=RESPONSE)
            assert (staple.ok, staple.cert_status, staple.response_status, staple.retryable) == (
                direct.ok, direct.cert_status, direct.response_status, direct.retryable)
