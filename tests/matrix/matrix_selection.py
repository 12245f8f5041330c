"""pytest plugin: which unit tests a run of scripts/matrix.sh collects, read from what each test file imports.

    python -m pytest -p matrix_selection --matrix-select=host tests/unit
    (tests/matrix and a collections path holding ocsp.stapling on PYTHONPATH)

--matrix-select=host     the tests of the managed-host code: everything the file imports is the standard
                         library, pytest, yaml (test data) or this collection's plugins/module_utils (except
                         _crypto, the controller's one import of cryptography). They run under every Python
                         from 3.8 on, in a venv holding only pytest and PyYAML, as a managed host would.
--matrix-select=ansible  the tests whose outcome can change with the ansible-core version: the file imports
                         ansible, or a plugin of this collection other than module_utils (filters, lookups).
                         They run in the venv of each ansible-core line.

No list or marker is kept by hand: a new test file lands in the right runs by its imports. The rest of
tests/unit (cryptography, the test bench) needs neither a managed host nor a particular ansible-core: it runs
in `make unit`. The end of the run lists what was left out and why.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import sysconfig

import pytest

COLLECTION = "ansible_collections.ocsp.stapling"
MODULE_UTILS = COLLECTION + ".plugins.module_utils"
# The controller-side guard of cryptography and pyOpenSSL: a test that imports it checks the controller.
CONTROLLER_MODULE_UTILS = {MODULE_UTILS + "._crypto"}
# Test-side tools of the host venvs: the runner, and the parser of YAML test data.
HOST_TEST_TOOLS = {"pytest", "_pytest", "yaml"}

_STDLIB_DIRS = tuple(os.path.realpath(sysconfig.get_paths()[key]) + os.sep for key in ("stdlib", "platstdlib"))
_stdlib: dict = {}
_selected: list = []
_left_out: dict = {}


def pytest_addoption(parser):
    parser.addoption("--matrix-select", choices=("host", "ansible"),
                     help="collect the managed-host tests (host) or the ansible-core dependent tests (ansible)")


def pytest_configure(config):
    if config.getoption("matrix_select") is None:
        raise pytest.UsageError("-p matrix_selection needs --matrix-select=host or --matrix-select=ansible")


def is_stdlib(name: str) -> bool:
    """Whether the top-level module name comes with this Python (sys.stdlib_module_names exists from 3.10 on)."""
    if name not in _stdlib:
        names = getattr(sys, "stdlib_module_names", None)
        if names is not None:
            _stdlib[name] = name in names
        else:
            spec = importlib.util.find_spec(name)
            if spec is None:
                _stdlib[name] = False
            elif name in sys.builtin_module_names or spec.origin in ("built-in", "frozen"):
                _stdlib[name] = True
            else:
                where = [spec.origin] if spec.origin else list(spec.submodule_search_locations or ())
                _stdlib[name] = bool(where) and all(
                    os.path.realpath(place).startswith(_STDLIB_DIRS) and "-packages" + os.sep not in place for place in where)
    return _stdlib[name]


def imported_names(path: str) -> list:
    """Every module a file imports, anywhere in it, in order (`from PKG import mod` counts as PKG.mod)."""
    with open(path, "rb") as source:
        tree = ast.parse(source.read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == MODULE_UTILS:
                names.extend("%s.%s" % (node.module, alias.name) for alias in node.names)
            else:
                names.append(node.module)
    return list(dict.fromkeys(names))


def host_foreign(names: list) -> list:
    """The imports that a managed host's Python, with only the standard library, does not have."""
    return [name for name in names
            if not (name.split(".")[0] in HOST_TEST_TOOLS or is_stdlib(name.split(".")[0])
                    or (name.startswith(MODULE_UTILS + ".") and name not in CONTROLLER_MODULE_UTILS))]


def ansible_dependent(names: list) -> list:
    """The imports that tie a test to the ansible-core version: ansible itself, or a non-module_utils plugin."""
    return [name for name in names if name == "ansible" or name.startswith("ansible.")
            or (name.startswith(COLLECTION + ".plugins.") and not name.startswith(MODULE_UTILS))]


def pytest_ignore_collect(collection_path, config):
    name = collection_path.name
    if not (name.startswith("test_") and name.endswith(".py") and collection_path.is_file()):
        return None
    names = imported_names(str(collection_path))
    if config.getoption("matrix_select") == "host":
        reason = host_foreign(names)
        if reason:
            _left_out[str(collection_path)] = "imports " + ", ".join(reason)
            return True
    elif not ansible_dependent(names):
        _left_out[str(collection_path)] = "imports neither ansible nor a plugin beyond module_utils"
        return True
    _selected.append(str(collection_path))
    return None


def pytest_terminal_summary(terminalreporter, config):
    root = str(config.rootpath) + os.sep
    mode = config.getoption("matrix_select")
    terminalreporter.write_sep("-", "matrix selection %s on Python %s: %d test files collected, %d left out"
                               % (mode, sys.version.split()[0], len(_selected), len(_left_out)))
    for path, reason in sorted(_left_out.items()):
        terminalreporter.write_line("left out: %s (%s)" % (path.replace(root, ""), reason))
