"""The demo's main job on the bench, with the ansible-playbook beside this interpreter: enable, rerun, verify.

    PYTHONPATH=tests .venv-matrix/2.21/bin/python tests/matrix/main_job.py

scripts/matrix.sh runs it with the venv of each ansible-core line (ANSIBLE_COLLECTIONS_PATH must hold this
collection and its dependencies). The bench is the demo's (tests/bench/demo.py): a Debian-shaped nginx and
Apache on loopback, three TLS sites each, none stapling. The three runs:

1. playbooks/enable.yml --diff: every host changes, none fails;
2. playbooks/enable.yml again: nothing changes (idempotent);
3. playbooks/verify.yml: every site that can staple staples a good, fresh response.

Exit status 0 when all three hold; otherwise the output of the run that did not.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import Bench
from bench.layouts import demo_hosts

REPO = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def playbook(inventory: Path, name: str, *extra: str) -> tuple:
    """Run one playbook; its exit status, output and {host: (changed, unreachable + failed)}."""
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory),
               str(REPO / "playbooks" / name), *extra]
    # Modules on the bench's hosts (local connection) run with this interpreter, as in the demo.
    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False, cwd=REPO)
    output = run.stdout + run.stderr
    recap = {host: (int(changed), int(unreachable) + int(failed)) for host, changed, unreachable, failed in RECAP.findall(output)}
    return run.returncode, output, recap


def main() -> int:
    hosts = {"web1", "web2"}
    with tempfile.TemporaryDirectory(prefix="ocsp-stapling-matrix-") as folder, Bench(Path(folder)) as bench:
        nginx, apache, inventory = demo_hosts(bench, Path(folder))
        steps = [
            ("enable", ("enable.yml", "--diff"), lambda recap: all(recap[host][0] > 0 for host in hosts)),
            ("idempotent rerun", ("enable.yml",), lambda recap: all(recap[host][0] == 0 for host in hosts)),
            ("verify", ("verify.yml",), lambda recap: True),
        ]
        for step, args, expected in steps:
            start = time.monotonic()
            status, output, recap = playbook(inventory, *args)
            fine = status == 0 and set(recap) == hosts and not any(counts[1] for counts in recap.values()) and expected(recap)
            print("main job: %-16s %s in %4.1f s  (%s)" % (step, "ok" if fine else "FAILED", time.monotonic() - start,
                  ", ".join("%s changed=%d failed=%d" % (host, *recap[host]) for host in sorted(recap)) or "no recap"), flush=True)
            if not fine:
                print(output)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
