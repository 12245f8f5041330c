"""`make demo`: the main job on the bench, before and after.

A bench nginx laid out as Debian ships it serves three TLS sites on loopback, none of them stapling:
good.test, shop.test (stapling turned off by hand, in a CRLF file) and nourl.test (a certificate
without an OCSP URL). The demo

1. verifies the sites with playbooks/verify.yml: no staple anywhere;
2. runs the main job, playbooks/enable.yml, with --diff: detect, preflight, chain, edit, nginx -t,
   reload, verify;
3. verifies again with playbooks/verify.yml: good, fresh staples.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import Bench
from .layouts import debian_nginx, write_inventory

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
        nginx = debian_nginx(bench, Path(folder))
        inventory = write_inventory(Path(folder) / "inventory.yml", {"web1": nginx.variables})
        banner("Test bench on loopback: PKI and OCSP responder (%s), nginx on 127.0.0.1:%d" % (bench.responder.url, nginx.server.port))
        print("  %s/nginx.conf includes conf.d/*.conf and sites-enabled/* (symlinks to sites-available/):" % nginx.folder)
        print("    default  good.test               stapling never configured")
        print("    shop     shop.test, www.shop.test  'ssl_stapling off;' set by hand, CRLF line endings")
        print("             nourl.test              certificate without an OCSP responder URL: cannot be stapled")

        before = playbook(inventory, "verify.yml", "-e", "ocsp_stapling_verify_retry_budget=2")
        enable = playbook(inventory, "enable.yml", "--diff")
        after = playbook(inventory, "verify.yml")

    banner("What this shows")
    print("  before: no site staples (verify retried each for 2 s, then asked the responder itself: it answers 'good',")
    print("          so the server is at fault, not the CA).")
    print("  enable: nourl.test is reported 'not applicable' and left alone; good.test and shop.test get the full chain")
    print("          file and the stapling directives, in place (comments, tabs, CRLF and the symlinks kept), nginx -t")
    print("          passes, nginx is reloaded once, and verify from the controller sees a good, fresh staple on each.")
    print("  after:  every site staples a good, fresh OCSP response.")
    outcome = {"before": before == 2, "enable": enable == 0, "after": after == 0}
    if not all(outcome.values()):
        print("\nUNEXPECTED: %s" % ", ".join("%s exited differently" % step for step, fine in outcome.items() if not fine))
        return 1
    print("\nDemo finished as expected; every bench process was stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
