"""The main job on a real nginx: playbooks/enable.yml through ansible-playbook, on a Debian-shaped tree.

The bench's nginx runs from a configuration laid out as Debian ships it (nginx.conf including
conf.d/*.conf and sites-enabled/*, sites-enabled entries symlinked to sites-available), with
comments, CRLF line endings in one file, a site without an OCSP URL and a site that staples already.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench import Bench
from bench.layouts import DEFAULT_SITE, debian_nginx, snapshot, write_inventory
from bench.playbook_output import host_recap, module_calls, verified_in_the_worker

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "enable.yml"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("nginx-role")
    with Bench(root) as bench:
        nginx = debian_nginx(bench, root)
        inventory = write_inventory(root / "inventory.yml", {"web1": nginx.variables})
        yield {"bench": bench, "server": nginx.server, "folder": nginx.folder, "inventory": inventory, "root": root, "original": snapshot(nginx.folder)}


def play(host, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(host["inventory"]), str(PLAYBOOK), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_1_check_mode_changes_no_byte(host):
    run = play(host, "--check", "--diff")
    assert run.returncode == 0, run.stdout + run.stderr
    assert host_recap(run.stdout, "web1")["changed"] > 0
    assert "+\tssl_stapling on; # ocsp.stapling" in run.stdout
    # The chain files are in the diff, and not written.
    assert "+++ after: %s/" % (host["root"] / "chains") in run.stdout and "+-----BEGIN CERTIFICATE-----" in run.stdout
    assert snapshot(host["folder"]) == host["original"]
    assert not (host["root"] / "chains").exists()


def test_2_converge_staples_and_verifies(host):
    run = play(host, "--diff", "-vvv")
    assert run.returncode == 0, run.stdout + run.stderr
    assert host_recap(run.stdout, "web1")["changed"] > 0
    # One call reads the host, one edits it (chain files included), one reloads; verify runs on the controller, in Ansible's worker.
    assert module_calls(run.stdout) == ["server_info", "nginx_stapling", "command"], module_calls(run.stdout)
    assert verified_in_the_worker(run.stdout), run.stdout[-3000:]
    folder = host["folder"]
    default = (folder / "sites-available" / "default").read_text()
    assert "\tssl_stapling on; # ocsp.stapling\n" in default and "\tssl_stapling_verify on; # ocsp.stapling\n" in default
    assert "ssl_trusted_certificate " + str(host["root"] / "chains") in default
    assert "\tresolver 127.0.0.1; # ocsp.stapling\n" in default
    shop = (folder / "sites-available" / "shop").read_bytes()
    # Changed in place, its comment kept, the old value recorded for state=absent.
    assert b"\r\n    ssl_stapling on;   # was turned off while debugging # ocsp.stapling: was off\r\n" in shop
    assert b"\n" not in shop.replace(b"\r\n", b"")  # every line still ends in CRLF
    nourl_block = shop.split(b"server_name nourl.test;")[1]
    assert b"ocsp.stapling" not in nourl_block
    assert (folder / "sites-enabled" / "default").is_symlink()
    assert "nourl.test" in run.stdout and "not applicable" in run.stdout
    # The verification table: every changed site staples a good, fresh response.
    assert re.search(r"\(good\.test\)\s+ok\s+good", run.stdout), run.stdout
    assert re.search(r"\(shop\.test\)\s+ok\s+good", run.stdout), run.stdout
    chains = sorted((host["root"] / "chains").iterdir())
    assert len(chains) == 2  # good.test and shop.test
    for chain in chains:
        assert oct(chain.stat().st_mode & 0o777) == "0o644"
        assert chain.read_bytes().count(b"BEGIN CERTIFICATE") == 2
    assert oct((host["root"] / "chains").stat().st_mode & 0o777) == "0o755"


def test_3_second_run_changes_nothing(host):
    chains = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in (host["root"] / "chains").iterdir()}
    run = play(host, "-vvv")
    assert run.returncode == 0, run.stdout + run.stderr
    assert host_recap(run.stdout, "web1")["changed"] == 0
    assert module_calls(run.stdout) == ["server_info", "nginx_stapling"], module_calls(run.stdout)
    assert verified_in_the_worker(run.stdout), run.stdout[-3000:]
    # No chain file was written again.
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in (host["root"] / "chains").iterdir()} == chains


def test_4_failed_server_test_restores_every_byte_and_nginx_keeps_serving(host):
    folder = host["folder"]
    # Undo the stapling of the default site by hand, so that the run has an edit to make and test.
    (folder / "sites-available" / "default").write_text(DEFAULT_SITE.format(port=host["server"].port, leaf=host["bench"].pki.leaf("good.test")))
    # nginx -t fails on this unrelated file; the parser of the collection does not judge directive names.
    (folder / "conf.d" / "broken.conf").write_text("gzip_no_such_directive on;\n")
    # The run has chain files to write too: one stale, one missing. Both must be as they were afterwards.
    stale, missing = sorted((host["root"] / "chains").iterdir())
    stale.write_bytes(b"a stale chain\r\n")
    missing.unlink()
    before = snapshot(folder)
    run = play(host)
    assert run.returncode != 0
    assert "every changed file was restored byte for byte" in run.stdout
    assert "unknown directive" in run.stdout and "gzip_no_such_directive" in run.stdout
    assert str(missing) in run.stdout and str(stale) in run.stdout  # the failed result lists the chain files it meant to write
    assert snapshot(folder) == before
    assert sorted((host["root"] / "chains").iterdir()) == [stale]
    assert stale.read_bytes() == b"a stale chain\r\n"
    assert host["server"].running()
    (folder / "conf.d" / "broken.conf").unlink()


def test_4b_unparsable_file_fails_before_any_edit_naming_file_and_line(host):
    folder = host["folder"]
    (folder / "conf.d" / "unbalanced.conf").write_text("# a half-finished edit\nmap $host $x {\n    default 1;\n")
    before = snapshot(folder)
    run = play(host)
    assert run.returncode != 0
    assert "%s:2: " % (folder / "conf.d" / "unbalanced.conf") in run.stdout
    assert snapshot(folder) == before
    assert host["server"].running()
    (folder / "conf.d" / "unbalanced.conf").unlink()


def test_5_state_absent_returns_the_original_bytes(host):
    run = play(host, "-e", "nginx_stapling_state=absent")
    assert run.returncode == 0, run.stdout + run.stderr
    assert snapshot(host["folder"]) == host["original"]
    assert not any((host["root"] / "chains").iterdir())
    run = play(host, "-e", "nginx_stapling_state=absent")
    assert host_recap(run.stdout, "web1")["changed"] == 0


def test_6_old_nginx_is_refused_with_both_versions(host, tmp_path):
    fake = tmp_path / "nginx"
    fake.write_text("#!/bin/sh\necho 'nginx version: nginx/1.2.9' >&2\n")
    fake.chmod(0o755)
    run = play(host, "-e", "nginx_stapling_binary=%s" % fake)
    assert run.returncode != 0
    assert "nginx 1.2.9 on web1 cannot staple OCSP responses: version 1.3.7 or later is needed" in run.stdout
