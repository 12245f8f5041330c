"""Windows hosts in the audit, as far as they can go without Windows (none runs here).

Two halves:

- the controller's half of a Windows host, through real handshakes: what a Windows host gives the audit
  (``netsh http show sslcert`` in the shape of the published captures, and the result of the audit's read-only
  PowerShell: the bound certificates' DER from the machine store, the CA and Root stores, the SNI registry value)
  is made for bindings on a real bench nginx that plays HTTP.sys; the bindings go through the same filters as in
  roles/audit/tasks/windows.yml (windows_sslcert, windows_audit_sites, preflight, verify_site_targets), the verify
  module's own code checks them against the real server and responder, and audit_rows judges them;
- playbooks/audit.yml with Windows hosts in the inventory next to a real nginx host: a Windows host that cannot
  be read (here: no PowerShell) and one the version gate refuses each get one ``not audited`` row and fail alone,
  in check mode too; a play of Windows hosts only still writes every report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench import Bench
from bench.client import handshake_until
from bench.layouts import nginx_variables, snapshot, write_inventory
from bench.servers import Site
from cryptography.hazmat.primitives import serialization

from ansible_collections.ocsp.stapling.plugins.filter.audit import audit_rows
from ansible_collections.ocsp.stapling.plugins.filter.preflight import preflight
from ansible_collections.ocsp.stapling.plugins.filter.verify import verify_site_targets
from ansible_collections.ocsp.stapling.plugins.filter.windows import windows_audit_refused, windows_audit_sites, windows_gate, windows_sslcert
from ansible_collections.ocsp.stapling.plugins.module_utils._ocsp_http import fetch_ocsp
from ansible_collections.ocsp.stapling.plugins.module_utils._verify import Policy, check_targets, parse_targets

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "audit.yml"
TEMPLATE = REPO / "tests" / "unit" / "plugins" / "module_utils" / "fixtures" / "windows" / "audit_server2022.txt"
FACTS_2022 = {"ansible_os_family": "Windows", "ansible_distribution": "Microsoft Windows Server 2022 Standard",
              "ansible_distribution_version": "10.0.20348.0", "ansible_os_product_type": "server"}


def der(certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def thumbprint(certificate) -> str:
    return hashlib.sha1(der(certificate)).hexdigest().upper()


def netsh_block(header: str, endpoint: str, certificate_hash: str, store: str = "My", disable: str = "Not Set") -> str:
    """One binding as Windows Server 2022 prints it: the first block of the unit fixture, with these values."""
    text = TEMPLATE.read_text(encoding="utf-8")
    block = text[text.index("    IP:port"):text.index("\n\n", text.index("    IP:port"))] + "\n"
    values = {"IP:port": (header, endpoint), "Certificate Hash": ("Certificate Hash", certificate_hash),
              "Certificate Store Name": ("Certificate Store Name", store), "Disable OCSP Stapling": ("Disable OCSP Stapling", disable)}
    lines = []
    for line in block.splitlines():
        label = line.split(" : ", 1)[0].strip()
        lines.append("    %-28s : %s" % values[label] if label in values else line)
    return "\n".join(lines) + "\n"


def store_entry(store: str, certificate) -> dict:
    """One certificate as the audit's PowerShell returns it."""
    return {"store": store, "thumbprint": thumbprint(certificate), "der": base64.b64encode(der(certificate)).decode("ascii")}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit-windows")
    with Bench(root) as bench:
        good, nostaple = bench.issue("good.test"), bench.issue("nostaple.test")
        nginx = bench.nginx([Site("good.test", good, default=True), Site("nostaple.test", nostaple, stapling=False)])
        nginx.start()
        handshake_until(nginx.port, "good.test", lambda shake: shake.stapled)
        yield {"root": root, "bench": bench, "nginx": nginx, "good": good, "nostaple": nostaple}


def test_bindings_are_judged_through_real_handshakes_like_every_other_site(bench):
    nginx, good, nostaple, pki = bench["nginx"], bench["good"], bench["nostaple"], bench["bench"].pki
    port = nginx.port
    text = "SSL Certificate bindings:\n-------------------------\n\n" + "\n".join([
        netsh_block("IP:port", "127.0.0.1:%d" % port, thumbprint(good.cert)),
        netsh_block("Hostname:port", "good.test:%d" % port, thumbprint(good.cert), store="WebHosting"),
        netsh_block("Hostname:port", "nostaple.test:%d" % port, thumbprint(nostaple.cert), disable="Set"),
        # nginx answers an unknown name with its default site, good.test: another certificate than the binding names.
        netsh_block("Hostname:port", "wrong.test:%d" % port, thumbprint(nostaple.cert)),
        netsh_block("Hostname:port", "gone.test:%d" % port, "00" * 20),
    ])
    host_read = {"certificates": [store_entry("My", good.cert), store_entry("WebHosting", good.cert), store_entry("My", nostaple.cert)],
                 "unreadable_stores": [], "authorities": [store_entry("CA", pki.intermediate_cert), store_entry("Root", pki.root_cert)],
                 "sni_stapling": 1, "iis": None}

    # As roles/audit/tasks/windows.yml strings them together.
    info = windows_audit_sites(windows_sslcert({"stdout": text, "rc": 0}), windows_gate(FACTS_2022), {"changed": False, "result": host_read})
    preflights = {path: preflight(value, candidates=info["bundles"]) for path, value in info["certificates"].items()}
    targets = verify_site_targets(info["sites"], "127.0.0.1", None, info["certificates"])
    # What the verify module does with those targets (plugins/modules/verify.py).
    results = check_targets(parse_targets(targets), Policy(retry_budget=3, fetch=fetch_ocsp), 8)
    rows = audit_rows([info], "win1", "127.0.0.1", preflights, results) + windows_audit_refused(info, "win1")

    by_socket_site = {(row["socket"], row["site"]): row for row in rows}
    assert {key: row["status"] for key, row in by_socket_site.items()} == {
        ("127.0.0.1:%d" % port, "(default server)"): "ok",
        ("*:%d" % port, "good.test"): "ok",
        ("*:%d" % port, "nostaple.test"): "not stapling",
        ("*:%d" % port, "wrong.test"): "failing",
        ("*:%d" % port, "gone.test"): "not audited",
    }, json.dumps(rows, indent=1, default=str)[:4000]
    ip_row = by_socket_site[("127.0.0.1:%d" % port, "(default server)")]
    assert ip_row["server"] == "http.sys" and ip_row["version"] == "10.0.20348" and ip_row["stapling"] == "on"
    assert ip_row["served"] == "good" and ip_row["subject"] == "CN=good.test" and ip_row["target"] == "127.0.0.1:%d (127.0.0.1)" % port
    assert ip_row["certificate_path"] == "Cert:\\LocalMachine\\My\\%s" % thumbprint(good.cert)
    off = by_socket_site[("*:%d" % port, "nostaple.test")]
    assert off["stapling"] == "off" and off["served"] == "nothing" and "stapling is turned off" in off["reason"]
    assert by_socket_site[("*:%d" % port, "wrong.test")]["served"] == "wrong certificate"
    assert "is not in Cert:\\LocalMachine\\My" in by_socket_site[("*:%d" % port, "gone.test")]["reason"]


def play(inventory: Path, reports: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(PLAYBOOK),
               "-e", "audit_report_dir=%s" % reports, "-e", "audit_verify_retry_budget=3", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def recap(output: str) -> dict:
    return {match.group(1): int(match.group(2)) for match in re.finditer(r"^(\S+)\s+: ok=\d+.*?failed=(\d+)", output, re.MULTILINE)}


def windows_host(**facts) -> dict:
    # No Windows here: the connection is local, so ansible.windows' modules find no PowerShell and the host cannot be read.
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **FACTS_2022, **facts}


def test_windows_hosts_that_cannot_be_read_fail_alone_next_to_a_real_nginx(bench):
    root = bench["root"]
    inventory = write_inventory(root / "mixed.yml", {
        "web-nginx": nginx_variables(bench["bench"], bench["nginx"], root / "state"),
        "win-2022": windows_host(),
        "win-2003": windows_host(ansible_distribution="Microsoft Windows Server 2003", ansible_distribution_version="5.2.3790.0"),
    })
    before = snapshot(bench["nginx"].folder)
    for reports, extra in ((root / "reports", ()), (root / "reports-check", ("--check",))):
        run = play(inventory, reports, *extra)
        assert run.returncode == 2, run.stdout + run.stderr
        assert recap(run.stdout) == {"web-nginx": 0, "win-2022": 1, "win-2003": 1}
        rows = {(row["host"], row["site"]): row for row in json.loads((reports / "audit.json").read_text())["rows"]}
        assert {key: row["status"] for key, row in rows.items()} == {
            ("web-nginx", "good.test"): "ok", ("web-nginx", "nostaple.test"): "not stapling",
            ("win-2022", "(host)"): "not audited", ("win-2003", "(host)"): "not audited"}
        assert rows[("win-2022", "(host)")]["reason"].startswith("List the HTTP.sys TLS bindings: ")
        assert "upgrade to Windows Server 2008" in rows[("win-2003", "(host)")]["reason"]
        assert "not read yet" not in run.stdout
    assert snapshot(bench["nginx"].folder) == before


def test_a_play_of_windows_hosts_only_writes_every_report(bench):
    root = bench["root"]
    inventory = write_inventory(root / "windows-only.yml", {"win-2022": windows_host()})
    run = play(inventory, root / "reports-windows")
    assert run.returncode == 2 and recap(run.stdout) == {"win-2022": 1}, run.stdout + run.stderr
    report = json.loads((root / "reports-windows" / "audit.json").read_text())
    assert [(row["host"], row["status"]) for row in report["rows"]] == [("win-2022", "not audited")]
    assert sorted(path.name for path in (root / "reports-windows").iterdir()) == [
        "audit-junit.xml", "audit.html", "audit.json", "audit.txt", "ocsp_stapling.prom"]
