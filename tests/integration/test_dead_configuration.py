"""Issue 14, item 4, on real nginx and Apache through playbooks/enable.yml: stapling configured for a certificate that
can never be stapled (no OCSP URL) is turned off on request (``*_dead_configuration=remove``), in the same transaction,
server test and diff as every edit; a second run changes nothing, check mode changes nothing, and state=absent gives the
original bytes back. Without the request it stays.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench import Bench, Site
from bench.layouts import apache_variables, nginx_variables, snapshot, write_inventory

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "enable.yml"


def play(inventory: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(PLAYBOOK), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def outcomes(output: str) -> dict:
    """server name -> (outcome, reason), from the role's "Show the outcome of every TLS site" task."""
    return {match.group(1): (match.group(2), match.group(3)) for match in re.finditer(
        r'"\S+:\d+ (\S+): (stapled|already|not applicable|not handled) \((.*)\)",?$', output, re.MULTILINE)}


def changed(output: str) -> int:
    return int(re.search(r"^web1\s+: ok=\d+\s+changed=(\d+)\s", output, re.MULTILINE).group(1))


@pytest.fixture(scope="module", params=["nginx", "apache"])
def host(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp("dead-" + kind)
    with Bench(root) as bench:
        good, dead = bench.issue("good.test"), bench.issue("dead.test", ocsp_url=None)
        # dead.test has stapling on, as a template or an old how-to left it; good.test has none yet.
        sites = [Site("good.test", good, stapling=False, default=True), Site("dead.test", dead, stapling=True)]
        server = bench.nginx(sites) if kind == "nginx" else bench.apache(sites)
        server.start()
        if kind == "nginx":
            variables = nginx_variables(bench, server, root)
        else:
            # The bench's Apache is laid out plainly: the cache file is named (its SSLStaplingCache is kept anyway).
            variables = dict(apache_variables(bench, server, root), apache_stapling_cache_path=str(server.folder / "ocsp-stapling.conf"))
        inventory = write_inventory(root / "inventory.yml", {"web1": variables})
        test = variables["%s_stapling_test_command" % kind]
        yield {"kind": kind, "server": server, "inventory": inventory, "test": test, "original": snapshot(server.folder)}


def dead_warning(host, since: int = 0) -> str:
    """What the server says of dead.test's stapling: nginx when it tests its configuration, Apache in its error log when it
    starts or restarts (from byte ``since`` of the log)."""
    test = subprocess.run(host["test"], capture_output=True, text=True, check=False)
    assert test.returncode == 0, test.stderr
    if host["kind"] == "nginx":
        return "\n".join(line for line in test.stderr.splitlines() if '"ssl_stapling" ignored' in line)
    log = host["server"].error_log_path.read_bytes()[since:].decode(errors="replace")
    return "\n".join(line for line in log.splitlines() if "AH02218" in line)


def test_1_kept_by_default_and_check_mode_changes_nothing(host):
    assert ("no OCSP responder URL in the certificate" if host["kind"] == "nginx" else "no OCSP URI in certificate") in dead_warning(host)
    run = play(host["inventory"], "--check", "--diff", "-e", "%s_stapling_dead_configuration=remove" % host["kind"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert snapshot(host["server"].folder) == host["original"]
    assert outcomes(run.stdout)["dead.test"][1].endswith("stapling turned off, since it could never work (dead configuration)"), run.stdout
    # The diff shows the one flag that would change.
    flag = "ssl_stapling" if host["kind"] == "nginx" else "SSLUseStapling"
    assert re.search(r"^\+\s*%s off" % flag, run.stdout, re.MULTILINE), run.stdout


def test_2_removed_on_request_tested_and_the_good_site_stapled(host):
    log_size = host["server"].error_log_path.stat().st_size
    run = play(host["inventory"], "--diff", "-e", "%s_stapling_dead_configuration=remove" % host["kind"])
    assert run.returncode == 0, run.stdout + run.stderr
    found = outcomes(run.stdout)
    assert found["dead.test"][0] == "not applicable" and "OCSP" in found["dead.test"][1], found
    assert found["dead.test"][1].endswith("(dead configuration)"), found
    assert found["good.test"][0] == "stapled", found
    assert re.search(r"\(good\.test\)\s+ok\s+good", run.stdout), run.stdout
    # The reload read the new configuration: the server no longer complains about dead.test.
    assert dead_warning(host, log_size) == ""
    if host["kind"] == "apache":
        # ... and Apache did restart since (it checks every stapling certificate then).
        assert "resuming normal operations" in host["server"].error_log_path.read_bytes()[log_size:].decode(errors="replace")
    text = "".join(path.read_text() for path in sorted(host["server"].folder.rglob("*.conf")) if "ocsp.stapling" in path.read_text())
    if host["kind"] == "nginx":
        assert "ssl_stapling off; # ocsp.stapling: was on" in text
    else:
        assert "# ocsp.stapling: was on\n    SSLUseStapling off\n" in text or "# ocsp.stapling: was on\n        SSLUseStapling off\n" in text, text


def test_3_a_second_run_changes_nothing(host):
    before = snapshot(host["server"].folder)
    run = play(host["inventory"], "-e", "%s_stapling_dead_configuration=remove" % host["kind"])
    assert run.returncode == 0 and changed(run.stdout) == 0, run.stdout + run.stderr
    assert snapshot(host["server"].folder) == before


def test_4_absent_gives_the_original_bytes_back(host):
    run = play(host["inventory"], "-e", "%s_stapling_state=absent" % host["kind"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert snapshot(host["server"].folder) == host["original"]
