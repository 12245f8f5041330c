"""Benchmark: verify 200 endpoints in one call, against the tools people use today.

Started by `make benchmark`. 200 SNI names (100 on a bench nginx, 100 on a bench Apache, each name with
its own certificate and so its own staple) are checked, with warm caches, by:

- ``verify (module)``: the verify module run as Ansible runs it on a host (``python verify.py args.json``);
- ``verify (ansible ad hoc)``: the same through ``ansible localhost -m ocsp.stapling.verify``,
  start-up of the ansible CLI included;
- ``openssl s_client loop``: one ``openssl s_client -status`` per endpoint, one after the other;
- ``sslyze``: ``sslyze --certinfo`` over the same list (its own venv, ``BENCHMARK_PYTHON``).

Each tool runs ``--rounds`` times (median wall time, peak memory of the process tree's largest
process); each must find 200 good staples, or its figures are marked as wrong. Results go to
stdout as a Markdown table and to benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import Bench
from bench.servers import Site

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "plugins" / "modules" / "verify.py"


@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    output: str


def measured(argv: list, env: dict | None = None, stdin_text: str | None = None) -> Run:
    """Run argv; return its wall time, the peak RSS of its largest waited-for process, and its output."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        stdin = subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL
        with subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=subprocess.STDOUT, env=env) as process:
            if stdin_text is not None:
                process.stdin.write(stdin_text.encode())
                process.stdin.close()
            # Reaped here rather than by Popen, because wait4 also yields the rusage (peak RSS) of the child.
            status, usage = os.wait4(process.pid, 0)[1:]
            process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        out.seek(0)
        return Run(elapsed, usage.ru_maxrss / 1024, out.read().decode(errors="replace"))


def module_run(targets: list, folder: Path, env: dict) -> tuple:
    args = folder / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"targets": targets, "concurrency": 32, "retry_budget": 0}}))
    run = measured([sys.executable, str(MODULE), str(args)], env=env)
    return run, json.loads(run.output[run.output.index("{"):])["summary"]["ok"]


def adhoc_run(targets: list, env: dict) -> tuple:
    ansible = str(Path(sys.executable).parent / "ansible")
    arguments = json.dumps({"targets": targets, "concurrency": 32, "retry_budget": 0})
    run = measured([ansible, "localhost", "-m", "ocsp.stapling.verify", "-a", arguments], env=dict(env, ANSIBLE_STDOUT_CALLBACK="oneline"))
    match = re.search(r'"summary": \{[^}]*"ok": (\d+)', run.output)
    return run, int(match.group(1)) if match else 0


def s_client_loop(targets: list, env: dict) -> tuple:
    # A shell loop, as an operator would write it; it counts the good staples it saw.
    script = "\n".join(
        "openssl s_client -connect %s:%d -servername %s -status </dev/null 2>/dev/null | grep -c 'Cert Status: good' || true" % (
            t["host"], t["port"], t["server_name"]) for t in targets)
    run = measured(["bash", "-s"], env=env, stdin_text=script)
    return run, sum(int(line) for line in run.output.split() if line.isdigit())


def sslyze_run(targets: list, folder: Path, bench_python: str, env: dict) -> tuple:
    listing = folder / "sslyze-targets.txt"
    listing.write_text("".join("%s:%d{%s}\n" % (t["server_name"], t["port"], t["host"]) for t in targets))
    report = folder / "sslyze.json"
    run = measured([bench_python, "-m", "sslyze", "--certinfo", "--targets_in", str(listing), "--json_out", str(report), "--quiet"], env=env)
    good = 0
    for server in json.loads(report.read_text()).get("server_scan_results", []):
        certinfo = ((server.get("scan_result") or {}).get("certificate_info") or {}).get("result") or {}
        for deployment in certinfo.get("certificate_deployments", []):
            response = deployment.get("ocsp_response") or {}
            good += response.get("certificate_status") == "GOOD"
    return run, good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    bench_python = os.environ.get("BENCHMARK_PYTHON")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("ANSIBLE_COLLECTIONS_PATH"), os.environ.get("PYTHONPATH")])))

    with tempfile.TemporaryDirectory(prefix="ocsp-bench-") as folder, Bench(Path(folder)) as bench:
        half = options.endpoints // 2
        names = ["site%03d.test" % index for index in range(options.endpoints)]
        leaves = [bench.issue(name) for name in names]
        nginx = bench.nginx([Site(name, leaf, default=not index) for index, (name, leaf) in enumerate(zip(names[:half], leaves[:half]))])
        apache = bench.apache([Site(name, leaf, default=not index) for index, (name, leaf) in enumerate(zip(names[half:], leaves[half:]))])
        nginx.start()
        apache.start()
        targets = [{"host": "127.0.0.1", "port": nginx.port, "server_name": name} for name in names[:half]]
        targets += [{"host": "127.0.0.1", "port": apache.port, "server_name": name} for name in names[half:]]

        # Warm every cache first: the peers make one handshake per endpoint and would otherwise see no staple.
        warm = json.loads(json.dumps(targets))
        (Path(folder) / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"targets": warm, "retry_budget": 20}}))
        subprocess.run([sys.executable, str(MODULE), str(Path(folder) / "args.json")], env=env, check=True, capture_output=True)

        tools = {
            "verify (module, concurrency 32)": lambda: module_run(targets, Path(folder), env),
            "verify (ansible ad hoc)": lambda: adhoc_run(targets, env),
            "openssl s_client loop": lambda: s_client_loop(targets, env),
        }
        if bench_python:
            tools["sslyze --certinfo"] = lambda: sslyze_run(targets, Path(folder), bench_python, env)
        results = {}
        for name, tool in tools.items():
            rounds = [tool() for round_number in range(options.rounds)]
            results[name] = {
                "seconds": round(statistics.median(run.seconds for run, good in rounds), 3),
                "peak_rss_mib": round(max(run.peak_rss_mib for run, good in rounds), 1),
                "good_staples": min(good for run, good in rounds),
            }
            figures = results[name]
            print("%-34s %8.3f s  %7.1f MiB  %d/%d good" % (name, figures["seconds"], figures["peak_rss_mib"], figures["good_staples"], len(targets)),
                  flush=True)

    module = results["verify (module, concurrency 32)"]["seconds"]
    adhoc = results["verify (ansible ad hoc)"]["seconds"]
    print("\n| tool | median wall time | peak RSS | good staples found | time / verify (module) | time / verify (ad hoc) |")
    print("|---|---|---|---|---|---|")
    for name, figures in results.items():
        print("| %s | %.2f s | %.0f MiB | %d / %d | %.1fx | %.1fx |" % (
            name, figures["seconds"], figures["peak_rss_mib"], figures["good_staples"], len(targets),
            figures["seconds"] / module, figures["seconds"] / adhoc))
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "latest.json").write_text(json.dumps(
        {"endpoints": len(targets), "rounds": options.rounds, "results": results}, indent=2))
    return 0 if all(figures["good_staples"] == len(targets) for figures in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
