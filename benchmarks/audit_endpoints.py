"""Benchmark: the audit of the 200-endpoint bench, against the enable role's verify step and sslyze, in one run.

Started by `make benchmark`. The bench is the one of ``verify_endpoints.py``: 200 SNI names, each with
its own certificate and staple, 100 on a bench nginx and 100 on a bench Apache, on 127.0.0.1; in the
inventory they are two hosts (``web-nginx``, ``web-apache``, local connection), every cache warm.
Timed, taking turns within each round:

- ``audit``: ``ansible-playbook playbooks/audit.yml`` with every report (JSON, table, JUnit,
  OpenMetrics, HTML): detection on each host, the preflight of every certificate, one verify call for
  all 200 sites, the rows and the reports. Every row must say ``ok``.
- ``enable role's verify step``: ``ansible-playbook benchmarks/verify_step.yml``: the step
  ``roles/preflight/tasks/verify.yml`` alone, one verify call per host delegated to the controller,
  on the site records that server_info returned (read before the timing).
- ``audit's verify call (module)``: the one verify call of the audit (its concurrency, retry budget
  and timeout), run as Ansible runs a module (``python verify.py args.json``), without Ansible around it.
- ``sslyze --certinfo`` over the same 200 endpoints (``BENCHMARK_PYTHON``).

Each must see 200 good staples (``ok`` rows for the audit). The table goes to stdout, to section
``audit-endpoints`` of BENCHMARKS.md and to benchmarks/results/audit_endpoints.json.
"""

from __future__ import annotations

import _report  # first: the load average at import is the start of the run

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _endpoints
from bench import Bench
from bench.layouts import apache_variables, nginx_variables, write_inventory

REPO = Path(__file__).resolve().parents[1]
AUDIT = REPO / "playbooks" / "audit.yml"
VERIFY_STEP = REPO / "benchmarks" / "verify_step.yml"
SERVER_INFO = REPO / "plugins" / "modules" / "server_info.py"
AUDIT_TOOL = "audit (ansible-playbook playbooks/audit.yml)"
STEP_TOOL = "enable role's verify step (ansible-playbook)"
CALL_TOOL = "audit's verify call alone (module)"
SSLYZE_TOOL = "sslyze --certinfo"


def server_info(args: dict, folder: Path, env: dict) -> dict:
    """server_info's result for one server, run as Ansible runs it on the host, with the audit's options."""
    path = folder / "server-info-args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, read_certificates=True)}))
    completed = subprocess.run([sys.executable, str(SERVER_INFO), str(path)], env=env, check=True, capture_output=True, text=True)
    result = json.loads(completed.stdout)
    return {"sites": result["sites"], "certificates": result["certificates"]}


def ansible_playbook(argv: list, env: dict) -> _endpoints.Run:
    return _endpoints.measured([str(Path(sys.executable).parent / "ansible-playbook"), *argv], env=dict(env, ANSIBLE_NOCOLOR="1"))


def audit_run(inventory: Path, reports: Path, env: dict, task_times: list) -> tuple:
    times = reports.parent / "task-times.json"
    profiled = dict(env, ANSIBLE_CALLBACK_PLUGINS=str(REPO / "benchmarks" / "callback_plugins"), ANSIBLE_CALLBACKS_ENABLED="task_times",
                    BENCHMARK_TASK_TIMES=str(times))
    run = ansible_playbook(["-i", str(inventory), str(AUDIT), "-e", "audit_report_dir=%s" % reports], profiled)
    task_times.append(json.loads(times.read_text()))
    try:
        rows = json.loads((reports / "audit.json").read_text())["rows"]
    except (OSError, ValueError, KeyError):
        raise SystemExit("the audit wrote no report:\n" + run.output[-3000:]) from None
    (reports / "audit.json").unlink()
    return run, sum(row["status"] == "ok" for row in rows)


def verify_step_run(inventory: Path, env: dict) -> tuple:
    # The oneline callback prints every task's result as one line of JSON: each host's verify result holds its summary.
    run = ansible_playbook(["-i", str(inventory), str(VERIFY_STEP)], dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.oneline"))
    summaries = re.findall(r'"summary": \{[^}]*"ok": (\d+)', run.output)
    if len(summaries) != 2:
        raise SystemExit("the verify step did not give one verify result per host:\n" + run.output[-3000:])
    return run, sum(int(ok) for ok in summaries)


def markdown(results: dict, endpoints: int, rounds: int, task_times: list) -> str:
    audit = results[AUDIT_TOOL]["seconds"]
    lines = ["%d endpoints on 2 hosts, %d rounds (tools taking turns), median wall time:" % (endpoints, rounds), "",
             "| tool | median wall time | peak RSS | good staples found | time / audit |", "|---|---|---|---|---|"]
    for name, figures in results.items():
        lines.append("| %s | %.2f s | %.0f MiB | %d / %d | %.2fx |" % (
            name, figures["seconds"], figures["peak_rss_mib"], figures["good_staples"], endpoints, figures["seconds"] / audit))
    step, call = results[STEP_TOOL]["seconds"], results[CALL_TOOL]["seconds"]
    lines += ["", "- **The whole audit takes %.2fx the enable role's verify step** on the same endpoints (%.2f s against %.2f s): "
              "the audit adds detection on each host, the preflight of every certificate, the rows and five reports, "
              "and verifies all sites in one call where the step makes one call per host." % (audit / step, audit, step),
              "- Of the audit's %.2f s, its verify call alone, without Ansible, takes %.2f s (%.0f %%)." % (audit, call, 100 * call / audit)]
    if SSLYZE_TOOL in results:
        sslyze = results[SSLYZE_TOOL]["seconds"]
        lines.append("- **Against sslyze: the audit takes %.2fx sslyze's time** (%s), and the audit's verify call %.2fx; "
                     "sslyze reports the status of each staple, the audit judges the site, its certificate and the staple and writes the reports."
                     % (audit / sslyze, "faster" if audit < sslyze else "slower", call / sslyze))
    # Where the audit's time goes: each task's median over the rounds (task_times: one {task: seconds} per round).
    tasks = {name: statistics.median(times.get(name, 0.0) for times in task_times) for name in task_times[0]}
    total = sum(tasks.values())
    slowest = sorted(tasks.items(), key=lambda item: -item[1])[:6]
    lines.append("- Where the audit's time goes (each task's wall time, start to the next task's start, median of the rounds; "
                 "`benchmarks/callback_plugins/task_times.py`): " + "; ".join(
                     "%s %.2f s (%.0f %%)" % (name.split(" : ", 1)[-1], seconds, 100 * seconds / total) for name, seconds in slowest)
                 + "; the rest %.2f s." % (total - sum(seconds for name, seconds in slowest)))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    bench_python = os.environ.get("BENCHMARK_PYTHON")
    env = _endpoints.collection_env()

    with tempfile.TemporaryDirectory(prefix="ocsp-audit-bench-") as scratch, Bench(Path(scratch)) as bench:
        folder = Path(scratch)
        nginx, apache, targets = _endpoints.start_pair(bench, options.endpoints)
        _endpoints.warm(targets, folder, env)
        hosts = {"web-nginx": nginx_variables(bench, nginx, folder / "state"), "web-apache": apache_variables(bench, apache, folder / "state")}
        ca_bundles = [str(bench.pki.root_cert_path)]
        hosts["web-nginx"]["bench_server_info"] = server_info(
            {"server": "nginx", "nginx_conf": str(nginx.conf_path), "ca_bundles": ca_bundles}, folder, env)
        hosts["web-apache"]["bench_server_info"] = server_info(
            {"server": "apache", "apache_conf": str(apache.conf_path), "ca_bundles": ca_bundles}, folder, env)
        for variables in hosts.values():
            variables["bench_verify_retry_budget"] = 10  # what the audit passes (audit_verify_retry_budget); nothing is retried warm
        inventory = write_inventory(folder / "inventory.yml", hosts)
        # The audit's verify call, with the audit's own options (roles/audit/defaults/main.yml).
        call_targets = [dict(target, expected_certificates=[]) for target in targets]
        task_times: list = []

        tools = {
            AUDIT_TOOL: lambda: audit_run(inventory, folder / "reports", env, task_times),
            STEP_TOOL: lambda: verify_step_run(inventory, env),
            CALL_TOOL: lambda: _endpoints.verify_module(call_targets, folder, env, concurrency=32, retry_budget=10, timeout=5, report_only=True),
        }
        if bench_python:
            tools[SSLYZE_TOOL] = lambda: _endpoints.sslyze(targets, folder, bench_python, env)
        runs = {name: [] for name in tools}
        for _round in range(options.rounds):
            for name, tool in tools.items():
                runs[name].append(tool())
                run, good = runs[name][-1]
                print("%-46s %7.3f s  %6.1f MiB  %d/%d good" % (name, run.seconds, run.peak_rss_mib, good, len(targets)), flush=True)
    results = {name: {"seconds": round(statistics.median(run.seconds for run, good in rounds), 3),
                      "peak_rss_mib": round(max(run.peak_rss_mib for run, good in rounds), 1),
                      "good_staples": min(good for run, good in rounds),
                      "rounds": [round(run.seconds, 3) for run, good in rounds]} for name, rounds in runs.items()}
    text = markdown(results, len(targets), options.rounds, task_times)
    print("\n" + text)
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "audit_endpoints.json").write_text(json.dumps(
        {"endpoints": len(targets), "rounds": options.rounds, "results": results}, indent=2))
    if not all(figures["good_staples"] == len(targets) for figures in results.values()):
        print("a tool missed staples: BENCHMARKS.md left as it is", file=sys.stderr)
        return 1
    _report.write_section("audit-endpoints", text, title="The audit of 200 endpoints against the enable role's verify step and sslyze (issue 14)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
