"""Benchmark: verify 2,000 endpoints at 0 ms and 50 ms of added round trip, against sslyze and the s_client loop.

Started by `make benchmark`. What is measured (issue 16, item 3):

- The endpoints: ``--hosts`` loopback addresses (127.0.1.1, 127.0.1.2, ...: 100 "hosts") x ``--names``
  SNI names each (20), so 2,000 endpoints, each name with its own certificate and staple. One bench
  nginx (one worker) serves the 2,000 names on 127.0.0.1; a delaying proxy of the bench
  (``tests/bench/delay_proxy.py``, its own process) listens on the 100 addresses and forwards to it,
  adding the round trip (half each way, plus one round trip for the TCP connect). The kernel here has
  no netem, hence the proxy. 0 ms goes through the same proxy with no delay, so that only the
  distance differs between the two.
- The tools, taking turns at each distance: the verify module as Ansible runs it on a host, at the
  audit's concurrency (32) and at ``--high-concurrency``; ``sslyze --certinfo`` (its defaults: 10
  servers at once, 5 connections each); the ``openssl s_client`` loop, one endpoint after the other.
  The loop is timed on every ``--sample``-th endpoint only (200 of 2,000 by default) and its time
  for all endpoints is extrapolated linearly: the table says so.
- Peak memory: the largest RSS of each tool's processes (``wait4``).
- The machine's limit: verify with no proxy at ``--high-concurrency``, with the CPU time of verify,
  nginx and the proxy, so the handshakes per second with the CPU saturated are stated beside the figures.

Every tool must see a good staple at every endpoint it checked. The table goes to stdout, to section
``verify-distance`` of BENCHMARKS.md and to benchmarks/results/verify_distance.json.
"""

from __future__ import annotations

import _report  # first: the load average at import is the start of the run

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _endpoints
from bench import Bench
from bench.delay_proxy import DelayProxy
from bench.servers import Site

REPO = Path(__file__).resolve().parents[1]


def proxy_cpu_seconds(proxy: DelayProxy) -> float:
    stat = Path("/proc/%d/stat" % proxy.pid).read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100, help="loopback addresses, 127.0.1.1 on")
    parser.add_argument("--names", type=int, default=20, help="SNI names per address")
    parser.add_argument("--rtts", type=float, nargs="+", default=[0.0, 50.0], help="added round trips, in ms")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sample", type=int, default=10, help="the s_client loop checks every N-th endpoint")
    parser.add_argument("--high-concurrency", type=int, default=128)
    options = parser.parse_args()
    if options.hosts > 250:
        parser.error("--hosts: at most 250 (127.0.1.1 to 127.0.1.250)")
    bench_python = os.environ.get("BENCHMARK_PYTHON")
    if not bench_python:
        parser.error("BENCHMARK_PYTHON must name the interpreter of .venv-benchmarks (make benchmark sets it)")
    env = _endpoints.collection_env()
    addresses = ["127.0.1.%d" % (number + 1) for number in range(options.hosts)]
    endpoints = options.hosts * options.names
    results: dict = {"distances": {}, "launcher_floor_mib": _endpoints.launcher_floor_mib()}

    with tempfile.TemporaryDirectory(prefix="ocsp-distance-bench-") as scratch, Bench(Path(scratch)) as bench:
        folder = Path(scratch)
        names = ["site%04d.test" % index for index in range(endpoints)]
        started = time.monotonic()
        leaves = _endpoints.issue(bench, names)
        nginx = bench.nginx([Site(name, leaf, default=not index) for index, (name, leaf) in enumerate(zip(names, leaves))])
        nginx.start()
        direct = [{"host": "127.0.0.1", "port": nginx.port, "server_name": name} for name in names]
        _endpoints.warm(direct, folder, env)
        print("bench of %d endpoints ready in %.0f s" % (endpoints, time.monotonic() - started), flush=True)

        # The machine's limit: no proxy, many handshakes at once, CPU time of each side.
        server_before = _endpoints.server_cpu_seconds(nginx)
        run, good = _endpoints.verify_module(direct, folder, env, concurrency=options.high_concurrency)
        server_cpu = _endpoints.server_cpu_seconds(nginx) - server_before
        results["limit"] = {"seconds": run.seconds, "good": good, "verify_cpu": run.cpu_seconds, "server_cpu": server_cpu,
                            "peak_rss_mib": run.peak_rss_mib}
        print("limit: %s" % json.dumps(results["limit"]), flush=True)

        for rtt_ms in options.rtts:
            with DelayProxy(addresses, upstream=("127.0.0.1", nginx.port), rtt=rtt_ms / 1000) as proxy:
                targets = [{"host": addresses[index // options.names], "port": proxy.port, "server_name": name} for index, name in enumerate(names)]
                sample = targets[::options.sample]
                tools = {
                    "verify (module, concurrency 32)": lambda: _endpoints.verify_module(targets, folder, env, concurrency=32),
                    "verify (module, concurrency %d)" % options.high_concurrency:
                        lambda: _endpoints.verify_module(targets, folder, env, concurrency=options.high_concurrency),
                    "sslyze --certinfo": lambda: _endpoints.sslyze(targets, folder, bench_python, env),
                    "openssl s_client loop": lambda: _endpoints.s_client_loop(sample, env),
                }
                runs: dict = {name: [] for name in tools}
                for _round in range(options.rounds):
                    for name, tool in tools.items():
                        proxy_before = proxy_cpu_seconds(proxy)
                        run, good = tool()
                        runs[name].append((run, good, proxy_cpu_seconds(proxy) - proxy_before))
                        print("%5.0f ms  %-34s %8.2f s  %6.1f MiB  %d good  (proxy CPU %.1f s)"
                              % (rtt_ms, name, run.seconds, run.peak_rss_mib, good, runs[name][-1][2]), flush=True)
                if proxy.errors():
                    print("delay proxy stderr:\n" + proxy.errors()[-2000:], file=sys.stderr)
            distance = {}
            for name, rounds in runs.items():
                checked = len(sample) if name == "openssl s_client loop" else endpoints
                seconds = statistics.median(run.seconds for run, good, proxy_cpu in rounds)
                distance[name] = {"checked": checked, "seconds": seconds, "for_all": seconds * endpoints / checked,
                                  "peak_rss_mib": max(run.peak_rss_mib for run, good, proxy_cpu in rounds),
                                  "good": min(good for run, good, proxy_cpu in rounds),
                                  "cpu_seconds": statistics.median(run.cpu_seconds for run, good, proxy_cpu in rounds),
                                  "proxy_cpu_seconds": statistics.median(proxy_cpu for run, good, proxy_cpu in rounds),
                                  "rounds": [run.seconds for run, good, proxy_cpu in rounds]}
            results["distances"][rtt_ms] = distance

    text = markdown(results, options, endpoints)
    print("\n" + text)
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "verify_distance.json").write_text(json.dumps(results, indent=2))
    complete = results["limit"]["good"] == endpoints and all(
        figures["good"] == figures["checked"] for distance in results["distances"].values() for figures in distance.values())
    if not complete:
        print("a tool missed staples: BENCHMARKS.md left as it is", file=sys.stderr)
        return 1
    _report.write_section("verify-distance", text, title="verify at a distance: 2,000 endpoints at 0 and 50 ms of round trip (issue 16)")
    return 0


def markdown(results: dict, options: argparse.Namespace, endpoints: int) -> str:
    ours = "verify (module, concurrency 32)"
    high = "verify (module, concurrency %d)" % options.high_concurrency
    lines = ["%d endpoints: %d loopback addresses x %d SNI names, one nginx behind the bench's delaying proxy; %d round%s per distance "
             "(tools taking turns), median. The s_client loop checks one endpoint in %d (%d of %d); its time for all %d is that "
             "time x %d (extrapolated, marked *)." % (endpoints, options.hosts, options.names, options.rounds, "s" if options.rounds > 1 else "",
                                                      options.sample, -(-endpoints // options.sample), endpoints, endpoints, options.sample),
             "",
             "| added round trip | tool | endpoints checked | wall time | time for %d | peak RSS | CPU time | proxy CPU | good staples | time / verify (32) |"
             % endpoints,
             "|---|---|---|---|---|---|---|---|---|---|"]
    for rtt_ms, distance in results["distances"].items():
        base = distance[ours]["for_all"]
        for name, figures in distance.items():
            extrapolated = figures["checked"] != endpoints
            lines.append("| %.0f ms | %s | %d | %.2f s | %.1f s%s | %.0f MiB | %.1f s | %.1f s | %d / %d | %.1fx%s |" % (
                rtt_ms, name, figures["checked"], figures["seconds"], figures["for_all"], "*" if extrapolated else "",
                figures["peak_rss_mib"], figures["cpu_seconds"], figures["proxy_cpu_seconds"], figures["good"], figures["checked"],
                figures["for_all"] / base, "*" if extrapolated else ""))
    lines.append("")
    far = max(results["distances"])
    distance = results["distances"][far]
    s_client, sslyze = distance["openssl s_client loop"]["for_all"], distance["sslyze --certinfo"]["for_all"]
    for name in (ours, high):
        mine = distance[name]["for_all"]
        lines.append("- At %.0f ms, %s: **%.1fx the s_client loop** (goal 10x: %s; extrapolated from the sample) and **%.1fx sslyze** (goal 3x: %s)."
                     % (far, name, s_client / mine, "met" if s_client / mine >= 10 else "not met", sslyze / mine, "met" if sslyze / mine >= 3 else "not met"))
    peak = max(figures[name]["peak_rss_mib"] for figures in results["distances"].values() for name in (ours, high))
    lines.append("- **Peak memory of verify: %.0f MiB** for %d endpoints (goal under 100 MiB: %s); peak RSS is the largest process of each "
                 "tool, measured from a launcher of %.0f MiB, the floor of every figure (`_endpoints.measured`)."
                 % (peak, endpoints, "met" if peak < 100 else "not met", results["launcher_floor_mib"]))
    for rtt_ms, figures in results["distances"].items():
        lines.append("- At %.0f ms: verify (32) %.0f handshakes/s, verify (%d) %.0f/s, sslyze %.0f endpoints/s, s_client loop %.1f/s."
                     % (rtt_ms, endpoints / figures[ours]["seconds"], options.high_concurrency, endpoints / figures[high]["seconds"],
                        endpoints / figures["sslyze --certinfo"]["seconds"],
                        figures["openssl s_client loop"]["checked"] / figures["openssl s_client loop"]["seconds"]))
    limit = results["limit"]
    per_handshake = (limit["verify_cpu"] + limit["server_cpu"]) / endpoints
    cores = len(os.sched_getaffinity(0))
    lines.append("- **This machine's limit**: with no proxy, verify at concurrency %d checked %d endpoints in %.2f s, **%.0f handshakes/s** "
                 "(with the load above); it used %.2f ms of CPU per endpoint (handshake and staple evaluation) and nginx %.2f ms, so "
                 "the work kept %.0f %% of the %d cores busy. With the CPU saturated by this work alone, the %d cores would give about "
                 "**%.0f handshakes/s** (%d cores / %.2f ms), and each core given to verify about %.0f/s."
                 % (options.high_concurrency, endpoints, limit["seconds"], endpoints / limit["seconds"], 1000 * limit["verify_cpu"] / endpoints,
                    1000 * limit["server_cpu"] / endpoints, 100 * (limit["verify_cpu"] + limit["server_cpu"]) / limit["seconds"] / cores, cores,
                    cores, cores / per_handshake, cores, 1000 * per_handshake, endpoints / limit["verify_cpu"]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
