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


def run_adhoc(args: dict, *extra: str, output: list | None = None) -> tuple[int, dict]:
    """The ansible CLI, for what run_module cannot do: check mode (pytest-ansible's check-mode flag does nothing).
    ``output`` gets the whole standard output."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="oneline", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m", "ocsp.stapling.verify", "-a", json.dumps(args), *extra],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    if output is not None:
        output.append(completed.stdout)
    # "localhost | SUCCESS => {...}", on one line or several depending on the outcome.
    start = completed.stdout.index("localhost |")
    text = completed.stdout[completed.stdout.index("=>", start) + 2:].lstrip()
    return completed.returncode, json.JSONDecoder().raw_decode(text)[0]


# What does not depend on when the check ran.
STABLE = ("host", "port", "server_name", "ok", "stapled", "cert_status", "certificate_matches", "signer", "signer_kind", "fresh")


def test_on_the_controller_the_worker_gives_the_module_answer(stack):
    """Delegated to the controller, the action plugin answers in Ansible's worker; with a Python chosen for the
    host, the module runs. Same options, same answer (plugins/action/verify.py)."""
    nginx, apache = stack["nginx"], stack["apache"]
    args = {"targets": [target(nginx, "good.test"), target(nginx, "nostaple.test"), target(apache, "good.test")],
            "report_only": True, **FAST}
    here_output, module_output = [], []
    returncode, here = run_adhoc(args, "-vvv", output=here_output)
    assert returncode == 0
    assert "AnsiballZ_verify" not in here_output[0] and "EXEC" not in here_output[0]
    # The same virtual environment under another name: a Python set for the host, so the module runs in it.
    other_python = os.path.join(os.path.dirname(sys.executable), "python3.%d" % sys.version_info[1])
    assert os.path.abspath(other_python) != os.path.abspath(sys.executable)
    returncode, module = run_adhoc(args, "-vvv", "-e", "ansible_python_interpreter=" + other_python, output=module_output)
    assert returncode == 0 and "AnsiballZ_verify" in module_output[0]
    assert [{key: t[key] for key in STABLE} for t in here["targets"]] == [{key: t[key] for key in STABLE} for t in module["targets"]]
    assert here["summary"] == module["summary"] and here["changed"] is module["changed"] is False
    assert here["invocation"]["module_args"] == module["invocation"]["module_args"]
    # A failure, and bad input, read the same both ways.
    failing = {"targets": [target(nginx, "nostaple.test")], **FAST}
    returncode, here = run_adhoc(failing)
    assert returncode != 0 and here["msg"].startswith("1 of 1 targets do not staple a good, fresh OCSP response: 127.0.0.1:")
    returncode, module = run_adhoc(failing, "-e", "ansible_python_interpreter=" + other_python)
    assert returncode != 0 and module["msg"] == here["msg"]
    for bad in ({"targets": [{"host": "127.0.0.1", "port": "https"}]}, {"host": "127.0.0.1", "concurrency": 0}, {"port": 443}):
        returncode, here = run_adhoc(bad)
        returncode_module, module = run_adhoc(bad, "-e", "ansible_python_interpreter=" + other_python)
        assert returncode != 0 and returncode_module != 0
        assert here["msg"] == module["msg"], bad


def test_the_task_environment_reaches_the_check_in_the_worker(stack, tmp_path):
    """environment: on the task (an OCSP proxy, say) is what the module would see: a dead proxy makes the
    diagnosis of the missing staple fail to reach the responder."""
    nginx = stack["nginx"]
    dead_proxy = "http://127.0.0.1:%d" % free_port()
    playbook = tmp_path / "env.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"ocsp.stapling.verify": {"targets": [target(nginx, "nostaple.test")], "report_only": True, **FAST},
                   "environment": {"http_proxy": dead_proxy, "no_proxy": ""}, "register": "checked"},
                  {"ansible.builtin.copy": {"content": "{{ checked | to_json }}", "dest": str(tmp_path / "checked.json"), "mode": "0600"}}],
    }]), encoding="utf-8")
    env = dict(os.environ)
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    completed = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
                                str(playbook)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:]
    reason = json.loads((tmp_path / "checked.json").read_text(encoding="utf-8"))["targets"][0]["reason"]
    returncode, plain = run_adhoc({"targets": [target(nginx, "nostaple.test")], "report_only": True, **FAST})
    assert returncode == 0
    assert reason != plain["targets"][0]["reason"], (reason, plain["targets"][0]["reason"])
    # Through the dead proxy the responder cannot be asked; without it, it can.
    assert "the proxy that http_proxy names, refuses the connection" in reason, reason
    assert "cannot be reached" not in plain["targets"][0]["reason"], plain["targets"][0]["reason"]


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
