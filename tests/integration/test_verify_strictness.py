"""verify's verdict on hand-built staples, through a real handshake, checked against `openssl ocsp` (issue 13, items 6 and 7).

A bench server on the system's libssl (tests/bench/staple_server.py) staples exactly the bytes each test builds
(tests/bench/staples.py). The module is called as a task calls it; the same bytes go to
`openssl ocsp -respin` (the oracle) with the same policy (`-status_age` = max_age, `-validity_period` =
clock_skew), and both must agree on pass or fail.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from bench import staples
from bench.pki import Pki
from bench.staple_server import StapleServer
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

MAX_AGE = 86400
CLOCK_SKEW = 300
ONCE = {"retry_budget": 0, "timeout": 5, "diagnose": False, "report_only": True}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A PKI with two sites, and a stapling server that serves the first one's certificate."""
    folder = tmp_path_factory.mktemp("strict")
    pki = Pki.create(folder / "pki", "http://127.0.0.1:9/")
    site = pki.issue_leaf("site.test", sans=["www.site.test"])
    other = pki.issue_leaf("other.test")
    server = StapleServer(site.fullchain_path, site.key_path, folder / "server")
    server.start()
    try:
        yield {"pki": pki, "site": site, "other": other, "server": server, "folder": folder}
    finally:
        server.stop()


def verify(run_module, bench, data: bytes, **target) -> dict:
    """verify's result for one target of the bench server while it staples ``data``."""
    bench["server"].staple(data)
    args = {"host": "127.0.0.1", "port": bench["server"].port, "server_name": "site.test", **target}
    result = run_module("ocsp.stapling.verify", targets=[args], max_age=MAX_AGE, clock_skew=CLOCK_SKEW, **ONCE)
    [site] = result["targets"]
    return site


def oracle(bench, data: bytes, leaf=None) -> tuple:
    """(passes, output) of `openssl ocsp -respin` on ``data`` for ``leaf`` (the served site by default)."""
    pki = bench["pki"]
    path = bench["folder"] / "oracle.der"
    path.write_bytes(data)
    completed = subprocess.run(
        ["openssl", "ocsp", "-respin", str(path), "-issuer", str(pki.intermediate_cert_path), "-cert", str((leaf or bench["site"]).cert_path),
         "-CAfile", str(pki.root_cert_path), "-verify_other", str(pki.intermediate_cert_path),
         "-status_age", str(MAX_AGE), "-validity_period", str(CLOCK_SKEW)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    output = completed.stdout + completed.stderr
    # `openssl ocsp` exits 0 on bad times and only warns: the verdict is in its output.
    passes = (completed.returncode == 0 and "Response verify OK" in output and ": good" in output
              and "Status times invalid" not in output)
    return passes, output


def agree(run_module, bench, data: bytes, expect_ok: bool, **target) -> dict:
    site = verify(run_module, bench, data, **target)
    passes, output = oracle(bench, data)
    assert site["ok"] is expect_ok, site["reason"]
    assert passes is expect_ok, output
    return site


def test_a_good_staple_passes_both(run_module, bench):
    site = agree(run_module, bench, staples.build(bench["pki"], bench["site"].cert), True)
    assert site["certificate_matches"] is True and site["reason"].startswith("good, fresh staple")


def test_next_update_before_this_update_fails_both(run_module, bench):
    now = staples.now()
    data = staples.build(bench["pki"], bench["site"].cert, this_update=now - dt.timedelta(minutes=10), next_update=now - dt.timedelta(hours=2))
    site = agree(run_module, bench, data, False)
    assert "validity interval is inverted" in site["reason"] and site["cert_status"] is None


def test_a_delegated_responder_that_expired_minutes_ago_fails_both(run_module, bench):
    now = staples.now()
    # Two minutes ago: well inside the 300 s clock-skew allowance, which is for thisUpdate/nextUpdate only.
    signer = staples.delegated_responder(bench["pki"], not_before=now - dt.timedelta(days=3), not_after=now - dt.timedelta(minutes=2))
    site = agree(run_module, bench, staples.build(bench["pki"], bench["site"].cert, signer=signer), False)
    assert site["signer_kind"] == "unauthorised" and "is not valid now: it expired" in site["reason"]


def test_a_current_delegated_responder_passes_both(run_module, bench):
    pki = bench["pki"]
    site = agree(run_module, bench, staples.build(pki, bench["site"].cert, signer=(pki.responder_cert, pki.responder_key)), True)
    assert site["signer_kind"] == "delegated"


def test_no_next_update_passes_while_young_and_fails_once_older_than_max_age(run_module, bench):
    now = staples.now()
    young = staples.build(bench["pki"], bench["site"].cert, this_update=now - dt.timedelta(hours=1), next_update=None)
    site = agree(run_module, bench, young, True)
    assert "no nextUpdate, accepted until" in site["reason"]
    old = staples.build(bench["pki"], bench["site"].cert, this_update=now - dt.timedelta(days=2), next_update=None)
    site = agree(run_module, bench, old, False)
    assert "it has no nextUpdate and its thisUpdate" in site["reason"] and "2d00h old" in site["reason"]


def test_two_answers_that_contradict_each_other_fail(run_module, bench):
    pki, cert = bench["pki"], bench["site"].cert
    good_first = staples.two_answers(pki, cert, ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED)
    revoked_first = staples.two_answers(pki, cert, ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.GOOD)
    for data in (good_first, revoked_first):
        site = verify(run_module, bench, data)
        assert not site["ok"] and "2 answers about the served certificate that contradict each other" in site["reason"]
    # The oracle reads the first answer only: its verdict flips with the order of the same two answers, which is
    # the contradiction itself. verify refuses both orders; openssl agrees that neither order can be trusted as good.
    assert oracle(bench, good_first)[0] is True
    assert oracle(bench, revoked_first)[0] is False


def test_an_unknown_cert_id_hash_fails_that_target_alone(run_module, bench):
    data = staples.unknown_cert_id_hash(bench["pki"], bench["site"].cert)
    passes, output = oracle(bench, data)
    assert not passes and "No Status found" in output
    bench["server"].staple(data)
    # In one call with a target that stays good: the other target gets its own verdict.
    good_server = StapleServer(bench["site"].fullchain_path, bench["site"].key_path, bench["folder"] / "good-server")
    good_server.start()
    try:
        good_server.staple(staples.build(bench["pki"], bench["site"].cert))
        result = run_module("ocsp.stapling.verify", targets=[
            {"host": "127.0.0.1", "port": bench["server"].port, "server_name": "site.test"},
            {"host": "127.0.0.1", "port": good_server.port, "server_name": "site.test"},
        ], **ONCE)
    finally:
        good_server.stop()
    unknown, good = result["targets"]
    assert not unknown["ok"] and "CertID hash algorithm that cannot be computed here" in unknown["reason"]
    assert good["ok"], good["reason"]


def test_garbage_the_tls_library_refuses_is_named_as_such(run_module, bench):
    passes, _output = oracle(bench, staples.GARBAGE)
    assert not passes
    site = verify(run_module, bench, staples.GARBAGE)
    assert not site["ok"] and site["stapled"]
    assert site["reason"].startswith("the server staples something that is not an OCSP response"), site["reason"]
    assert "TLS handshake failed" not in site["reason"]
    # The certificate was still seen (a handshake without the status request), and it is the right one.
    assert site["certificate"]["subject"] == "CN=site.test" and site["certificate_matches"] is True


def test_another_sites_certificate_fails_even_with_a_good_staple_for_it(run_module, bench):
    data = staples.build(bench["pki"], bench["site"].cert)
    # The staple is good for what the server serves: the oracle passes it for that certificate, and fails it for the
    # certificate the target expected (other.test), as verify fails the target.
    assert oracle(bench, data)[0] is True
    assert oracle(bench, data, leaf=bench["other"])[0] is False
    by_name = verify(run_module, bench, data, server_name="other.test")
    assert not by_name["ok"] and by_name["certificate_matches"] is False
    assert by_name["reason"].startswith("the server answered with another site's certificate ('site.test', for site.test, www.site.test")
    expected = bench["other"].cert.fingerprint(hashes.SHA256()).hex()
    by_certificate = verify(run_module, bench, data, server_name="www.site.test", expected_certificates=[expected])
    assert not by_certificate["ok"] and "is not the certificate the site is configured with" in by_certificate["reason"]
    right = verify(run_module, bench, data, server_name="www.site.test", expected_certificates=[Path(bench["site"].cert_path).read_text()])
    assert right["ok"] and right["certificate_matches"] is True


def test_a_server_name_with_a_port_or_scheme_is_refused_with_the_fix(run_module, bench):
    for name in ("site.test:443", "https://site.test"):
        result = run_module("ocsp.stapling.verify",
                            targets=[{"host": "127.0.0.1", "port": bench["server"].port, "server_name": name}], **ONCE)
        assert result["failed"] and "is not a host name" in result["msg"] and "write 'site.test'" in result["msg"]
