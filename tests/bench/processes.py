"""Foreground child processes that the bench starts, and stops by process id."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .ports import accepts, wait_until

STOP_TIMEOUT = 10.0
START_TIMEOUT = 15.0


class BenchError(RuntimeError):
    """A bench process did not start, reload or stop as expected."""


@dataclass(frozen=True)
class ProcessInfo:
    """The fields of /proc/<pid>/stat the bench needs."""

    pid: int
    ppid: int
    pgrp: int
    state: str


def process_table() -> list[ProcessInfo]:
    """Every process on the machine, read from /proc (no ps or psutil needed)."""
    table = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue  # The process ended while we looked.
        # The command name is in parentheses and may itself hold spaces or parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        table.append(ProcessInfo(pid=int(entry.name), state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2])))
    return table


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file, or a note that there is none, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


class ChildProcess:
    """One server run in the foreground, in a process group of its own.

    The group holds the server's workers too (nginx workers, Apache children, responder helpers),
    so that stopping reaches every one of them even when the main process died without reaping them.
    """

    def __init__(self, name: str, console_path: Path, log_paths: list[Path]) -> None:
        self.name = name
        self.argv: list[str] = []
        # stdout and stderr go to a file: a pipe nobody reads would block the server once full.
        self.console_path = console_path
        self.log_paths = log_paths
        self._popen: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, argv: list[str], port: int, ready: Callable[[], bool] | None = None, timeout: float = START_TIMEOUT) -> None:
        """Run argv and wait until it accepts connections on port (and ready() holds, if given)."""
        if self.running():
            raise BenchError(f"{self.name} already runs as pid {self.pid}")
        self.argv = argv
        self.console_path.parent.mkdir(parents=True, exist_ok=True)
        self._console = self.console_path.open("ab")
        self._popen = subprocess.Popen(  # stopped by stop(), not by a with block
            self.argv, stdin=subprocess.DEVNULL, stdout=self._console, stderr=subprocess.STDOUT, start_new_session=True
        )

        def up() -> bool:
            if not self.running():
                return True  # Stop waiting: the failure is reported below.
            return accepts(port) and (ready is None or ready())

        wait_until(up, timeout)
        if not self.running():
            returncode = self._popen.returncode
            self.stop()
            raise BenchError(f"{self.name} exited with status {returncode} while starting: {' '.join(self.argv)}\n{self.logs()}")
        if not up():
            self.stop()
            raise BenchError(f"{self.name} did not accept connections on 127.0.0.1:{port} within {timeout:.0f} s\n{self.logs()}")

    def children(self) -> set[int]:
        """Process ids of the live (not zombie) children: nginx workers, Apache children."""
        if self._popen is None:
            return set()
        return {proc.pid for proc in process_table() if proc.ppid == self._popen.pid and proc.state != "Z"}

    def signal(self, signum: signal.Signals) -> None:
        if self._popen is None or not self.running():
            raise BenchError(f"{self.name} is not running\n{self.logs()}")
        self._popen.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the process by its pid (SIGTERM, then SIGKILL), then anything left in its group."""
        if self._popen is None:
            return
        popen, self._popen = self._popen, None
        if popen.poll() is None:
            # SIGTERM is a fast shutdown for nginx, Apache and the responder alike; each reaps its own workers.
            popen.terminate()
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(popen.pid)
                popen.wait(timeout)
        _kill_group(popen.pid)
        if self._console is not None:
            self._console.close()
            self._console = None
        leftovers = _group_members(popen.pid)
        if leftovers:
            raise BenchError(f"{self.name}: processes {sorted(leftovers)} of group {popen.pid} survived SIGKILL")

    def logs(self) -> str:
        """The tails of the console output and of every log, for error messages."""
        return "\n".join(f"--- {path}:\n{tail(path)}" for path in [self.console_path, *self.log_paths])


def _group_members(pgid: int) -> set[int]:
    # Zombies are dead already; whoever inherited them reaps them, not us.
    return {proc.pid for proc in process_table() if proc.pgrp == pgid and proc.state != "Z"}


def _kill_group(pgid: int) -> None:
    """SIGKILL whatever is left of a process group and wait until it is gone."""
    if not _group_members(pgid):
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: not _group_members(pgid), STOP_TIMEOUT)
