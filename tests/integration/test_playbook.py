"""playbooks/verify.yml over an inventory of bench servers, through ansible-playbook."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench import Bench
from bench.client import handshake_until
from bench.layouts import write_inventory
from bench.servers import Site

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "verify.yml"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("playbook")
    with Bench(folder) as bench:
        good, off = bench.issue("good.test"), bench.issue("off.test")
        nourl = bench.issue("nourl.test", ocsp_url=None)
        nginx = bench.nginx([Site("good.test", good, default=True), Site("off.test", off, stapling=False), Site("nourl.test", nourl)])
        apache = bench.apache([Site("good.test", good, default=True), Site("off.test", off)])
        nginx.start()
        apache.start()
        handshake_until(nginx.port, "good.test", lambda shake: shake.stapled)
        local = {"ansible_connection": "local", "ansible_host": "127.0.0.1"}
        yield write_inventory(folder / "inventory.yml", {
            "web-nginx": dict(local, ocsp_stapling_verify_port=nginx.port, ocsp_stapling_verify_server_names=["good.test", "off.test"]),
            # off.test staples on Apache and not on nginx: a host sharing the nginx host's address and server names
            # must not inherit its failures. (Apache serves off.test itself: verify fails a site that answers with
            # another site's certificate, issue 13.)
            "web-apache": dict(local, ocsp_stapling_verify_port=apache.port, ocsp_stapling_verify_server_names=["good.test", "off.test"]),
            # nourl.test cannot be stapled by any server: reported n/a, and its host fails only when asked to.
            "web-nourl": dict(local, ocsp_stapling_verify_port=nginx.port, ocsp_stapling_verify_server_names=["good.test", "nourl.test"]),
        })


def play(inventory_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory_path), str(PLAYBOOK),
               "-e", "ocsp_stapling_verify_retry_budget=1", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, check=False)


def recap(output: str) -> dict:
    return {match.group(1): int(match.group(2)) for match in re.finditer(r"^(\S+)\s+: ok=\d+.*?failed=(\d+)", output, re.MULTILINE)}


@pytest.mark.parametrize("extra", [(), ("--check", "--diff")], ids=["run", "check-mode"])
def test_verify_playbook_fails_only_the_host_with_a_broken_site(fleet, extra):
    run = play(fleet, "--limit", "web-nginx,web-apache", *extra)
    assert run.returncode == 2, run.stdout + run.stderr
    assert recap(run.stdout) == {"web-nginx": 1, "web-apache": 0}
    table = [line.strip().strip('",') for line in run.stdout.splitlines() if "(good.test)" in line or "(off.test)" in line]
    assert len(table) == 4
    assert all(" ok " in line for line in table if "(good.test)" in line)
    assert [("FAIL" in line) for line in table if "(off.test)" in line] == [True, False]
    assert "3 of 4 targets staple a good, fresh OCSP response" in run.stdout
    assert "off.test: no OCSP response stapled" in run.stdout


def test_verify_playbook_limited_to_good_hosts_passes(fleet):
    run = play(fleet, "--limit", "web-apache")
    assert run.returncode == 0, run.stdout + run.stderr
    assert recap(run.stdout) == {"web-apache": 0}
    assert "2 of 2 targets staple a good, fresh OCSP response" in run.stdout


def test_site_without_ocsp_url_is_not_applicable_not_a_failure(fleet):
    run = play(fleet, "--limit", "web-nourl")
    assert run.returncode == 0, run.stdout + run.stderr
    [row] = [line for line in run.stdout.splitlines() if "(nourl.test)" in line]
    assert " n/a " in row and "not applicable: " in row
    strict = play(fleet, "--limit", "web-nourl", "-e", "ocsp_stapling_verify_fail_not_applicable=true")
    assert strict.returncode == 2 and recap(strict.stdout) == {"web-nourl": 1}, strict.stdout
