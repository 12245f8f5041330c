"""Shared code of the editing benchmarks' ``--baseline REV`` mode: this tree against a git revision, in one run.

A comparison across two separate runs mostly measures how busy the machine was each time (the
development machines are shared and have two cores). So both collection trees are timed in the same
run, round by round, and the order of the two sides flips every round, so that a burst of load or a
warming cache hits both alike. Each side is a snapshot under a scratch folder, laid out as
``<root>/ansible_collections/ocsp/stapling`` and put first on PYTHONPATH, and nothing else on the path
may provide ``ansible_collections.ocsp.stapling``: its packages are namespace packages, so a second
copy of the collection further down the path would silently fill in any module_utils file that one
side lacks, and that side would then run code of the other.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import _report

REPO = Path(__file__).resolve().parents[1]
COLLECTION = Path("ansible_collections", "ocsp", "stapling")
# What a module needs at run time; galaxy.yml and meta/ make the snapshot a complete collection.
EXPORTED = ("plugins", "galaxy.yml", "meta")
PACKAGE = "ansible_collections.ocsp.stapling"


@dataclass
class Side:
    """One collection tree to time: ``baseline`` (a git revision) or ``current`` (the working tree)."""

    name: str
    label: str  # what the table and BENCHMARKS.md call it, e.g. "493ed5b"
    root: Path  # the folder that goes on PYTHONPATH
    env: dict = field(default_factory=dict)

    def module(self, name: str) -> Path:
        return self.root / COLLECTION / "plugins" / "modules" / (name + ".py")


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


def export_revision(rev: str, root: Path) -> str:
    """``git archive`` of the collection at ``rev`` into ``root``; returns the short commit."""
    commit = git("rev-parse", "--short", rev + "^{commit}")
    dest = root / COLLECTION
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit, *EXPORTED], check=True, capture_output=True).stdout
    tar_path = root / "export.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()
    return commit


def snapshot_worktree(root: Path) -> str:
    """A copy of the working tree's collection files into ``root``; returns the short HEAD it was taken at.

    Copied rather than linked: others edit this tree while the benchmark runs, and a file changing
    between rounds would mix two versions into one side's figures.
    """
    head = git("rev-parse", "--short", "HEAD")
    dest = root / COLLECTION
    dest.mkdir(parents=True)
    for name in EXPORTED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    return head


def side_env(root: Path) -> dict:
    """The environment of one side: its tree first on PYTHONPATH, then what the caller had, minus other copies.

    The rest of the path (PYTHONPATH=tests for bench.pki, ANSIBLE_COLLECTIONS_PATH's entries as
    `make benchmark` passes them) is kept; the interpreter is the caller's, so ansible-core comes from its venv.
    """
    entries = [entry for variable in ("ANSIBLE_COLLECTIONS_PATH", "PYTHONPATH")
               for entry in os.environ.get(variable, "").split(os.pathsep) if entry]
    kept = [entry for entry in entries if not (Path(entry) / COLLECTION).exists()]
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *kept]), ANSIBLE_COLLECTIONS_PATH=str(root))


def prepare_sides(rev: str, scratch: Path, module: str, current_rev: str | None = None) -> list[Side]:
    """The baseline (``rev``) and current trees under ``scratch``, each checked to import only its own files.

    The current side is the working tree, or revision ``current_rev`` when given: on a shared tree
    where others commit and edit all the time, a committed "after" is the one a reader can re-run.
    The working tree's label is HEAD, with "+uncommitted" only when a file that ``module`` actually
    runs differs from HEAD: others' uncommitted work elsewhere in plugins/ does not change the figures.
    """
    baseline_root, current_root = scratch / "tree-baseline", scratch / "tree-current"
    current_label = export_revision(current_rev, current_root) if current_rev else snapshot_worktree(current_root)
    sides = [Side("baseline", export_revision(rev, baseline_root), baseline_root), Side("current", current_label, current_root)]
    for side in sides:
        side.env = side_env(side.root)
        files = check_imports(side, module)
        shown = " ".join(str(Path(path).relative_to(side.root / COLLECTION)) for path in files)
        print("%s %s runs %s" % (side.name, side.label, shown), flush=True)
        if side.name == "current" and not current_rev:
            relative = [str(Path(path).relative_to(side.root / COLLECTION)) for path in files]
            changed = git("status", "--porcelain", "--", *relative)
            if changed:
                side.label += "+uncommitted"
                print("current: uncommitted changes in files the module runs:\n" + changed, flush=True)
    return sides


def check_imports(side: Side, module: str) -> list[str]:
    """Import ``module`` of ``side`` (without running main) and fail if any collection file came from elsewhere.

    Returns the files of the collection it loaded, the module's own first. The import also
    byte-compiles them before the timed rounds.
    """
    code = ("import importlib.util, json, sys\n"
            "spec = importlib.util.spec_from_file_location('bench_module', sys.argv[1])\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(json.dumps({n: getattr(m, '__file__', None) for n, m in sys.modules.items() if n.startswith(%r)}))" % PACKAGE)
    loaded = json.loads(subprocess.run([sys.executable, "-c", code, str(side.module(module))], env=side.env,
                                       check=True, capture_output=True, text=True).stdout)
    own = str(side.root / COLLECTION) + os.sep
    strays = {name: path for name, path in loaded.items() if path and not path.startswith(own)}
    if strays:
        raise SystemExit("%s side (%s) imported collection files from outside its tree: %s" % (side.name, side.label, strays))
    return [str(side.module(module))] + sorted(path for path in loaded.values() if path)


def timed_change(side: Side, kind: str, module: str, args: dict) -> float:
    """The wall time of one run of ``module`` of ``side`` that must report a change (``kind``: check or apply)."""
    elapsed, result = timed_module(side, module, args)
    if not result.get("changed"):  # a side that found nothing to do would time nothing useful
        raise SystemExit("%s %s %s: no change reported: %s" % (side.name, side.label, kind, str(result)[:500]))
    return elapsed


def timed_module(side: Side, module: str, args: dict) -> tuple[float, dict]:
    """One run of ``module`` of ``side`` as Ansible runs it on a host: wall time and the module's result."""
    args_path = side.root.parent / ("args-%s.json" % side.name)
    args_path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    started = time.monotonic()
    completed = subprocess.run([sys.executable, str(side.module(module)), str(args_path)], env=side.env, check=True, capture_output=True)
    elapsed = time.monotonic() - started
    return elapsed, json.loads(completed.stdout)


def interleaved(rounds: int, sides: Sequence[Side], kinds: Sequence[str],
                measure: Callable[[Side, str], float]) -> dict[str, dict[str, list[float]]]:
    """``measure(side, kind)`` for every kind and side, ``rounds`` times; the side order flips every round.

    Within a round each kind runs on both sides back to back, so the two figures of a pair are taken
    seconds apart; flipping the order cancels any advantage of going first or second (a warm page
    cache, a test job that starts or ends). Returns ``{kind: {side name: [seconds, ...]}}``.
    """
    samples = {kind: {side.name: [] for side in sides} for kind in kinds}
    for number in range(rounds):
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        for kind in kinds:
            for side in order:
                samples[kind][side.name].append(measure(side, kind))
    return samples


def medians(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {kind: {name: statistics.median(values) for name, values in by_side.items()} for kind, by_side in samples.items()}


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return "%.2f, %.2f, %.2f" % (one, five, fifteen)


def report(title: str, unit: str, sides: Sequence[Side], kinds: Sequence[str],
           results: dict[int, dict[str, dict[str, list[float]]]], loads: tuple[str, str], out: Path) -> str:
    """Print the table (medians, ratio current / baseline) and the raw rounds, save them as JSON; return the table's Markdown."""
    baseline, current = (next(side for side in sides if side.name == name) for name in ("baseline", "current"))
    print("\n%s: baseline %s against current %s; load average (1, 5, 15 min) %s at the start, %s at the end"
          % (title, baseline.label, current.label, loads[0], loads[1]))
    header = [unit] + ["baseline %s" % kind for kind in kinds] + ["current %s" % kind for kind in kinds] \
        + ["%s current / baseline" % kind for kind in kinds]
    rows = []
    saved = {}
    for size, samples in results.items():
        mid = medians(samples)
        ratios = [mid[kind]["current"] / mid[kind]["baseline"] for kind in kinds]
        rows.append(["{:,}".format(size)] + ["%.3f s" % mid[kind]["baseline"] for kind in kinds]
                    + ["%.3f s" % mid[kind]["current"] for kind in kinds] + ["%.2fx" % ratio for ratio in ratios])
        saved[size] = {"median": mid, "rounds": samples}
    rounds = len(next(iter(next(iter(results.values())).values()))[baseline.name])
    text = "%s: baseline `%s` against current `%s`, %d interleaved rounds (the side that goes first alternates), median.\n\n" % (
        title, baseline.label, current.label, rounds) + _report.table(header, rows)
    spans = ["%s %s %s %.1fx" % ("{:,}".format(size), kind, name, max(values) / min(values))
             for size, samples in results.items() for kind in kinds for name, values in samples[kind].items()]
    text += "\n\nSpread of one side's rounds (slowest / fastest): " + ", ".join(spans) + "."
    print("\n" + text)
    print("\nRounds (seconds, in the order taken):")
    for size, samples in results.items():
        for kind in kinds:
            print("  %d %s: " % (size, kind) + "; ".join(
                "%s %s" % (name, " ".join("%.3f" % value for value in values)) for name, values in samples[kind].items()))
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"baseline": baseline.label, "current": current.label, "load_average": loads,
                               "results": saved}, indent=2))
    return text
