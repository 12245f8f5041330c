"""The one writer of BENCHMARKS.md: each benchmark puts its own tables there, so no figure can go stale.

Use, from any script in benchmarks/ (the folder of the running script is on ``sys.path``)::

    import _report  # import it first thing: the load average at import is "the start" of the run

    _report.write_section("verify-endpoints", markdown)

``table(headers, rows)`` makes the Markdown of a table from a list of headers and rows of cells (any
value; write figures as text with their unit, e.g. ``"%.2f s" % seconds``).

``write_section(name, markdown, command=None, title=None)`` replaces what is between the two
markers of ``name`` in BENCHMARKS.md::

    <!-- benchmark:NAME:begin -->
    ... generated: header (date, machine, load, command), then ``markdown`` ...
    <!-- benchmark:NAME:end -->

- ``name``: lower case letters, digits and dashes (``nginx-edit``, ``fleet-converge``); one per table.
- ``markdown``: the table and the ratios, as the script computed them; written as given.
- ``command``: the exact command that produced the figures; by default the running one, rebuilt from
  ``sys.argv`` with the environment variables the benchmarks read (``ANSIBLE_COLLECTIONS_PATH``, ``PYTHONPATH``,
  ``BENCHMARK_PYTHON``), paths relative to the repository.
- ``title``: the ``## `` heading used only when the markers are not in the file yet; the section is
  then appended at the end. Prose kept outside the markers (setup, what the peers do) is never
  touched, so a script may own just the table of a hand-written section.

The header says when (UTC, start and end of the run), which commit (and whether the collection's code
had uncommitted changes: the tree is shared), on what (CPU model, cores, memory, kernel,
distribution, Python, OpenSSL) and how busy the machine was (load average at the start and the end:
the machines are shared), so a reader can judge a figure without asking. ``BENCHMARKS_MD`` in the
environment sends the sections to another file (trial runs, tests). Writers of several scripts may
run at once: the update holds a lock and replaces the file atomically.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import platform
import re
import shlex
import ssl
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# Environment variables the benchmark scripts read; the command shown must carry them to be re-runnable.
COMMAND_ENV = ("ANSIBLE_COLLECTIONS_PATH", "PYTHONPATH", "BENCHMARK_PYTHON")

STARTED = time.time()
STARTED_LOAD = os.getloadavg()


def target() -> Path:
    return Path(os.environ.get("BENCHMARKS_MD") or REPO / "BENCHMARKS.md")


def markers(name: str) -> tuple[str, str]:
    return "<!-- benchmark:%s:begin -->" % name, "<!-- benchmark:%s:end -->" % name


def _relative(text: str) -> str:
    """``text`` with the repository's absolute path dropped, so that the command reads the same in any clone."""
    return text.replace(str(REPO) + os.sep, "").replace(str(REPO), ".")


def running_command() -> str:
    """The command line of this process, as a user types it from the repository's root."""
    env = ["%s=%s" % (variable, _relative(os.environ[variable])) for variable in COMMAND_ENV if os.environ.get(variable)]
    argv = [_relative(sys.executable), _relative(str(Path(sys.argv[0]).resolve()))] + sys.argv[1:]
    return " ".join(env + [shlex.join(argv)])


def _first(path: str, pattern: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                match = re.match(pattern, line)
                if match:
                    return match.group(1).strip()
    except OSError:
        return None
    return None


def machine() -> str:
    """One line naming the machine: CPU model, cores, memory, kernel, distribution, Python, OpenSSL."""
    cpu = _first("/proc/cpuinfo", r"model name\s*:\s*(.*)") or platform.processor() or platform.machine()
    memory = _first("/proc/meminfo", r"MemTotal:\s*(\d+) kB")
    distribution = (_first("/etc/os-release", r'PRETTY_NAME="?([^"\n]*)') or "unknown distribution")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = ["%s, %d cores" % (cpu, usable)]
    if memory:
        parts.append("%.0f GiB" % (int(memory) / 1024 / 1024))
    parts += ["Linux %s" % platform.release() if platform.system() == "Linux" else "%s %s" % (platform.system(), platform.release()),
              distribution, "Python %s" % platform.python_version(), ssl.OPENSSL_VERSION]
    return ", ".join(parts)


def revision() -> str:
    """The commit measured, and whether the collection's code (plugins/, roles/, playbooks/) differed from it."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "plugins", "roles", "playbooks"],
                                 check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return "`%s`%s" % (head, " with uncommitted changes in plugins/, roles/ or playbooks/" if changed else "")


# Taken at the start: the tree is shared, and what is measured is what was there when the run began.
STARTED_REVISION = revision()


def _load(figures: tuple) -> str:
    return "%.2f / %.2f / %.2f" % tuple(figures)


def header(command: str, now: float | None = None) -> str:
    end = now if now is not None else time.time()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busiest = max(STARTED_LOAD[0], os.getloadavg()[0], STARTED_LOAD[1])
    # Other work on a shared machine stretches every figure, and not all alike: say so where the figures are.
    busy = ("\n\n**The machine was busy during this run (load average up to %.1f on %d cores): the times are stretched "
            "and the ratios less exact than in a quiet run.**" % (busiest, cores)) if busiest > cores else ""
    start_text = datetime.datetime.fromtimestamp(STARTED, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    end_text = datetime.datetime.fromtimestamp(end, datetime.timezone.utc).strftime("%H:%M UTC")
    return "\n".join([
        "<!-- written by the benchmark (benchmarks/_report.py); a rerun replaces everything up to the end marker -->",
        "Run of %s-%s, revision %s. Machine: %s. Load average (1 / 5 / 15 min): %s at the start, %s at the end."
        % (start_text, end_text, STARTED_REVISION, machine(), _load(STARTED_LOAD), _load(os.getloadavg())) + busy,
        "",
        "Command: `%s`" % command,
    ])


def replace_section(text: str, name: str, body: str, title: str | None, where: str = "BENCHMARKS.md") -> str:
    """``text`` with the section ``name`` set to ``body``: between its markers, or appended with a heading.

    Raises ValueError, naming the file and the line, when the markers are there but unusable.
    """
    begin, end = markers(name)
    lines = text.splitlines(keepends=True)
    begins = [number for number, line in enumerate(lines) if line.strip() == begin]
    ends = [number for number, line in enumerate(lines) if line.strip() == end]
    if not begins and not ends:
        heading = "## %s\n\n" % (title or name)
        separator = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return text + separator + heading + begin + "\n" + body.rstrip("\n") + "\n" + end + "\n"
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        found = ", ".join("line %d: %s" % (number + 1, lines[number].strip()) for number in sorted(begins + ends))
        raise ValueError("%s: the markers of section %r must be one %s followed by one %s (found %s); "
                         "fix or delete them by hand and run the benchmark again" % (where, name, begin, end, found))
    return "".join(lines[:begins[0] + 1]) + body.rstrip("\n") + "\n" + "".join(lines[ends[0]:])


def table(headers: list, rows: list) -> str:
    """A Markdown table: one line of ``headers``, then one line per row of cells."""
    lines = ["| " + " | ".join(str(cell) for cell in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, markdown: str, command: str | None = None, title: str | None = None) -> Path:
    """Put ``markdown`` under a generated header into section ``name`` of BENCHMARKS.md; returns the file."""
    if not NAME.match(name):
        raise ValueError("section name %r: use lower case letters, digits and dashes, e.g. 'verify-endpoints'" % name)
    path = target()
    body = header(command or running_command()) + "\n\n" + markdown.strip("\n") + "\n"
    # The lock is on the folder: it exists in every clone and leaves no lock file behind.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        updated = replace_section(text, name, body, title, where=str(path))
        staged = path.with_name(".%s.%d.tmp" % (path.name, os.getpid()))
        staged.write_text(updated, encoding="utf-8")
        os.replace(staged, path)
    finally:
        os.close(folder)
    print("%s: section %s written" % (path, name), flush=True)
    return path
