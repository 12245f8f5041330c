"""Responder faults: what real nginx and Apache staple, and what ocsp.stapling.verify says, when the OCSP responder fails.

One row of CASES per fault and server. Every certificate names the bench's faulty front
(bench/faulty_responder.py) as its OCSP URL; the front forwards to the real `openssl ocsp` responder
or answers with the fault set for that certificate. Each row has a certificate and a site of its own
on one nginx and one Apache shared by all rows: nginx keeps a failed fetch for 5 minutes and Apache
caches by certificate, so a site per fault is what keeps one fault from showing in another's row,
without a restart per fault.

For each row the test records and asserts
- what the server staples (nothing, Apache's own tryLater, the bad response as it came),
- the reason verify gives: it names the fault, and no two faults of one server share it,
- that the server keeps serving: a handshake succeeds during the fault and after it is switched off,
  within a bound,
- that verify returns within its timeout and retry budget.
Then verify meets two hostile responders (one that drips its answer, one that redirects) and must end by
its deadline and follow nothing.
At the end one run of the nginx role and one of the apache role against a faulty responder show the host
failing with the reason.
The whole file takes about a minute.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench import Bench, Site, handshake, handshake_until
from bench.faulty_responder import ROGUE_NAME, FaultyResponder
from bench.layouts import debian_apache, write_inventory

REPO = Path(__file__).resolve().parents[2]
KINDS = ("nginx", "apache")
# Apache holds a handshake while it asks the responder: keep its wait short (the apache role sets 5).
APACHE_RESPONDER_TIMEOUT = 2
# One verify call per server checks all of its rows at once. The timeout must let an Apache handshake
# that waits APACHE_RESPONDER_TIMEOUT for a hanging responder through, and stays below the front's hang.
VERIFY = {"retry_budget": 1.5, "retry_delay": 0.1, "timeout": 4, "report_only": True}
# What one target may take at most (verify's DOCUMENTATION): the budget, a last handshake and the diagnosis.
DEADLINE = VERIFY["retry_budget"] + 2 * VERIFY["timeout"]
# Ansible's own start-up and module transfer, on top of what verify may spend.
ANSIBLE_OVERHEAD = 15.0
# A handshake during or after a fault: nginx never waits for its responder; Apache may wait for it once.
HANDSHAKE_BOUND = {"nginx": 1.5, "apache": APACHE_RESPONDER_TIMEOUT + 1.5}


@dataclass(frozen=True)
class Case:
    """One fault on one server, and what must come of it."""

    fault: str
    server: str
    staples: str  # what the server staples, as what_is_stapled() words it
    reason: str  # a part of verify's reason that names this fault

    @property
    def id(self) -> str:
        return f"{self.fault}-{self.server}"

    @property
    def name(self) -> str:
        return f"{self.fault}.{self.server}.test"


# nginx fetches in the background, staples only a good response it verified, and keeps nothing else;
# verify then asks the responder itself, and that answer names the fault.
# Apache makes up a tryLater when its own query fails (SSLStaplingFakeTryLater, on by default) and staples
# it, even with SSLStaplingReturnResponderErrors off; it staples a response it could parse and whose times
# are valid, good or revoked, without checking who signed it.
CASES = [
    Case("none", "nginx", "good (delegated signer)", "good, fresh staple signed by delegated responder"),
    Case("none", "apache", "good (delegated signer)", "good, fresh staple signed by delegated responder"),
    Case("down", "nginx", "nothing", "cannot be reached from here (connection refused): nothing listens there"),
    Case("down", "apache", "tryLater", "cannot be reached from here (connection refused): nothing listens there"),
    Case("slow", "nginx", "nothing", "cannot be reached from here (timed out): no answer within 4.0s"),
    Case("slow", "apache", "tryLater", "cannot be reached from here (timed out): no answer within 4.0s"),
    Case("http-500", "nginx", "nothing", "answers HTTP 500 instead of an OCSP response"),
    Case("http-500", "apache", "tryLater", "answers HTTP 500 instead of an OCSP response"),
    Case("not-ocsp", "nginx", "nothing", "answers: something that is not an OCSP response"),
    Case("not-ocsp", "apache", "tryLater", "answers: something that is not an OCSP response"),
    Case("try-later", "nginx", "nothing", "answers: tryLater, with no certificate status"),
    Case("try-later", "apache", "nothing", "answers: tryLater, with no certificate status"),
    Case("unauthorized", "nginx", "nothing", "answers: unauthorized, with no certificate status"),
    Case("unauthorized", "apache", "nothing", "answers: unauthorized, with no certificate status"),
    Case("rogue-signer", "nginx", "nothing", f"answers: the response is signed by an unauthorised key: {ROGUE_NAME!r}"),
    Case("rogue-signer", "apache", "successful (unauthorised signer)", f"the staple is signed by an unauthorised key: {ROGUE_NAME!r}"),
    Case("expired", "nginx", "nothing", "answers: the response is stale: it expired"),
    Case("expired", "apache", "nothing", "answers: the response is stale: it expired"),
    Case("revoked", "nginx", "nothing", "answers: the certificate is revoked"),
    Case("revoked", "apache", "revoked (delegated signer)", "the certificate is revoked"),
    Case("other-serial", "nginx", "nothing", "answers: the response is about another certificate"),
    Case("other-serial", "apache", "nothing", "answers: the response is about another certificate"),
]
FAULTS = list(dict.fromkeys(case.fault for case in CASES))
# What the front does for each row: "none" and "revoked" are the real responder's answers.
FRONT_FAULT = {"none": "forward", "revoked": "forward"}


def what_is_stapled(result: dict) -> str:
    """What verify saw stapled, in the words of the table: nothing, an error status, or a certificate status and its signer."""
    if not result["stapled"]:
        return "nothing"
    if result["response_status"] != "successful":
        return result["response_status"]
    # verify reads no certificate status from a response whose signer it cannot trust.
    return f"{result['cert_status'] or result['response_status']} ({result['signer_kind']} signer)"


def run_verify(targets: list[dict]) -> tuple[dict, float]:
    """ocsp.stapling.verify through the ansible CLI, as a task runs it; its result and the wall-clock seconds."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="oneline", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    args = {"targets": targets, "concurrency": len(targets), **VERIFY}
    started = time.monotonic()
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m", "ocsp.stapling.verify", "-a", json.dumps(args)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    seconds = time.monotonic() - started
    # "localhost | SUCCESS => {...}" on one line.
    assert "localhost |" in completed.stdout, completed.stdout + completed.stderr
    start = completed.stdout.index("localhost |")
    text = completed.stdout[completed.stdout.index("=>", start) + 2:].lstrip()
    return json.JSONDecoder().raw_decode(text)[0], seconds


def timed_handshake(port: int, name: str) -> tuple[object, float]:
    started = time.monotonic()
    result = handshake(port, name)
    return result, time.monotonic() - started


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A bench, the faulty front, a certificate per row with its fault set, and one nginx and one Apache serving them all."""
    root = tmp_path_factory.mktemp("faults")
    with Bench(root) as bench:
        front = FaultyResponder(bench.pki, bench.responder.url, root / "front")
        # "down" is a whole front that is not running: one per server, so that switching one back on
        # after its row leaves the other server's row as it was.
        downs = {kind: FaultyResponder(bench.pki, bench.responder.url, root / f"down-{kind}") for kind in KINDS}
        try:
            front.start()
            leaves = {}
            for case in CASES:
                url = downs[case.server].url if case.fault == "down" else front.url
                leaf = leaves[case.id] = bench.issue(case.name, ocsp_url=url)
                if case.fault == "revoked":
                    bench.revoke(case.name, reason="keyCompromise")
                elif case.fault != "down":
                    front.set_fault(FRONT_FAULT.get(case.fault, case.fault), leaf)
            servers = {}
            for kind in KINDS:
                sites = [
                    Site(case.name, leaves[case.id], default=case.fault == "none", responder_timeout=APACHE_RESPONDER_TIMEOUT)
                    for case in CASES if case.server == kind
                ]
                servers[kind] = getattr(bench, kind)(sites)
                servers[kind].start()
            yield {"bench": bench, "front": front, "downs": downs, "leaves": leaves, "servers": servers, "root": root}
        finally:
            for process in (front, *downs.values()):
                process.stop()


@pytest.fixture(scope="module")
def observed(lab):
    """Per server: one verify call over all its rows, then one handshake per row while the fault is still on."""
    seen = {}
    for kind in KINDS:
        server = lab["servers"][kind]
        cases = [case for case in CASES if case.server == kind]
        result, seconds = run_verify([{"host": "127.0.0.1", "port": server.port, "server_name": case.name} for case in cases])
        during = {case.fault: timed_handshake(server.port, case.name) for case in cases}
        seen[kind] = {"verify": result, "seconds": seconds, "targets": dict(zip([c.fault for c in cases], result["targets"])), "during": during}
    yield seen
    # The table of what was seen, for RELIABILITY.md: OCSP_FAULT_TABLE=<file> writes it there.
    if os.environ.get("OCSP_FAULT_TABLE"):
        Path(os.environ["OCSP_FAULT_TABLE"]).write_text(fault_table(seen), encoding="utf-8")


def fault_table(seen: dict) -> str:
    lines = ["| fault | server | staples | verify's reason | handshake during fault | pytest id |", "|---|---|---|---|---|---|"]
    for case in CASES:
        result = seen[case.server]["targets"][case.fault]
        shake, seconds = seen[case.server]["during"][case.fault]
        served = "yes (%.2f s)" % seconds if shake.subject == f"CN = {case.name}" else "NO"
        reason = result["reason"].replace("|", "\\|")
        lines.append(f"| {case.fault} | {case.server} | {what_is_stapled(result)} | {reason} | {served} | test_fault[{case.id}] |")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault(case, lab, observed):
    server = lab["servers"][case.server]
    seen = observed[case.server]
    result = seen["targets"][case.fault]

    # What the server staples, as verify saw it and as openssl s_client sees it on a later handshake.
    assert what_is_stapled(result) == case.staples, result
    shake, seconds = seen["during"][case.fault]
    assert shake.subject == f"CN = {case.name}", shake.output
    assert seconds < HANDSHAKE_BOUND[case.server], (seconds, shake.output)
    if case.staples == "nothing":
        assert not shake.stapled, shake.output
    else:
        assert (shake.response_status or "").lower() == result["response_status"].lower(), shake.output
        # The forged response of an unauthorised signer says good; verify does not take its word for it.
        forged = result["response_status"] == "successful" and result["cert_status"] is None
        assert shake.cert_status == ("good" if forged else result["cert_status"]), shake.output

    # What verify says: the fault, by name.
    assert case.reason in result["reason"], result["reason"]
    assert result["ok"] is (case.fault == "none")
    if not result["stapled"] or result["response_status"] != "successful":
        # The reason names the fault through the responder's own answer.
        assert result["responder"] and case.reason in result["responder"]["reason"], result

    # verify never hangs: the last handshake may start just before the budget runs out, and asking the
    # responder adds at most one more timeout: the target's deadline, which elapsed_seconds includes.
    assert result["elapsed_seconds"] <= DEADLINE + 0.5, result
    assert seen["seconds"] <= DEADLINE + ANSIBLE_OVERHEAD, seen["seconds"]

    # The fault ends; the server still serves, and a fetch it makes now no longer meets the fault.
    if case.fault == "down":
        lab["downs"][case.server].set_fault("forward")
    else:
        lab["front"].set_fault("forward", lab["leaves"][case.id])
    shake, seconds = timed_handshake(server.port, case.name)
    assert shake.subject == f"CN = {case.name}" and seconds < HANDSHAKE_BOUND[case.server], (seconds, shake.output)


def test_each_server_gives_each_fault_a_reason_of_its_own(observed):
    for kind in KINDS:
        reasons = {fault: target["reason"] for fault, target in observed[kind]["targets"].items()}
        for fault, reason in reasons.items():
            others = [other for other in FAULTS if other != fault]
            case = next(case for case in CASES if case.fault == fault and case.server == kind)
            # The part that names this fault appears in no other fault's reason.
            assert not [other for other in others if case.reason in reasons[other]], (kind, fault, reasons)


def test_the_front_met_each_fault(lab, observed):
    # Each server asked the front about each of its certificates, and met the fault set for it.
    front = lab["front"]
    for case in CASES:
        if case.fault == "down":
            continue
        met = front.requests(lab["leaves"][case.id])
        assert FRONT_FAULT.get(case.fault, case.fault) in met, (case.id, met)


@pytest.mark.parametrize("kind", KINDS)
def test_a_reload_after_the_fault_brings_the_staple_back(lab, kind):
    """Once every fault is off, a reload (nginx: a restart) staples again: nginx keeps a failed fetch for 5 minutes,
    Apache keeps a good answer for an hour, and a reload or restart starts both afresh."""
    for case in CASES:
        if case.server != kind:
            continue
        if case.fault == "down":
            lab["downs"][kind].set_fault("forward")
        else:
            lab["front"].set_fault("forward", lab["leaves"][case.id])
    server = lab["servers"][kind]
    if kind == "nginx":
        # A restart, not a reload: the old worker of a reload outlives it while its fetch from the hanging
        # responder is pending (nginx's fixed 60 s), and the bench's reload waits for the old workers to go.
        server.stop()
        server.start()
    else:
        server.reload()
    for case in CASES:
        if case.server != kind:
            continue
        # nginx never staples a revoked status; Apache staples it as the responder gives it.
        expected = {"nginx": None, "apache": "revoked"}[kind] if case.fault == "revoked" else "good"
        shake = handshake_until(server.port, case.name, lambda h, want=expected: h.cert_status == want, attempts=15)
        assert shake.cert_status == expected, (case.id, shake.output)


def test_apache_holds_the_handshakes_of_a_site_whose_responder_hangs(lab):
    """Apache asks a failing responder again at every handshake and holds the handshake meanwhile, up to
    SSLStaplingResponderTimeout; a first handshake of another site waits too, as Apache asks one responder at a time."""
    bench, front = lab["bench"], lab["front"]
    hang, other = bench.issue("hang.apache.test", ocsp_url=front.url), bench.issue("other.apache.test", ocsp_url=front.url)
    front.set_fault("slow", hang)
    server = bench.apache([Site(leaf.name, leaf, default=leaf is hang, responder_timeout=APACHE_RESPONDER_TIMEOUT) for leaf in (hang, other)])
    server.start()
    try:
        for _attempt in range(2):
            shake, seconds = timed_handshake(server.port, hang.name)
            assert shake.response_status == "trylater", shake.output
            assert APACHE_RESPONDER_TIMEOUT - 0.3 < seconds < HANDSHAKE_BOUND["apache"], seconds
        hung = {}
        worker = threading.Thread(target=lambda: hung.update(result=timed_handshake(server.port, hang.name)))
        worker.start()
        time.sleep(0.3)
        shake, seconds = timed_handshake(server.port, other.name)
        worker.join()
        assert shake.cert_status == "good" and 1.0 < seconds < HANDSHAKE_BOUND["apache"], (seconds, shake.output)
        # One request per handshake: Apache does not keep its failure.
        assert len(front.requests(hang)) == 3, front.requests(hang)
    finally:
        server.stop()


def test_verify_ends_by_its_deadline_and_follows_no_redirect(lab):
    """A responder that drips its answer a byte per half second, and one that redirects to an "internal" URL.

    nginx staples nothing for these sites (stapling off), so only verify's own diagnosis meets them, through
    the ansible CLI: the drip ends at the timeout within the target's deadline, the redirect is named and not
    followed, and nothing of the redirect's target reaches the result.
    """
    bench, front = lab["bench"], lab["front"]
    drip, redirect = bench.issue("drip.verify.test", ocsp_url=front.url), bench.issue("redirect.verify.test", ocsp_url=front.url)
    front.set_fault("drip", drip)
    front.set_fault("redirect", redirect)
    with socket.socket() as internal:
        # Stands for an internal service: a listener whose backlog shows whether anyone connected.
        internal.bind(("127.0.0.1", 0))
        internal.listen(8)
        internal.setblocking(False)
        front.redirect_to(f"http://127.0.0.1:{internal.getsockname()[1]}/internal/admin")
        server = bench.nginx([Site(drip.name, drip, stapling=False, default=True), Site(redirect.name, redirect, stapling=False)])
        server.start()
        try:
            result, seconds = run_verify([{"host": "127.0.0.1", "port": server.port, "server_name": leaf.name} for leaf in (drip, redirect)])
        finally:
            server.stop()
        with pytest.raises(BlockingIOError):
            internal.accept()
    dripped, redirected = result["targets"]
    assert "cannot be reached from here (timed out): no answer within 4.0s, it hangs or is too slow" in dripped["reason"], dripped
    assert dripped["responder"]["reachable"] is False
    assert dripped["elapsed_seconds"] <= DEADLINE + 0.5, dripped
    assert seconds <= DEADLINE + ANSIBLE_OVERHEAD, seconds
    assert "answers HTTP 302 (a redirect, not followed) instead of an OCSP response" in redirected["reason"], redirected
    assert "internal/admin" not in json.dumps(result)
    assert front.requests(drip) == ["drip"] and front.requests(redirect) == ["redirect"]


def run_role(inventory: Path) -> tuple[subprocess.CompletedProcess, float]:
    """playbooks/enable.yml through ansible-playbook, as an operator runs it; the run and its seconds."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks" / "enable.yml")]
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    return run, time.monotonic() - started


def failed_verification(run: subprocess.CompletedProcess) -> str:
    """The output from the failing verify step on (the one both server roles include): the host failed there, and nowhere before."""
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert re.search(r"^web1\s+: ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=1", run.stdout, re.MULTILINE), output
    marker = "TASK [ocsp.stapling.preflight : Show the verification, and fail when a changed site does not staple"
    assert marker in run.stdout, output
    failed = run.stdout[run.stdout.index(marker):]
    assert "fatal: [web1]" in failed, output
    return failed


def test_nginx_role_fails_the_host_and_names_the_fault(lab):
    """The main job on an nginx whose certificate's responder answers unauthorized: the host fails, with the reason."""
    bench, front, root = lab["bench"], lab["front"], lab["root"] / "nginx-role"
    leaf = bench.issue("role.nginx.test", ocsp_url=front.url)
    front.set_fault("unauthorized", leaf)
    server = bench.nginx([Site("role.nginx.test", leaf, stapling=False, default=True)])
    server.start()
    nginx = ["nginx", "-p", f"{server.folder}/", "-e", str(server.error_log_path), "-c", str(server.conf_path)]
    root.mkdir()
    inventory = write_inventory(root / "inventory.yml", {"web1": {
        "ansible_connection": "local",
        "ansible_host": "127.0.0.1",
        "ansible_python_interpreter": sys.executable,
        "nginx_stapling_conf": str(server.conf_path),
        "nginx_stapling_test_command": [*nginx, "-t"],
        "nginx_stapling_reload_command": [*nginx, "-s", "reload"],
        "nginx_stapling_resolver": ["127.0.0.1"],
        "nginx_stapling_ca_bundles": [str(bench.pki.root_cert_path)],
        "nginx_stapling_chain_dir": str(root / "chains"),
        "nginx_stapling_backup_dir": str(root / "backups"),
        "nginx_stapling_lock_path": str(root / "ocsp-stapling.lock"),
        "nginx_stapling_verify_retry_budget": 2,
        "enable_servers": ["nginx"],
    }})
    run, seconds = run_role(inventory)
    failed = failed_verification(run)
    # The message is verify's reason for the site: nothing stapled, and why, from the responder itself.
    assert "no OCSP response stapled" in failed, failed
    assert f"its responder {front.url} answers: unauthorized, with no certificate status" in failed, failed
    # The site was turned on and reloaded, and nginx still serves it.
    assert "ssl_stapling on;" in server.conf_path.read_text()
    assert handshake(server.port, "role.nginx.test").subject == "CN = role.nginx.test"
    assert seconds < 120, seconds


def test_apache_role_fails_the_host_and_names_the_fault(tmp_path):
    """The main job on a Debian-shaped Apache whose responder is down: Apache staples a tryLater of its own,
    and the host fails with the responder's real fault, not with "tryLater"."""
    with Bench(tmp_path / "bench") as bench:
        apache = debian_apache(bench, tmp_path)
        inventory = write_inventory(tmp_path / "inventory.yml", {"web1": {**apache.variables, "apache_stapling_verify_retry_budget": 2}})
        # Down: the real responder at the URL of every certificate of this bench stops, by its pid.
        bench.responder.stop()
        run, seconds = run_role(inventory)
        failed = failed_verification(run)
        assert "the stapled response carries no certificate status, only tryLater" in failed, failed
        assert f"its responder {bench.responder.url} cannot be reached from here (connection refused): nothing listens there" in failed, failed
        assert "SSLUseStapling on" in (apache.folder / "sites-available" / "default-ssl.conf").read_text()
        assert handshake(apache.server.port, "good.test").subject == "CN = good.test"
        assert seconds < 120, seconds
