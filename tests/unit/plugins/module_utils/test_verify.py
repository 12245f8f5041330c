"""Unit tests of target parsing, the retry policy and the reports of the verify engine."""

from __future__ import annotations

import datetime
import re
import socket

import pytest
from bench.pki import Pki
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils._ocsp_http import HttpStatusError
from ansible_collections.ocsp.stapling.plugins.module_utils._verify import (
    Policy,
    Target,
    VerifyError,
    ask_responder,
    check_targets,
    failure_message,
    fingerprint,
    format_table,
    name_matches,
    parse_targets,
    results_for,
    site_targets,
    summarise,
    targets_for,
    wrong_certificate,
)


def test_parse_targets_accepts_mappings_and_shorthands():
    targets = parse_targets([
        {"host": "192.0.2.1", "port": "8443", "server_name": "www.example.com"},
        {"host": "example.org"},
        "example.net:444",
        "[2001:db8::1]:8443",
        "2001:db8::2",
    ])
    assert targets == [
        Target("192.0.2.1", 8443, "www.example.com"),
        Target("example.org", 443, "example.org"),
        Target("example.net", 444, "example.net"),
        Target("2001:db8::1", 8443, "2001:db8::1"),
        Target("2001:db8::2", 443, "2001:db8::2"),
    ]
    assert targets[0].label == "192.0.2.1:8443 (www.example.com)"
    assert targets[3].label == "[2001:db8::1]:8443"


@pytest.mark.parametrize("entry, message", [
    ({"port": 443}, "targets[0] has no host"),
    ({"host": "a", "port": "https"}, "targets[0] port 'https' is not a number"),
    ({"host": "a", "port": 70000}, "out of range"),
    ({"host": "a", "sni": "b"}, "unknown keys sni: use host, port, server_name and expected_certificates"),
    (42, "targets[0] must be a mapping"),
])
def test_parse_targets_names_the_bad_entry(entry, message):
    with pytest.raises(VerifyError, match=re.escape(message)):
        parse_targets([entry])


@pytest.mark.parametrize("field, value", [("timeout", 0), ("retry_budget", -1), ("retry_delay", -0.1), ("clock_skew", -5)])
def test_policy_rejects_impossible_values(field, value):
    with pytest.raises(VerifyError, match=field):
        Policy(**{field: value})


def test_the_deadline_of_a_target_is_the_budget_and_two_timeouts():
    # The budget, one last handshake begun just before it ends, and the diagnosis: verify's DOCUMENTATION says so.
    assert Policy(timeout=2, retry_budget=1).deadline_seconds == 5
    assert Policy(timeout=5, retry_budget=0).deadline_seconds == 10


def test_check_targets_rejects_zero_concurrency():
    with pytest.raises(VerifyError, match="concurrency must be at least 1"):
        check_targets([Target("127.0.0.1", 1)], Policy(), concurrency=0)


def test_connection_refused_is_a_definite_failure_without_retries():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    # Nothing listens on that port any more: the refusal must not burn the retry budget.
    [result] = check_targets([Target("127.0.0.1", port, "site.test")], Policy(retry_budget=30))
    assert not result["ok"] and result["attempts"] == 1 and result["elapsed_seconds"] < 5
    assert result["reason"].startswith("cannot connect")


def test_silent_server_times_out_within_the_timeout():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        [result] = check_targets([Target("127.0.0.1", listener.getsockname()[1])], Policy(timeout=0.5, retry_budget=30))
    assert not result["ok"] and result["attempts"] == 1
    assert result["reason"] == "no TLS handshake within 0.5s"
    assert result["elapsed_seconds"] < 2


def test_targets_for_builds_one_target_per_name():
    assert targets_for(["a.test", {"server_name": "b.test", "port": 8443}], "10.0.0.1", 4443) == [
        {"host": "10.0.0.1", "port": 4443, "server_name": "a.test"},
        {"host": "10.0.0.1", "port": 8443, "server_name": "b.test"},
    ]
    with pytest.raises(VerifyError, match="endpoint 0 of 10.0.0.1"):
        targets_for([{"port": 1}], "10.0.0.1")


def result(name, ok, **extra):
    base = {"host": "127.0.0.1", "port": 443, "server_name": name, "ok": ok, "stapled": ok, "cert_status": "good" if ok else None,
            "must_staple": False, "attempts": 1, "seconds_to_expiry": 3600 if ok else None,
            "reason": "good, fresh staple" if ok else "no OCSP response stapled"}
    base.update(extra)
    return base


def test_summary_table_and_failure_message():
    results = [result("a.test", True), result("b.test", False, must_staple=True, attempts=7),
               result("c.test", False, stapled=True, cert_status="revoked", reason="the certificate is revoked")]
    summary = summarise(results)
    assert summary == {"total": 3, "ok": 1, "failed": 2, "not_stapled": 1, "not_applicable": 0, "revoked": 1, "must_staple_broken": 1,
                       "failed_targets": ["127.0.0.1:443 (b.test)", "127.0.0.1:443 (c.test)"]}
    table = format_table(results)
    assert table[0].split() == ["TARGET", "RESULT", "STATUS", "EXPIRES", "IN", "TRIES", "MUST-STAPLE", "REASON"]
    assert table[1].split()[:6] == ["127.0.0.1:443", "(a.test)", "ok", "good", "1h00m", "1"]
    assert "no staple" in table[2] and "FAIL" in table[2] and " 7 " in table[2]
    assert table[-1] == "1 of 3 targets staple a good, fresh OCSP response"
    # Columns line up: the reason starts at the same offset on every row.
    assert len({line.index(reason) for line, reason in zip(table[1:4], ["good, fresh", "no OCSP", "the certificate"])}) == 1
    not_applicable = result("d.test", False, applicable=False, reason="not applicable: no OCSP responder URL")
    assert summarise([not_applicable])["not_applicable"] == 1
    assert format_table([not_applicable])[1].split()[2] == "n/a"
    message = failure_message(results, shown=1)
    assert message == "2 of 3 targets do not staple a good, fresh OCSP response: 127.0.0.1:443 (b.test): no OCSP response stapled; and 1 more"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = Pki.create(tmp_path_factory.mktemp("pki"), "http://127.0.0.1:9/ocsp")
    pki.issue_leaf("site.test")
    pki.issue_leaf("nourl.test", ocsp_url=None)
    return pki


def answer(pki, status):
    """A responder's DER answer about site.test, signed by the issuer."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=pki.leaf("site.test").cert, issuer=pki.intermediate_cert, algorithm=hashes.SHA1(), cert_status=status,
        this_update=now, next_update=now + datetime.timedelta(hours=1),
        revocation_time=now if status == ocsp.OCSPCertStatus.REVOKED else None, revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, pki.intermediate_cert)
    return builder.sign(pki.intermediate_key, hashes.SHA256()).public_bytes(Encoding.DER)


def fetcher(outcome):
    """A fetch function that records its request and returns or raises ``outcome``."""
    calls = []

    def fetch(url, request, timeout):
        calls.append((url, ocsp.load_der_ocsp_request(request).serial_number, timeout))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    fetch.calls = calls
    return fetch


def test_ask_responder_without_ocsp_url(pki):
    verdict = ask_responder(pki.leaf("nourl.test").cert, pki.intermediate_cert, Policy(fetch=fetcher(b"")))
    assert verdict["url"] is None and "no OCSP responder URL, so no server can staple it" in verdict["reason"]


@pytest.mark.parametrize("status, expected", [
    (ocsp.OCSPCertStatus.GOOD, "answers good from here, so the server is not fetching or not serving it"),
    (ocsp.OCSPCertStatus.REVOKED, "answers: the certificate is revoked"),
])
def test_ask_responder_reports_what_the_responder_says(pki, status, expected):
    fetch = fetcher(answer(pki, status))
    verdict = ask_responder(pki.leaf("site.test").cert, pki.intermediate_cert, Policy(fetch=fetch, timeout=3))
    assert fetch.calls == [("http://127.0.0.1:9/ocsp", pki.leaf("site.test").serial, 3)]
    assert verdict["reachable"] and verdict["cert_status"] == status.name.lower() and expected in verdict["reason"]


@pytest.mark.parametrize("error, expected", [
    # What _ocsp_http.fetch_ocsp raises.
    (HttpStatusError(503), "answers HTTP 503 instead of an OCSP response"),
    (ConnectionRefusedError(111, "Connection refused"), "cannot be reached from here (connection refused)"),
    (socket.timeout("timed out"), "cannot be reached from here (timed out)"),
])
def test_ask_responder_failures(pki, error, expected):
    verdict = ask_responder(pki.leaf("site.test").cert, pki.intermediate_cert, Policy(fetch=fetcher(error)))
    assert expected in verdict["reason"] and verdict["cert_status"] is None


def test_site_targets_from_nginx_and_apache_sites():
    nginx = {"server_names": ["*.example.com", "www.example.com"], "ssl_certificate": ["/c/www.pem"],
             "sockets": [{"port": 443, "tls": True, "quic": False}, {"port": 80, "tls": False, "quic": False}, {"port": 443, "tls": True, "quic": False}]}
    apache = {"server_names": ["shop.example.com"], "ssl_certificate": ["/c/shop.pem"], "sockets": [{"port": 8443, "tls": True, "quic": False}]}
    nameless = {"server_names": ["_"], "ssl_certificate": ["/c/other.pem"], "sockets": [{"port": 443, "tls": True, "quic": False}]}
    assert site_targets([nginx, apache, nameless], "192.0.2.1") == [
        {"host": "192.0.2.1", "port": 443, "server_name": "www.example.com"},
        {"host": "192.0.2.1", "port": 8443, "server_name": "shop.example.com"},
        {"host": "192.0.2.1", "port": 443, "server_name": "192.0.2.1"},
    ]
    assert site_targets([nginx, apache], "192.0.2.1", ["/c/shop.pem"]) == [{"host": "192.0.2.1", "port": 8443, "server_name": "shop.example.com"}]


def test_results_for_matches_host_port_and_name():
    results = [result("a.test", True), dict(result("a.test", False), port=8443), result("b.test", False)]
    assert results_for(results, [{"host": "127.0.0.1", "port": 8443, "server_name": "a.test"}]) == [results[1]]
    assert results_for(results, ["127.0.0.1:443"]) == []


# --- issue 13, item 6: the right certificate ----------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("www.example.com", "www.example.com"),
    ("www.example.com.", "www.example.com"),
    ("192.0.2.1", "192.0.2.1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("bücher.example", "bücher.example"),
])
def test_sni_names_are_host_names(name, expected):
    [target] = parse_targets([{"host": "192.0.2.1", "server_name": name}])
    assert target.server_name == expected


@pytest.mark.parametrize("name, fix", [
    ("www.example.com:443", "www.example.com"),
    ("https://www.example.com", "www.example.com"),
    ("https://www.example.com:8443/shop", "www.example.com"),
])
def test_a_server_name_with_a_scheme_or_port_is_refused_with_the_name_to_write(name, fix):
    with pytest.raises(VerifyError, match=re.escape("targets[0] server_name %r is not a host name" % name)) as caught:
        parse_targets([{"host": "192.0.2.1", "server_name": name}])
    assert "write %r and give the port in port" % fix in str(caught.value)


def test_a_host_with_a_scheme_is_refused_as_the_server_name_it_becomes():
    with pytest.raises(VerifyError, match=re.escape("targets[0] host (the server name when none is given) 'https://www.example.com'")):
        parse_targets([{"host": "https://www.example.com"}])


@pytest.mark.parametrize("name", ["*.example.com", "www example.com", "a..b"])
def test_names_that_cannot_be_sent_as_sni_are_refused(name):
    with pytest.raises(VerifyError, match="is not a host name"):
        parse_targets([{"host": "192.0.2.1", "server_name": name}])


@pytest.mark.parametrize("pattern, name, matches", [
    ("www.example.com", "WWW.Example.com", True),
    ("*.example.com", "www.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.b.example.com", False),
    ("*.com", "example.com", False),
    ("w*.example.com", "www.example.com", False),
    ("www.*.com", "www.example.com", False),
    ("xn--bcher-kva.example", "bücher.example", True),
    ("*.xn--bcher-kva.example", "shop.bücher.example", True),
])
def test_name_matching_follows_rfc_6125(pattern, name, matches):
    assert name_matches(pattern, name) is matches


def test_expected_certificates_take_fingerprints_and_pem(pki):
    cert = pki.leaf("site.test").cert
    digits = cert.fingerprint(hashes.SHA256()).hex().upper()
    colons = ":".join(digits[index:index + 2] for index in range(0, 64, 2))
    pem = cert.public_bytes(Encoding.PEM).decode()
    [target] = parse_targets([{"host": "192.0.2.1", "expected_certificates": [colons, digits.lower(), pem]}])
    assert target.expected_certificates == (digits,)
    with pytest.raises(VerifyError, match=re.escape("targets[0] expected_certificates[0] 'abc' is neither a SHA-256 fingerprint")):
        parse_targets([{"host": "192.0.2.1", "expected_certificates": ["abc"]}])


def test_wrong_certificate_by_fingerprint_then_by_name(pki):
    cert = pki.leaf("site.test").cert
    other = pki.leaf("nourl.test").cert
    assert wrong_certificate(Target("192.0.2.1", 443, "site.test", (fingerprint(cert),)), cert) == ""
    why = wrong_certificate(Target("192.0.2.1", 443, "site.test", (fingerprint(other),)), cert)
    assert why.startswith("the server answered with another site's certificate ('site.test', SHA-256 ")
    assert wrong_certificate(Target("192.0.2.1", 443, "site.test"), cert) == ""
    assert wrong_certificate(Target("192.0.2.1", 443, "nourl.test"), cert).endswith("does not cover the SNI name 'nourl.test')")
    # An IP target without a name has nothing to match.
    assert wrong_certificate(Target("192.0.2.1", 443, "192.0.2.1"), cert) is None


def test_site_targets_strip_scheme_and_port_and_carry_the_configured_certificates(pki):
    leaf = pki.leaf("site.test")
    apache = {"server_names": ["https://site.test:443", "www.site.test:443"], "ssl_certificate": [str(leaf.cert_path)],
              "sockets": [{"port": 443, "tls": True, "quic": False}]}
    unreadable = {"server_names": ["shop.test:8443"], "ssl_certificate": ["/c/shop.pem"], "sockets": [{"port": 8443, "tls": True, "quic": False}]}
    pems = [leaf.cert.public_bytes(Encoding.PEM).decode(), pki.intermediate_cert.public_bytes(Encoding.PEM).decode()]
    blocks = {str(leaf.cert_path): {"source": str(leaf.cert_path), "blocks": [[1, pems[0]], [2, pems[1]]]},
              "/c/shop.pem": {"source": "/c/shop.pem", "error": "a private key must never ..."}}
    assert site_targets([apache, unreadable], "192.0.2.1", None, blocks) == [
        {"host": "192.0.2.1", "port": 443, "server_name": "site.test", "expected_certificates": [fingerprint(leaf.cert)]},
        {"host": "192.0.2.1", "port": 8443, "server_name": "shop.test"},
    ]
    # The targets go through parse_targets unchanged: what the filter makes, the module takes.
    assert parse_targets(site_targets([apache], "192.0.2.1", None, blocks))[0].expected_certificates == (fingerprint(leaf.cert),)


def test_one_targets_unforeseen_error_leaves_the_others_their_verdicts(monkeypatch):
    from ansible_collections.ocsp.stapling.plugins.module_utils import _verify

    real = _verify.check_target

    def flaky(target, policy, context=None):
        if target.server_name == "broken.test":
            raise KeyError("boom")
        return real(target, policy, context)
    monkeypatch.setattr(_verify, "check_target", flaky)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    broken, refused = check_targets([Target("127.0.0.1", port, "broken.test"), Target("127.0.0.1", port, "other.test")], Policy(retry_budget=0))
    assert not broken["ok"] and broken["reason"] == "verify could not judge this target: KeyError; please report it"
    assert refused["reason"].startswith("cannot connect")
    assert summarise([broken, refused])["failed"] == 2
