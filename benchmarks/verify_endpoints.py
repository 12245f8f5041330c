"""Benchmark: verify 200 endpoints in one call, against the tools people use today.

Started by `make benchmark`. 200 SNI names (100 on a bench nginx, 100 on a bench Apache, each name with
its own certificate and so its own staple) are checked, with warm caches, by:

- ``verify (module)``: the verify module run as Ansible runs it on a host (``python verify.py args.json``);
- ``verify (ansible ad hoc)``: the same through ``ansible localhost -m ocsp.stapling.verify``,
  start-up of the ansible CLI included;
- ``openssl s_client loop``: one ``openssl s_client -status`` per endpoint, one after the other;
- ``sslyze``: ``sslyze --certinfo`` over the same list (its own venv, ``BENCHMARK_PYTHON``).

Each tool runs ``--rounds`` times, the tools taking turns within each round so that the machine's load
hits them alike (median wall time, peak memory of the process tree's largest process); each must
find 200 good staples, or the run fails. The table goes to stdout, to section ``verify-endpoints`` of
BENCHMARKS.md (``_report``) and to benchmarks/results/verify_endpoints.json.
"""

from __future__ import annotations

import _report  # first: the load average at import is the start of the run

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

import _endpoints
from bench import Bench

REPO = Path(__file__).resolve().parents[1]
MODULE_TOOL = "verify (module, concurrency 32)"
ADHOC_TOOL = "verify (ansible ad hoc)"
S_CLIENT_TOOL = "openssl s_client loop"
SSLYZE_TOOL = "sslyze --certinfo"


def adhoc_run(targets: list, env: dict) -> tuple:
    ansible = str(Path(sys.executable).parent / "ansible")
    arguments = json.dumps({"targets": targets, "concurrency": 32, "retry_budget": 0})
    run = _endpoints.measured([ansible, "localhost", "-m", "ocsp.stapling.verify", "-a", arguments], env=dict(env, ANSIBLE_STDOUT_CALLBACK="oneline"))
    match = re.search(r'"summary": \{[^}]*"ok": (\d+)', run.output)
    return run, int(match.group(1)) if match else 0


def markdown(results: dict, endpoints: int, rounds: int, floor: float) -> str:
    module, adhoc = results[MODULE_TOOL]["seconds"], results[ADHOC_TOOL]["seconds"]
    lines = ["%d endpoints, %d rounds (tools taking turns), median wall time:" % (endpoints, rounds), "",
             "| tool | median wall time | peak RSS | good staples found | time / verify (module) | time / verify (ad hoc) |",
             "|---|---|---|---|---|---|"]
    for name, figures in results.items():
        lines.append("| %s | %.2f s | %.0f MiB | %d / %d | %.1fx | %.1fx |" % (
            name, figures["seconds"], figures["peak_rss_mib"], figures["good_staples"], endpoints,
            figures["seconds"] / module, figures["seconds"] / adhoc))
    lines.append("")
    s_client = results[S_CLIENT_TOOL]["seconds"]
    lines.append("- **Target \"at least 10x faster than the s_client loop\": %s, %.1fx** for the module run as Ansible runs it on a "
                 "host; %.1fx through the `ansible` CLI, whose own start-up is in that figure."
                 % ("met" if s_client / module >= 10 else "not met", s_client / module, s_client / adhoc))
    if SSLYZE_TOOL in results:
        sslyze = results[SSLYZE_TOOL]
        lines.append("- **Target \"faster than sslyze\": %s, %.1fx** (%.1fx through the CLI), with %.0f %% of sslyze's peak memory."
                     % ("met" if sslyze["seconds"] > module else "not met", sslyze["seconds"] / module, sslyze["seconds"] / adhoc,
                        100 * results[MODULE_TOOL]["peak_rss_mib"] / sslyze["peak_rss_mib"]))
    lines.append("- Per endpoint: verify (module) %.1f ms, s_client loop %.1f ms." % (1000 * module / endpoints, 1000 * s_client / endpoints))
    lines.append("- Peak RSS: the largest process of each tool, measured from a launcher of %.0f MiB, the floor of every figure "
                 "(`_endpoints.measured`)." % floor)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    bench_python = os.environ.get("BENCHMARK_PYTHON")
    env = _endpoints.collection_env()

    with tempfile.TemporaryDirectory(prefix="ocsp-bench-") as folder, Bench(Path(folder)) as bench:
        targets = _endpoints.start_pair(bench, options.endpoints)[2]
        _endpoints.warm(targets, Path(folder), env)
        tools = {
            MODULE_TOOL: lambda: _endpoints.verify_module(targets, Path(folder), env),
            ADHOC_TOOL: lambda: adhoc_run(targets, env),
            S_CLIENT_TOOL: lambda: _endpoints.s_client_loop(targets, env),
        }
        if bench_python:
            tools[SSLYZE_TOOL] = lambda: _endpoints.sslyze(targets, Path(folder), bench_python, env)
        runs = {name: [] for name in tools}
        for _round in range(options.rounds):
            for name, tool in tools.items():
                runs[name].append(tool())
        results = {}
        for name, rounds in runs.items():
            results[name] = {
                "seconds": round(statistics.median(run.seconds for run, good in rounds), 3),
                "peak_rss_mib": round(max(run.peak_rss_mib for run, good in rounds), 1),
                "good_staples": min(good for run, good in rounds),
                "rounds": [round(run.seconds, 3) for run, good in rounds],
            }
            figures = results[name]
            print("%-34s %8.3f s  %7.1f MiB  %d/%d good" % (name, figures["seconds"], figures["peak_rss_mib"], figures["good_staples"], len(targets)),
                  flush=True)

    text = markdown(results, len(targets), options.rounds, _endpoints.launcher_floor_mib())
    print("\n" + text)
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "verify_endpoints.json").write_text(json.dumps(
        {"endpoints": len(targets), "rounds": options.rounds, "results": results}, indent=2))
    if not all(figures["good_staples"] == len(targets) for figures in results.values()):
        print("a tool missed staples: BENCHMARKS.md left as it is", file=sys.stderr)
        return 1
    _report.write_section("verify-endpoints", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
