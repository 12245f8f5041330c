"""What the endpoint benchmarks share: the bench of stapling sites, and each tool that checks them, timed.

``verify_endpoints.py`` (200 endpoints), ``audit_endpoints.py`` (the audit of the same 200) and
``verify_distance.py`` (2,000 endpoints behind a delaying proxy) run the same tools the same way:

- ``verify_module``: the verify module as Ansible runs it on a host (``python verify.py args.json``);
- ``s_client_loop``: one ``openssl s_client -status`` per endpoint, one after the other, as an operator writes it;
- ``sslyze``: ``sslyze --certinfo`` over the same list (its own venv, ``BENCHMARK_PYTHON``).

Each returns a ``Run`` (wall time, peak RSS of the largest process waited for, output) and the number
of good staples it saw, which the scripts compare with the number of endpoints: a tool that misses
staples is not measuring the same thing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import Bench
from bench.servers import ApacheServer, NginxServer, Site

REPO = Path(__file__).resolve().parents[1]
VERIFY = REPO / "plugins" / "modules" / "verify.py"


@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    output: str
    cpu_seconds: float = 0.0  # user + system time of the process and its waited-for children


def collection_env() -> dict:
    """The environment of every tool: the collection importable as ``ansible_collections.ocsp.stapling``."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("ANSIBLE_COLLECTIONS_PATH"), os.environ.get("PYTHONPATH")])))


# Started between the benchmark and each tool, because Linux's peak RSS of a child carries the high-water mark of the
# process it was forked from: the benchmark itself holds thousands of certificates and sslyze's JSON, so its children
# would all report at least its size. This launcher is small (about 10 MiB, the floor of every figure, see
# launcher_floor_mib); it times the tool, waits for it and writes wall time, peak RSS (KiB), CPU seconds and status.
LAUNCHER = """import json, os, sys, time
started = time.monotonic()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
status, usage = os.wait4(pid, 0)[1:]
elapsed = time.monotonic() - started
with open(sys.argv[1], "w") as stream:
    json.dump([elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)], stream)
"""


def measured(argv: list, env: dict | None = None, stdin_text: str | None = None) -> Run:
    """Run argv; return its wall time, the peak RSS of its largest waited-for process, its CPU time and its output."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile(suffix=".json") as figures:
        stdin = subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL
        with subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, figures.name, *argv],
                              stdin=stdin, stdout=out, stderr=subprocess.STDOUT, env=env) as process:
            if stdin_text is not None:
                process.stdin.write(stdin_text.encode())
                process.stdin.close()
        if process.returncode != 0:
            out.seek(0)
            raise SystemExit("the launcher of %s failed: %s" % (argv[0], out.read().decode(errors="replace")[-2000:]))
        elapsed, max_rss_kib, cpu_seconds, _status = json.loads(Path(figures.name).read_text())
        out.seek(0)
        return Run(elapsed, max_rss_kib / 1024, out.read().decode(errors="replace"), cpu_seconds)


def launcher_floor_mib() -> float:
    """The peak RSS the launcher reports for a tool that needs next to nothing (``true``): no figure can be below it."""
    return measured(["true"]).peak_rss_mib


def issue(bench: Bench, names: list) -> list:
    """One certificate per name, so that every endpoint has a staple of its own."""
    return [bench.issue(name) for name in names]


def start_pair(bench: Bench, count: int) -> tuple:
    """The 200-endpoint bench: ``count`` names, half on one bench nginx, half on one bench Apache, all on 127.0.0.1.

    Returns (nginx, apache, targets), the servers started.
    """
    half = count // 2
    names = ["site%03d.test" % index for index in range(count)]
    leaves = issue(bench, names)
    nginx = bench.nginx([Site(name, leaf, default=not index) for index, (name, leaf) in enumerate(zip(names[:half], leaves[:half]))])
    apache = bench.apache([Site(name, leaf, default=not index) for index, (name, leaf) in enumerate(zip(names[half:], leaves[half:]))])
    nginx.start()
    apache.start()
    targets = [{"host": "127.0.0.1", "port": nginx.port, "server_name": name} for name in names[:half]]
    targets += [{"host": "127.0.0.1", "port": apache.port, "server_name": name} for name in names[half:]]
    return nginx, apache, targets


def warm(targets: list, folder: Path, env: dict) -> None:
    """Have every server fetch every staple: the peers make one handshake per endpoint and would otherwise see none."""
    args = folder / "warm-args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"targets": targets, "retry_budget": 60, "concurrency": 16}}))
    completed = subprocess.run([sys.executable, str(VERIFY), str(args)], env=env, check=False, capture_output=True, text=True)
    if "{" not in completed.stdout:
        raise SystemExit("warming the caches: the verify module gave no result (status %d):\n%s"
                         % (completed.returncode, (completed.stdout + completed.stderr)[-3000:]))
    result = json.loads(completed.stdout[completed.stdout.index("{"):])
    if result.get("summary", {}).get("ok") != len(targets):
        failed = [target["reason"] for target in result.get("targets", []) if not target.get("ok")][:5]
        raise SystemExit("warming the caches: %s of %d endpoints staple a good response; first failures: %s"
                         % (result.get("summary", {}).get("ok"), len(targets), failed))


def verify_module(targets: list, folder: Path, env: dict, concurrency: int = 32, **options) -> tuple:
    """The verify module over ``targets``; returns (Run, good staples)."""
    args = folder / "verify-args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict({"targets": targets, "concurrency": concurrency, "retry_budget": 0}, **options)}))
    run = measured([sys.executable, str(VERIFY), str(args)], env=env)
    if "{" not in run.output:
        raise SystemExit("the verify module gave no result:\n" + run.output[-3000:])
    return run, json.loads(run.output[run.output.index("{"):])["summary"]["ok"]


def s_client_loop(targets: list, env: dict) -> tuple:
    """A shell loop, as an operator would write it; it counts the good staples it saw."""
    script = "\n".join(
        "openssl s_client -connect %s:%d -servername %s -status </dev/null 2>/dev/null | grep -c 'Cert Status: good' || true" % (
            t["host"], t["port"], t["server_name"]) for t in targets)
    run = measured(["bash", "-s"], env=env, stdin_text=script)
    return run, sum(int(line) for line in run.output.split() if line.isdigit())


def sslyze(targets: list, folder: Path, bench_python: str, env: dict) -> tuple:
    """``sslyze --certinfo`` over ``targets`` (SNI name, port, address each); returns (Run, good staples)."""
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


def server_cpu_seconds(server: NginxServer | ApacheServer) -> float:
    """User + system CPU time used so far by the server's main process and its workers (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in {server.pid, *server.worker_pids()} - {None}:
        try:
            stat = Path("/proc/%d/stat" % pid).read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
