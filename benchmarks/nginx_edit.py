"""Benchmark: nginx_stapling on a generated tree of 2,000 server blocks in 200 files, against crossplane.

Started by `make benchmark`. For N = 2,000 and 4,000 server blocks (10 per file), it measures, in the same run:

- ``nginx_stapling check``: the module run as Ansible runs it on a host (``python nginx_stapling.py
  args.json``) in check mode: parse every file, follow the include glob, plan every edit, build the diff;
- ``nginx_stapling apply``: the same run applying the edits (lock, backups, atomic writes; the server
  test is ``true`` so that nginx's own time is not counted);
- ``crossplane parse``: ``crossplane parse`` of the same tree (its own venv, ``BENCHMARK_PYTHON``), which
  only parses;
- the in-process figures of both parsers (load only), without interpreter start-up.

The median of ``--rounds`` runs is reported; the ratios show whether the module is no slower than
crossplane and whether its time grows linearly when the tree doubles.

With ``--baseline REV`` (``make benchmark-compare BASELINE=REV``) it instead times the module of git revision
REV against the working tree's (or ``--current REV2``'s), check and apply, interleaved round by round in the same run (see
``_compare.py``), and reports both medians and the ratio current / baseline; crossplane is not run then.
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

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "plugins" / "modules" / "nginx_stapling.py"

SERVER = """
# site {index}: {name}
server {{
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name {name} www.{name};
    ssl_certificate /etc/ssl/sites/{name}.pem;
    ssl_certificate_key /etc/ssl/private/{name}.key;
    location / {{
        try_files $uri $uri/ =404;
        if ($http_user_agent ~* "bot;{{1,3}}") {{ return 403; }}
    }}
    location /api {{ proxy_pass http://127.0.0.1:8080; }}
}}
"""


def generate(folder: Path, servers: int, per_file: int = 10) -> dict:
    """The tree and the chains mapping (every certificate gets a chain) for ``servers`` server blocks."""
    (folder / "sites").mkdir(parents=True)
    (folder / "nginx.conf").write_text("events {}\nhttp {\n    resolver 127.0.0.1;\n    include %s/sites/*.conf;\n}\n" % folder)
    chains = {}
    for number in range(servers // per_file):
        blocks = []
        for offset in range(per_file):
            index = number * per_file + offset
            name = "site%05d.test" % index
            blocks.append(SERVER.format(index=index, name=name))
            chains["/etc/ssl/sites/%s.pem" % name] = "/etc/ssl/ocsp-stapling/%s.chain.pem" % name
        (folder / "sites" / ("%03d.conf" % number)).write_text("".join(blocks))
    return chains


def timed(argv: list, env: dict) -> float:
    started = time.monotonic()
    completed = subprocess.run(argv, env=env, check=False, capture_output=True, text=True)
    if completed.returncode:
        raise SystemExit("%s failed (status %d):\n%s" % (" ".join(argv), completed.returncode, (completed.stdout + completed.stderr)[-3000:]))
    return time.monotonic() - started


def module_args(folder: Path, chains: dict, check: bool) -> dict:
    # Options that the module accepts both before and after the issue 12 refactor, so --baseline can pass them as they are.
    return {"conf_path": str(folder / "nginx.conf"), "chains": chains, "test_command": ["true"], "_ansible_check_mode": check,
            "lock_path": str(folder.parent / "lock"), "_ansible_diff": True}


def module_run(folder: Path, chains: dict, env: dict, check: bool) -> float:
    args = folder.parent / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args(folder, chains, check)}))
    return timed([sys.executable, str(MODULE), str(args)], env)


def fresh_copy(pristine: Path, work: Path) -> None:
    """``work`` as an unedited copy of ``pristine``, its include glob pointing at its own sites."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pristine, work)
    (work / "nginx.conf").write_text((pristine / "nginx.conf").read_text().replace(str(pristine), str(work)))
    # Written back before the timing, as a server's configuration long is: otherwise the apply's first fsync
    # would also pay for this copy's 200 files, which the check (on the pristine tree) does not.
    os.sync()


def in_process_load(folder: Path, env: dict) -> float:
    code = ("import time, sys; from ansible_collections.ocsp.stapling.plugins.module_utils._nginx import NginxConfig; "
            "from ansible_collections.ocsp.stapling.plugins.module_utils._configtext import read_text; "
            "s = time.perf_counter(); NginxConfig.load(sys.argv[1], reader=read_text); print(time.perf_counter() - s)")
    return float(subprocess.run([sys.executable, "-c", code, str(folder / "nginx.conf")], env=env, check=True, capture_output=True, text=True).stdout)


def crossplane_in_process(folder: Path, bench_python: str) -> float:
    code = "import time, sys, crossplane; s = time.perf_counter(); crossplane.parse(sys.argv[1]); print(time.perf_counter() - s)"
    return float(subprocess.run([bench_python, "-c", code, str(folder / "nginx.conf")], check=True, capture_output=True, text=True).stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", help="also time the module of this git revision, interleaved with the working tree's")
    parser.add_argument("--current", metavar="REV", help="with --baseline: time this git revision instead of the working tree")
    options = parser.parse_args()
    if options.baseline:
        return compare(options)
    bench_python = os.environ.get("BENCHMARK_PYTHON")
    if not bench_python:
        parser.error("BENCHMARK_PYTHON must name the interpreter of .venv-benchmarks (make benchmark sets it)")
    crossplane = str(Path(bench_python).parent / "crossplane")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("ANSIBLE_COLLECTIONS_PATH"), os.environ.get("PYTHONPATH")])))
    results = {}
    with tempfile.TemporaryDirectory(prefix="ocsp-nginx-bench-") as scratch:
        for servers in options.servers:
            pristine = Path(scratch) / ("pristine-%d" % servers)
            chains = generate(pristine, servers)
            work = Path(scratch) / ("work-%d" % servers)
            rows = {"nginx_stapling check": [], "nginx_stapling apply": [], "crossplane parse": [],
                    "load only (in process)": [], "crossplane.parse (in process)": []}
            for _round in range(options.rounds):
                rows["nginx_stapling check"].append(module_run(pristine, chains, env, check=True))
                fresh_copy(pristine, work)
                rows["nginx_stapling apply"].append(module_run(work, chains, env, check=False))
                rows["crossplane parse"].append(timed([crossplane, "parse", "-o", os.devnull, str(pristine / "nginx.conf")], env))
                rows["load only (in process)"].append(in_process_load(pristine, env))
                rows["crossplane.parse (in process)"].append(crossplane_in_process(pristine, bench_python))
            results[servers] = {name: round(statistics.median(values), 4) for name, values in rows.items()}
            print(servers, json.dumps(results[servers]), flush=True)

    text = markdown(results, options.servers, options.rounds)
    print("\n" + text)
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "nginx_edit.json").write_text(json.dumps(results, indent=2))
    _report.write_section("nginx-edit", text)
    return 0


def markdown(results: dict, sizes: list, rounds: int) -> str:
    headers = ["server blocks", "nginx_stapling check", "nginx_stapling apply", "apply / check", "crossplane parse (CLI)",
               "our parse (in process)", "crossplane.parse (in process)", "check / crossplane parse (CLI)", "our parse / crossplane.parse"]
    rows = []
    for servers in sizes:
        row = results[servers]
        rows.append(["{:,}".format(servers), "%.3f s" % row["nginx_stapling check"], "%.3f s" % row["nginx_stapling apply"],
                     "%.2fx" % (row["nginx_stapling apply"] / row["nginx_stapling check"]), "%.3f s" % row["crossplane parse"],
                     "%.3f s" % row["load only (in process)"], "%.3f s" % row["crossplane.parse (in process)"],
                     "%.2fx" % (row["nginx_stapling check"] / row["crossplane parse"]),
                     "%.2fx" % (row["load only (in process)"] / row["crossplane.parse (in process)"])])
    text = "Median of %d rounds.\n\n" % rounds + _report.table(headers, rows)
    first = results[sizes[0]]
    text += "\n\n- **Parsing: %.1fx faster than crossplane** (in process, same tree, %s blocks)." % (
        first["crossplane.parse (in process)"] / first["load only (in process)"], "{:,}".format(sizes[0]))
    text += "\n- **Apply / check: %s** (issue 16's goal: at most 1.3x)." % ", ".join(
        "%.2fx at %s blocks" % (results[servers]["nginx_stapling apply"] / results[servers]["nginx_stapling check"], "{:,}".format(servers))
        for servers in sizes)
    for smaller, larger in zip(sizes, sizes[1:]):
        low, high = results[smaller], results[larger]
        text += "\n- Growth from %s to %s blocks (x%.1f): %s." % (
            "{:,}".format(smaller), "{:,}".format(larger), larger / smaller,
            ", ".join("%s x%.2f" % (name.replace("load only", "our parse"), high[name] / low[name]) for name in low))
    return text


def compare(options: argparse.Namespace) -> int:
    """``--baseline REV``: check and apply of REV's module against the working tree's, same trees, same run."""
    load_at_start = _compare.load_average()
    results = {}
    with tempfile.TemporaryDirectory(prefix="ocsp-nginx-compare-") as scratch:
        sides = _compare.prepare_sides(options.baseline, Path(scratch), "nginx_stapling", options.current)
        for servers in options.servers:
            pristine = Path(scratch) / ("pristine-%d" % servers)
            chains = generate(pristine, servers)

            def measure(side: _compare.Side, kind: str) -> float:
                if kind == "check":
                    folder = pristine
                else:  # each side edits its own fresh copy, so that no apply finds the other's edits done
                    folder = Path(scratch) / ("work-%d-%s" % (servers, side.name))
                    fresh_copy(pristine, folder)
                return _compare.timed_change(side, kind, "nginx_stapling", module_args(folder, chains, check=kind == "check"))

            # One untimed pass per side: the first run byte-compiles the snapshot and warms the page cache.
            for side in sides:
                measure(side, "check")
            results[servers] = _compare.interleaved(options.rounds, sides, ("check", "apply"), measure)
            print(servers, json.dumps(_compare.medians(results[servers])), flush=True)
        text = _compare.report("nginx_stapling", "server blocks", sides, ("check", "apply"), results,
                               (load_at_start, _compare.load_average()), REPO / "benchmarks" / "results" / "nginx_edit_compare.json")
    _report.write_section("nginx-edit-compare", text, title="nginx_stapling against a git revision (make benchmark-compare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
