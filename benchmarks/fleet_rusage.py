"""Run one command and report the CPU time of everything it started, including what outlives it.

    python benchmarks/fleet_rusage.py RESULT.json OUTPUT.log -- ansible-playbook -i inventory playbook.yml

ansible-playbook leaves its SSH connection masters behind (ControlPersist): they hold every session's
encryption, so their CPU time is controller work of the run. This process makes itself the subreaper of
the command's tree (prctl PR_SET_CHILD_SUBREAPER), so that those masters become its children when
ansible-playbook exits; it then ends them by pid (SIGTERM, what `ssh -O exit` does) and reaps them, and
their time joins RUSAGE_CHILDREN. RESULT.json gets the wall time of the command, the user and system CPU
seconds of the whole tree, its exit status and how many processes outlived it; OUTPUT.log its output.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

# The bench's reading of /proc (tests/bench/processes.py) is found from here also when this file runs as a script.
TESTS = str(Path(__file__).resolve().parents[1] / "tests")

PR_SET_CHILD_SUBREAPER = 36


def children() -> set[int]:
    """The pids whose parent is this process (the command's orphans, once it has exited)."""
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    process_table = importlib.import_module("bench.processes").process_table
    mine = os.getpid()
    return {info.pid for info in process_table() if info.ppid == mine and info.state != "Z"}


def reap_all(deadline: float) -> None:
    """Wait for every child, zombie or not, until none is left or the deadline passes."""
    while time.monotonic() < deadline:
        try:
            pid = os.waitpid(-1, os.WNOHANG)[0]
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.02)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    result_path, output_path, command = Path(argv[0]), Path(argv[1]), argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(output_path, "wb") as output:
        returncode = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - started
    leftovers = children()
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    reap_all(time.monotonic() + 10)
    for pid in children():  # what did not end on SIGTERM within 10 s
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reap_all(time.monotonic() + 10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "returncode": returncode,
        "wall": wall,
        "user": after.ru_utime - before.ru_utime,
        "sys": after.ru_stime - before.ru_stime,
        "leftovers": len(leftovers),
    }
    result_path.write_text(json.dumps(result) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
