"""ocsp.stapling.verify against the bench's real nginx, Apache and OCSP responder.

Stapling is configured by hand here (the bench writes the configs); the module is called as a playbook
task would call it (the run_module fixture), and once through the ansible CLI for check mode.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from bench import Bench
from bench.ports import free_port
from bench.servers import Site

FAST = {"retry_budget": 2, "retry_delay": 0.1, "timeout": 3}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One bench with a warm nginx and a warm Apache serving the sites every test here reads."""
    with Bench(tmp_path_factory.mktemp("verify")) as bench:
        good = bench.issue("good.test")
        nostaple = bench.issue("nostaple.test")
        strict = bench.issue("strict.test", must_staple=True)
        strict_off = bench.issue("strict-off.test", must_staple=True)
        nourl = bench.issue("nourl.test", ocsp_url=None)
        nginx = bench.nginx([
            Site("good.test", good, default=True),
            Site("nostaple.test", nostaple, stapling=False),
            Site("strict.test", strict),
            Site("strict-off.test", strict_off, stapling=False),
            Site("nourl.test", nourl),
        ])
        apache = bench.apache([Site("good.test", good, default=True), Site("nostaple.test", nostaple, stapling=False)])
        nginx.start()
        apache.start()
        yield {"bench": bench, "nginx": nginx, "apache": apache}


def verify(run_module, **args):
    """Call the module as a task would and return its result as a plain dict."""
    return run_module("ocsp.stapling.verify", **args)


def target(server, name):
    return {"host": "127.0.0.1", "port": server.port, "server_name": name}


def test_nginx_staples_a_good_response(run_module, stack):
    result = verify(run_module, targets=[target(stack["nginx"], "good.test")])
    assert not result.get("failed"), result.get("msg")
    [site] = result["targets"]
    assert site["ok"] and site["stapled"] and site["cert_status"] == "good" and site["response_status"] == "successful"
    assert site["signer_kind"] == "delegated" and site["signer"] == "Bench OCSP Responder"
    assert site["names_certificate"] and site["signature_valid"] and site["fresh"]
    assert site["seconds_to_expiry"] > 0 and site["this_update"] and site["next_update"]
    assert site["certificate"]["serial"] == "%X" % stack["bench"].pki.leaf("good.test").serial
    assert site["reason"].startswith("good, fresh staple signed by delegated responder 'Bench OCSP Responder'")
    assert result["summary"]["ok"] == 1 and result["changed"] is False


def test_apache_staples_a_good_response(run_module, stack):
    result = verify(run_module, host="127.0.0.1", port=stack["apache"].port, server_name="good.test")
    assert not result.get("failed"), result.get("msg")
    assert result["targets"][0]["ok"] and result["targets"][0]["cert_status"] == "good"


@pytest.mark.parametrize("server", ["nginx", "apache"])
def test_stapling_off_fails_with_no_staple(run_module, stack, server):
    started = time.monotonic()
    result = verify(run_module, targets=[target(stack[server], "nostaple.test")], **FAST)
    assert result["failed"]
    [site] = result["targets"]
    assert not site["ok"] and not site["stapled"] and site["attempts"] > 1
    assert site["reason"].startswith("no OCSP response stapled after")
    # The responder answers good when asked directly, so the fault is the server's configuration.
    assert site["responder"]["cert_status"] == "good" and "answers good from here" in site["reason"]
    assert "nostaple.test" in result["msg"] and "no OCSP response stapled" in result["msg"]
    assert time.monotonic() - started < FAST["retry_budget"] + 10


def test_must_staple_is_reported_and_its_absence_called_out(run_module, stack):
    nginx = stack["nginx"]
    result = verify(run_module, targets=[target(nginx, "strict.test"), target(nginx, "strict-off.test")], report_only=True, **FAST)
    assert not result.get("failed")
    strict, strict_off = result["targets"]
    assert strict["ok"] and strict["must_staple"]
    assert not strict_off["ok"] and strict_off["must_staple"] and "Must-Staple" in strict_off["reason"]
    assert result["summary"]["must_staple_broken"] == 1


def test_certificate_without_ocsp_url_is_not_stapled(run_module, stack):
    result = verify(run_module, targets=[target(stack["nginx"], "nourl.test")], report_only=True, **FAST)
    [site] = result["targets"]
    assert not site["ok"] and not site["stapled"] and site["certificate"]["ocsp_urls"] == []
    assert "no OCSP responder URL, so no server can staple it" in site["reason"]
    # Not applicable, said so, and not retried: no wait can make a staple appear.
    assert site["applicable"] is False and site["reason"].startswith("not applicable: ")
    assert site["attempts"] == 1 and result["summary"]["not_applicable"] == 1


def test_many_targets_in_one_call_keep_their_order(run_module, stack):
    nginx, apache = stack["nginx"], stack["apache"]
    targets = [target(nginx, "good.test"), target(apache, "nostaple.test"), target(apache, "good.test"), target(nginx, "strict.test")]
    result = verify(run_module, targets=targets, report_only=True, concurrency=4, **FAST)
    assert [(t["port"], t["server_name"]) for t in result["targets"]] == [(t["port"], t["server_name"]) for t in targets]
    assert [t["ok"] for t in result["targets"]] == [True, False, True, True]
    assert result["summary"]["failed_targets"] == ["127.0.0.1:%d (nostaple.test)" % apache.port]


def test_cold_nginx_succeeds_within_the_budget_after_several_attempts(run_module, stack):
    bench = stack["bench"]
    cold = bench.nginx([Site("cold.test", bench.issue("cold.test"), default=True)], workers=2)
    cold.start()
    try:
        result = verify(run_module, targets=[target(cold, "cold.test")], retry_budget=15)
    finally:
        cold.stop()
    assert not result.get("failed"), result.get("msg")
    [site] = result["targets"]
    assert site["ok"] and site["attempts"] > 1


@pytest.mark.parametrize("server_kind", ["apache", "nginx"])
def test_revoked_certificate_fails_with_revoked(run_module, stack, server_kind):
    bench = stack["bench"]
    name = "revoked-%s.test" % server_kind
    leaf = bench.issue(name)
    bench.revoke(name, reason="keyCompromise")
    server = getattr(bench, server_kind)([Site(name, leaf, default=True)])
    server.start()
    try:
        result = verify(run_module, targets=[target(server, name)], retry_budget=2, retry_delay=0.2)
    finally:
        server.stop()
    assert result["failed"] and "revoked" in result["msg"]
    [site] = result["targets"]
    if server_kind == "apache":
        # Apache staples the revoked status as the responder gave it.
        assert site["stapled"] and site["cert_status"] == "revoked" and site["revocation_reason"] == "keyCompromise"
        assert site["revocation_time"] and site["reason"].startswith("the certificate is revoked")
    else:
        # nginx refuses to staple a revoked status; asking the responder directly tells why nothing is stapled.
        assert not site["stapled"] and site["responder"]["cert_status"] == "revoked"
        assert "answers: the certificate is revoked" in site["reason"]


@pytest.mark.parametrize("server_kind", ["nginx", "apache"])
def test_responder_down_fails_clearly_and_nothing_hangs(run_module, stack, server_kind):
    bench = stack["bench"]
    # A responder that accepts connections and never answers: the worst case for a server fetching a staple.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        name = "down-%s.test" % server_kind
        leaf = bench.issue(name, ocsp_url="http://127.0.0.1:%d/" % silent.getsockname()[1])
        server = getattr(bench, server_kind)([Site(name, leaf, default=True)])
        server.start()
        try:
            started = time.monotonic()
            result = verify(run_module, targets=[target(server, name)], retry_budget=2, retry_delay=0.2, timeout=2)
            elapsed = time.monotonic() - started
        finally:
            server.stop()
    assert result["failed"]
    [site] = result["targets"]
    assert not site["ok"] and not site["stapled"]
    # nginx answers at once and staples nothing; Apache holds the handshake while it waits for the
    # responder (SSLStaplingResponderTimeout 5 s), longer than this check's 2 s handshake timeout.
    expected = "no OCSP response stapled" if server_kind == "nginx" else "no TLS handshake within 2.0s"
    assert site["reason"].startswith(expected), site["reason"]
    # Budget 2 s plus one handshake timeout of 2 s, plus Ansible's own start-up.
    assert elapsed < 2 + 2 + 8, elapsed


def test_connection_refused_is_reported_not_retried(run_module):
    result = verify(run_module, host="127.0.0.1", port=free_port(), server_name="gone.test", retry_budget=30)
    assert result["failed"]
    [site] = result["targets"]
    assert site["attempts"] == 1 and site["reason"].startswith("cannot connect")


def test_bad_arguments_fail_with_a_clear_message(run_module):
    result = verify(run_module, targets=[{"host": "127.0.0.1", "port": "https"}])
    assert result["failed"] and result["msg"] == "targets[0] port 'https' is not a number"
    result = verify(run_module, host="127.0.0.1", ca_file="/nonexistent/ca.pem")
    assert result["failed"] and "ca_file /nonexistent/ca.pem cannot be read" in result["msg"]


def run_adhoc(args: dict, *extra: str) -> tuple[int, dict]:
    """The ansible CLI, for what run_module cannot do: check mode (pytest-ansible's check-mode flag does nothing)."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="oneline", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m", "ocsp.stapling.verify", "-a", json.dumps(args), *extra],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    # "localhost | SUCCESS => {...}", on one line or several depending on the outcome.
    start = completed.stdout.index("localhost |")
    text = completed.stdout[completed.stdout.index("=>", start) + 2:].lstrip()
    return completed.returncode, json.JSONDecoder().raw_decode(text)[0]


def test_check_mode_runs_the_real_check(stack):
    nginx = stack["nginx"]
    args = {"targets": [target(nginx, "good.test"), target(nginx, "nostaple.test")], "report_only": True, **FAST}
    returncode, result = run_adhoc(args, "--check")
    assert returncode == 0 and result["changed"] is False
    assert [t["ok"] for t in result["targets"]] == [True, False]
    returncode, again = run_adhoc(args, "--check", "--diff")
    assert returncode == 0 and [t["ok"] for t in again["targets"]] == [True, False]


def test_missing_libraries_are_named(tmp_path, stack):
    # An interpreter with the standard library only, as on a managed host that lacks the TLS client.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    bare = str(tmp_path / "bare" / "bin" / "python")
    returncode, result = run_adhoc({"host": "127.0.0.1", "port": stack["nginx"].port}, "-e", "ansible_python_interpreter=" + bare)
    assert returncode != 0
    assert "Failed to import the required Python library (cryptography)" in result["msg"]
