"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench import Bench


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """A started bench (PKI and OCSP responder, no web server yet), stopped at the end of the session."""
    with Bench(tmp_path_factory.mktemp("bench")) as started:
        yield started
