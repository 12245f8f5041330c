"""The namespace fleet of tests/bench/netns.py: two hosts reached over SSH, the enable playbook once, all gone after.

The benchmark benchmarks/fleet_netns.py runs the same fleet at 10 to 100 hosts; this proves on two that
it is what it claims: each host has its own sshd, server and files (the machine's own are not touched),
Ansible reaches it over SSH, the collection staples its sites against the bench's responder, and
stopping leaves no namespace, interface or process behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from bench.netns import SUBNET, NetnsFleet, run

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "enable.yml"
# What a fleet host must never write to on the machine itself: its own copies are bind-mounted over these.
MACHINE_PATHS = [Path("/etc/nginx"), Path("/etc/apache2"), Path("/etc/ssl"), Path("/var/backups")]


def fingerprint(folders: list[Path]) -> dict:
    """Every file and link under folders, with a hash of its bytes (or its target)."""
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                found[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def recap(output: str) -> dict:
    return {found.group(1): (int(found.group(2)), int(found.group(3))) for found in
            re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output, re.MULTILINE)}


def test_two_hosts_over_ssh_get_stapling_and_leave_nothing_behind(tmp_path):
    machine_before = fingerprint(MACHINE_PATHS)
    fleet = NetnsFleet(tmp_path / "fleet", hosts=2, rtt_ms=20)
    fleet.start()
    try:
        nginx_host, apache_host = fleet.members
        assert (nginx_host.server, apache_host.server) == ("nginx", "apache")
        pids = [child.pid for host in fleet.members for child in (host.sshd, host.proxy)]
        for host in fleet.members:
            # The host's only route is the bridge's subnet: nothing it sends can leave the bench.
            routes = run(["ip", "-n", host.netns, "-4", "route", "show"]).stdout
            assert "default" not in routes and routes.strip().startswith(f"{SUBNET}.{fleet.subnet}.0/24"), routes
        inventory = fleet.write_inventory()
        env = fleet.ansible_env(forks=2)
        env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(REPO / ".build" / "collections"))
        played = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(PLAYBOOK)],
                                cwd=fleet.folder, env=env, capture_output=True, text=True, timeout=240, check=False)
        assert played.returncode == 0, played.stdout[-6000:] + played.stderr[-3000:]
        # Each host changed (edit + reload) and failed nothing, over SSH: no local connection anywhere.
        assert recap(played.stdout) == {"h001": (2, 0), "h002": (2, 0)}, played.stdout[-3000:]
        assert played.stdout.count("2 of 2 targets staple a good, fresh OCSP response") == 2
        # The remote calls per host, as its sshd saw them: one SSH connection; the detection, the edit, and the
        # reload through the service module (which asks the host for its service manager first).
        calls = {name: (counts["connections"], counts["sessions"]) for name, counts in fleet.session_counts().items()}
        assert calls == {"h001": (1, 4), "h002": (1, 4)}
        # The edits are in each host's own files, and nowhere else.
        nginx_site = (nginx_host.root / "etc/nginx/sites-available" / f"{nginx_host.sites[0]}.conf").read_text(encoding="utf-8")
        apache_site = (apache_host.root / "etc/apache2/sites-available" / f"{apache_host.sites[0]}.conf").read_text(encoding="utf-8")
        assert "ssl_stapling on;" in nginx_site and "SSLUseStapling on" in apache_site
        assert any((host.root / "etc/ssl/ocsp-stapling").iterdir() for host in fleet.members)
        assert fingerprint(MACHINE_PATHS) == machine_before
    finally:
        fleet.stop()
    assert not [name for name in run(["ip", "netns", "list"]).stdout.split() if name.startswith(f"ocf{fleet.subnet}-")]
    assert run(["ip", "link", "show", fleet.bridge], check=False).returncode != 0
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not (fleet.folder / "hosts").exists()
