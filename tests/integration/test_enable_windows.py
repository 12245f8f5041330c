"""The enable role's dispatch to the windows role, with Windows facts (no Windows host runs here).

The facts are given as inventory variables, so that the enable role does not gather them; the
windows role's version gate then decides before any Windows module would run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.layouts import write_inventory

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "enable.yml"


def play(inventory: Path) -> subprocess.CompletedProcess:
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(PLAYBOOK)]
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1"), timeout=120, check=False)


@pytest.mark.parametrize("distribution, version, product_type, expected", [
    ("Microsoft Windows Server 2003 R2 Enterprise Edition", "5.2.3790.0", "server", "upgrade to Windows Server 2008 or later"),
    ("Microsoft Windows 10 Pro", "10.0.19045.0", "workstation", "Windows Server"),
    # ansible_distribution is null on a connection without administrator rights: the message names the NT version.
    (None, "10.0.19045.0", "workstation", "Windows NT 10.0.19045 (NT 10.0.19045, product type workstation) is not Windows Server"),
])
def test_enable_dispatches_windows_hosts_to_the_windows_role(tmp_path, distribution, version, product_type, expected):
    inventory = write_inventory(tmp_path / "inventory.yml", {"win1": {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_os_family": "Windows",
        "ansible_distribution": distribution,
        "ansible_distribution_version": version,
        "ansible_os_product_type": product_type,
    }})
    run = play(inventory)
    assert run.returncode != 0
    assert "TASK [ocsp.stapling.windows : Refuse a Windows that is not Windows Server 2008 or later]" in run.stdout
    assert expected in run.stdout
    refusal = run.stdout.split("Refuse a Windows that is not Windows Server 2008 or later]", 1)[1]
    assert "None" not in refusal.split("PLAY RECAP", 1)[0]
    assert "server_info" not in run.stdout  # the nginx/Apache path was not taken
