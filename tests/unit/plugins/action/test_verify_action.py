"""Where ocsp.stapling.verify runs (plugins/action/verify.py): inside the worker only where the module would run
on the controller, as the controller's user, with the controller's Python.

tests/integration/test_verify.py runs both ways against real servers and compares the answers.
"""

from __future__ import annotations

import sys

import pytest

from ansible_collections.ocsp.stapling.plugins.action.verify import runs_here

HERE = dict(transport="local", become=False, async_seconds=0, interpreter=None, has_libraries=True)


def test_delegated_to_the_controller_it_runs_in_the_worker():
    assert runs_here(**HERE)
    assert runs_here(**{**HERE, "interpreter": sys.executable})


@pytest.mark.parametrize("change", [
    {"transport": "ssh"},            # delegated to another machine (a jump host in the sites' network)
    {"transport": "winrm"},
    {"become": True},                # the module would run as another user
    {"async_seconds": 30},           # ansible-core's async wrapper runs modules only
    {"interpreter": "/opt/tls/bin/python3"},  # the user chose the Python the check runs with
    {"has_libraries": False},        # the module may be given a Python that has pyOpenSSL
])
def test_anything_else_runs_the_module(change):
    assert not runs_here(**{**HERE, **change})
