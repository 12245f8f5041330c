"""Crash safety and concurrency of the editing modules, on the bench's real nginx and Apache (Debian-shaped trees).

Crash: ansible-playbook runs the enable job with OCSP_STAPLING_TEST_KILL_AT set, so that the editing
module SIGKILLs itself at one step of its transaction. The tree must then hold, path by path, either
the original or the converged content (never a part of one), and the journal with complete copies of
the originals. The next run, without the hook, must report the rollback of the interrupted transaction,
converge to exactly what an uninterrupted run gives, pass the server's own test, serve stapled
responses, and leave nothing for a further run to change.

Concurrency: two ansible-playbook runs started together serialise on the host lock: both succeed, one
changes, the other finds nothing left to change. A run that cannot get the lock fails with the lock's
message and changes nothing.

Everything stays in pytest's temporary folders: the inventory points configuration, test and reload
commands, lock, backups and chain files there.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench import Bench, handshake_until
from bench.layouts import debian_apache, debian_nginx, snapshot, write_inventory
from bench.playbook_output import host_recap

from ansible_collections.ocsp.stapling.plugins.module_utils._txn import JOURNAL_NAME, KILL_AT_VARIABLE, KILL_STEPS, TEMPORARY_PREFIX, read_journal

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "enable.yml"
# Where a failing server test comes from in the "during-rollback" case: a file the collection does not judge.
BROKEN = {"nginx": ("conf.d/broken.conf", "gzip_no_such_directive on;\n"), "apache": ("conf-enabled/broken.conf", "NoSuchDirective on\n")}


def play(host: dict, *extra: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env.pop(KILL_AT_VARIABLE, None)
    if kill_at:
        env[KILL_AT_VARIABLE] = kill_at
    return subprocess.run(command(host, *extra), capture_output=True, text=True, env=env, timeout=300, check=False)


def command(host: dict, *extra: str) -> list:
    return [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(host["inventory"]), str(PLAYBOOK), *extra]


def state(host: dict) -> dict:
    """Every byte and link of the server's configuration tree and of the chain folder (dot files included)."""
    found = {"conf/" + path: content for path, content in snapshot(host["folder"]).items()}
    chains = host["root"] / "chains"
    if chains.exists():
        found.update({"chains/" + path.name: path.read_bytes() for path in chains.iterdir()})
    return found


def reset(host: dict) -> None:
    """Back to the tree as the bench laid it out, served by the server, with no chain, backup or journal."""
    folder = host["folder"]
    current = snapshot(folder)
    for path in current:
        if path not in host["original"]:
            os.unlink(folder / path)
    for path, content in host["original"].items():
        target = folder / path
        if isinstance(content, bytes):
            if target.is_symlink() or not target.exists() or target.read_bytes() != content:
                if target.is_symlink():
                    target.unlink()
                target.write_bytes(content)
        elif not target.is_symlink() or "-> " + os.readlink(target) != content:
            if os.path.lexists(target):
                target.unlink()
            target.symlink_to(content[3:])
    for extra in ("chains", "backups"):
        shutil.rmtree(host["root"] / extra, ignore_errors=True)
    assert snapshot(folder) == host["original"]
    # A restart, not a reload: Apache can die on a graceful restart that unloads socache_shmcb.
    host["server"].stop()
    host["server"].start()


def make_host(tmp_path_factory, kind: str):
    root = tmp_path_factory.mktemp("crash-" + kind)
    bench = Bench(root)
    bench.start()
    made = debian_nginx(bench, root) if kind == "nginx" else debian_apache(bench, root)
    name = "crash-" + kind
    host = {"name": name, "kind": kind, "bench": bench, "server": made.server, "folder": made.folder, "root": root,
            "inventory": write_inventory(root / "inventory.yml", {name: made.variables}), "original": snapshot(made.folder)}
    # What an uninterrupted run makes of this tree: the "new version" of every path.
    run = play(host)
    assert run.returncode == 0, run.stdout + run.stderr
    host["converged"] = state(host)
    host["original_state"] = {"conf/" + path: content for path, content in host["original"].items()}
    assert host["converged"] != host["original_state"]
    return host


@pytest.fixture(scope="module")
def nginx_host(tmp_path_factory):
    host = make_host(tmp_path_factory, "nginx")
    yield host
    host["bench"].stop()


@pytest.fixture(scope="module")
def apache_host(tmp_path_factory):
    host = make_host(tmp_path_factory, "apache")
    yield host
    host["bench"].stop()


@pytest.fixture(params=["nginx", "apache"])
def host(request):
    return request.getfixturevalue(request.param + "_host")


def assert_serves_stapled(host: dict) -> None:
    test = host["server"].test()
    assert test.returncode == 0, test.stdout + test.stderr
    assert host["server"].running()
    for name in ("good.test", "shop.test"):
        shake = handshake_until(host["server"].port, name, lambda h: h.cert_status == "good", attempts=40, delay=0.25)
        assert shake.cert_status == "good", shake.output


@pytest.mark.parametrize("step", KILL_STEPS)
def test_a_run_killed_at_each_step_is_recovered_by_the_next(host, step):
    reset(host)
    folder, journal = host["folder"], host["root"] / "backups" / JOURNAL_NAME
    broken = folder / BROKEN[host["kind"]][0]
    if step == "during-rollback":
        broken.write_text(BROKEN[host["kind"]][1])  # the server test fails, so the module rolls back, and dies in there
    run = play(host, kill_at=step)
    assert run.returncode != 0
    # The editing module died of SIGKILL (rc 137, "Killed"), not a task that failed for a reason of its own.
    assert re.search(r'TASK \[ocsp\.stapling\.\w+ : Turn stapling on .*\n(?:.*\n)*?fatal: .*"module_stderr": "Killed\\n".*"rc": 137', run.stdout), run.stdout
    if step == "during-rollback":
        broken.unlink()

    # Never a partial file: each path is the original or the converged version. From the staging to the last rename, the
    # new files not renamed yet wait beside their targets under temporary names, each complete (the converged bytes of
    # a path of its folder that does not hold them yet); at no other step is a temporary file in the tree.
    now = state(host)
    staged = {path: content for path, content in now.items() if os.path.basename(path).startswith(TEMPORARY_PREFIX)}
    assert bool(staged) == (step in ("after-staging", "between-files")), (step, sorted(staged))
    for path, content in staged.items():
        assert content in [new for target, new in host["converged"].items()
                           if os.path.dirname(target) == os.path.dirname(path) and now.get(target) != new], path
    with_staged = now
    now = {path: content for path, content in now.items() if path not in staged}
    for path in set(now) | set(host["original_state"]) | set(host["converged"]):
        assert now.get(path) in (host["original_state"].get(path), host["converged"].get(path)), path
    # And the kill came where it was meant to: before any change, halfway, after all of them, or halfway back.
    expected = {"before-backup": "original", "after-copies": "original", "after-backup": "original", "after-staging": "original",
                "between-files": "mixed", "after-write": "converged", "before-test": "converged", "after-test-before-commit": "converged",
                "during-rollback": "mixed"}[step]
    found = "original" if now == host["original_state"] else "converged" if now == host["converged"] else "mixed"
    assert found == expected, (step, found)
    # The journal is there, and its copies are the original bytes: nothing can be lost.
    recorded = read_journal(str(journal))
    for entry in recorded["steps"]:
        if entry["kind"] == "file":
            original = host["original_state"]["conf/" + os.path.relpath(entry["path"], folder)]
            assert Path(entry["backup"]).read_bytes() == original, entry
    # The server was never reloaded with anything: it still serves as before.
    assert host["server"].running()

    # Check mode reports what the recovery would do, and does nothing.
    run = play(host, "--check", "-v")
    assert run.returncode == 0, run.stdout + run.stderr
    # Warnings go to stderr.
    assert "would be rolled back first by a run that is not in check mode" in run.stderr, run.stdout + run.stderr
    assert state(host) == with_staged and journal.exists()

    run = play(host, "-v")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[WARNING]" in run.stderr and "was rolled back before this run planned its changes" in run.stderr, run.stdout + run.stderr
    assert '"recovered": {' in run.stdout and '"journal": "%s"' % journal in run.stdout and '"module": "%s_stapling"' % host["kind"] in run.stdout
    assert not journal.exists()
    assert state(host) == host["converged"]
    assert_serves_stapled(host)

    run = play(host)
    assert run.returncode == 0, run.stdout + run.stderr
    assert host_recap(run.stdout, host["name"])["changed"] == 0


def test_two_runs_at_once_serialise_on_the_host_lock(host):
    reset(host)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env.pop(KILL_AT_VARIABLE, None)
    runs = [subprocess.Popen(command(host, "-v"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _run in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, out + err
    changed = sorted(host_recap(out, host["name"])["changed"] for out, _err in outputs)
    # The one that got the lock second planned from what the first had committed: nothing left to do.
    assert changed[0] == 0 and changed[1] > 0, changed
    # One transaction only: one backup folder, and no journal left.
    assert len([path for path in (host["root"] / "backups").iterdir() if path.is_dir()]) == 1
    assert not (host["root"] / "backups" / JOURNAL_NAME).exists()
    assert state(host) == host["converged"]
    for path, content in state(host).items():
        if isinstance(content, bytes) and path.startswith("conf/sites-available/"):
            text = content.decode()
            for directive in ("ssl_stapling on;", "ssl_stapling_verify on;", "SSLUseStapling on", "SSLStaplingResponderTimeout 5"):
                blocks = re.split(r"(?m)^\s*(?:server\s*\{|<VirtualHost)", text)
                assert all(block.count(directive) <= 1 for block in blocks), (path, directive)
    assert_serves_stapled(host)


def test_a_run_that_cannot_get_the_lock_fails_and_changes_nothing(nginx_host):
    host = nginx_host
    reset(host)
    lock = host["root"] / "ocsp-stapling.lock"
    with open(lock, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another run holds it for longer than the module waits (lock_timeout)
        run = play(host, "-e", "nginx_stapling_lock_timeout=2")
    assert run.returncode != 0
    # The message names the holder, as the kernel's lock table knows it: this test's own process.
    assert re.search(r"another run holds the lock %s and did not release it within 2s \(lock_timeout\); held by pid %d of uid 0, "
                     r"command [^:]*pytest" % (re.escape(str(lock)), os.getpid()), run.stdout), run.stdout
    assert state(host) == host["original_state"]
    assert not (host["root"] / "backups" / JOURNAL_NAME).exists()
    assert host["server"].test().returncode == 0 and host["server"].running()
