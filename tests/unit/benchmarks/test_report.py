"""benchmarks/_report.py: the sections of BENCHMARKS.md that the benchmarks write themselves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import _report  # noqa: E402  (benchmarks/ is not a package: its scripts import it from their own folder)

HAND_WRITTEN = "# Benchmarks\n\nProse.\n\n## verify\n\nSetup prose.\n\n<!-- benchmark:verify:begin -->\nold table\n<!-- benchmark:verify:end -->\n\nAfter.\n"


def test_replaces_only_between_the_markers() -> None:
    updated = _report.replace_section(HAND_WRITTEN, "verify", "new table\n", title=None)
    assert updated == HAND_WRITTEN.replace("old table", "new table")


def test_appends_a_missing_section_with_its_heading() -> None:
    updated = _report.replace_section("# Benchmarks\n", "fleet-converge", "table", title="Fleet: converge")
    assert updated == ("# Benchmarks\n\n## Fleet: converge\n\n<!-- benchmark:fleet-converge:begin -->\ntable\n"
                       "<!-- benchmark:fleet-converge:end -->\n")
    # Written again, the section is replaced where it is, not appended twice.
    assert _report.replace_section(updated, "fleet-converge", "other", title="Fleet: converge") == updated.replace("table\n", "other\n")


@pytest.mark.parametrize("text", [
    "<!-- benchmark:verify:begin -->\nno end\n",
    "<!-- benchmark:verify:end -->\n<!-- benchmark:verify:begin -->\n",
    "<!-- benchmark:verify:begin -->\n<!-- benchmark:verify:end -->\n<!-- benchmark:verify:begin -->\n<!-- benchmark:verify:end -->\n",
])
def test_unusable_markers_name_the_file_and_lines(text: str) -> None:
    with pytest.raises(ValueError, match=r"BENCHMARKS\.md: the markers of section 'verify' .*line 1: .*fix or delete them"):
        _report.replace_section(text, "verify", "table", title=None)


def test_write_section_adds_date_machine_load_and_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "BENCHMARKS.md"
    target.write_text(HAND_WRITTEN)
    monkeypatch.setenv("BENCHMARKS_MD", str(target))
    _report.write_section("verify", "| a | b |\n|---|---|\n| 1 | 2 |\n", command="make benchmark")
    text = target.read_text()
    section = text[text.index("<!-- benchmark:verify:begin -->"):text.index("<!-- benchmark:verify:end -->")]
    assert "Run of 20" in section and " UTC, revision `" in section and ". Machine: " in section and " cores, " in section and "Linux " in section
    assert "Load average (1 / 5 / 15 min): " in section and "Command: `make benchmark`" in section
    assert section.rstrip().endswith("| 1 | 2 |") and "old table" not in text
    assert text.startswith("# Benchmarks\n\nProse.") and text.endswith("\n\nAfter.\n")
    assert [path.name for path in tmp_path.iterdir()] == ["BENCHMARKS.md"]  # no staged or lock file left


def test_the_default_command_is_the_running_one_relative_to_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(_report.REPO / "benchmarks" / "verify_endpoints.py"), "--rounds", "3"])
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(_report.REPO / ".build" / "collections"))
    monkeypatch.setenv("PYTHONPATH", "tests")
    monkeypatch.delenv("BENCHMARK_PYTHON", raising=False)
    command = _report.running_command()
    assert command.startswith("ANSIBLE_COLLECTIONS_PATH=.build/collections PYTHONPATH=tests ")
    assert command.endswith(" benchmarks/verify_endpoints.py --rounds 3")
    assert str(_report.REPO) not in command.replace(sys.executable, "")


def test_a_bad_section_name_is_refused() -> None:
    with pytest.raises(ValueError, match="lower case letters, digits and dashes"):
        _report.write_section("Verify Endpoints", "table")


def test_a_busy_machine_is_said_beside_the_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_report, "STARTED_LOAD", (99.0, 50.0, 20.0))
    assert "**The machine was busy during this run (load average up to 99.0 on " in _report.header("make benchmark")
    monkeypatch.setattr(_report, "STARTED_LOAD", (0.0, 0.0, 0.0))
    monkeypatch.setattr(_report.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert "busy" not in _report.header("make benchmark")
