"""`make demo`: verify the bench's sites with playbooks/verify.yml and explain each verdict.

The bench serves three inventory hosts on loopback: an nginx whose caches are warm, with one site
that staples and one that does not; an nginx that has just started (cold caches, two workers);
and an Apache that staples. The playbook checks all of them in one concurrent call.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from . import Bench
from .client import handshake_until
from .servers import Site

REPO = Path(__file__).resolve().parents[2]
# What the run must show; anything else means the demo itself is broken.
EXPECTED_FAILED_HOSTS = {"nginx-warm"}


def inventory(hosts: dict) -> str:
    lines = ["all:", "  hosts:"]
    for name, (port, server_names) in hosts.items():
        lines.append("    %s:" % name)
        lines.append("      ansible_host: 127.0.0.1")
        lines.append("      ansible_connection: local")
        lines.append("      ocsp_stapling_verify_port: %d" % port)
        lines.append("      ocsp_stapling_verify_server_names: [%s]" % ", ".join(server_names))
    return "\n".join(lines) + "\n"


def banner(text: str) -> None:
    print("\n" + "=" * 100 + "\n" + text + "\n" + "=" * 100, flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ocsp-stapling-demo-") as folder, Bench(Path(folder)) as bench:
        good, nostaple, cold = bench.issue("good.test"), bench.issue("nostaple.test"), bench.issue("cold.test")
        warm_nginx = bench.nginx([Site("good.test", good, default=True), Site("nostaple.test", nostaple, stapling=False)])
        cold_nginx = bench.nginx([Site("cold.test", cold, default=True)], workers=2)
        apache = bench.apache([Site("good.test", good, default=True)])
        for server in (warm_nginx, cold_nginx, apache):
            server.start()
        # nginx fetches only when a client asks for the status: warm its single worker's cache.
        handshake_until(warm_nginx.port, "good.test", lambda shake: shake.stapled)

        banner("Test bench on loopback: PKI in %s, OCSP responder at %s" % (folder, bench.responder.url))
        print("  nginx-warm  127.0.0.1:%d  good.test (stapling on, cache warmed), nostaple.test (stapling off)" % warm_nginx.port)
        print("  nginx-cold  127.0.0.1:%d  cold.test (stapling on, just started, 2 workers: first handshakes carry no staple)" % cold_nginx.port)
        print("  apache      127.0.0.1:%d  good.test (stapling on)" % apache.port)

        inventory_path = Path(folder) / "inventory.yml"
        inventory_path.write_text(inventory({
            "nginx-warm": (warm_nginx.port, ["good.test", "nostaple.test"]),
            "nginx-cold": (cold_nginx.port, ["cold.test"]),
            "apache": (apache.port, ["good.test"]),
        }), encoding="utf-8")
        command = ["ansible-playbook", "-i", str(inventory_path), str(REPO / "playbooks" / "verify.yml"),
                   "-e", "ocsp_stapling_verify_retry_budget=4"]
        banner("$ " + " ".join(command))
        env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable)
        run = subprocess.run(command, env=env, text=True, capture_output=True, check=False, cwd=REPO)
        print(run.stdout + run.stderr, flush=True)

    failed_hosts = {match.group(1) for match in re.finditer(r"^(\S+)\s+:.*failed=([1-9])", run.stdout, re.MULTILINE)}
    banner("What this shows")
    print("  nginx-warm / good.test      passes: a good, fresh staple, signed by the CA's delegated responder, first handshake.")
    print("  nginx-warm / nostaple.test  fails:  no staple in any handshake within the retry budget, so the host fails.")
    print("  nginx-cold / cold.test      passes: the first handshakes carried no staple (cold cache); verify retried with")
    print("                              back-off and reports the handshakes it needed (TRIES > 1). A one-shot scanner would fail it.")
    print("  apache / good.test          passes: Apache fetches the response on the first handshake.")
    if failed_hosts != EXPECTED_FAILED_HOSTS:
        print("\nUNEXPECTED: failed hosts were %s, expected %s" % (sorted(failed_hosts), sorted(EXPECTED_FAILED_HOSTS)))
        return 1
    print("\nDemo finished as expected; every bench process was stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
