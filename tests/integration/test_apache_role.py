"""The main job on a real Apache: playbooks/enable.yml through ansible-playbook, on a Debian-shaped tree.

The bench's Apache runs from a configuration laid out as Debian ships it (mods-, conf- and
sites-available with -enabled symlinks), with socache_shmcb available but not enabled, a vhost in an
<IfModule mod_ssl.c> wrapper, a CRLF file with a continued line and mixed-case directives, a vhost
with stapling turned off by hand and one whose certificate has no OCSP URL.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench import Bench
from bench.client import handshake_until
from bench.layouts import debian_apache, debian_nginx, snapshot, write_inventory
from bench.playbook_output import host_recap, module_calls, verified_in_the_worker

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "enable.yml"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("apache-role")
    with Bench(root) as bench:
        apache = debian_apache(bench, root)
        inventory = write_inventory(root / "inventory.yml", {"web2": apache.variables})
        yield {"bench": bench, "server": apache.server, "folder": apache.folder, "inventory": inventory, "root": root,
               "original": snapshot(apache.folder)}


def play(inventory: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(PLAYBOOK), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_0_server_info_agrees_with_apachectl_dump(host, run_module):
    """The collection's view of the virtual hosts is Apache's own (`apache2 -S`)."""
    folder, server = host["folder"], host["server"]
    dump = subprocess.run(["apache2", "-d", str(folder), "-f", str(server.conf_path), "-S"], capture_output=True, text=True, check=True).stdout
    apache_view = {(name, os.path.basename(path), int(line)) for name, path, line in re.findall(r"namevhost (\S+) \((.+):(\d+)\)", dump)}
    info = run_module("ocsp.stapling.server_info", server="apache", apache_conf=str(server.conf_path), apache_server_root=str(folder))
    assert not info.get("failed"), info.get("msg")
    our_view = {(site["server_names"][0], os.path.basename(site["path"]), site["line"]) for site in info["sites"]}
    assert our_view == apache_view and len(our_view) == 3
    assert info["layout"] == "debian" and "socache_shmcb_module" not in info["modules"] and "ssl_module" in info["modules"]
    aliases = {site["server_names"][0]: site["server_names"][1:] for site in info["sites"]}
    assert aliases["shop.test"] == ["www.shop.test"] and "alias www.shop.test" in dump


def test_1_check_mode_changes_no_byte(host):
    run = play(host["inventory"], "--check", "--diff")
    assert run.returncode == 0, run.stdout + run.stderr
    assert host_recap(run.stdout, "web2")["changed"] > 0
    assert "SSLUseStapling on" in run.stdout
    assert "+++ after: %s/" % (host["root"] / "chains") in run.stdout and "+-----BEGIN CERTIFICATE-----" in run.stdout
    assert snapshot(host["folder"]) == host["original"]
    assert not (host["root"] / "chains").exists()


def test_2_converge_staples_and_verifies(host):
    run = play(host["inventory"], "--diff", "-vvv")
    assert run.returncode == 0, run.stdout + run.stderr
    assert host_recap(run.stdout, "web2")["changed"] > 0
    # One call reads the host (nginx runs on this machine too), one edits it, chain files included, one reloads.
    assert module_calls(run.stdout) == ["server_info", "apache_stapling", "command"], module_calls(run.stdout)
    assert verified_in_the_worker(run.stdout), run.stdout[-3000:]
    # The virtual hosts read agree with Apache's own listing (apache2 -S): no difference was warned.
    assert "does not see" not in run.stdout + run.stderr and "could not be checked" not in run.stdout + run.stderr, run.stdout
    chains = sorted((host["root"] / "chains").iterdir())
    assert len(chains) == 2 and all(oct(chain.stat().st_mode & 0o777) == "0o644" for chain in chains)
    folder = host["folder"]
    default = (folder / "sites-available" / "default-ssl.conf").read_text()
    assert "SSLUseStapling on\n" in default and "SSLStaplingResponderTimeout 5\n" in default
    assert "SSLStaplingReturnResponderErrors off\n" in default
    assert "SSLCACertificateFile " + str(host["root"] / "chains") in default
    shop = (folder / "sites-available" / "shop.conf").read_bytes()
    assert b"\n" not in shop.replace(b"\r\n", b"")  # every line still ends in CRLF
    assert b"SSLUseStapling on\r\n" in shop and b"ocsp.stapling: was off" in shop
    assert b"ocsp.stapling" not in shop.split(b"ServerName nourl.test")[1]
    # One server-scope stapling cache, in its own enabled file; socache_shmcb enabled as a2enmod does.
    cache = folder / "conf-available" / "ocsp-stapling.conf"
    assert "SSLStaplingCache shmcb:%s/run/ocsp-stapling(128000)" % folder in cache.read_text()
    assert os.readlink(folder / "conf-enabled" / "ocsp-stapling.conf") == "../conf-available/ocsp-stapling.conf"
    assert os.readlink(folder / "mods-enabled" / "socache_shmcb.load") == "../mods-available/socache_shmcb.load"
    assert (folder / "sites-enabled" / "shop.conf").is_symlink()
    # Everything went under the configuration's own ServerRoot, not the compiled-in /etc/apache2.
    assert not os.path.lexists("/etc/apache2/conf-available/ocsp-stapling.conf")
    assert "nourl.test" in run.stdout and "not applicable" in run.stdout
    assert re.search(r"\(good\.test\)\s+ok\s+good", run.stdout), run.stdout
    assert re.search(r"\(shop\.test\)\s+ok\s+good", run.stdout), run.stdout


def test_3_second_run_changes_nothing(host):
    chains = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in (host["root"] / "chains").iterdir()}
    run = play(host["inventory"], "-vvv")
    assert run.returncode == 0, run.stdout + run.stderr
    assert host_recap(run.stdout, "web2")["changed"] == 0
    assert module_calls(run.stdout) == ["server_info", "apache_stapling"], module_calls(run.stdout)
    assert verified_in_the_worker(run.stdout), run.stdout[-3000:]
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in (host["root"] / "chains").iterdir()} == chains


def test_4_failed_server_test_restores_every_byte_and_apache_keeps_serving(host):
    folder = host["folder"]
    # Undo the stapling of shop.conf by hand, so that the run has an edit to make and test.
    (folder / "sites-available" / "shop.conf").write_bytes(host["original"]["sites-available/shop.conf"])
    (folder / "conf-enabled" / "broken.conf").write_text("NoSuchDirective on\n")
    # The chain folder is gone: the run creates it and its files, and must remove them all again.
    chains = host["root"] / "chains"
    for chain in chains.iterdir():
        chain.unlink()
    chains.rmdir()
    before = snapshot(folder)
    run = play(host["inventory"])
    assert run.returncode != 0
    assert "every changed file was restored byte for byte" in run.stdout
    assert "NoSuchDirective" in run.stdout
    assert snapshot(folder) == before
    assert not chains.exists()
    assert host["server"].running()
    (folder / "conf-enabled" / "broken.conf").unlink()


def test_5_state_absent_returns_the_original_bytes(host):
    run = play(host["inventory"], "-e", "apache_stapling_state=absent")
    assert run.returncode == 0, run.stdout + run.stderr
    after = snapshot(host["folder"])
    # socache_shmcb and the server-wide stapling cache stay (removing the cache makes a graceful reload exit on
    # Apache 2.4.71); everything else, the virtual hosts included, is as it was.
    assert after.pop("mods-enabled/socache_shmcb.load") == "-> ../mods-available/socache_shmcb.load"
    assert after.pop("conf-enabled/ocsp-stapling.conf") == "-> ../conf-available/ocsp-stapling.conf"
    assert "SSLStaplingCache" in after.pop("conf-available/ocsp-stapling.conf").decode()
    assert after == host["original"]
    # The graceful reload took the server back to the original configuration, and it serves.
    assert host["server"].running(), host["server"].error_log()[-3000:]
    shake = handshake_until(host["server"].port, "good.test", lambda shake: shake.subject is not None)
    assert shake.subject == "CN = good.test" and not shake.stapled, shake.output
    run = play(host["inventory"], "-e", "apache_stapling_state=absent")
    assert host_recap(run.stdout, "web2")["changed"] == 0


def test_6_old_apache_is_refused_with_both_versions(host, tmp_path):
    fake = tmp_path / "apache2"
    fake.write_text("#!/bin/sh\necho 'Server version: Apache/2.2.34 (Unix)'\n")
    fake.chmod(0o755)
    run = play(host["inventory"], "-e", "apache_stapling_binary=%s" % fake)
    assert run.returncode != 0
    assert "Apache 2.2.34 on web2 cannot staple OCSP responses: version 2.3.3 or later is needed" in run.stdout


def test_7_enable_on_a_host_with_both_servers_handles_both(tmp_path_factory):
    root = tmp_path_factory.mktemp("both")
    (root / "n").mkdir()
    (root / "a").mkdir()
    with Bench(root) as bench:
        nginx = debian_nginx(bench, root / "n")
        apache = debian_apache(bench, root / "a")
        variables = dict(nginx.variables, **apache.variables)
        variables["enable_servers"] = ["nginx", "apache"]
        inventory = write_inventory(root / "inventory.yml", {"web3": variables})
        run = play(inventory, "-vvv")
        assert run.returncode == 0, run.stdout + run.stderr
        # The enable role's detection serves nginx; the apache role detects again, as its CA bundles differ here.
        assert module_calls(run.stdout).count("server_info") == 2, module_calls(run.stdout)
        tables = re.findall(r"127\.0\.0\.1:(\d+) \((good|shop)\.test\)\s+ok\s+good", run.stdout)
        assert {(int(port), name) for port, name in tables} == {
            (nginx.server.port, "good"), (nginx.server.port, "shop"), (apache.server.port, "good"), (apache.server.port, "shop")}
        assert host_recap(play(inventory).stdout, "web3")["changed"] == 0


# A Gentoo-shaped tree (modules and the default TLS vhost switched on by -D flags, as /etc/conf.d/apache2's
# APACHE2_OPTS does) with virtual hosts made by mod_macro, for the real apache2 to list.
GENTOO_HTTPD = """ServerRoot "{root}"
ServerName 127.0.0.1
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run default
ErrorLog "{root}/logs/error.log"
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
Include {root}/modules.d/*.conf
Include {root}/vhosts.d/*.conf
"""
GENTOO_MODULES = {
    "40_mod_ssl.conf": "<IfDefine SSL>\nLoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so\n"
                       "LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so\n</IfDefine>\n",
    "99_mod_macro.conf": "<IfDefine MACRO>\nLoadModule macro_module /usr/lib/apache2/modules/mod_macro.so\n</IfDefine>\n",
}
GENTOO_VHOSTS = {
    "00_default_ssl_vhost.conf": (
        "<IfDefine SSL>\n<IfDefine SSL_DEFAULT_VHOST>\n<IfModule ssl_module>\nListen 127.0.0.1:{port}\n\n"
        "<VirtualHost _default_:{port}>\n\tServerName localhost\n\tSSLEngine on\n\tSSLCertificateFile {cert}\n"
        "\tSSLCertificateKeyFile {key}\n</VirtualHost>\n</IfModule>\n</IfDefine>\n</IfDefine>\n"),
    "10_macros.conf": (
        "<IfModule macro_module>\n"
        "<Macro TLSSite $name @docroot>\n"
        "  # one TLS site per Use\n"
        "  <VirtualHost 127.0.0.1:{port}>\n"
        "    ServerName $name\n"
        "    ServerAlias www.$name\n"
        "    DocumentRoot @docroot\n"
        "    SSLEngine on\n"
        "    SSLCertificateFile {cert}\n"
        "    SSLCertificateKeyFile {key}\n"
        "  </VirtualHost>\n"
        "</Macro>\n"
        "Use TLSSite macro-a.test \"{root}/htdocs\"\n"
        "Use TLSSite macro-b.test {root}/htdocs\n"
        "UndefMacro TLSSite\n"
        "</IfModule>\n"
        "<IfDefine !SSL>\n<VirtualHost 127.0.0.1:{port}>\n  ServerName never.test\n  SSLEngine on\n</VirtualHost>\n</IfDefine>\n"),
}


def apache_listing(dump: str) -> set:
    """(server name, file, line) of every virtual host `apache2 -S` lists (a name-based one, or the only one of its
    address); one made by a macro is at its Use line (httpd names it `macro 'x' (defined on line N of "F") used on
    line M of "G"`, line 1)."""
    found = set()
    for name, where, line in re.findall(r"^(?:\s+port \d+ namevhost |\S+:\d+\s+)(\S+) \((.+):(\d+)\)$", dump, re.MULTILINE):
        used = re.match(r"""macro '[^']*' \(defined on line \d+ of "[^"]*"\) used on line (\d+) of "([^"]*)"$""", where)
        found.add((name, used.group(2), int(used.group(1))) if used else (name, where, int(line)))
    return found


@pytest.mark.parametrize("defines, names", [
    (["SSL", "SSL_DEFAULT_VHOST", "MACRO"], {"localhost", "macro-a.test", "macro-b.test"}),
    (["SSL", "MACRO"], {"macro-a.test", "macro-b.test"}),
    (["SSL", "SSL_DEFAULT_VHOST"], {"localhost"}),
])
def test_8_defines_and_macros_are_read_as_apache_reads_them(tmp_path, run_module, defines, names):
    """server_info with the defines the service starts Apache with lists exactly the virtual hosts `apache2 -D ... -S` lists,
    those made by macros included (at their Use lines)."""
    root = tmp_path / "apache2"
    for sub in ("modules.d", "vhosts.d", "run", "logs", "htdocs"):
        (root / sub).mkdir(parents=True)
    cert, key = root / "server.crt", root / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=localhost"], capture_output=True, check=True)
    values = {"root": root, "port": 18443, "cert": cert, "key": key}
    conf = root / "httpd.conf"
    conf.write_text(GENTOO_HTTPD.format(**values))
    for name, text in GENTOO_MODULES.items():
        (root / "modules.d" / name).write_text(text)
    for name, text in GENTOO_VHOSTS.items():
        (root / "vhosts.d" / name).write_text(text.format(**values))
    flags = [word for name in defines for word in ("-D", name)]
    dump = subprocess.run(["apache2", "-d", str(root), "-f", str(conf)] + flags + ["-S"], capture_output=True, text=True, check=True).stdout
    apache_view = apache_listing(dump)
    info = run_module("ocsp.stapling.server_info", server="apache", apache_conf=str(conf), apache_server_root=str(root), apache_defines=defines)
    assert not info.get("failed"), info.get("msg")
    our_view = {(site["server_names"][0], site["path"], site["line"]) for site in info["sites"]}
    assert our_view == apache_view and {name for name, dummy, dummy in our_view} == names
    assert info["layout"] == "gentoo" and info["defines"] == defines
    macros = [site["details"]["macro"] for site in info["sites"] if site["details"]["macro"]]
    assert [(macro["name"], macro["line"]) for macro in macros] == ([("tlssite", 13), ("tlssite", 14)] if "MACRO" in defines else [])
