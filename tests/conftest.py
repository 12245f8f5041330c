"""Fixtures shared by every test folder."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bench import Bench

# pytest-ansible is used through this plugin alone (module calls, the collection path): swapping it costs that file.
pytest_plugins = ["ansible_module_fixture"]


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """A started bench (PKI and OCSP responder, no web server yet), stopped at the end of the session."""
    # Imported here, not above: the bench needs cryptography, which the managed-host runs of scripts/matrix.sh lack.
    Bench = importlib.import_module("bench").Bench  # noqa: N806
    with Bench(tmp_path_factory.mktemp("bench")) as started:
        yield started


@pytest.fixture
def journal(tmp_path_factory: pytest.TempPathFactory):
    """A journal in a folder of its own, outside the test's tree (as the modules keep it beside the lock):
    every transaction is journaled, in the tests as in the modules."""
    # The collection is importable only once the collection path is set up (ansible_module_fixture), after this file is read.
    txn = importlib.import_module("ansible_collections.ocsp.stapling.plugins.module_utils._txn")
    return txn.Journal(str(tmp_path_factory.mktemp("journal")))
