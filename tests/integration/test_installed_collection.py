"""The collection as users get it (issue 15, item 3): built, installed, and run from the installed copy.

`ansible-galaxy collection build` makes the tarball from this working tree, as a release is made, so
that galaxy.yml's `build_ignore` meets the real development files (.venv, .build, tests/output,
pytest-ansible's collections/ tree, reports). `ansible-galaxy collection install --offline` puts it
into an empty collections path with its dependency ansible.windows, from a requirements.yml that
names both by location (Galaxy is not reachable here; `make collections` unpacked ansible.windows
into .build/collections). The demo's main job then runs on the bench from that path alone: enable,
an idempotent rerun, verify, every task read from the installed copy and none from this repository.
A second install takes the collection from this repository's git URL, as the README tells users to.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from bench import Bench
from bench.layouts import demo_hosts

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPENDENCY = REPO / ".build" / "collections" / "ansible_collections" / "ansible" / "windows"
# What users need: every tracked file of these, and the collection's own documents.
RUNTIME = ("roles/", "plugins/", "playbooks/", "meta/", "docs/docsite/")
DOCUMENTS = ("README.md", "LICENSE")
# Development tooling that is tracked but is no part of the installed collection.
TOOLING = (".ci/", "scripts/", "benchmarks/", "docs/sphinx/", "Makefile", "requirements.txt", "pytest.ini", ".ansible-lint",
           ".gitignore")


def ansible_env(collections: Path) -> dict:
    """The environment of a user's run: only ``collections`` holds collections (no repository tree, no
    collections inside Python's site-packages); modules run with this interpreter on localhost."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ANSIBLE_") and name != "PYTHONPATH"}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return env


def run(command: list, env: dict, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert completed.returncode == 0, "%s exited %d\n%s%s" % (" ".join(command), completed.returncode, completed.stdout, completed.stderr)
    return completed


def install(folder: Path, source: str, kind: str) -> Path:
    """Install the collection from ``source`` (a requirements.yml ``type``: file, git) with its dependency
    into the empty ``folder``/collections, offline; returns that collections path."""
    assert DEPENDENCY.joinpath("MANIFEST.json").is_file(), "ansible.windows is missing from %s: run `make collections`" % DEPENDENCY
    collections = folder / "collections"
    collections.mkdir()
    requirements = folder / "requirements.yml"
    requirements.write_text("---\ncollections:\n  - name: %s\n    type: %s\n  - name: %s\n    type: dir\n" % (source, kind, DEPENDENCY))
    run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-r", str(requirements), "-p", str(collections)],
        ansible_env(collections), folder)
    return collections


def installed_collections(collections: Path) -> dict:
    """{name: location} of every collection ansible finds with only ``collections`` configured (but
    ansible-core's internal ones, ``ansible._*``, which ship inside it)."""
    listing = run([str(BIN / "ansible-galaxy"), "collection", "list"], ansible_env(collections), collections).stdout
    found, location = {}, None
    for line in listing.splitlines():
        if line.startswith("# "):
            location = line[2:].strip()
        elif re.match(r"^[a-z0-9_]+\.[a-z0-9_]+\s+\S+\s*$", line) and not line.startswith("ansible._"):
            found[line.split()[0]] = location
    return found


def tracked(*prefixes: str) -> set:
    """The files git tracks whose path starts with one of ``prefixes`` (or equals it)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    return {name for name in files if name and name.startswith(prefixes) and (REPO / name).exists()}


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("dist")
    run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(output), str(REPO)], ansible_env(output), output)
    [built] = output.glob("ocsp-stapling-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def installed(tmp_path_factory, tarball) -> Path:
    return install(tmp_path_factory.mktemp("installed"), str(tarball), "file")


def test_the_tarball_has_what_users_need_and_no_development_file(tarball):
    with tarfile.open(tarball) as archive:
        members = {member.name for member in archive.getmembers() if member.isfile()}
    assert {"MANIFEST.json", "FILES.json"} <= members
    missing = (tracked(*RUNTIME) | set(DOCUMENTS)) - members
    assert not missing, "galaxy.yml build_ignore leaves out files users need: %s" % sorted(missing)
    # Everything git ignores is made by development (.venv, .build, tests/output, caches, reports):
    # none of it may reach users.
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO, input="\n".join(sorted(members)),
                             capture_output=True, text=True, check=False).stdout.split()
    assert not ignored, "the tarball holds development files; add them to galaxy.yml build_ignore: %s" % ignored
    tooling = sorted(name for name in members if name.startswith(TOOLING))
    assert not tooling, "the tarball holds development tooling; add it to galaxy.yml build_ignore: %s" % tooling


def test_the_install_holds_the_collection_and_its_dependency_only(installed):
    found = installed_collections(installed)
    assert found == {"ocsp.stapling": str(installed / "ansible_collections"), "ansible.windows": str(installed / "ansible_collections")}
    # ansible-doc resolves the module and the main role from the installed copy.
    env = ansible_env(installed)
    module = run([str(BIN / "ansible-doc"), "ocsp.stapling.verify"], env, installed).stdout
    assert "(%s)" % (installed / "ansible_collections" / "ocsp" / "stapling" / "plugins" / "modules" / "verify.py") in module
    role = run([str(BIN / "ansible-doc"), "-t", "role", "ocsp.stapling.enable"], env, installed).stdout
    # (for a role, ansible-doc names the collection's folder)
    assert "(%s)" % (installed / "ansible_collections" / "ocsp" / "stapling") in role


def recap(output: str) -> dict:
    """{host: (changed, failed)} from a play recap."""
    return {match.group(1): (int(match.group(2)), int(match.group(3)))
            for match in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output, re.MULTILINE)}


def task_files(output: str) -> set:
    """The files every task was read from, as ansible-playbook -vv logs them ("task path: FILE:LINE")."""
    return {match.group(1) for match in re.finditer(r"^task path: (.+):\d+$", output, re.MULTILINE)}


def test_the_main_job_runs_from_the_installed_copy(installed, tmp_path_factory):
    """The demo's main job on a bench nginx and a bench Apache (Debian layouts), run as a user runs it:
    playbooks named by their FQCN, from a folder of the user's own, with only the install configured."""
    project = tmp_path_factory.mktemp("project")
    copy = installed / "ansible_collections" / "ocsp" / "stapling"
    env = ansible_env(installed)
    with Bench(project / "bench") as bench:
        nginx, apache, inventory = demo_hosts(bench, project)

        def playbook(name: str) -> subprocess.CompletedProcess:
            return run([str(BIN / "ansible-playbook"), "-vv", "-i", str(inventory), "ocsp.stapling." + name], env, project)

        enable = playbook("enable")
        assert recap(enable.stdout)["web1"][0] > 0 and recap(enable.stdout)["web2"][0] > 0, enable.stdout
        files = task_files(enable.stdout)
        # The play, the enable role and the server roles all came from the installed copy.
        assert {str(copy / "roles" / role / "tasks" / "main.yml") for role in ("enable", "nginx", "apache")} <= files, sorted(files)
        assert all(path.startswith(str(copy) + os.sep) for path in files), sorted(files)
        assert "1 plays in %s" % (copy / "playbooks" / "enable.yml") in enable.stdout

        again = playbook("enable")
        assert recap(again.stdout) == {"web1": (0, 0), "web2": (0, 0)}, again.stdout

        verify = playbook("verify")
        assert "4 of 4 targets staple a good, fresh OCSP response" in verify.stdout, verify.stdout
        assert all(path.startswith(str(copy) + os.sep) for path in task_files(verify.stdout))


def test_the_collection_installs_from_its_git_url(tmp_path):
    """`ansible-galaxy collection install git+URL` as the README shows it, here with this repository's own
    git URL at HEAD: the committed tree builds, installs beside its dependency, and holds every file users need."""
    collections = install(tmp_path, "git+file://%s" % REPO, "git")
    assert set(installed_collections(collections)) == {"ocsp.stapling", "ansible.windows"}
    copy = collections / "ansible_collections" / "ocsp" / "stapling"
    committed = subprocess.run(["git", "ls-tree", "-r", "--name-only", "-z", "HEAD"], cwd=REPO, capture_output=True, text=True,
                               check=True).stdout.split("\0")
    missing = sorted(name for name in committed if name.startswith(RUNTIME) and not (copy / name).is_file())
    assert not missing, missing
