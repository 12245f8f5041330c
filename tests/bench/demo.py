"""`make demo`: the main job on the bench, before and after.

A bench nginx and a bench Apache, each laid out as Debian ships it, serve three TLS sites each on
loopback, none of them stapling: good.test, shop.test (stapling turned off by hand, in a CRLF file)
and nourl.test (a certificate without an OCSP URL). The demo

1. verifies the sites with playbooks/verify.yml: no staple anywhere;
2. runs the main job, playbooks/enable.yml, with --diff: detect, preflight, chain, edit, nginx -t,
   reload, verify;
3. verifies again with playbooks/verify.yml: good, fresh staples;
4. audits the bench with playbooks/audit.yml: every TLS site judged, the reports written to
   demo-audit/ in the current folder (JSON, table, JUnit, OpenMetrics, HTML).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import Bench
from .layouts import demo_hosts

REPO = Path(__file__).resolve().parents[2]


def banner(text: str) -> None:
    print("\n" + "=" * 100 + "\n" + text + "\n" + "=" * 100, flush=True)


def playbook(inventory: Path, name: str, *extra: str) -> int:
    command = ["ansible-playbook", "-i", str(inventory), str(REPO / "playbooks" / name), *extra]
    banner("$ " + " ".join(command))
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    run = subprocess.run(command, env=env, text=True, capture_output=True, check=False, cwd=REPO)
    print(run.stdout + run.stderr, flush=True)
    return run.returncode


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ocsp-stapling-demo-") as folder, Bench(Path(folder)) as bench:
        nginx, apache, inventory = demo_hosts(bench, Path(folder))
        banner("Test bench on loopback: PKI and OCSP responder (%s)" % bench.responder.url)
        print("  web1: nginx on 127.0.0.1:%d, %s/nginx.conf including conf.d/*.conf and sites-enabled/*" % (nginx.server.port, nginx.folder))
        print("  web2: Apache on 127.0.0.1:%d, %s/apache2.conf with mods-, conf- and sites-enabled symlinks," % (apache.server.port, apache.folder))
        print("        socache_shmcb available but not enabled")
        print("  on each: good.test               stapling never configured")
        print("           shop.test, www.shop.test  stapling turned off by hand, CRLF line endings")
        print("           nourl.test              certificate without an OCSP responder URL: cannot be stapled")

        before = playbook(inventory, "verify.yml", "-e", "ocsp_stapling_verify_retry_budget=2")
        enable = playbook(inventory, "enable.yml", "--diff")
        after = playbook(inventory, "verify.yml")
        reports = Path.cwd() / "demo-audit"
        audit = playbook(inventory, "audit.yml", "-e", "audit_report_dir=%s" % reports)

    banner("What this shows")
    print("  before: no site staples (verify retried each for 2 s, then asked the responder itself: it answers 'good',")
    print("          so the server is at fault, not the CA).")
    print("  enable: on each host the enable role finds the server and runs its role. nourl.test is reported")
    print("          'not applicable' and left alone; good.test and shop.test get the full chain file and the stapling")
    print("          directives, in place (comments, tabs, CRLF and the symlinks kept); Apache also gets one server-wide")
    print("          SSLStaplingCache in conf-available (enabled) and socache_shmcb enabled; the server's own test passes,")
    print("          each server is reloaded once, and verify from the controller sees a good, fresh staple on each site.")
    print("  after:  every site staples a good, fresh OCSP response.")
    print("  audit:  every TLS site of both hosts in one table: good.test and shop.test ok, nourl.test not applicable;")
    print("          the same rows as reports in %s: audit.json, audit.txt, audit-junit.xml, ocsp_stapling.prom," % reports)
    print("          audit.html (open it in a browser).")
    outcome = {"before": before == 2, "enable": enable == 0, "after": after == 0, "audit": audit == 0}
    if not all(outcome.values()):
        print("\nUNEXPECTED: %s" % ", ".join("%s exited differently" % step for step, fine in outcome.items() if not fine))
        return 1
    print("\nDemo finished as expected; every bench process was stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
