"""Benchmark: apache_stapling on a generated tree of 2,000 virtual hosts in 200 files, against `apache2 -S`.

Started by `make benchmark`. For N = 2,000 and 4,000 TLS virtual hosts (10 per file), it measures, in the
same run:

- ``apache_stapling check``: the module run as Ansible runs it on a host (``python apache_stapling.py
  args.json``) in check mode: parse every file, follow the include glob, plan every edit, build the diff;
- ``apache_stapling apply``: the same run applying the edits (lock, backups, atomic writes, the cache
  file; the server test is ``true`` so that Apache's own time is not counted);
- ``apache2 -S``: Apache itself parsing the same tree and dumping its virtual hosts (what `apachectl -S`
  runs), which loads the modules and the configuration but edits nothing;
- ``load only (in process)``: the collection's parser alone, without interpreter start-up.

All virtual hosts use one real bench certificate, so that Apache accepts the tree.

With ``--baseline REV`` (``make benchmark-compare BASELINE=REV``) it instead times the module of git revision
REV against the working tree's (or ``--current REV2``'s), check and apply, interleaved round by round in the same run (see
``_compare.py``), and reports both medians and the ratio current / baseline; ``apache2 -S`` is not run then.
"""

from __future__ import annotations

import _report  # first: the load average at import is the start of the run

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _compare  # benchmarks/ is on sys.path as the folder of this script
from bench.pki import Pki

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "plugins" / "modules" / "apache_stapling.py"

MAIN = """ServerRoot "{root}"
Define RUN {root}/run
ServerName 127.0.0.1
PidFile ${{RUN}}/apache2.pid
DefaultRuntimeDir ${{RUN}}
ErrorLog {root}/error.log
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
Listen 127.0.0.1:8443
IncludeOptional conf-enabled/*.conf
IncludeOptional sites/*.conf
"""

VHOST = """
# site {index}: {name}
<VirtualHost 127.0.0.1:8443>
    ServerName {name}
    ServerAlias www.{name}
    DocumentRoot /var/www/{name}
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    <Directory /var/www/{name}>
        Options -Indexes
        AllowOverride None
    </Directory>
</VirtualHost>
"""


def generate(root: Path, vhosts: int, cert: Path, key: Path, per_file: int = 10) -> None:
    for sub in ("sites", "conf-enabled", "run"):
        (root / sub).mkdir(parents=True)
    (root / "apache2.conf").write_text(MAIN.format(root=root))
    for number in range(vhosts // per_file):
        blocks = [VHOST.format(index=index, name="site%05d.test" % index, cert=cert, key=key)
                  for index in range(number * per_file, (number + 1) * per_file)]
        (root / "sites" / ("%03d.conf" % number)).write_text("".join(blocks))


def timed(argv: list, env: dict | None = None) -> float:
    started = time.monotonic()
    completed = subprocess.run(argv, env=env, check=False, capture_output=True, text=True)
    if completed.returncode:
        raise SystemExit("%s failed (status %d):\n%s" % (" ".join(argv), completed.returncode, (completed.stdout + completed.stderr)[-3000:]))
    return time.monotonic() - started


def module_args(root: Path, chains: dict, check: bool) -> dict:
    # Options that the module accepts both before and after the issue 12 refactor, so --baseline can pass them as they are.
    return {"conf_path": str(root / "apache2.conf"), "server_root": str(root), "chains": chains, "test_command": ["true"],
            "cache_path": str(root / "conf-enabled" / "ocsp-stapling.conf"), "cache_spec": "shmcb:%s/run/ocsp(128000)" % root,
            "lock_path": str(root.parent / "lock"), "_ansible_check_mode": check, "_ansible_diff": True}


def module_run(root: Path, chains: dict, env: dict, check: bool) -> float:
    args = root.parent / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args(root, chains, check)}))
    return timed([sys.executable, str(MODULE), str(args)], env)


def in_process_load(root: Path, env: dict) -> float:
    code = ("import time, sys; from ansible_collections.ocsp.stapling.plugins.module_utils._apache import ApacheConfig; "
            "from ansible_collections.ocsp.stapling.plugins.module_utils._configtext import read_text; "
            "s = time.perf_counter(); ApacheConfig.load(sys.argv[1], reader=read_text, server_root=sys.argv[2]); print(time.perf_counter() - s)")
    completed = subprocess.run([sys.executable, "-c", code, str(root / "apache2.conf"), str(root)], env=env, check=True, capture_output=True, text=True)
    return float(completed.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vhosts", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", help="also time the module of this git revision, interleaved with the working tree's")
    parser.add_argument("--current", metavar="REV", help="with --baseline: time this git revision instead of the working tree")
    options = parser.parse_args()
    if options.baseline:
        return compare(options)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("ANSIBLE_COLLECTIONS_PATH"), os.environ.get("PYTHONPATH")])))
    results = {}
    with tempfile.TemporaryDirectory(prefix="ocsp-apache-bench-") as scratch:
        pki = Pki.create(Path(scratch) / "pki", "http://127.0.0.1:9/")
        leaf = pki.issue_leaf("bench.test")
        chains = {str(leaf.fullchain_path): str(pki.chain_path)}
        for vhosts in options.vhosts:
            pristine = Path(scratch) / ("pristine-%d" % vhosts)
            generate(pristine, vhosts, leaf.fullchain_path, leaf.key_path)
            work = Path(scratch) / ("work-%d" % vhosts)
            rows = {"apache_stapling check": [], "apache_stapling apply": [], "apache2 -S": [], "load only (in process)": []}
            for _round in range(options.rounds):
                rows["apache_stapling check"].append(module_run(pristine, chains, env, check=True))
                shutil.rmtree(work, ignore_errors=True)
                generate(work, vhosts, leaf.fullchain_path, leaf.key_path)
                # Written back before the timing, as a server's configuration long is: otherwise the apply's first
                # fsync would also pay for the generator's 200 files, which the check (on the pristine tree) does not.
                os.sync()
                rows["apache_stapling apply"].append(module_run(work, chains, env, check=False))
                rows["apache2 -S"].append(timed(["apache2", "-d", str(pristine), "-f", str(pristine / "apache2.conf"), "-S"]))
                rows["load only (in process)"].append(in_process_load(pristine, env))
            results[vhosts] = {name: round(statistics.median(values), 4) for name, values in rows.items()}
            print(vhosts, json.dumps(results[vhosts]), flush=True)

    text = markdown(results, options.vhosts, options.rounds)
    print("\n" + text)
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "apache_edit.json").write_text(json.dumps(results, indent=2))
    _report.write_section("apache-edit", text)
    return 0


def markdown(results: dict, sizes: list, rounds: int) -> str:
    headers = ["virtual hosts", "apache_stapling check", "apache_stapling apply", "apply / check", "apache2 -S",
               "our parse (in process)", "check / apache2 -S", "our parse / apache2 -S"]
    rows = []
    for vhosts in sizes:
        row = results[vhosts]
        rows.append(["{:,}".format(vhosts), "%.3f s" % row["apache_stapling check"], "%.3f s" % row["apache_stapling apply"],
                     "%.2fx" % (row["apache_stapling apply"] / row["apache_stapling check"]), "%.3f s" % row["apache2 -S"],
                     "%.3f s" % row["load only (in process)"], "%.2fx" % (row["apache_stapling check"] / row["apache2 -S"]),
                     "%.2fx" % (row["load only (in process)"] / row["apache2 -S"])])
    text = "Median of %d rounds.\n\n" % rounds + _report.table(headers, rows)
    text += "\n\n- **Apply / check: %s** (issue 16's goal: at most 1.3x)." % ", ".join(
        "%.2fx at %s virtual hosts" % (results[vhosts]["apache_stapling apply"] / results[vhosts]["apache_stapling check"], "{:,}".format(vhosts))
        for vhosts in sizes)
    for smaller, larger in zip(sizes, sizes[1:]):
        low, high = results[smaller], results[larger]
        text += "\n- Growth from %s to %s virtual hosts (x%.1f): %s." % (
            "{:,}".format(smaller), "{:,}".format(larger), larger / smaller,
            ", ".join("%s x%.2f" % (name.replace("load only", "our parse"), high[name] / low[name]) for name in low))
    return text


def compare(options: argparse.Namespace) -> int:
    """``--baseline REV``: check and apply of REV's module against the working tree's, same trees, same run."""
    load_at_start = _compare.load_average()
    results = {}
    with tempfile.TemporaryDirectory(prefix="ocsp-apache-compare-") as scratch:
        sides = _compare.prepare_sides(options.baseline, Path(scratch), "apache_stapling", options.current)
        pki = Pki.create(Path(scratch) / "pki", "http://127.0.0.1:9/")
        leaf = pki.issue_leaf("bench.test")
        chains = {str(leaf.fullchain_path): str(pki.chain_path)}
        for vhosts in options.vhosts:
            pristine = Path(scratch) / ("pristine-%d" % vhosts)
            generate(pristine, vhosts, leaf.fullchain_path, leaf.key_path)

            def measure(side: _compare.Side, kind: str) -> float:
                if kind == "check":
                    root = pristine
                else:  # each side edits its own fresh tree, so that no apply finds the other's edits done
                    root = Path(scratch) / ("work-%d-%s" % (vhosts, side.name))
                    shutil.rmtree(root, ignore_errors=True)
                    generate(root, vhosts, leaf.fullchain_path, leaf.key_path)
                return _compare.timed_change(side, kind, "apache_stapling", module_args(root, chains, check=kind == "check"))

            # One untimed pass per side: the first run byte-compiles the snapshot and warms the page cache.
            for side in sides:
                measure(side, "check")
            results[vhosts] = _compare.interleaved(options.rounds, sides, ("check", "apply"), measure)
            print(vhosts, json.dumps(_compare.medians(results[vhosts])), flush=True)
        text = _compare.report("apache_stapling", "virtual hosts", sides, ("check", "apply"), results,
                               (load_at_start, _compare.load_average()), REPO / "benchmarks" / "results" / "apache_edit_compare.json")
    _report.write_section("apache-edit-compare", text, title="apache_stapling against a git revision (make benchmark-compare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
