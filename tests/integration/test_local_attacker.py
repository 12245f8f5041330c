"""Another local user against a run as root: every attack of issue 11, on the real module and a real nginx.

An unprivileged user (``nobody``) plants state where the editing module keeps its own: a journal that
would have the next run as root write, link, delete and chown what the user likes; a lock file or a
symlink at its name; a backup folder or a chain folder of their own. Each test plants that state as
``nobody`` (a child process that drops to uid/gid 65534 before it does anything), runs the real
``ocsp.stapling.nginx_stapling`` as root through ``ansible`` against a real nginx tree from the bench,
and then asserts what a user of the collection relies on: the run stops before it changes anything,
its message names the path and what to do, and nothing outside what the collection may write
changed (the victims byte for byte, with mode and owner; what was planted stays for the admin to see).

The plants go into a shared folder with the sticky bit that each test makes under /tmp, the way
/run/lock is on Debian; the victims and the nginx tree stay in pytest's root-only folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from bench import Bench
from bench.layouts import debian_nginx, snapshot

NOBODY = 65534
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")
# The system's interpreter for the attacker's processes: the project's venv may not be readable by nobody.
ATTACKER_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable

# A process that takes the lock, says so, and keeps it until it is killed.
HOLDER = "import fcntl, sys, time\nhandle = open(sys.argv[1], 'w')\nfcntl.flock(handle, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(300)\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attacks need root to run the module and another user to plant state")


def as_nobody(code: str, **kwargs) -> subprocess.CompletedProcess:
    """Run Python ``code`` as nobody:nogroup, without root's supplementary groups."""
    return subprocess.run([ATTACKER_PYTHON, "-c", code], user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
                          timeout=60, check=True, **kwargs)


def run_module(args: dict, *flags: str) -> dict:
    """One ad hoc call of nginx_stapling on localhost as root; its result, with ``failed`` and the whole ``output``."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="0")
    command = [ANSIBLE, "localhost", "-c", "local", "-i", "localhost,", "-e", "ansible_python_interpreter=" + sys.executable,
               "-m", "ocsp.stapling.nginx_stapling", "-a", json.dumps(args), *flags]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, check=False)
    # "localhost | FAILED! => {...}", after the diff when --diff is given.
    header = run.stdout.rfind("localhost | ")
    marker = run.stdout.find(" => ", header)
    assert header >= 0 and marker >= 0, run.stdout + run.stderr
    result = json.loads(run.stdout[marker + 4:])
    result["failed"] = run.stdout[header:marker].endswith("FAILED!")
    result["output"] = run.stdout + run.stderr
    return result


def fingerprint(path: Path) -> tuple:
    """What a victim is: its bytes, mode and owner (or None when it is gone)."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        return None
    data = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else sorted(os.listdir(path))
    return data, stat.S_IMODE(status.st_mode), status.st_uid, status.st_gid


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):
    with Bench(tmp_path_factory.mktemp("attacker-bench")) as started:
        yield started


@pytest.fixture
def host(bench: Bench, tmp_path: Path) -> dict:
    """A Debian-shaped nginx tree, the module arguments that would turn stapling on in it, and root-only victims."""
    layout = debian_nginx(bench, tmp_path / "nginx")
    chain_dir = tmp_path / "chains"
    leaf = bench.pki.leaf("good.test")
    chain = str(chain_dir / "good.test.chain.pem")
    victims = tmp_path / "victims"
    victims.mkdir(mode=0o700)
    (victims / "shadow").write_bytes(b"root:$6$secret-hash:19000:0:99999:7:::\n")
    os.chmod(victims / "shadow", 0o600)
    (victims / "tree").mkdir()
    (victims / "tree" / "keep.me").write_bytes(b"a file the attacker wants gone\n")
    (victims / "delete.me").write_bytes(b"another file the attacker wants gone\n")
    args = {
        "conf_path": str(layout.server.conf_path),
        "chains": {str(leaf.fullchain_path): chain},
        "chain_files": {chain: bench.pki.intermediate_cert_path.read_text() + bench.pki.root_cert_path.read_text()},
        "resolver": ["127.0.0.1"],
        "test_command": layout.variables["nginx_stapling_test_command"],
    }
    shared = Path(tempfile.mkdtemp(prefix="ocsp-stapling-shared-"))
    os.chmod(shared, 0o1777)  # as /run/lock and /tmp are: anyone may add a name, nobody may take another's
    yield {"layout": layout, "args": args, "victims": victims, "shared": shared, "chain": Path(chain), "conf": layout.server.folder,
           "before": {path: fingerprint(path) for path in sorted(victims.rglob("*"))}, "conf_before": snapshot(layout.server.folder)}
    shutil.rmtree(shared)


def assert_nothing_changed(host: dict) -> None:
    """The victims are as they were, with mode and owner; the nginx tree too; no chain file was written."""
    assert {path: fingerprint(path) for path in sorted(host["victims"].rglob("*"))} == host["before"]
    assert snapshot(host["conf"]) == host["conf_before"]
    assert not host["chain"].exists()


def plant_journal(folder: Path, victims: Path, keep_backups: bool = False) -> str:
    """As nobody: a journal in ``folder`` that would have a run as root overwrite, chown, delete, link and rmtree."""
    evil = b"root::0:0:owned by nobody:/root:/bin/bash\n"
    steps = [
        {"op": "write", "path": str(victims / "shadow"), "kind": "file", "backup": str(folder / "copy"),
         "sha256": hashlib.sha256(evil).hexdigest(), "mode": 0o666, "uid": NOBODY, "gid": NOBODY, "done": True},
        {"op": "write", "path": str(victims / "delete.me"), "kind": "absent", "done": True},
        {"op": "unlink", "path": str(victims / "link"), "kind": "symlink", "target": "/etc/shadow", "done": True},
    ]
    journal = {"version": 1, "pid": 1, "started": "2026-11-30T00:00:00+0000", "intent": {"module": "nginx_stapling"},
               "keep_backups": keep_backups, "phase": "applying", "steps": steps, "backup_root": str(victims / "tree")}
    code = ("import os, sys, json\n"
            "folder = sys.argv[1]\n"
            "os.makedirs(folder, exist_ok=True)\n"
            "open(os.path.join(folder, 'copy'), 'wb').write(%r)\n"
            "open(os.path.join(folder, 'ocsp-stapling.journal'), 'w').write(sys.argv[2])\n" % evil)
    subprocess.run([ATTACKER_PYTHON, "-c", code, str(folder), json.dumps(journal)], user=NOBODY, group=NOBODY, extra_groups=[],
                   check=True, timeout=60)
    return str(folder / "ocsp-stapling.journal")


def planted(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_a_journal_planted_beside_a_shared_lock_is_never_replayed(host):
    """The attack as reported: the journal folder beside a lock in a shared folder, made by nobody."""
    lock = host["shared"] / "ocsp-stapling.lock"
    folder = host["shared"] / "ocsp-stapling.lock.journal"
    plant_journal(folder, host["victims"])
    before = planted(folder)
    result = run_module(dict(host["args"], lock_path=str(lock)))
    assert result["failed"], result
    assert "the journal folder %s is owned by uid 65534 (nobody), not by root" % folder in result["msg"], result["msg"]
    assert "must not trust it" in result["msg"] and "chmod go-w" in result["msg"]
    assert "recovered" not in result
    assert_nothing_changed(host)
    assert planted(folder) == before  # left for the admin to look at


def test_the_default_lock_and_journal_are_out_of_every_other_users_reach(host):
    """The reported attack on the very default: nobody's journal in /run/lock is no longer a place the module reads."""
    old = Path("/run/lock/ocsp-stapling.lock.journal")
    if not Path("/run/lock").is_dir() or old.exists():
        pytest.skip("needs /run/lock without an earlier plant")
    default = Path("/run/ocsp-stapling")
    existed = default.exists()
    plant_journal(old, host["victims"])
    try:
        result = run_module(dict(host["args"], backup_dir=str(host["victims"].parent / "backups")))
        assert not result["failed"] and result["changed"], result
        assert "recovered" not in result
        status = default.stat()
        assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (0, 0o700)
        with pytest.raises(subprocess.CalledProcessError):
            as_nobody("open('/run/ocsp-stapling/lock.journal', 'w')")
        assert {path: fingerprint(path) for path in sorted(host["victims"].rglob("*"))} == host["before"]
    finally:
        shutil.rmtree(old)
        if not existed:
            shutil.rmtree(default)


def test_a_symlink_planted_at_the_lock_name_is_not_followed(host):
    lock = host["shared"] / "ocsp-stapling.lock"
    target = host["victims"] / "created-by-root"
    as_nobody("import os, sys; os.symlink(sys.argv[1], sys.argv[2])".replace("sys.argv[1]", repr(str(target))).replace(
        "sys.argv[2]", repr(str(lock))))
    result = run_module(dict(host["args"], lock_path=str(lock)))
    assert result["failed"]
    assert "the lock file %s is a symlink (to %s)" % (lock, target) in result["msg"], result["msg"]
    assert not target.exists()
    assert_nothing_changed(host)


def test_a_lock_file_another_user_made_and_holds_stops_the_run_at_once(host):
    lock = host["shared"] / "ocsp-stapling.lock"
    holder = subprocess.Popen([ATTACKER_PYTHON, "-c", HOLDER, str(lock)], user=NOBODY, group=NOBODY, extra_groups=[],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = run_module(dict(host["args"], lock_path=str(lock), lock_timeout=600))
        waited = time.monotonic() - started
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert result["failed"]
    assert "the lock file %s is owned by uid 65534 (nobody), not by root" % lock in result["msg"], result["msg"]
    assert "set lock_path to a file in a folder that only root can write (the default, /run/ocsp-stapling/lock, is one)" in result["msg"]
    # It did not wait for the lock at all: a lock_timeout of 600 s would have failed the suite's 180 s bound on the call.
    assert waited < 170, waited
    assert_nothing_changed(host)


def test_a_lock_held_by_another_run_names_that_run(host, tmp_path):
    lock = tmp_path / "lock"
    script = tmp_path / "ocsp-stapling-holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_module(dict(host["args"], lock_path=str(lock), lock_timeout=1))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert result["failed"]
    assert "another run holds the lock %s and did not release it within 1s (lock_timeout); held by pid %d of uid 0, command " % (
        lock, holder.pid) in result["msg"], result["msg"]
    assert "ocsp-stapling-holder" in result["msg"]
    assert_nothing_changed(host)


@pytest.mark.parametrize("shape", ["owned by nobody", "writable by its group", "a symlink owned by nobody"])
def test_a_backup_folder_someone_else_can_write_is_refused(host, shape):
    backups = host["shared"] / "backups"
    if shape == "owned by nobody":
        plant_journal(backups, host["victims"], keep_backups=False)
        expected = "the backup folder %s is owned by uid 65534 (nobody), not by root" % backups
    elif shape == "writable by its group":
        backups.mkdir()
        os.chown(backups, 0, NOBODY)
        os.chmod(backups, 0o775)
        expected = "the backup folder %s is writable by its group (mode 0775)" % backups
    else:
        real = host["victims"].parent / "root-backups"
        real.mkdir(mode=0o700)
        as_nobody("import os; os.symlink(%r, %r)" % (str(real), str(backups)))
        expected = "the symlink on the way to the backup folder %s is owned by uid 65534 (nobody), not by root" % backups
    result = run_module(dict(host["args"], lock_path=str(host["victims"].parent / "lock"), backup_dir=str(backups)))
    assert result["failed"]
    assert expected in result["msg"], result["msg"]
    assert "recovered" not in result
    assert_nothing_changed(host)


@pytest.mark.parametrize("flags", [("--check", "--diff"), (), ("absent",)], ids=["check-diff", "apply", "absent"])
def test_a_chain_folder_someone_else_can_write_is_refused(host, flags):
    """nobody owns the chain folder and put a symlink at the chain path, to a root-only file: never shown, written or removed."""
    chain_dir = host["shared"] / "chains"
    chain = chain_dir / host["chain"].name
    shadow = host["victims"] / "shadow"
    as_nobody("import os; os.mkdir(%r, 0o755); os.symlink(%r, %r)" % (str(chain_dir), str(shadow), str(chain)))
    args = dict(host["args"], lock_path=str(host["victims"].parent / "lock"), chains={key: str(chain) for key in host["args"]["chains"]},
                chain_files={str(chain): text for text in host["args"]["chain_files"].values()})
    if flags == ("absent",):
        args["state"], flags = "absent", ()
    result = run_module(args, *flags)
    assert result["failed"]
    assert "the chain folder %s is owned by uid 65534 (nobody), not by root" % chain_dir in result["msg"], result["msg"]
    assert "secret-hash" not in result["output"]
    assert {path: fingerprint(path) for path in sorted(host["victims"].rglob("*"))} == host["before"]
    assert os.readlink(chain) == str(shadow)
    assert snapshot(host["conf"]) == host["conf_before"]


def test_a_chain_file_link_in_a_root_folder_is_refused_too(host):
    """Even in root's own folder, a symlink at a chain path is not written through (root may have made it by mistake)."""
    chain_dir = host["chain"].parent
    chain_dir.mkdir()
    os.symlink(host["victims"] / "shadow", host["chain"])
    result = run_module(dict(host["args"], lock_path=str(host["victims"].parent / "lock")), "--check", "--diff")
    assert result["failed"]
    assert "the chain file %s is a symlink (to %s)" % (host["chain"], host["victims"] / "shadow") in result["msg"]
    assert "secret-hash" not in result["output"]


def test_backups_are_readable_by_root_alone(host, tmp_path):
    """A normal run: every copy is mode 0600 in folders of mode 0700, though the originals are world-readable."""
    backups = tmp_path / "backups"
    result = run_module(dict(host["args"], lock_path=str(tmp_path / "lock"), backup_dir=str(backups)))
    assert not result["failed"] and result["changed"], result
    copies = [path for path in backups.rglob("*") if path.is_file()]
    assert copies, "no backup was made"
    for path in backups.rglob("*"):
        status = path.lstat()
        assert status.st_uid == 0
        assert stat.S_IMODE(status.st_mode) == (0o600 if stat.S_ISREG(status.st_mode) else 0o700), path
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    originals = {Path(result_file) for result_file in result["files"]}
    assert all(stat.S_IMODE(path.stat().st_mode) & 0o044 for path in originals)
