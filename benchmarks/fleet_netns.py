"""Converge and idempotent runs over SSH on fleets of 10 to 100 hosts: the enable playbook against the how-to by hand.

    make benchmark-fleet      # or: PYTHONPATH=tests python benchmarks/fleet_netns.py [--hosts 10,25,50,100] [--rtt-ms 30] [--forks 25]

Each size gets a fleet of tests/bench/netns.py: N hosts, each in its own network and mount namespace with
its own sshd, Debian's nginx (odd hosts) or Apache (even hosts) and two TLS sites with certificates of
the bench PKI, whose OCSP responder the hosts reach over the bridge. Ansible reaches every host over SSH
with pipelining and connection sharing (ControlPersist), as a real inventory is, through a proxy that adds
the round-trip time. Both sides run on the same fleet, one after the other, each on hosts put back as
they were first (the order alternates between sizes):

- ours: playbooks/enable.yml (the ocsp.stapling.enable role: one detection call per host, preflight on
  the controller, chain files and edits in one transaction with the server's test and rollback, reload,
  verification of every site from the controller), then again (the idempotent run);
- peer: benchmarks/naive_fleet.yml (copy + lineinfile + command: the how-to's steps), then again.

For each run: the wall time; the controller's CPU (user + system of ansible-playbook and every process it
started, the SSH connection masters included: benchmarks/fleet_rusage.py) per host; the remote calls per
host (SSH sessions that each host's sshd logged: one per module run, file transfer or command) and the
connections; the tasks per host (task results in the output, skipped ones included: each costs Ansible a
worker on the controller). A run fails when a playbook fails or a second run reports a change.
Nothing is asserted about time; BENCHMARKS.md gets the tables (benchmarks/_report.py).
"""

from __future__ import annotations

import _report  # first: the load average at import is the start of the run

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bench.netns import NetnsFleet  # noqa: E402 - the bench lives in tests/, put on the path just above

SIDES = {
    "ours": REPO / "playbooks" / "enable.yml",
    "naive": REPO / "benchmarks" / "naive_fleet.yml",
}
LABELS = {"ours": "ocsp.stapling.enable", "naive": "naive playbook"}
RUNS = ("converge", "idempotent")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)
HEADER = re.compile(r"^(TASK|RUNNING HANDLER) \[(.*?)\] \*+$")
RESULT = re.compile(r"^(?:ok|changed|skipping|fatal|failed|unreachable): \[([^\]\s]+)")
INCLUDED = re.compile(r"^included: .* for (.+)$")


def tasks_per_host(output: str) -> dict:
    """Per host, the names of the tasks and handlers it ran, in order (loop items count once)."""
    ran: dict = {}
    task = None
    seen: set = set()
    for line in output.splitlines():
        header = HEADER.match(line)
        if header:
            task, seen = header.group(2), set()
            continue
        if task is None:
            continue
        hosts = []
        result = RESULT.match(line)
        if result:
            hosts = [result.group(1)]
        included = INCLUDED.match(line)
        if included:
            hosts = [name.strip() for name in included.group(1).split(",")]
        for host in hosts:
            if host not in seen:
                seen.add(host)
                ran.setdefault(host, []).append(task)
    return ran


def playbook(fleet: NetnsFleet, side: str, run: str, forks: int, scratch: Path, path: Path | None = None) -> dict:
    """One ansible-playbook run, measured: wall, CPU of its whole tree, SSH sessions and tasks per host."""
    path = path or SIDES[side]
    inventory = fleet.folder / "inventory.yml"
    result_path, output_path = scratch / f"{side}-{run}.json", scratch / f"{side}-{run}.log"
    before = fleet.session_counts()
    env = fleet.ansible_env(forks)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(REPO / ".build" / "collections"))
    env["ANSIBLE_NOCOLOR"] = "1"
    command = [sys.executable, str(REPO / "benchmarks" / "fleet_rusage.py"), str(result_path), str(output_path), "--",
               str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(path)]
    # The fleet's folder holds no ansible.cfg: every setting comes from the environment above. The run has a
    # process group of its own, so that an interrupted benchmark ends all of it (ansible-playbook, its workers
    # and SSH masters) by that group's id before the fleet goes down.
    measuring = subprocess.Popen(command, cwd=fleet.folder, env=env, start_new_session=True)
    try:
        measuring.wait()
    finally:
        if measuring.poll() is None:
            os.killpg(measuring.pid, signal.SIGKILL)
            measuring.wait()
    if measuring.returncode:
        sys.exit(f"{side} {run}: the measuring wrapper failed with status {measuring.returncode}")
    measured = json.loads(result_path.read_text(encoding="utf-8"))
    output = output_path.read_text(encoding="utf-8", errors="replace")
    if measured["returncode"]:
        sys.exit(f"{side} {run} failed (status {measured['returncode']}), output in {output_path}:\n{output[-6000:]}")
    if not fleet.wait_connections_closed():
        sys.exit(f"{side} {run}: SSH connections to the fleet were still open 30 s after the run")
    after = fleet.session_counts()
    recap = {found[0]: {"ok": int(found[1]), "changed": int(found[2]), "failed": int(found[4])} for found in RECAP.findall(output)}
    hosts = len(fleet.members)
    if len(recap) != hosts:
        sys.exit(f"{side} {run}: the recap names {len(recap)} hosts, not {hosts}; output in {output_path}")
    if run == "idempotent":
        changed = {host: counts["changed"] for host, counts in recap.items() if counts["changed"]}
        if changed:
            sys.exit(f"{side}: the second run changed something: {changed}; output in {output_path}")
    ran = tasks_per_host(output)
    # The connection masters were ended by fleet_rusage.py: every host's share of the run is in its sshd's figure now.
    host_cpu = sum(after[name]["cpu"] - before[name]["cpu"] for name in after)
    sessions = [after[name]["sessions"] - before[name]["sessions"] for name in after]
    connections = [after[name]["connections"] - before[name]["connections"] for name in after]
    by_server = {}
    for host in fleet.members:
        by_server.setdefault(host.server, host.name)
    return {
        "wall": measured["wall"],
        "cpu": measured["user"] + measured["sys"],
        "user": measured["user"],
        "sys": measured["sys"],
        "host_cpu": host_cpu,
        "sessions_per_host": sum(sessions) / hosts,
        "connections_per_host": sum(connections) / hosts,
        "sessions_by_server": {server: after[name]["sessions"] - before[name]["sessions"] for server, name in by_server.items()},
        "tasks_per_host": sum(len(ran.get(host.name, [])) for host in fleet.members) / hosts,
        "tasks_by_server": {server: ran.get(name, []) for server, name in by_server.items()},
        "changed_hosts": sum(1 for counts in recap.values() if counts["changed"]),
        "load": os.getloadavg()[0],
    }


def measure(size: int, rtt_ms: float, forks: int, order: list, scratch: Path) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"fleet-{size}-", dir=scratch))
    figures: dict = {}
    started = time.perf_counter()
    with NetnsFleet(folder, hosts=size, rtt_ms=rtt_ms) as fleet:
        setup = time.perf_counter() - started
        fleet.write_inventory()
        print(f"{size} hosts up in {setup:.1f} s (subnet 10.231.{fleet.subnet}.0/24)", flush=True)
        for number, side in enumerate(order):
            if number:
                fleet.reset()
            figures[side] = {}
            for run in RUNS:
                figures[side][run] = playbook(fleet, side, run, forks, folder)
                done = figures[side][run]
                print(f"  {size} hosts, {LABELS[side]}, {run}: {done['wall']:.1f} s, CPU {done['cpu'] / size:.2f} s/host "
                      f"(+ {done['host_cpu'] / size:.2f} s on the host), "
                      f"{done['sessions_per_host']:.1f} remote calls/host, {done['tasks_per_host']:.1f} tasks/host, "
                      f"load {done['load']:.1f}", flush=True)
    return {"hosts": size, "setup": setup, "figures": figures}


# What one task costs Ansible per host, by kind: the unit of any saving from cutting the role's tasks.
# The same Python as Ansible's under another name: verify then runs as a module (plugins/action/verify.py).
VERIFY_MODULE_PYTHON = str(Path(sys.executable).with_name("python3.%d" % sys.version_info[1]))
PROBES = {
    "set_fact (controller only)": "ansible.builtin.set_fact:\n        probe_{n}: \"{{{{ inventory_hostname }}}}\"",
    "skipped (when: false)": "ansible.builtin.debug:\n        msg: never\n      when: false",
    "module on the host (ping)": "ansible.builtin.ping:",
    "module delegated to the controller": "ansible.builtin.command:\n        argv: [\"true\"]\n      delegate_to: localhost\n"
                                          "      changed_when: false",
    # The roles' verification step, both ways (plugins/action/verify.py): one target that refuses at once, so
    # that the figure is what Ansible and the Python around the check cost.
    "verify delegated to the controller, in the worker": "ocsp.stapling.verify:\n        host: 127.0.0.1\n        port: 9\n"
                                                         "        report_only: true\n      delegate_to: localhost",
    "verify delegated to the controller, as a module": "ocsp.stapling.verify:\n        host: 127.0.0.1\n        port: 9\n"
                                                       "        report_only: true\n      delegate_to: localhost\n"
                                                       "      vars:\n        ansible_python_interpreter: " + VERIFY_MODULE_PYTHON,
}
PROBE_TASKS = 10


def task_cost(size: int, rtt_ms: float, forks: int, scratch: Path) -> dict:
    """Per kind of task, controller CPU and wall time per task and host, from a playbook of PROBE_TASKS such tasks."""
    folder = Path(tempfile.mkdtemp(prefix=f"probe-{size}-", dir=scratch))
    costs = {}
    with NetnsFleet(folder, hosts=size, rtt_ms=rtt_ms) as fleet:
        fleet.write_inventory()
        for number, (kind, task) in enumerate(PROBES.items()):
            tasks = "".join(f"    - name: Probe {n}\n      {task.format(n=n)}\n" for n in range(PROBE_TASKS))
            path = folder / f"probe-{number}.yml"
            path.write_text(f"---\n- name: Probe\n  hosts: all\n  gather_facts: false\n  tasks:\n{tasks}", encoding="utf-8")
            # The host probe's first task also opens each host's SSH connection: PROBE_TASKS tasks spread that out.
            figures = playbook(fleet, "probe", kind, forks, folder, path)
            costs[kind] = {"cpu_ms": 1000 * figures["cpu"] / (size * PROBE_TASKS), "wall_ms": 1000 * figures["wall"] / PROBE_TASKS,
                           "host_cpu_ms": 1000 * figures["host_cpu"] / (size * PROBE_TASKS), "load": figures["load"]}
            print(f"  {size} hosts, {kind}: {costs[kind]['cpu_ms']:.0f} ms controller CPU per task and host, "
                  f"{costs[kind]['wall_ms']:.0f} ms wall per task, {costs[kind]['host_cpu_ms']:.0f} ms on the host; "
                  f"load {figures['load']:.1f}", flush=True)
    return costs


def markdown(results: list, rtt_ms: float, forks: int) -> str:
    rows = []
    for result in results:
        size = result["hosts"]
        for run in RUNS:
            ours, naive = result["figures"]["ours"][run], result["figures"]["naive"][run]
            rows.append([
                size, run, "%.1f s" % ours["wall"], "%.1f s" % naive["wall"], "**%.2fx**" % (ours["wall"] / naive["wall"]),
                "%.2f s" % (ours["cpu"] / size), "%.2f s" % (naive["cpu"] / size),
                "%.2f s" % (ours["host_cpu"] / size), "%.2f s" % (naive["host_cpu"] / size),
                "%.1f" % ours["sessions_per_host"], "%.1f" % naive["sessions_per_host"],
                "%.1f" % ours["tasks_per_host"], "%.1f" % naive["tasks_per_host"],
                "%.1f / %.1f" % (ours["load"], naive["load"]),
            ])
    text = [
        "Round-trip time added to every SSH connection: %g ms; forks %d; pipelining on; ControlPersist 60 s (Ansible's "
        "default SSH arguments). Each side starts from the same freshly laid-out hosts." % (rtt_ms, forks),
        "",
        _report.table(["hosts", "run", "wall, ours", "wall, naive", "ours / naive", "controller CPU per host, ours",
                       "controller CPU per host, naive", "host CPU per host, ours", "host CPU per host, naive",
                       "remote calls per host, ours", "remote calls per host, naive",
                       "tasks per host, ours", "tasks per host, naive", "load (1 min) after ours / naive"], rows),
        "",
    ]
    growth = []
    for previous, result in zip(results, results[1:]):
        factor = result["hosts"] / previous["hosts"]
        cells = ["%d -> %d" % (previous["hosts"], result["hosts"]), "x%.2f" % factor,
                 "x%.2f" % (max(1.0, result["hosts"] / forks) / max(1.0, previous["hosts"] / forks))]
        for side in ("ours", "naive"):
            for run in RUNS:
                cells.append("x%.2f" % (result["figures"][side][run]["wall"] / previous["figures"][side][run]["wall"]))
        growth.append(cells)
    if growth:
        text += ["Growth of the wall time from each size to the next:", "",
                 _report.table(["hosts", "x hosts", "x max(1, hosts / forks)", "ours converge", "ours idempotent",
                                "naive converge", "naive idempotent"], growth), ""]
    converge = [r["figures"]["ours"]["converge"]["wall"] / r["figures"]["naive"]["converge"]["wall"] for r in results]
    idem_naive = [r["figures"]["ours"]["idempotent"]["wall"] / r["figures"]["naive"]["idempotent"]["wall"] for r in results]
    idem_own = [r["figures"]["ours"]["idempotent"]["wall"] / r["figures"]["ours"]["converge"]["wall"] for r in results]
    text += [
        "- Ours / naive, converge: %s; idempotent: %s (goal: below 1 at every size: %s)." % (
            ", ".join("%.2fx" % ratio for ratio in converge), ", ".join("%.2fx" % ratio for ratio in idem_naive),
            "met" if max(converge + idem_naive) < 1 else "not met"),
        "- Our idempotent run / the naive idempotent run: %s (goal: at most 0.5: %s); / our own converge: %s." % (
            ", ".join("%.2fx" % ratio for ratio in idem_naive), "met" if max(idem_naive) <= 0.5 else "not met",
            ", ".join("%.2fx" % ratio for ratio in idem_own)),
    ]
    # What limited each run: the controller and every host share this machine's cores, so a run whose CPU
    # (controller's and hosts') fills the cores for most of its wall time was bound by the CPU, not the network.
    cores = os.cpu_count() or 1
    busy = []
    for result in results:
        for side in SIDES:
            for run in RUNS:
                figures = result["figures"][side][run]
                busy.append("%d %s %s %.0f %%" % (result["hosts"], side, run,
                                                  100 * (figures["cpu"] + figures["host_cpu"]) / (figures["wall"] * cores)))
    text.append("- What limited the runs: controller and host CPU together, as a share of the wall time x %d cores (near "
                "100 %%: bound by this machine's CPU, which the hosts share; well below: waiting on the network or a "
                "server): %s." % (cores, "; ".join(busy)))
    return "\n".join(text) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="10,25,50,100", help="fleet sizes, comma-separated (default: 10,25,50,100)")
    parser.add_argument("--rtt-ms", type=float, default=30.0, help="round-trip time added to SSH (default: 30)")
    parser.add_argument("--forks", type=int, default=25, help="Ansible forks (default: 25)")
    parser.add_argument("--task-cost", action="store_true",
                        help="instead: what one task of each kind costs per host (controller CPU, wall), on the first size")
    parser.add_argument("--no-report", action="store_true", help="print the tables, leave BENCHMARKS.md alone")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "fleet_netns.json",
                        help="where the figures go as JSON (default: benchmarks/results/fleet_netns.json)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.hosts.split(",")]
    if os.geteuid() != 0:
        sys.exit("the fleet bench makes network namespaces, bridges and mounts: run it as root")
    # A SIGTERM (make interrupted, CI's timeout) must reach the fleet's cleanup like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"stopped by signal {signum}"))
    if args.task_cost:
        with tempfile.TemporaryDirectory(prefix="ocsp-fleet-netns-") as scratch:
            costs = task_cost(sizes[0], args.rtt_ms, args.forks, Path(scratch))
        rows = [[kind, "%.0f ms" % cost["cpu_ms"], "%.0f ms" % cost["host_cpu_ms"], "%.0f ms" % cost["wall_ms"], "%.1f" % cost["load"]]
                for kind, cost in costs.items()]
        text = ("%d hosts, %d tasks of each kind, forks %d, %g ms round trip.\n\n" % (sizes[0], PROBE_TASKS, args.forks, args.rtt_ms)
                + _report.table(["task", "controller CPU per task and host", "host CPU per task and host", "wall per task",
                                 "load (1 min) after"], rows) + "\n")
        print("\n" + text)
        if not args.no_report:
            _report.write_section("fleet-task-cost", text, title="What one task costs Ansible per host (issue 16)")
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="ocsp-fleet-netns-") as scratch:
        for number, size in enumerate(sizes):
            order = list(SIDES) if number % 2 == 0 else list(SIDES)[::-1]
            results.append(measure(size, args.rtt_ms, args.forks, order, Path(scratch)))
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps({"rtt_ms": args.rtt_ms, "forks": args.forks, "results": results}, indent=2) + "\n",
                                    encoding="utf-8")
    text = markdown(results, args.rtt_ms, args.forks)
    print("\n" + text)
    # The tasks one host of each server ran, with the remote calls its sshd saw: where a cut would save.
    last = results[-1]
    for side in SIDES:
        for run in RUNS:
            figures = last["figures"][side][run]
            for server, tasks in figures["tasks_by_server"].items():
                print(f"{LABELS[side]}, {run}, a {server} host: {len(tasks)} tasks, {figures['sessions_by_server'][server]} remote calls")
                for task in tasks:
                    print(f"    {task}")
    if not args.no_report:
        _report.write_section("fleet-netns", text, title="The fleet over SSH: converge and idempotent runs at 10 to 100 hosts (issue 16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
