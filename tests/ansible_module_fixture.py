"""The one file that uses pytest-ansible (pinned in requirements.txt), so that replacing it costs this file.

pytest-ansible's maintainers end it in December 2026. The suite uses it for two things:

1. ``run_module``: a module of the collection called on localhost as a playbook task calls it (no
   playbook, no subprocess), through pytest-ansible's ``localhost`` fixture.
2. At start-up (its ``pytest_configure``, as pytest starts in the folder holding galaxy.yml),
   pytest-ansible lays the collection out as collections/ansible_collections/ocsp/stapling (symlinks
   into this repository), puts collections/ on ``sys.path`` (the tests import
   ``ansible_collections.ocsp.stapling...``) and sets ANSIBLE_COLLECTIONS_PATH to it;
   ``collection_dependencies`` below adds .build/collections, where ``make collections`` unpacked the
   collections this one depends on.

A replacement provides both here: ``run_module`` with the same signature and result (for example
``ansible localhost -m NAME -a JSON`` with the json stdout callback, or ansible-core's
TaskQueueManager), and, in a ``pytest_configure`` hook, .build/collections (which ``make
collections`` links to this repository) on ``sys.path`` and in ANSIBLE_COLLECTIONS_PATH.
"""

from __future__ import annotations

import os
from typing import Callable  # collections.abc.Callable[...] fails at run time on Python 3.8 (managed-host test runs)
from pathlib import Path

import pytest

ModuleRunner = Callable[..., dict]


@pytest.fixture
def run_module(localhost) -> ModuleRunner:
    """``run_module("ocsp.stapling.verify", targets=[...])``: the module's result on localhost as a plain dict
    (``failed`` and ``msg`` set when it failed, as a task's registered result)."""

    def run(name: str, **args) -> dict:
        return dict(getattr(localhost, name)(**args)["localhost"])

    return run


@pytest.fixture(scope="session", autouse=True)
def collection_dependencies() -> None:
    """Let ansible-playbook runs find galaxy.yml's dependencies (ansible.windows).

    pytest-ansible points ANSIBLE_COLLECTIONS_PATH at its own tree, which holds this collection only;
    `make` unpacks the dependencies into .build/collections, which is added after it.
    """
    dependencies = str(Path(__file__).resolve().parents[1] / ".build" / "collections")
    current = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    if dependencies not in current.split(os.pathsep):
        os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(filter(None, [current, dependencies]))
