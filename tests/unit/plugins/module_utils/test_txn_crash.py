"""Crash safety of the file transaction: the write-ahead journal and the recovery of a killed run.

A killed run runs no ``finally``: each crash here is a forked child that SIGKILLs itself (through the
test hook OCSP_STAPLING_TEST_KILL_AT) or leaves with os._exit, on real files in a temporary folder.
The parent then checks that every path holds its old or its new content (never a part of one), that
the journal is there, and that ``recover`` puts everything back as it was before the transaction.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils import _txn
from ansible_collections.ocsp.stapling.plugins.module_utils._txn import (
    JOURNAL_NAME,
    KILL_AT_VARIABLE,
    KILL_STEPS,
    ChangeRefused,
    HostLock,
    Journal,
    JournalError,
    TransactionError,
    apply_and_test,
    atomic_write,
    read_journal,
    recover,
    staging_writer,
)

NEW_SITE = b"server {\r\n  listen 443 ssl;\r\n  ssl_stapling on;\r\n}\r\n"
CHAIN = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
NEW_CONF = b"SSLStaplingCache shmcb:/run/x(128000)\n"


def layout(tmp_path):
    """A config tree with a symlinked site, a file and a link to remove; returns (config folder, chains folder)."""
    conf = tmp_path / "conf"
    for sub in ("available", "enabled"):
        (conf / sub).mkdir(parents=True)
    (conf / "available" / "a.conf").write_bytes(b"server {\r\n  listen 443 ssl;\r\n}\r\n")
    (conf / "available" / "a.conf").chmod(0o640)
    (conf / "enabled" / "a.conf").symlink_to("../available/a.conf")
    (conf / "old.conf").write_bytes(b"keep me\n")
    (conf / "old.conf").chmod(0o600)
    (conf / "enabled" / "old.conf").symlink_to("../old.conf")
    return conf, tmp_path / "chains"


def tree(*folders) -> dict:
    """Every file (bytes and mode), symlink and folder under ``folders``."""
    found = {}
    for folder in folders:
        if not os.path.lexists(folder):
            continue
        found[str(folder)] = "dir %o" % stat.S_IMODE(os.lstat(folder).st_mode)
        for top, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = os.path.join(top, name)
                if os.path.islink(path):
                    found[path] = "-> " + os.readlink(path)
                elif os.path.isdir(path):
                    found[path] = "dir %o" % stat.S_IMODE(os.lstat(path).st_mode)
                else:
                    with open(path, "rb") as stream:
                        found[path] = (stream.read(), stat.S_IMODE(os.lstat(path).st_mode))
    return found


def staged_files(found: dict) -> dict:
    """The files of ``found`` (see tree) that a transaction staged beside their targets."""
    return {path: content for path, content in found.items() if os.path.basename(path).startswith(_txn.TEMPORARY_PREFIX)}


def changes(conf, chains):
    """Every kind of step: new folders, a new file with a mode, an edit through a symlink, a new file and
    link, a removed file and a removed link."""
    def apply(transaction):
        transaction.makedirs(str(chains / "nested"), 0o755)
        transaction.write(str(chains / "nested" / "site.chain.pem"), CHAIN, mode=0o644)
        transaction.write(str(conf / "enabled" / "a.conf"), NEW_SITE)
        transaction.write(str(conf / "available" / "stapling.conf"), NEW_CONF)
        transaction.link(str(conf / "enabled" / "stapling.conf"), "../available/stapling.conf")
        transaction.remove(str(conf / "old.conf"))
        transaction.unlink(str(conf / "enabled" / "old.conf"))
    return apply


def run_in_child(body, environment: dict | None = None) -> int:
    """Run ``body()`` in a forked child that never returns into pytest; return its wait status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.environ.update(environment or {})
            body()
        except BaseException:  # noqa: B036 - the child must end here, whatever happened
            code = 3
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    return status


def killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def transaction_body(conf, chains, journal_dir, passes=True, writer=atomic_write):
    def body():
        journal = Journal(str(journal_dir), intent=dict(module="test", state="present"))
        apply_and_test(changes(conf, chains), lambda: (passes, "" if passes else "emerg: refused"), "server -t", writer=writer, journal=journal)
    return body


@pytest.mark.parametrize("step", KILL_STEPS)
def test_a_run_killed_at_each_step_is_rolled_back_by_the_next(tmp_path, step):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    before = tree(conf, chains)
    # The refusal leads to the rollback, where "during-rollback" kills it; every other step is on the way to a commit.
    status = run_in_child(transaction_body(conf, chains, journal_dir, passes=step != "during-rollback"), {KILL_AT_VARIABLE: step})
    assert killed(status), "the run was meant to die at %s (status %r)" % (step, status)

    # Never a partial file: each path holds the old or the new content. Between the staging and the last rename, the
    # files not renamed yet wait beside their targets under temporary names, each complete (its new bytes, synced);
    # at no other step is a temporary file left in the tree.
    after_commit = {}
    reference = tmp_path / "reference"
    conf2, chains2 = layout(reference)
    transaction_body(conf2, chains2, reference / "backups")()
    for path, content in tree(conf2, chains2).items():
        after_commit[path.replace(str(reference), str(tmp_path))] = content
    now = tree(conf, chains)
    staged = staged_files(now)
    assert bool(staged) == (step in ("after-staging", "between-files")), staged
    for path, content in staged.items():
        assert content in [new for target, new in after_commit.items()
                           if os.path.dirname(target) == os.path.dirname(path) and now.get(target) != new], path
        del now[path]
    for path in set(now) | set(before) | set(after_commit):
        assert now.get(path) in (before.get(path), after_commit.get(path)), path
    now = tree(conf, chains)
    journal = journal_dir / JOURNAL_NAME
    assert journal.exists()

    # Check mode tells what would be put back, and changes nothing.
    report = recover(str(journal_dir), check=True)
    assert report["journal"] == str(journal) and report["intent"] == {"module": "test", "state": "present"}
    assert tree(conf, chains) == now and journal.exists()

    report = recover(str(journal_dir))
    assert tree(conf, chains) == before
    # The staged files are removed too; the paths reported are those put back.
    assert sorted(report["paths"]) == sorted(path for path in set(now) | set(before) if path not in staged and now.get(path) != before.get(path))
    assert not journal.exists()
    assert recover(str(journal_dir)) is None
    # The run after it goes through.
    transaction_body(conf, chains, journal_dir)()
    assert tree(conf, chains) == {path.replace(str(reference), str(tmp_path)): content for path, content in tree(conf2, chains2).items()}


def test_the_journal_names_each_path_with_its_backup_before_the_path_changes(tmp_path):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    original = (conf / "available" / "a.conf").read_bytes()
    seen = []

    def writer(path, data):
        # At the moment of the change the journal on disk already holds it, with a complete copy of the original.
        state = read_journal(str(journal_dir / JOURNAL_NAME))
        step = [step for step in state["steps"] if step["path"] == path][-1]
        if step["kind"] == "file":
            with open(step["backup"], "rb") as stream:
                assert stream.read() == original
            assert step["mode"] == 0o640
        seen.append((path, step["kind"], step["done"]))
        atomic_write(path, data)

    transaction_body(conf, chains, journal_dir, writer=writer)()
    assert seen == [
        (str(chains / "nested" / "site.chain.pem"), "absent", False),
        (str(conf / "available" / "a.conf"), "file", False),
        (str(conf / "available" / "stapling.conf"), "absent", False),
    ]
    assert not (journal_dir / JOURNAL_NAME).exists()  # committed
    backups = [path for path in journal_dir.rglob("*") if path.is_file()]
    assert sorted(path.name for path in backups) == ["a.conf", "old.conf"]  # kept: the backup folder is the history


def test_done_marks_and_the_phase_are_on_disk(tmp_path):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    status = run_in_child(transaction_body(conf, chains, journal_dir), {KILL_AT_VARIABLE: "before-test"})
    assert killed(status)
    state = read_journal(str(journal_dir / JOURNAL_NAME))
    assert state["phase"] == "testing" and all(step["done"] for step in state["steps"])
    assert [step["op"] for step in state["steps"]] == ["mkdir", "mkdir", "write", "write", "write", "link", "remove", "unlink"]
    assert {step["kind"] for step in state["steps"] if step["op"] in ("remove",)} == {"file"}
    assert [step["target"] for step in state["steps"] if step["op"] == "unlink"] == ["../old.conf"]
    recover(str(journal_dir))


def test_a_run_killed_inside_a_writer_leaves_no_partial_file(tmp_path):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    before = tree(conf, chains)
    calls = []

    def dying_writer(path, data):
        calls.append(path)
        if len(calls) == 2:
            # Half the bytes staged beside the target, then the process is gone: the rename never happens.
            with open(os.path.join(os.path.dirname(path), _txn.TEMPORARY_PREFIX + "abcd1234"), "wb") as stream:
                stream.write(data[: len(data) // 2])
            os._exit(137)
        staging_writer(os.replace)(path, data)

    status = run_in_child(transaction_body(conf, chains, journal_dir, writer=dying_writer))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 137
    assert (conf / "available" / "a.conf").read_bytes() == before[str(conf / "available" / "a.conf")][0]  # not the half
    assert (conf / "available" / (_txn.TEMPORARY_PREFIX + "abcd1234")).exists()
    report = recover(str(journal_dir))
    assert tree(conf, chains) == before  # the stray half file is gone too
    assert str(chains / "nested" / "site.chain.pem") in report["paths"] and str(chains) in report["paths"]


def test_a_recovery_that_is_killed_too_is_finished_by_the_next_one(tmp_path):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    before = tree(conf, chains)
    assert killed(run_in_child(transaction_body(conf, chains, journal_dir), {KILL_AT_VARIABLE: "after-test-before-commit"}))
    assert killed(run_in_child(lambda: recover(str(journal_dir)), {KILL_AT_VARIABLE: "during-rollback"}))
    assert tree(conf, chains) != before and (journal_dir / JOURNAL_NAME).exists()
    recover(str(journal_dir))
    assert tree(conf, chains) == before


@pytest.mark.parametrize("torn", [1, 4])
def test_a_run_killed_while_appending_to_the_journal_loses_nothing(tmp_path, monkeypatch, torn):
    """The journal is appended to, one record a line: a crash in the middle of an append leaves a torn last line, which a
    recovery passes over. Append 1 holds every step, unsynced: torn there, no step counts (the "applying" record that
    would make them count never came, and no change was made without it). Append 4 is a "done" mark, after changes."""
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    before = tree(conf, chains)

    def body():
        appends = []
        real_write = os.write

        def write(fd, data, *args):
            if os.path.basename(os.readlink("/proc/self/fd/%d" % fd)) == JOURNAL_NAME:
                appends.append(data)
                if len(appends) == torn:  # half the record reaches the file, then the power goes
                    real_write(fd, data[:len(data) // 2])
                    os._exit(137)
            return real_write(fd, data, *args)

        monkeypatch.setattr(os, "write", write)
        transaction_body(conf, chains, journal_dir)()

    status = run_in_child(body)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 137
    text = (journal_dir / JOURNAL_NAME).read_text()
    assert not text.endswith("\n")  # torn
    state = read_journal(str(journal_dir / JOURNAL_NAME))  # still read: the torn line is passed over
    assert state["steps"]  # what was recorded before the tear
    assert state["applied"] == (0 if torn == 1 else len(state["steps"]))
    if torn == 1:
        assert tree(conf, chains) == before  # nothing changed without the "applying" record
    report = recover(str(journal_dir))
    assert tree(conf, chains) == before
    assert not (journal_dir / JOURNAL_NAME).exists()
    if torn == 1:
        assert report["paths"] == [] and [path for path in journal_dir.rglob("*") if path.is_file()] == []


def test_a_run_killed_while_recording_changed_nothing_and_its_copies_are_not_trusted(tmp_path):
    """Killed after the copies and the steps were written, before the "applying" record: nothing was changed, so the
    recovery restores nothing, reads no copy (one may be incomplete: here one is cut short), and removes them, even
    from a backup folder that keeps its copies (they were never the record of a change)."""
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    before = tree(conf, chains)
    assert killed(run_in_child(transaction_body(conf, chains, journal_dir), {KILL_AT_VARIABLE: "after-copies"}))
    assert tree(conf, chains) == before
    state = read_journal(str(journal_dir / JOURNAL_NAME))
    assert state["phase"] == "recording" and state["applied"] == 0 and len(state["steps"]) == 8
    copies = [step["backup"] for step in state["steps"] if step["kind"] == "file"]
    assert len(copies) == 2
    with open(copies[0], "r+b") as stream:
        stream.truncate(3)
    report = recover(str(journal_dir), check=True)
    assert report["paths"] == [] and report["phase"] == "recording"
    report = recover(str(journal_dir))
    assert report["paths"] == [] and tree(conf, chains) == before
    assert os.listdir(journal_dir) == []
    transaction_body(conf, chains, journal_dir)()
    assert (conf / "available" / "a.conf").read_bytes() == NEW_SITE


def test_a_journal_of_version_2_is_still_rolled_back(tmp_path):
    """A journal left by the previous release (steps appended one by one, each synced before its change; no
    "recording" phase) counts every step it holds."""
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    before = tree(conf, chains)
    assert killed(run_in_child(transaction_body(conf, chains, journal_dir), {KILL_AT_VARIABLE: "between-files"}))
    lines = (journal_dir / JOURNAL_NAME).read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 3 and header["phase"] == "recording"
    header.update(version=2, phase="applying")
    records = [line for line in lines[1:] if json.loads(line) != {"phase": "applying"}]
    (journal_dir / JOURNAL_NAME).write_text("\n".join([json.dumps(header)] + records) + "\n")
    state = read_journal(str(journal_dir / JOURNAL_NAME))
    assert state["version"] == 2 and "applied" not in state and len(state["steps"]) == 8
    assert tree(conf, chains) != before
    recover(str(journal_dir))
    assert tree(conf, chains) == before


def test_nothing_changes_before_its_record_and_no_rename_publishes_bytes_not_on_disk(tmp_path, monkeypatch):
    """The order of what reaches the disk, watched at every fsync, rename, link, removal and new folder of a real
    transaction: every copy and the journal's "applying" record are synced before the first change; every staged file
    before the rename that publishes it. And what is synced is batched: each file once, each folder at most twice."""
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    events = []
    real = {name: getattr(os, name) for name in ("fsync", "replace", "symlink", "unlink", "mkdir")}

    def watch(name):
        def call(*args, **kwargs):
            if name == "fsync":
                path = os.readlink("/proc/self/fd/%d" % args[0])
                text = open(path, "rb").read() if os.path.isfile(path) else b""  # what the fsync made durable
                outcome = real[name](*args, **kwargs)
                events.append(("fsync", path, text))
                return outcome
            events.append((name, str(args[1] if name in ("replace", "symlink") else args[0]), None))
            return real[name](*args, **kwargs)
        return call

    for name in real:
        monkeypatch.setattr(os, name, watch(name))
    transaction_body(conf, chains, journal_dir)()
    for name in real:
        monkeypatch.setattr(os, name, real[name])

    def is_change(event):
        name, path, _data = event
        return name != "fsync" and (path.startswith(str(tmp_path / "conf")) or path.startswith(str(chains)))

    first_change = next(number for number, event in enumerate(events) if is_change(event))
    synced = {path: number for number, (name, path, _data) in enumerate(events) if name == "fsync"}
    journal = str(journal_dir / JOURNAL_NAME)
    applying = [number for number, (name, path, data) in enumerate(events)
                if name == "fsync" and path == journal and data.endswith(b'{"phase":"applying"}\n')]
    assert applying and applying[0] < first_change
    copies = [path for path in synced if str(journal_dir) in path and path != journal and os.path.isfile(path)]
    assert len(copies) == 2 and all(synced[path] < applying[0] for path in copies)
    # Each staged file is synced, complete, before its rename; the rename is the first time its target changes.
    renames = [(number, path) for number, (name, path, _data) in enumerate(events) if name == "replace" and is_change(events[number])]
    assert len(renames) == 3
    for number, target in renames:
        staged = [(index, path, data) for index, (name, path, data) in enumerate(events[:number])
                  if name == "fsync" and os.path.dirname(path) == os.path.dirname(target) and os.path.basename(path).startswith(_txn.TEMPORARY_PREFIX)]
        assert any(data == open(target, "rb").read() for _index, _path, data in staged), target
    # Batched: each file synced once (the journal once per synced record: the steps, "applying", "testing"; its header
    # under a temporary name), each folder at most twice, the journal's own three times (its header, the new backup
    # folder, its removal at the commit).
    counts = {}
    for name, path, _data in events:
        if name == "fsync":
            counts[path] = counts.get(path, 0) + 1
    assert counts.pop(journal) == 3 and counts.pop(str(journal_dir)) == 3
    assert all(count == 1 for path, count in counts.items() if not os.path.isdir(path)), counts
    assert all(count <= 2 for path, count in counts.items() if os.path.isdir(path)), counts


def test_a_journal_of_version_1_is_still_rolled_back(tmp_path):
    """A journal left by an earlier release (one JSON document) is read and rolled back all the same."""
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    before = tree(conf, chains)
    assert killed(run_in_child(transaction_body(conf, chains, journal_dir), {KILL_AT_VARIABLE: "before-test"}))
    state = read_journal(str(journal_dir / JOURNAL_NAME))
    state["version"] = 1
    (journal_dir / JOURNAL_NAME).write_text(json.dumps(state, indent=1))
    recover(str(journal_dir))
    assert tree(conf, chains) == before


def test_a_stray_temporary_journal_alone_is_ignored(tmp_path):
    journal_dir = tmp_path / "backups"
    journal_dir.mkdir()
    (journal_dir / ("." + JOURNAL_NAME + ".x1y2")).write_bytes(b'{"version": 1, "ste')
    assert recover(str(journal_dir)) is None
    assert os.listdir(journal_dir) == []


@pytest.mark.parametrize("content, reason", [
    (b'{"version": 1, "pid": 12, "steps": [{"op": "wri', "cannot read"),
    (b"", "cannot read"),
    (b'{"version": 99, "steps": []}', "not a journal of version 1"),
    (b'{"version": 1, "steps": [{"op": "write", "path": "/etc/x", "kind": "file"}]}', "is incomplete"),
])
def test_an_unreadable_journal_is_refused_naming_it_and_what_to_do(tmp_path, content, reason):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    journal_dir.mkdir()
    (journal_dir / JOURNAL_NAME).write_bytes(content)
    before = tree(conf, chains)
    for check in (True, False):
        with pytest.raises(JournalError, match=reason) as refused:
            recover(str(journal_dir), check=check)
        assert str(journal_dir / JOURNAL_NAME) in str(refused.value)
        assert "then delete %s and run again" % (journal_dir / JOURNAL_NAME) in str(refused.value)
    assert tree(conf, chains) == before and (journal_dir / JOURNAL_NAME).read_bytes() == content
    # A new transaction does not start over it either.
    with pytest.raises(JournalError, match="must be recovered"):
        transaction_body(conf, chains, journal_dir)()
    assert tree(conf, chains) == before


def test_a_changed_or_missing_backup_is_refused_before_anything_is_restored(tmp_path):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    assert killed(run_in_child(transaction_body(conf, chains, journal_dir), {KILL_AT_VARIABLE: "before-test"}))
    during = tree(conf, chains)
    state = read_journal(str(journal_dir / JOURNAL_NAME))
    backup = [step["backup"] for step in state["steps"] if step["kind"] == "file"][0]
    with open(backup, "ab") as stream:
        stream.write(b"tampered")
    with pytest.raises(JournalError, match="is not the copy that was made: restore .* by hand"):
        recover(str(journal_dir))
    os.unlink(backup)
    with pytest.raises(JournalError, match="cannot be read"):
        recover(str(journal_dir))
    assert tree(conf, chains) == during


def test_without_a_backup_folder_the_copies_go_with_the_journal(tmp_path):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "lock.journal"
    before = tree(conf, chains)

    def body():
        journal = Journal(str(journal_dir), keep_backups=False)
        apply_and_test(changes(conf, chains), lambda: (True, ""), "server -t", journal=journal)

    assert killed(run_in_child(body, {KILL_AT_VARIABLE: "after-write"}))
    assert [path.name for path in journal_dir.rglob("*") if path.is_file() and path.name != JOURNAL_NAME]  # copies on disk
    recover(str(journal_dir))
    assert tree(conf, chains) == before and os.listdir(journal_dir) == []
    body()
    assert os.listdir(journal_dir) == []  # committed: journal and copies gone


def test_a_refused_change_is_rolled_back_and_its_journal_removed(tmp_path):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    before = tree(conf, chains)
    with pytest.raises(ChangeRefused) as refused:
        transaction_body(conf, chains, journal_dir, passes=False)()
    assert tree(conf, chains) == before
    assert str(chains) in refused.value.restored and str(conf / "old.conf") in refused.value.restored
    assert not (journal_dir / JOURNAL_NAME).exists()


def test_an_unexpected_error_in_the_changes_is_rolled_back(tmp_path):
    conf, chains = layout(tmp_path)
    journal_dir = tmp_path / "backups"
    before = tree(conf, chains)

    def apply(transaction):
        changes(conf, chains)(transaction)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        apply_and_test(apply, lambda: (True, ""), "server -t", journal=Journal(str(journal_dir)))
    assert tree(conf, chains) == before and not (journal_dir / JOURNAL_NAME).exists()


def test_a_link_in_the_way_of_a_new_link_is_kept_by_the_rollback(tmp_path):
    conf, _chains = layout(tmp_path)
    (conf / "enabled" / "stapling.conf").write_bytes(b"a person's own file\n")
    before = tree(conf)
    with pytest.raises(ChangeRefused, match="could not change .*stapling.conf"):
        apply_and_test(lambda t: t.link(str(conf / "enabled" / "stapling.conf"), "../available/stapling.conf"),
                       lambda: (True, ""), "server -t", journal=Journal(str(tmp_path / "backups")))
    assert tree(conf) == before


def test_the_hook_is_inert_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv(KILL_AT_VARIABLE, raising=False)
    for step in KILL_STEPS:
        _txn.checkpoint(step)  # still alive
    monkeypatch.setenv(KILL_AT_VARIABLE, "no-such-step")
    conf, chains = layout(tmp_path)
    transaction_body(conf, chains, tmp_path / "backups")()
    assert (conf / "available" / "a.conf").read_bytes() == NEW_SITE


def converge_once(lock_path, journal_dir, site, timeout=30.0):
    """A run as the modules make it: under the lock, recover, plan from what is on disk, change, test. Returns what it did."""
    with HostLock(str(lock_path), timeout=timeout):
        report = recover(str(journal_dir))
        text = site.read_bytes()
        if b"ssl_stapling on;" in text:
            return "unchanged", report
        new = text.replace(b"}\n", b"  ssl_stapling on;\n}\n", 1)
        # A slow server test keeps the lock long enough for the other run to be waiting on it.
        apply_and_test(lambda t: t.write(str(site), new), lambda: (time.sleep(0.5) or True, ""), "server -t", journal=Journal(str(journal_dir)))
        return "changed", report


def test_two_runs_at_once_serialise_one_changes_the_other_finds_it_done(tmp_path):
    site = tmp_path / "site.conf"
    site.write_bytes(b"server {\n  listen 443 ssl;\n}\n")
    reader, writer = os.pipe()
    children = []
    for _number in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                outcome, _report = converge_once(tmp_path / "lock", tmp_path / "backups", site)
                os.write(writer, outcome.encode() + b"\n")
            finally:
                os._exit(0)
        children.append(pid)
    os.close(writer)
    for pid in children:
        os.waitpid(pid, 0)
    with os.fdopen(reader) as stream:
        outcomes = sorted(stream.read().split())
    assert outcomes == ["changed", "unchanged"]
    assert site.read_bytes() == b"server {\n  listen 443 ssl;\n  ssl_stapling on;\n}\n"  # once, not twice
    assert not (tmp_path / "backups" / JOURNAL_NAME).exists()


def test_a_killed_run_does_not_keep_the_lock_and_the_next_one_recovers(tmp_path):
    site = tmp_path / "site.conf"
    site.write_bytes(b"server {\n  listen 443 ssl;\n}\n")
    assert killed(run_in_child(lambda: converge_once(tmp_path / "lock", tmp_path / "backups", site), {KILL_AT_VARIABLE: "after-test-before-commit"}))
    assert b"ssl_stapling on;" in site.read_bytes()  # written and tested, never committed
    # The kernel dropped the dead run's flock: no wait here.
    started = time.monotonic()
    outcome, report = converge_once(tmp_path / "lock", tmp_path / "backups", site)
    assert time.monotonic() - started < 5
    assert report["paths"] == [str(site)] and report["phase"] == "testing"
    assert outcome == "changed"  # rolled back first, then made again from the restored state
    assert site.read_bytes() == b"server {\n  listen 443 ssl;\n  ssl_stapling on;\n}\n"


def test_a_run_that_cannot_get_the_lock_changes_nothing(tmp_path):
    site = tmp_path / "site.conf"
    site.write_bytes(b"server {\n  listen 443 ssl;\n}\n")
    with HostLock(str(tmp_path / "lock")):  # another run, in this process, holds it
        with pytest.raises(TransactionError, match="another run holds the lock .*lock and did not release it within 0.3s .*try again when it ends"):
            converge_once(tmp_path / "lock", tmp_path / "backups", site, timeout=0.3)
    assert site.read_bytes() == b"server {\n  listen 443 ssl;\n}\n"
    assert not (tmp_path / "backups").exists()
