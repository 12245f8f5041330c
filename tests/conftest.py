"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import importlib

import pytest
from bench import Bench


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """A started bench (PKI and OCSP responder, no web server yet), stopped at the end of the session."""
    with Bench(tmp_path_factory.mktemp("bench")) as started:
        yield started


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


@pytest.fixture
def journal(tmp_path_factory: pytest.TempPathFactory):
    """A journal in a folder of its own, outside the test's tree (as the modules keep it beside the lock):
    every transaction is journaled, in the tests as in the modules."""
    # The collection is importable only once pytest-ansible has set the path up, after this file is read.
    txn = importlib.import_module("ansible_collections.ocsp.stapling.plugins.module_utils._txn")
    return txn.Journal(str(tmp_path_factory.mktemp("journal")))
