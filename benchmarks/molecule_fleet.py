"""Converge and idempotent wall time on the Molecule fleet: ocsp.stapling.enable against the how-to by hand.

    make benchmark-molecule            # or: python benchmarks/molecule_fleet.py [--rounds N]

Each round gives each side a freshly prepared fleet (`molecule destroy/create/prepare -s fleet`:
six containers on Debian 11, 12 and 13, podman here), then times with ansible-playbook, on the same
inventory and ansible.cfg that Molecule uses:

- ours: molecule/shared/converge.yml (the enable role: detection, preflight, chain install,
  transactional edits, server test, reload, verification from the controller), then again;
- peer: benchmarks/naive_fleet.yml (copy + lineinfile + command, the how-to's steps), then again.

The order of the two sides alternates between rounds. The figures are medians over the rounds;
BENCHMARKS.md records them. Nothing is asserted about time: the run fails only when a playbook fails
or a second run reports a change.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCENARIO = "fleet"
PLAYBOOKS = {
    "ocsp.stapling.enable": REPO / "molecule" / "shared" / "converge.yml",
    "naive (lineinfile/copy/command)": REPO / "benchmarks" / "naive_fleet.yml",
}
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)


def molecule(*args: str) -> None:
    command = ["molecule", *args, "--scenario-name", SCENARIO]
    print("$ " + " ".join(command), flush=True)
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if run.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")


def ephemeral_directory() -> Path:
    """Molecule's state folder for the scenario (inventory, ansible.cfg), the one prepare just used."""
    found = [Path(path) for path in glob.glob(os.path.expanduser(f"~/.ansible/tmp/molecule.*.{SCENARIO}"))]
    found = [path for path in found if (path / "inventory").is_dir()]
    if not found:
        sys.exit(f"no Molecule state folder for scenario {SCENARIO} under ~/.ansible/tmp")
    return max(found, key=lambda path: path.stat().st_mtime)


def fresh_fleet() -> Path:
    molecule("destroy")
    molecule("create")
    molecule("prepare")
    return ephemeral_directory()


def playbook(ephemeral: Path, path: Path) -> tuple[float, dict]:
    """Wall time of one ansible-playbook run and its recap per host."""
    scenario_dir = REPO / "molecule" / SCENARIO
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ephemeral / "ansible.cfg"),
        MOLECULE_EPHEMERAL_DIRECTORY=str(ephemeral),
        MOLECULE_PROJECT_DIRECTORY=str(REPO),
        MOLECULE_SCENARIO_DIRECTORY=str(scenario_dir),
        MOLECULE_FILE=str(scenario_dir / "molecule.yml"),
        MOLECULE_INSTANCE_CONFIG=str(ephemeral / "instance_config.yml"),
    )
    command = ["ansible-playbook", "--inventory", str(ephemeral / "inventory"), str(path)]
    started = time.perf_counter()
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if run.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}")
    recap = {found[0]: {"ok": int(found[1]), "changed": int(found[2])} for found in RECAP.findall(run.stdout)}
    return elapsed, recap


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="fresh fleets per side (default: 1)")
    args = parser.parse_args()

    names = list(PLAYBOOKS)
    times: dict = {name: {"converge": [], "idempotent": []} for name in names}
    hosts = 0
    try:
        for round_number in range(args.rounds):
            order = names if round_number % 2 == 0 else names[::-1]
            for name in order:
                ephemeral = fresh_fleet()
                converge, recap = playbook(ephemeral, PLAYBOOKS[name])
                again, recap_again = playbook(ephemeral, PLAYBOOKS[name])
                changed = {host: counts["changed"] for host, counts in recap_again.items() if counts["changed"]}
                if changed:
                    sys.exit(f"{name}: the second run changed something: {changed}")
                hosts = len(recap)
                times[name]["converge"].append(converge)
                times[name]["idempotent"].append(again)
                print(f"round {round_number + 1}, {name}: converge {converge:.1f} s, idempotent {again:.1f} s", flush=True)
    finally:
        molecule("destroy")

    ours, peer = names
    print(f"\nfleet of {hosts} hosts, {args.rounds} round(s), medians; per host = wall time / hosts (all hosts run at once)")
    print(f"{'run':<12}{'playbook':<34}{'wall':>8}{'per host':>10}")
    for phase in ("converge", "idempotent"):
        for name in names:
            wall = statistics.median(times[name][phase])
            print(f"{phase:<12}{name:<34}{wall:>7.1f}s{wall / hosts:>9.1f}s")
        ratio = statistics.median(times[ours][phase]) / statistics.median(times[peer][phase])
        print(f"{'':<12}{'ratio ours / naive':<34}{ratio:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
