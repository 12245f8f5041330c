"""playbooks/audit.yml on a mixed fleet of real bench servers: every site judged, every report readable.

The fleet: an nginx whose sites cover each status (stapling good, stapling off, no OCSP URL, stapling on
for a certificate without one, revoked, Must-Staple without a staple), an Apache that staples one site
and serves a revoked certificate with stapling on, an nginx without any stapling, and a host whose
server_info fails (its configuration file does not exist).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from bench import Bench
from bench.client import handshake_until
from bench.layouts import apache_variables, nginx_variables, snapshot, write_inventory
from bench.servers import Site
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as prometheus_families

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "audit.yml"
CHROMIUM = shutil.which("chromium")

# (host, site) -> status, for every site of the fleet.
EXPECTED = {
    ("web-nginx", "good.test"): "ok",
    ("web-nginx", "nostaple.test"): "not stapling",
    ("web-nginx", "nourl.test"): "not applicable",
    ("web-nginx", "dead.test"): "dead configuration",
    ("web-nginx", "revoked.test"): "critical",
    ("web-nginx", "mustaple.test"): "critical",
    ("web-apache", "good.test"): "ok",
    ("web-apache", "revoked.test"): "critical",
    ("web-plain", "good.test"): "not stapling",
    ("web-plain", "nourl.test"): "not applicable",
    ("web-broken", "(host)"): "not audited",
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    with Bench(root) as bench:
        good, nostaple, revoked = bench.issue("good.test"), bench.issue("nostaple.test"), bench.issue("revoked.test")
        nourl, dead = bench.issue("nourl.test", ocsp_url=None), bench.issue("dead.test", ocsp_url=None)
        mustaple = bench.issue("mustaple.test", must_staple=True)
        # Revoked before any server starts, so that none holds a "good" response for it.
        bench.revoke("revoked.test")
        nginx = bench.nginx([Site("good.test", good, default=True), Site("nostaple.test", nostaple, stapling=False),
                             Site("nourl.test", nourl, stapling=False), Site("dead.test", dead),
                             Site("revoked.test", revoked), Site("mustaple.test", mustaple, stapling=False)])
        apache = bench.apache([Site("good.test", good, default=True), Site("revoked.test", revoked)])
        plain = bench.nginx([Site("good.test", good, stapling=False, default=True), Site("nourl.test", nourl, stapling=False)])
        for server in (nginx, apache, plain):
            server.start()
        handshake_until(nginx.port, "good.test", lambda shake: shake.stapled)
        handshake_until(apache.port, "good.test", lambda shake: shake.stapled)
        state = root / "state"
        inventory = write_inventory(root / "inventory.yml", {
            "web-nginx": nginx_variables(bench, nginx, state),
            "web-apache": apache_variables(bench, apache, state),
            "web-plain": nginx_variables(bench, plain, state),
            "web-broken": dict(nginx_variables(bench, plain, state), nginx_stapling_conf=str(root / "missing" / "nginx.conf")),
        })
        yield {"root": root, "inventory": inventory, "servers": (nginx, apache, plain), "state": state}


def play(fleet, reports: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(fleet["inventory"]), str(PLAYBOOK),
               "-e", "audit_report_dir=%s" % reports, "-e", "audit_verify_retry_budget=3", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def recap(output: str) -> dict:
    return {match.group(1): int(match.group(2)) for match in re.finditer(r"^(\S+)\s+: ok=\d+.*?failed=(\d+)", output, re.MULTILINE)}


def statuses(report: dict) -> dict:
    return {(row["host"], row["site"]): row["status"] for row in report["rows"]}


@pytest.fixture(scope="module")
def audited(fleet):
    """One real run and one in check mode, with the server folders before and after."""
    before = [snapshot(server.folder) for server in fleet["servers"]]
    run = play(fleet, fleet["root"] / "reports")
    check = play(fleet, fleet["root"] / "reports-check", "--check")
    after = [snapshot(server.folder) for server in fleet["servers"]]
    return {"run": run, "check": check, "before": before, "after": after, "reports": fleet["root"] / "reports",
            "check_reports": fleet["root"] / "reports-check"}


def test_every_site_of_every_host_has_the_right_status(audited):
    run = audited["run"]
    report = json.loads((audited["reports"] / "audit.json").read_text())
    assert statuses(report) == EXPECTED, run.stdout
    assert report["summary"]["total"] == len(EXPECTED)
    rows = {(row["host"], row["site"]): row for row in report["rows"]}
    good = rows[("web-nginx", "good.test")]
    assert good["served"] == "good" and good["stapling"] == "on" and good["server"] == "nginx" and good["version"]
    assert 0 < good["staple_seconds_left"] <= 3600 and good["certificate_seconds_left"] > 80 * 86400
    assert good["ocsp_url"].startswith("http://127.0.0.1:") and good["subject"] == "CN=good.test" and good["serial"]
    assert rows[("web-nginx", "dead.test")]["ocsp_url"] == "none" and rows[("web-nginx", "dead.test")]["stapling"] == "on"
    assert "revoked" in rows[("web-nginx", "revoked.test")]["reason"]
    assert rows[("web-apache", "revoked.test")]["served"] == "revoked"
    mustaple = rows[("web-nginx", "mustaple.test")]
    assert mustaple["must_staple"] is True and mustaple["served"] == "nothing" and "Must-Staple" in mustaple["reason"]
    assert rows[("web-nginx", "nostaple.test")]["action"] == "turn stapling on with the ocsp.stapling.enable role"
    assert "missing/nginx.conf" in rows[("web-broken", "(host)")]["reason"]
    # The console table shows every row, and so does its file.
    assert "dead configuration" in run.stdout and "11 sites: 3 critical" in run.stdout
    table = (audited["reports"] / "audit.txt").read_text().splitlines()
    assert table[0].startswith("HOST") and len(table) == len(EXPECTED) + 2 and table[-1].startswith("11 sites: 3 critical")


def test_the_broken_host_fails_alone(audited):
    assert audited["run"].returncode == 2, audited["run"].stdout + audited["run"].stderr
    assert recap(audited["run"].stdout) == {"web-nginx": 0, "web-apache": 0, "web-plain": 0, "web-broken": 1}


def test_check_mode_changes_nothing_and_reports_the_same(audited):
    assert audited["after"] == audited["before"]
    assert recap(audited["check"].stdout) == {"web-nginx": 0, "web-apache": 0, "web-plain": 0, "web-broken": 1}
    checked = json.loads((audited["check_reports"] / "audit.json").read_text())
    assert statuses(checked) == EXPECTED


def test_junit_has_one_test_case_per_site(audited):
    tree = ElementTree.parse(audited["reports"] / "audit-junit.xml")
    suites = tree.getroot()
    assert suites.tag == "testsuites" and suites.get("tests") == str(len(EXPECTED))
    assert {suite.get("name") for suite in suites} == {"web-nginx", "web-apache", "web-plain", "web-broken"}
    cases = suites.findall("testsuite/testcase")
    assert len(cases) == len(EXPECTED)
    failed = sorted(case.get("name") for case in cases if case.find("failure") is not None)
    assert len(failed) == 3 and all(name.split()[0] in ("revoked.test", "mustaple.test") for name in failed)
    assert suites.get("failures") == "3" and suites.get("errors") == "1" and suites.get("skipped") == "2"


def test_openmetrics_parse_with_prometheus_own_parsers(audited):
    text = (audited["reports"] / "ocsp_stapling.prom").read_text()
    for parse in (prometheus_families, openmetrics_families):
        families = {family.name: family for family in parse(text)}
        ok = {(sample.labels["host"], sample.labels["site"]): sample.value for sample in families["ocsp_stapling_staple_ok"].samples}
        assert ok[("web-nginx", "good.test")] == 1 and ok[("web-apache", "revoked.test")] == 0
        assert len(ok) == len(EXPECTED)
        assert {sample.labels["status"] for sample in families["ocsp_stapling_site_status"].samples} == set(EXPECTED.values())


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make os-deps installs it)")
def test_html_report_renders_in_chromium(audited, tmp_path):
    page = audited["reports"] / "audit.html"
    dom = chromium(page.as_uri(), tmp_path)
    assert 'data-audit-ready="yes"' in dom
    assert dom.count("<tr data-status=") == len(EXPECTED)
    assert 'data-shown="%d"' % len(EXPECTED) in dom
    filtered = chromium(page.as_uri() + "#status=critical&sort=site", tmp_path)
    assert 'data-shown="3"' in filtered and 'data-sorted-by="site ascending"' in filtered
    chromium(page.as_uri(), tmp_path, "--window-size=1600,1000", "--screenshot=%s" % (tmp_path / "audit.png"))
    assert (tmp_path / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def chromium(url: str, profile: Path, *extra: str) -> str:
    # --no-sandbox: the tests run as root, which Chromium's sandbox refuses.
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=%s" % (profile / "chromium"), *(extra or ("--dump-dom",)), url]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout
