"""One real module run per managed-host Python, with the ansible beside this interpreter, against a bench nginx.

    PYTHONPATH=tests:.build/collections .venv-matrix/2.21/bin/python tests/matrix/host_modules.py PYTHON...

Every PYTHON given (pyenv's 3.6 to 3.13, say) becomes one host of an inventory, all with the local connection
and that interpreter as ansible_python_interpreter, and `ocsp.stapling.server_info` reads the Debian-shaped
bench nginx of tests/bench/layouts.py from each of them in one ad-hoc run. Which of them must work comes from
this ansible-core's own list of target Pythons (ansible-test's, which ships with it) and the collection's
minimum (MINIMUM of plugins/plugin_utils/host_python.py): each of those must find the bench's three TLS sites; every older one must fail with
a message that names the Python it found and the version it needs, not a traceback.

Exit status 0 when every host did what it must; a line per host either way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ansible_collections.ocsp.stapling.plugins.plugin_utils.host_python import MINIMUM
from ansible_test._internal.constants import SUPPORTED_PYTHON_VERSIONS
from bench import Bench
from bench.layouts import debian_nginx, write_inventory

SITES = {"good.test", "shop.test", "nourl.test"}
# A clear refusal names the version needed: the collection's own message or ansible-core's
# ("requires a minimum of Python version 3.8", "requires Python 3.9 or newer").
RESULT = re.compile(r"^(\S+) \| ([A-Z]+)!? => \{", re.MULTILINE)
CLEAR = re.compile(r"Python (version )?3\.\d+ or (later|newer)|minimum of Python version 3\.\d+")


def version_of(python: str) -> tuple:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in out.split("."))


def main(pythons: list) -> int:
    oldest_target = min(tuple(int(part) for part in version.split(".")) for version in SUPPORTED_PYTHON_VERSIONS)
    needed = max(MINIMUM, oldest_target)
    supported = {tuple(int(part) for part in version.split(".")) for version in SUPPORTED_PYTHON_VERSIONS}
    hosts = {}
    for python in pythons:
        version = version_of(python)
        if version < needed or version in supported:
            hosts["py%d.%d" % version] = (python, version)
    with tempfile.TemporaryDirectory(prefix="ocsp-stapling-hosts-") as folder, Bench(Path(folder)) as bench:
        nginx = debian_nginx(bench, Path(folder))
        inventory = write_inventory(Path(folder) / "inventory.yml", {
            name: {"ansible_connection": "local", "ansible_python_interpreter": host[0]} for name, host in hosts.items()})
        args = json.dumps({"server": "nginx", "nginx_conf": nginx.variables["nginx_stapling_conf"], "read_certificates": True})
        # The default ad-hoc output, "HOST | STATUS => {JSON}" per host (ansible-core has no json callback of its own).
        env = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible"), "all", "-i", str(inventory),
                              "--forks", str(len(hosts)), "-m", "ocsp.stapling.server_info", "-a", args],
                             capture_output=True, text=True, env=env, timeout=600, check=False)
    results = {}
    for match in RESULT.finditer(run.stdout):
        # The callback leaves "failed" out of the JSON: the status word says it.
        results[match.group(1)] = dict(json.JSONDecoder().raw_decode(run.stdout, match.end() - 1)[0],
                                       failed=match.group(2) in ("FAILED", "UNREACHABLE"))
    if set(results) != set(hosts):
        print("host modules: no result from ansible for %s (exit %d):\n%s%s"
              % (", ".join(sorted(set(hosts) - set(results))), run.returncode, run.stdout, run.stderr))
        return 1
    failures = 0
    for name, (python, version) in sorted(hosts.items(), key=lambda item: item[1][1]):
        result = results.get(name, {})
        message = " ".join(str(result.get("msg", "")).split())
        if version >= needed:
            found = {name for site in result.get("sites", []) for name in site.get("server_names", [])}
            fine = not result.get("failed") and SITES <= found
            said = "server_info found %s" % ", ".join(sorted(found & SITES)) if fine else "FAILED: %s" % (message or result)
        else:
            fine = bool(result.get("failed")) and bool(CLEAR.search(message)) and "%d.%d" % version in message
            said = ("refused as too old: %s" if fine else "FAILED, no clear refusal: %s") % (message or result)
        failures += not fine
        print("host modules: Python %-6s %s" % ("%d.%d" % version, said[:400]), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: %s PYTHON..." % sys.argv[0])
    sys.exit(main(sys.argv[1:]))
