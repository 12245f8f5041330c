"""Bad input against real servers: the editing modules run, as the roles run them, on the bench's
Debian-shaped nginx and Apache trees with one piece of bad input added at a time.

A row either edits (the server's own test passes on the result, a graceful reload keeps it serving,
and `state: absent` gives every byte back) or fails with a message naming the file and line, after
which every configuration byte and chain file is as before, the server's own test says what it
said before, and the server keeps serving. Then the bad input is taken out again, and the server's
test passes, so that every row starts from a healthy server.

Unreadable and read-only files as root: a FIFO stands for a file that cannot be read (root reads a
mode-000 file), and `chattr +i` makes a file that root cannot replace (a read-only folder does not
stop root, and a read-only bind mount needs privileges the tests do not have). chattr comes with
e2fsprogs, on every Debian; if the file system refuses the flag, the row fails and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench import Bench, handshake_until
from bench.layouts import debian_apache, debian_nginx, snapshot

ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input-servers")
    (root / "n").mkdir()
    (root / "a").mkdir()
    with Bench(root) as bench:
        yield {"bench": bench, "root": root, "nginx": debian_nginx(bench, root / "n"), "apache": debian_apache(bench, root / "a")}


def run_module(module: str, args: dict) -> dict:
    """One ad hoc call of the module on localhost, as a role makes it; its result."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="0")
    command = [ANSIBLE, "localhost", "-c", "local", "-i", "localhost,", "-e", "ansible_python_interpreter=" + sys.executable,
               "-m", "ocsp.stapling." + module, "-a", json.dumps(args)]
    # Bounded: a module waiting on a FIFO would otherwise hang the suite.
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    # "localhost | CHANGED => {...}": the status is in the header only (FAILED!, CHANGED, SUCCESS).
    marker = run.stdout.find(" => ")
    assert marker >= 0, run.stdout + run.stderr
    result = json.loads(run.stdout[marker + 4:])
    result["failed"] = run.stdout[:marker].endswith("FAILED!")
    return result


def chain_pem(bench: Bench) -> str:
    return bench.pki.intermediate_cert_path.read_text() + bench.pki.root_cert_path.read_text()


def nginx_args(servers: dict, state: str) -> dict:
    host, bench, root = servers["nginx"], servers["bench"], servers["root"] / "n"
    chains = {str(bench.pki.leaf(name).fullchain_path): str(root / "chains" / (name + ".chain.pem")) for name in ("good.test", "shop.test")}
    return {
        "conf_path": str(host.server.conf_path),
        "chains": chains,
        "chain_files": {chain: chain_pem(bench) for chain in chains.values()},
        "resolver": ["127.0.0.1"],
        "test_command": host.variables["nginx_stapling_test_command"],
        "lock_path": str(root / "ocsp-stapling.lock"),
        "backup_dir": str(root / "backups"),
        "state": state,
    }


def apache_args(servers: dict, state: str) -> dict:
    host, bench, root = servers["apache"], servers["bench"], servers["root"] / "a"
    folder = host.folder
    chains = {str(bench.pki.leaf(name).fullchain_path): str(root / "chains" / (name + ".chain.pem")) for name in ("good.test", "shop.test")}
    return {
        "conf_path": str(host.server.conf_path),
        "server_root": str(folder),
        "chains": chains,
        "chain_files": {chain: chain_pem(bench) for chain in chains.values()},
        "cache_path": str(folder / "conf-available" / "ocsp-stapling.conf"),
        "cache_spec": host.variables["apache_stapling_cache_spec"],
        # As the role: socache_shmcb and the cache file are enabled on present and stay on absent.
        "links": {
            str(folder / "conf-enabled" / "ocsp-stapling.conf"): "../conf-available/ocsp-stapling.conf",
            str(folder / "mods-enabled" / "socache_shmcb.load"): "../mods-available/socache_shmcb.load",
        } if state == "present" else {},
        "test_command": host.variables["apache_stapling_test_command"],
        "lock_path": str(root / "ocsp-stapling.lock"),
        "backup_dir": str(root / "backups"),
        "state": state,
        # As the role: the server-wide stapling cache stays on absent (removing it makes a graceful restart exit).
        "keep_cache": True,
    }


ARGS = {"nginx": ("nginx_stapling", nginx_args), "apache": ("apache_stapling", apache_args)}


@dataclass(frozen=True)
class Row:
    server: str
    # relative path -> bytes to write ("{folder}" replaced), or a function(folder) that makes the bad input
    files: dict
    outcome: str
    fragments: tuple = ()
    # Relative paths made immutable (chattr +i) for the run.
    immutable: tuple = ()
    # The server's own test would wait forever on the bad input (a FIFO): it is run after the input is gone.
    test_blocks: bool = False


def row(row_id: str, server: str, files: dict, outcome: str, *fragments: str, **kwargs) -> pytest.param:
    return pytest.param(Row(server, files, outcome, fragments, **kwargs), id=row_id)


def prepend(data: bytes):
    """Put ``data`` before the present bytes of the file (its original is restored afterwards)."""
    return lambda path: path.write_bytes(data + path.read_bytes())


def replace(old: bytes, new: bytes):
    def change(path: Path) -> None:
        text = path.read_bytes()
        assert old in text, (old, path)
        path.write_bytes(text.replace(old, new, 1))
    return change


def fifo(path: Path) -> None:
    os.mkfifo(path)


ROWS = [
    # nginx
    row("nginx-unbalanced-brace", "nginx", {"conf.d/bad.conf": b"# half an edit\nmap $host $x {\n    default 1;\n"}, "error",
        "{folder}/conf.d/bad.conf:2: ", 'add the missing "}"'),
    row("nginx-utf8-bom", "nginx", {"conf.d/bom.conf": b"\xef\xbb\xbfgzip_vary on;\n"}, "error", "{folder}/conf.d/bom.conf:1: ", "byte order mark"),
    row("nginx-fifo-include", "nginx", {"conf.d/pipe.conf": fifo}, "error", "{folder}/nginx.conf:", "a FIFO", "replace it with a regular file",
        test_blocks=True),
    row("nginx-duplicate-ssl-stapling", "nginx", {"sites-available/default": replace(b"\tserver_name good.test;\n",
                                                                                     b"\tserver_name good.test;\n\tssl_stapling off;\n\tssl_stapling on;\n")},
        "error", "{folder}/sites-available/default:17: ", "is duplicate", "remove one of them"),
    row("nginx-immutable-site-file", "nginx", {}, "error", "{folder}/sites-available/default", "it cannot be replaced; make it writable",
        "chattr -i", "everything was put back",
        immutable=("sites-available/default",)),
    row("nginx-odd-bytes-edit", "nginx", {"sites-available/default": prepend(
        b"# caf\xe9 \xab{\xbb \"unclosed ' \x00 nul\r\n\t# tab {\n"), "conf.d/odd.conf": b'# \xe9t\xe9\nadd_header X-Odd "a # b \\"q\\" {c}";\n'},
        "edit"),
    # Apache
    row("apache-stray-closing-section", "apache", {"sites-available/shop.conf": lambda path: path.write_bytes(path.read_bytes() + b"</VirtualHost>\r\n")},
        "error", "{folder}/sites-available/shop.conf:21: ", "without matching <VirtualHost> section"),
    row("apache-utf8-bom", "apache", {"conf-enabled/bom.conf": b"\xef\xbb\xbfServerSignature Off\n"}, "error",
        "{folder}/conf-enabled/bom.conf:1: ", "byte order mark"),
    row("apache-fifo-include", "apache", {"conf-enabled/pipe.conf": fifo}, "error", "{folder}/apache2.conf:", "a FIFO",
        "replace it with a regular file", test_blocks=True),
    row("apache-sslusestapling-in-directory", "apache", {"sites-available/default-ssl.conf": replace(
        b"\t\tSSLEngine on\n", b"\t\tSSLEngine on\n\t\t<Directory />\n\t\t\tSSLUseStapling off\n\t\t</Directory>\n")},
        "error", "{folder}/sites-available/default-ssl.conf:14: ", "not allowed in <Directory> context"),
    row("apache-immutable-site-file", "apache", {}, "error", "{folder}/sites-available/default-ssl.conf", "it cannot be replaced; make it writable",
        "everything was put back",
        immutable=("sites-available/default-ssl.conf",)),
    row("apache-odd-bytes-edit", "apache", {"sites-available/default-ssl.conf": prepend(
        b"# caf\xe9 </VirtualHost> \"unclosed ' \x00\r\n\t# tab\n"), "conf-enabled/odd.conf": b'# \xe9t\xe9\nServerSignature \\\n    Off\n'},
        "edit"),
]


def apply_row(folder: Path, item: Row) -> list:
    """Make the bad input; return what undoes it."""
    undo = []
    for relative, content in item.files.items():
        path = folder / relative
        if path.exists() and not path.is_symlink():
            original = path.read_bytes()
            undo.append(lambda path=path, original=original: path.write_bytes(original))
        else:
            undo.append(lambda path=path: path.unlink())
        if callable(content):
            content(path)
        else:
            path.write_bytes(content.replace(b"{folder}", str(folder).encode()))
    return undo


def chattr(flag: str, path: Path) -> None:
    result = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, "chattr %s %s failed (%s): this row needs a file system with the immutable flag" % (
        flag, path, result.stderr.strip())


def chains_state(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*"))} if folder.exists() else {}


def serving(server, name: str = "good.test") -> bool:
    return server.running() and handshake_until(server.port, name, lambda handshake: handshake.subject is not None).subject is not None


@pytest.mark.parametrize("item", ROWS)
def test_bad_input_on_a_real_server(item, servers):
    host = servers[item.server]
    server, folder = host.server, host.folder
    module, make_args = ARGS[item.server]
    chain_folder = servers["root"] / ("n" if item.server == "nginx" else "a") / "chains"
    assert server.test().returncode == 0 and serving(server)
    undo = apply_row(folder, item)
    try:
        for relative in item.immutable:
            chattr("+i", folder / relative)
        before, chains_before = snapshot(folder), chains_state(chain_folder)
        test_before = None if item.test_blocks else server.test()
        result = run_module(module, make_args(servers, "present"))
        message = result.get("msg", "")
        if item.outcome == "error":
            assert result.get("failed") and "Traceback" not in json.dumps(result), result
            for fragment in item.fragments:
                assert fragment.replace("{folder}", str(folder)) in message, message
            assert snapshot(folder) == before
            assert chains_state(chain_folder) == chains_before
            if test_before is not None:
                test_after = server.test()
                assert (test_after.returncode, test_after.stderr) == (test_before.returncode, test_before.stderr)
            assert serving(server)
        else:
            assert not result.get("failed") and result["changed"], result
            assert server.test().returncode == 0
            server.reload()
            assert serving(server) and serving(server, "shop.test")
            back = run_module(module, make_args(servers, "absent"))
            assert not back.get("failed") and back["changed"], back
            after = snapshot(folder)
            if item.server == "apache":
                if "mods-enabled/socache_shmcb.load" not in before:
                    assert after.pop("mods-enabled/socache_shmcb.load") == "-> ../mods-available/socache_shmcb.load"
                assert after.pop("conf-enabled/ocsp-stapling.conf") == "-> ../conf-available/ocsp-stapling.conf"
                assert "SSLStaplingCache" in after.pop("conf-available/ocsp-stapling.conf").decode()
            assert after == before, "state=absent did not give every byte back"
            assert chains_state(chain_folder) == chains_before
            assert server.test().returncode == 0
            server.reload()
            assert serving(server)
    finally:
        for relative in item.immutable:
            chattr("-i", folder / relative)
        for step in reversed(undo):
            step()
    assert server.test().returncode == 0 and serving(server)
