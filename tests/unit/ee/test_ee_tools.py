"""tests/ee: the definition the execution-environment check builds, and how it judges a navigator run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "ee"))
import check_run  # noqa: E402  (tests/ee is no package: scripts/ee-check.sh runs its files as scripts)
import ci_definition  # noqa: E402

INSTALLED = check_run.INSTALLED


def derive(tmp_path: Path, example: Path) -> tuple:
    output = tmp_path / "out" / "execution-environment.yml"
    status = ci_definition.main(["ci_definition.py", str(example), str(output), "localhost/base:test",
                                 str(tmp_path / "ocsp-stapling-1.2.3.tar.gz"), str(tmp_path / "windows")])
    return status, (yaml.safe_load(output.read_text(encoding="utf-8")) if output.exists() else None)


def test_the_check_builds_the_example_with_only_the_listed_keys_replaced(tmp_path):
    example = yaml.safe_load((REPO / "execution-environment.yml").read_text(encoding="utf-8"))
    status, derived = derive(tmp_path, REPO / "execution-environment.yml")
    assert status == 0
    assert derived["images"]["base_image"]["name"] == "localhost/base:test"
    assert derived["options"] == {"skip_pip_install": True, "package_manager_path": "/usr/bin/apt-get"}
    assert derived["dependencies"]["galaxy"]["collections"] == [
        {"name": "/build/collections/ocsp-stapling-1.2.3.tar.gz", "type": "file"},
        {"name": "/build/collections/ansible.windows", "type": "dir"}]
    assert derived["build_arg_defaults"] == {"ANSIBLE_GALAXY_CLI_COLLECTION_OPTS": "--offline"}
    assert "additional_build_steps" not in derived
    # Everything else is the example's, unchanged.
    assert derived["version"] == example["version"]
    for key in ("ansible_core", "ansible_runner"):
        assert derived["dependencies"][key] == example["dependencies"][key]


def test_an_example_without_a_replaced_key_is_refused(tmp_path, capsys):
    example = yaml.safe_load((REPO / "execution-environment.yml").read_text(encoding="utf-8"))
    del example["additional_build_steps"]
    changed = tmp_path / "execution-environment.yml"
    changed.write_text(yaml.safe_dump(example), encoding="utf-8")
    status, derived = derive(tmp_path, changed)
    assert status == 1 and derived is None
    assert "additional_build_steps.prepend_galaxy is gone from the example" in capsys.readouterr().err


def task(name: str, result: str = "Ok", changed: bool = False, path: str = INSTALLED + "roles/enable/tasks/main.yml:3",
         action: str = "ansible.builtin.debug", res: dict | None = None) -> dict:
    return {"task": name, "host": "web", "__result": result, "__changed": changed, "task_path": path,
            "resolved_action": action, "res": res or {}}


def artifact(*tasks: dict, status: str = "successful") -> dict:
    return {"status": status, "plays": [{"playbook": INSTALLED + "playbooks/enable.yml", "tasks": list(tasks)}],
            "stdout": ["\x1b[0;32mok: [web]\x1b[0m", "PLAY RECAP"]}


def test_a_first_run_must_change_something_and_a_rerun_nothing():
    first = artifact(task("edit", "Changed", True))
    assert check_run.problems(first, True, None)[0] == []
    assert check_run.problems(first, False, None)[0] == ["the rerun changed something: edit"]
    assert check_run.problems(artifact(task("edit")), True, None)[0] == ["nothing changed, although the sites did not staple yet"]


def test_failures_and_tasks_from_outside_the_image_are_problems():
    found = check_run.problems(artifact(task("detect", "Unreachable"), task("mine", path="/work/roles/x.yml:1"),
                                        status="failed"), None, None)[0]
    assert found == ["the run ended 'failed'", "unreachable on web: detect",
                     "tasks not from the collection installed in the image: /work/roles/x.yml:1"]


def test_verify_counts_the_endpoints_and_fails_an_eligible_one_without_a_good_staple():
    targets = [{"server_name": "a.test", "ok": True, "applicable": True},
               {"server_name": "b.test", "ok": False, "applicable": True, "reason": "no staple"},
               {"server_name": "c.test", "ok": False, "applicable": False}]
    run = artifact(task("check", action="ocsp.stapling.verify", res={"targets": targets}))
    found, summary = check_run.problems(run, None, 3)
    assert found == ["b.test does not staple a good, fresh response: no staple"]
    assert summary.endswith("verify: 1 of 2 eligible endpoints staple a good, fresh OCSP response, 1 not applicable")
    assert check_run.problems(run, None, 4)[0][0] == "verify judged 3 endpoints, not 4"


def test_the_log_is_the_playbook_output_without_colours(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(artifact(task("edit", "Changed", True))), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["check_run.py", str(path), str(tmp_path / "run.log"), "--changed"])
    assert check_run.main() == 0
    assert (tmp_path / "run.log").read_text(encoding="utf-8") == "ok: [web]\nPLAY RECAP\n"


@pytest.mark.parametrize("name", ["meta/ee-requirements.txt", "bindep.txt"])
def test_the_declared_requirement_files_exist_where_the_meta_file_says(name):
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    assert name in meta["dependencies"].values()
    lines = [line for line in (REPO / name).read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    assert lines, "%s declares nothing" % name
