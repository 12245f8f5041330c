"""Security review, as tests: what the main job reads, writes and runs on a host.

The main job (playbooks/enable.yml) runs against a real nginx and a real Apache whose every path
(configuration, certificates, keys, chain folder, backups, lock) lies under a folder named with
spaces, quotes, `;`, `&`, `|`, parentheses and command substitutions. The converge runs under
strace, which records every file opened, written, renamed, linked or removed and every program
started by the playbook and everything it spawned. The tests then hold the collection to these
promises:

- private keys are never read by the collection (only by the server's own programs: `nginx -t`,
  `apache2 -t`) and never appear in its output, not even at -vvv;
- commands run as argument lists: the odd names are taken literally, and nothing they would run
  through a shell ever runs;
- files are written only under the server's configuration root, the chain folder, the backup
  folder and the lock file (and Ansible's own temporary folders);
- owner, group and mode of every edited file are kept (there is no SELinux on these machines: the
  module keeps contexts through Ansible's atomic_move, which the sanity and unit tests cover).
"""

from __future__ import annotations

import ast
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from bench import Bench, handshake_until
from bench.layouts import write_inventory

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "enable.yml"
NOBODY = 65534
# nginx reads `$name` in a path as a variable, so its folder carries no `$`; Apache's does.
HOSTILE = {
    "nginx": "odd dir;'q'&|(x)`touch PWNED-NGINX` #1",
    "apache": "odd dir;'q'&|(x)`touch PWNED-APACHE`$(touch PWNED-APACHE2) #2",
}
WRITES = ("openat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "symlink", "symlinkat", "mkdir", "mkdirat",
          "chmod", "fchmodat", "chown", "fchownat", "lchown", "link", "linkat", "truncate")
TRACED = "execve,clone,clone3,fork,vfork," + ",".join(WRITES)

NGINX_MAIN = """user nobody nogroup;
worker_processes 1;
pid "{folder}/run/nginx.pid";
error_log "{folder}/logs/error.log" info;
events {{
    worker_connections 64;
}}
http {{
    access_log "{folder}/logs/access.log";
    client_body_temp_path "{folder}/temp/client_body";
    proxy_temp_path "{folder}/temp/proxy";
    fastcgi_temp_path "{folder}/temp/fastcgi";
    uwsgi_temp_path "{folder}/temp/uwsgi";
    scgi_temp_path "{folder}/temp/scgi";
    include "{folder}/sites enabled/*.conf";
}}
"""

NGINX_SITE = """server {{
    listen 127.0.0.1:{port} ssl default_server;
    server_name good.test;
    ssl_certificate "{leaf.fullchain_path}";
    ssl_certificate_key "{leaf.key_path}";
    return 200 "good.test; `not a command`\\n";
}}
"""

APACHE_MAIN = """ServerRoot "{folder}"
ServerName 127.0.0.1
PidFile "{folder}/run/apache2.pid"
DefaultRuntimeDir "{folder}/run"
Mutex "file:{folder}/run" default
ErrorLog "{folder}/logs/error.log"
User nobody
Group nogroup
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
Listen 127.0.0.1:{port}
IncludeOptional "conf-enabled/*.conf"
IncludeOptional "sites-enabled/*.conf"
"""

APACHE_SITE = """<VirtualHost 127.0.0.1:{port}>
    ServerName good.test
    DocumentRoot "{folder}/htdocs"
    SSLEngine on
    SSLCertificateFile "{leaf.fullchain_path}"
    SSLCertificateKeyFile "{leaf.key_path}"
</VirtualHost>
"""


def lay_out(bench: Bench, kind: str, root: Path) -> dict:
    """A real server on a tree under the hostile folder, and the inventory variables of the main job."""
    leaf = bench.issue("good.test")
    server = bench.nginx([]) if kind == "nginx" else bench.apache([])
    folder = server.folder
    if kind == "nginx":
        for sub in ("sites available", "sites enabled", "temp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        server.conf_path.write_text(NGINX_MAIN.format(folder=folder))
        site = folder / "sites available" / "good site.conf"
        site.write_text(NGINX_SITE.format(port=server.port, leaf=leaf))
        (folder / "sites enabled" / "good site.conf").symlink_to("../sites available/good site.conf")
        command = ["nginx", "-p", str(folder) + "/", "-e", str(folder / "logs" / "error.log"), "-c", str(server.conf_path)]
        test, reload = command + ["-t"], command + ["-s", "reload"]
    else:
        for sub in ("conf-available", "conf-enabled", "mods-available", "sites-available", "sites-enabled", "htdocs"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        server.conf_path.write_text(APACHE_MAIN.format(folder=folder, port=server.port))
        site = folder / "sites-available" / "good site.conf"
        site.write_text(APACHE_SITE.format(port=server.port, folder=folder, leaf=leaf))
        (folder / "sites-enabled" / "good site.conf").symlink_to("../sites-available/good site.conf")
        command = ["apache2", "-d", str(folder), "-f", str(server.conf_path)]
        test, reload = command + ["-t"], command + ["-k", "graceful"]
    # An owner, group and mode that the edit must keep.
    os.chown(site, NOBODY, NOBODY)
    os.chmod(site, 0o640)
    server.start()
    prefix = kind + "_stapling_"
    variables = {
        "ansible_connection": "local",
        "ansible_host": "127.0.0.1",
        "ansible_python_interpreter": sys.executable,
        prefix + "conf": str(server.conf_path),
        prefix + "test_command": test,
        prefix + "reload_command": reload,
        prefix + "ca_bundles": [str(bench.pki.root_cert_path)],
        prefix + "chain_dir": str(root / "chain files"),
        prefix + "backup_dir": str(root / "back ups"),
        prefix + "lock_path": str(root / "lock file"),
        prefix + "verify_retry_budget": 15,
        "enable_servers": [kind],
    }
    if kind == "nginx":
        variables[prefix + "resolver"] = ["127.0.0.1"]
    else:
        variables[prefix + "cache_path"] = str(folder / "conf-enabled" / "ocsp stapling.conf")
        variables[prefix + "cache_spec"] = "shmcb:%s/run/ocsp-stapling(128000)" % folder
    return {"server": server, "folder": folder, "site": site, "leaf": leaf, "variables": variables}


def tree_state(folder: Path) -> dict:
    """Mode, owner, group and bytes (or link target) of every file under folder."""
    state = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        body = os.readlink(path) if path.is_symlink() else (path.read_bytes() if path.is_file() else None)
        state[str(path)] = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, body)
    return state


LINE = re.compile(r"(\w+)\((.*)\)\s+=\s+(-?\d+)")


def read_traces(base: Path) -> dict:
    """pid -> the lines strace -ff wrote for it (one file per process: no interleaved, unfinished calls)."""
    return {int(path.suffix[1:]): path.read_text(errors="replace").splitlines() for path in base.parent.glob(base.name + ".*")}


def processes(traces: dict) -> dict:
    """pid -> the argv it runs (its last execve, or its parent's), from strace -ff output."""
    parent = {}
    execs = {}
    for pid, lines in traces.items():
        for line in lines:
            match = LINE.match(line)
            if not match:
                continue
            call, args, result = match.group(1), match.group(2), int(match.group(3))
            if call in ("clone", "clone3", "fork", "vfork") and result > 0:
                parent[result] = pid
            elif call == "execve" and result == 0:
                argv = re.search(r"\[(.*?)\]", args)
                execs[pid] = argv.group(1) if argv else args

    def program(pid: int) -> str:
        seen = set()
        while pid not in execs and pid in parent and pid not in seen:
            seen.add(pid)
            pid = parent[pid]
        return execs.get(pid, "?")

    return {pid: program(pid) for pid in traces}


def accesses(traces: dict) -> list:
    """(pid, call, path, arguments) for every traced call on a path that succeeded."""
    found = []
    for pid, lines in traces.items():
        for line in lines:
            match = LINE.match(line)
            if not match or match.group(1) not in WRITES or int(match.group(3)) < 0:
                continue
            for path in re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(2)):
                found.append((pid, match.group(1), path.encode().decode("unicode_escape"), match.group(2)))
    return found


@pytest.fixture(scope="module", params=["nginx", "apache"])
def traced_run(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp("security-" + kind) / HOSTILE[kind]
    with Bench(root) as bench:
        host = lay_out(bench, kind, root)
        inventory = write_inventory(root / "inventory.yml", {"web1": host["variables"]})
        before = tree_state(host["folder"])
        machine_before = {folder: tree_state(Path(folder)) for folder in ("/etc/nginx", "/etc/apache2") if Path(folder).is_dir()}
        trace_path = root.parent / "strace.txt"
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        command = ["strace", "-ff", "-qq", "-s", "4096", "-e", "trace=" + TRACED, "-o", str(trace_path),
                   os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory), str(PLAYBOOK), "-vvv", "--diff"]
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False, cwd=root.parent)
        yield {
            "kind": kind, "root": root, "host": host, "run": run, "before": before, "after": tree_state(host["folder"]),
            "machine_before": machine_before, "bench": bench,
            "machine_after": {folder: tree_state(Path(folder)) for folder in machine_before},
            "traces": read_traces(trace_path),
        }


def test_the_main_job_succeeds_and_the_site_staples(traced_run):
    run = traced_run["run"]
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    assert "changed=1" in run.stdout or re.search(r"web1\s+: ok=\d+\s+changed=[1-9]", run.stdout), run.stdout[-3000:]
    server = traced_run["host"]["server"]
    assert handshake_until(server.port, "good.test", lambda shake: shake.stapled).stapled


def test_odd_names_are_taken_literally_and_never_reach_a_shell(traced_run):
    root = traced_run["root"]
    # The names ask a shell to create these files; none exists anywhere near.
    for folder in (root, root.parent, Path.cwd(), REPO, Path("/tmp")):
        assert not list(folder.glob("PWNED*")), folder
    program = processes(traced_run["traces"])
    assert not [argv for argv in program.values() if re.match(r'"(/usr)?/bin/(ba|da)?sh"', argv or "")
                and "PWNED" in argv], "a shell saw the odd names"
    # The edit names the files exactly: the chain file is under the chain folder and the site file was edited in place.
    site = traced_run["host"]["site"]
    text = site.read_text()
    assert "ocsp.stapling" in text
    chains = list((root / "chain files").iterdir())
    assert len(chains) == 1 and chains[0].read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_private_keys_are_never_read_or_shown(traced_run):
    leaf = traced_run["host"]["leaf"]
    key_path = str(leaf.key_path)
    key_body = leaf.key_path.read_text().splitlines()[1]
    program = processes(traced_run["traces"])
    opened = accesses(traced_run["traces"])
    readers = {program.get(pid, "?") for pid, call, path, _args in opened if call == "openat" and path == key_path}
    # The trace sees the collection's reads: server_info reads the certificate next to the key.
    assert [pid for pid, call, path, _args in opened if path == str(leaf.fullchain_path) and "AnsiballZ_server_info" in program.get(pid, "")]
    # Only the servers' own programs (nginx -t loads the keys; apache2 -t does not) open the key, never the collection.
    assert all(re.match(r'"(/usr/sbin/)?(nginx|apache2)"', reader) for reader in readers), readers
    if traced_run["kind"] == "nginx":
        assert readers, "nginx -t loads the keys: the trace must show it"
    run = traced_run["run"]
    for output in (run.stdout, run.stderr):
        assert "PRIVATE KEY" not in output and key_body not in output


def test_files_are_written_only_where_the_collection_may_write(traced_run):
    root, folder = traced_run["root"], traced_run["host"]["folder"]
    program = processes(traced_run["traces"])
    allowed = [str(folder) + "/", str(root / "chain files"), str(root / "back ups"), str(root / "lock file"),
               os.path.expanduser("~/.ansible/"), "/dev/null", "/dev/pts/", "/dev/tty", "/dev/shm/sem.", "/proc/", "/sys/",
               # Ansible unpacks each module into a payload folder of the temporary folder.
               "/tmp/ansible_"]
    # Python's tempfile probes the temporary folder once with a random 8-character file.
    probes = re.compile(r"^/tmp/?$|^/tmp/[a-z0-9_]{8}$")
    written = []
    for pid, call, path, args in accesses(traced_run["traces"]):
        if call == "openat" and not re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND", args):
            continue
        # Python's byte-code caches and the controller's own state are not the host's configuration.
        if "__pycache__" in path or path.endswith((".pyc", ".pyc.tmp")):
            continue
        if program.get(pid, "").startswith(('"/usr/sbin/nginx"', '"nginx"', '"apache2"', '"/usr/sbin/apache2"')):
            continue  # the server's own test and reload write their logs and pid files under its folder
        absolute = path if path.startswith("/") else None
        if absolute is None:
            continue  # relative names are resolved against the fd of a folder strace printed already
        if not any(absolute.startswith(prefix) for prefix in allowed) and not probes.match(absolute):
            written.append((program.get(pid, "?"), call, absolute))
    assert not written, [(call, path) for _program, call, path in written][:40]
    # The trace sees the collection's own writes: the edited site file is replaced by a rename from a module.
    site = str(traced_run["host"]["site"])
    assert [pid for pid, call, path, _args in accesses(traced_run["traces"])
            if call.startswith("rename") and path == site and "AnsiballZ_" in program.get(pid, "")]
    # And the machine's own server trees are untouched.
    assert traced_run["machine_after"] == traced_run["machine_before"]


def test_owner_group_and_mode_are_kept(traced_run):
    site = str(traced_run["host"]["site"])
    mode, uid, gid, body = traced_run["after"][site]
    before_mode, before_uid, before_gid, before_body = traced_run["before"][site]
    assert body != before_body
    assert (mode, uid, gid) == (before_mode, before_uid, before_gid) == (0o640, NOBODY, NOBODY)
    for path, (mode, uid, gid, _body) in traced_run["after"].items():
        if path in traced_run["before"]:
            assert (mode, uid, gid) == traced_run["before"][path][:3], path
    for chain in (traced_run["root"] / "chain files").iterdir():
        assert stat.S_IMODE(chain.stat().st_mode) == 0o644


# --- Static checks over the code that runs on hosts ---------------------------------------------------------------

HOST_CODE = sorted((REPO / "plugins" / "modules").glob("*.py")) + sorted((REPO / "plugins" / "module_utils").glob("*.py"))


@pytest.mark.parametrize("path", HOST_CODE, ids=lambda path: path.name)
def test_host_code_never_uses_a_shell(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("shell", "use_unsafe_shell"):
            assert isinstance(node.value, ast.Constant) and node.value.value is False, "%s:%d" % (path, node.lineno)
        if isinstance(node, ast.Attribute) and node.attr in ("system", "popen", "getoutput", "getstatusoutput"):
            owner = node.value.id if isinstance(node.value, ast.Name) else ""
            assert owner not in ("os", "subprocess", "commands"), "%s:%d: %s.%s" % (path, node.lineno, owner, node.attr)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "run_command" and node.args:
            # run_command takes a list (argv) or a string that it would split; only lists are used.
            assert isinstance(node.args[0], (ast.List, ast.Name, ast.BinOp, ast.Call, ast.Subscript)), "%s:%d" % (path, node.lineno)
            assert not isinstance(node.args[0], (ast.Constant, ast.JoinedStr)), "%s:%d" % (path, node.lineno)


def test_roles_and_playbooks_run_no_shell():
    files = sorted((REPO / "roles").rglob("*.yml")) + sorted((REPO / "playbooks").glob("*.yml"))
    for path in files:
        text = path.read_text()
        assert not re.search(r"^\s*(ansible\.builtin\.)?(shell|raw):", text, re.MULTILINE), path


def test_secret_like_options_are_no_log():
    """No module takes a secret today; any option named like one must be no_log."""
    for path in sorted((REPO / "plugins" / "modules").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and re.search(r"password|passphrase|secret|private_key|token", node.arg or ""):
                spec = node.value
                assert isinstance(spec, ast.Call) and any(
                    keyword.arg == "no_log" and getattr(keyword.value, "value", None) is True for keyword in spec.keywords), (
                    "%s: option %s must be no_log=True" % (path.name, node.arg))
