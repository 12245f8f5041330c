"""The message for a managed host whose Python is too old (plugins/plugin_utils/host_python.py).

The whole path, real interpreters from 3.6 on against a real nginx under every ansible-core line, runs in
scripts/matrix.sh (tests/matrix/host_modules.py); these are the parts that need no host.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ansible_collections.ocsp.stapling.plugins.plugin_utils.host_python import VERSION_PROBE, parse_version, too_old_message


def test_the_probe_prints_what_parse_version_reads():
    printed = subprocess.run([sys.executable, "-c", VERSION_PROBE], capture_output=True, text=True, check=True).stdout
    assert parse_version(printed) == tuple(sys.version_info[:3])


@pytest.mark.parametrize("output, version", [
    ("3.6.15\n", (3, 6, 15)),
    # A login banner or a warning of the host's shell before the answer.
    ("Last login: Mon\nwarning: setlocale: LC_ALL: cannot change locale\n3.7.16\n", (3, 7, 16)),
    ("2.7.18", (2, 7, 18)),
])
def test_parse_version_reads_the_probe_line(output, version):
    assert parse_version(output) == version


@pytest.mark.parametrize("output", ["", None, "Python 3.6.15", "3.6\n", "bash: python3.6: command not found\n"])
def test_parse_version_refuses_anything_else(output):
    assert parse_version(output) is None


def test_the_message_names_the_module_the_interpreter_its_version_and_the_version_needed():
    message = too_old_message("ocsp.stapling.server_info", (3, 6, 15), "/usr/bin/python3")
    assert message.startswith("ocsp.stapling.server_info needs Python 3.8 or later on the managed host")
    assert "/usr/bin/python3 there is Python 3.6.15" in message
    assert "ansible_python_interpreter" in message
