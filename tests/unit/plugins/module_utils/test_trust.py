"""Unit tests of which places may hold the collection's state (_trust) and of what a recovery may touch (_txn).

The rules are checked on real folders; owners other than root are made with chown, so these tests
need root (the module they test runs as root on managed hosts).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils._trust import (
    UntrustedPath,
    check_state_file,
    open_state_file,
    private_folder,
    walk_folder,
)
from ansible_collections.ocsp.stapling.plugins.module_utils._txn import (
    JOURNAL_NAME,
    Journal,
    JournalError,
    TransactionError,
    apply_and_test,
    recover,
)

NOBODY = 65534
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="other owners than the runner need root to make")


def make(path, mode=0o755, owner=0, group=0):
    path.mkdir()
    os.chown(path, owner, group)
    os.chmod(path, mode)
    return path


def test_a_root_folder_is_trusted_and_its_real_path_returned(tmp_path):
    folder = make(tmp_path / "state", 0o700)
    os.symlink(folder, tmp_path / "link")
    assert private_folder(str(tmp_path / "link"), "the backup folder", "fix it") == str(folder)


@pytest.mark.parametrize("mode, owner, problem", [
    (0o755, NOBODY, "is owned by uid 65534 (nobody), not by root"),
    (0o775, 0, "is writable by its group (mode 0775)"),
    (0o757, 0, "is writable by others (mode 0757)"),
    (0o1777, 0, "is writable by group and others (mode 1777)"),  # sticky: fine on the way, never as the folder itself
])
def test_a_folder_others_can_write_is_refused_as_the_state_folder(tmp_path, mode, owner, problem):
    folder = make(tmp_path / "state", mode, owner)
    with pytest.raises(UntrustedPath, match="the backup folder %s %s, so another local user may have put or changed it.*: fix it" % (
            folder, problem.replace("(", r"\(").replace(")", r"\)"))):
        private_folder(str(folder), "the backup folder", "fix it")


def test_a_sticky_shared_folder_is_fine_on_the_way_and_for_the_lock(tmp_path):
    shared = make(tmp_path / "shared", 0o1777)
    made = private_folder(str(shared / "state" / "inner"), "the journal folder", "fix it")
    assert made == str(shared / "state" / "inner")
    assert stat.S_IMODE(os.stat(shared / "state").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    assert private_folder(str(shared), "the folder of the lock file", "fix it", shared_ok=True) == str(shared)


def test_a_folder_on_the_way_that_others_can_write_is_refused(tmp_path):
    middle = make(tmp_path / "middle", 0o777)  # no sticky bit: anyone may rename what is in it
    make(middle / "state", 0o700)
    with pytest.raises(UntrustedPath, match="the folder on the way to the backup folder %s is writable by group and others" % middle):
        walk_folder(str(middle / "state"), "the backup folder", "fix it")


def test_a_symlink_on_the_way_must_be_roots(tmp_path):
    real = make(tmp_path / "real", 0o700)
    link = tmp_path / "link"
    os.symlink(real, link)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(UntrustedPath, match="the symlink on the way to the backup folder %s is owned by uid 65534" % link):
        walk_folder(str(link), "the backup folder", "fix it")


def test_the_target_of_a_root_symlink_is_held_to_the_same_rules(tmp_path):
    other = make(tmp_path / "other", 0o755, NOBODY)
    os.symlink(other, tmp_path / "link")
    with pytest.raises(UntrustedPath, match="the backup folder %s is owned by uid 65534" % other):
        private_folder(str(tmp_path / "link"), "the backup folder", "fix it")


def test_a_symlink_loop_is_refused(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    with pytest.raises(UntrustedPath, match="more than 40 symlinks"):
        walk_folder(str(tmp_path / "a" / "x"), "the backup folder", "fix it")


def test_an_absent_folder_is_not_made_without_create(tmp_path):
    assert private_folder(str(tmp_path / "absent"), "the journal folder", "fix it", create=False) is None
    assert not (tmp_path / "absent").exists()


def test_state_files_must_be_roots_regular_files_and_no_symlinks(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("secret")
    os.symlink(secret, tmp_path / "link")
    with pytest.raises(UntrustedPath, match="is a symlink"):
        check_state_file(str(tmp_path / "link"), "the chain file", "fix it")
    with pytest.raises(UntrustedPath, match="is a symlink"):
        open_state_file(str(tmp_path / "link"), "the lock file", "fix it", os.O_RDWR | os.O_CREAT)
    theirs = tmp_path / "theirs"
    theirs.write_text("x")
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(UntrustedPath, match="owned by uid 65534"):
        open_state_file(str(theirs), "the lock file", "fix it", os.O_RDWR | os.O_CREAT)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UntrustedPath, match="is not a regular file"):
        check_state_file(str(tmp_path / "fifo"), "the chain file", "fix it")
    assert check_state_file(str(tmp_path / "absent"), "the chain file", "fix it") is None


def write_journal(folder, steps, backup_root=None, keep_backups=False):
    folder.mkdir(mode=0o700, exist_ok=True)
    journal = {"version": 1, "pid": 1, "started": "2026-11-30T00:00:00+0000", "intent": {}, "keep_backups": keep_backups,
               "phase": "applying", "steps": steps, "backup_root": backup_root}
    (folder / JOURNAL_NAME).write_text(json.dumps(journal))


def test_a_journal_naming_a_copy_outside_its_folder_is_refused(tmp_path):
    """Even in a trusted folder: a journal only ever restores from copies that live beside it."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"original\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"injected\n")
    folder = tmp_path / "journal"
    for backup in (str(elsewhere), str(folder / ".." / "elsewhere")):
        write_journal(folder, [{"op": "write", "path": str(victim), "kind": "file", "backup": backup,
                                "sha256": hashlib.sha256(b"injected\n").hexdigest(), "mode": 0o644, "uid": 0, "gid": 0}])
        with pytest.raises(JournalError, match="names a copy outside %s" % folder):
            recover(str(folder))
    assert victim.read_bytes() == b"original\n"


def test_a_journal_path_with_dot_dot_is_refused(tmp_path):
    folder = tmp_path / "journal"
    write_journal(folder, [{"op": "write", "path": str(tmp_path / "a" / ".." / "victim"), "kind": "absent"}])
    (tmp_path / "victim").write_text("stays")
    with pytest.raises(JournalError, match="names a path that is not normal"):
        recover(str(folder))
    assert (tmp_path / "victim").read_text() == "stays"


def test_a_recovery_never_deletes_a_tree_the_journal_names(tmp_path):
    """keep_backups false removes the copies the journal lists, inside its own backup folder: never another tree."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "keep.me").write_text("keep")
    folder = tmp_path / "journal"
    write_journal(folder, [], backup_root=str(tree))
    assert recover(str(folder))["paths"] == []
    assert (tree / "keep.me").read_text() == "keep"
    # A backup folder of the right shape inside the journal folder loses only the copies listed, and stays if anything else is in it.
    stamp = folder / "20261130T000000"
    (stamp / "etc").mkdir(parents=True)
    (stamp / "etc" / "listed").write_text("copy")
    (stamp / "etc" / "unlisted").write_text("not ours")
    site = tmp_path / "site.conf"
    site.write_text("copy")
    write_journal(folder, [{"op": "write", "path": str(site), "kind": "file", "backup": str(stamp / "etc" / "listed"),
                            "sha256": hashlib.sha256(b"copy").hexdigest(), "mode": 0o644, "uid": 0, "gid": 0}], backup_root=str(stamp))
    os.chmod(site, 0o644)
    recover(str(folder))
    assert not (stamp / "etc" / "listed").exists()
    assert (stamp / "etc" / "unlisted").read_text() == "not ours"


def test_a_journal_in_a_folder_another_user_owns_is_not_read(tmp_path):
    folder = make(tmp_path / "journal", 0o755, NOBODY)
    (folder / JOURNAL_NAME).write_text("{}")
    with pytest.raises(TransactionError, match="the journal folder %s is owned by uid 65534" % folder):
        recover(str(folder))
    with pytest.raises(TransactionError, match="the journal folder %s is owned by uid 65534" % folder):
        recover(str(folder), check=True)


def test_a_journal_file_another_user_owns_is_not_read(tmp_path):
    folder = make(tmp_path / "journal", 0o700)
    (folder / JOURNAL_NAME).write_text("{}")
    os.chown(folder / JOURNAL_NAME, NOBODY, NOBODY)
    with pytest.raises(JournalError, match="the journal %s is owned by uid 65534" % (folder / JOURNAL_NAME)):
        recover(str(folder))


def test_backups_are_root_only_whatever_the_original_mode(tmp_path):
    site = tmp_path / "site.conf"
    site.write_text("server {}\n")
    os.chmod(site, 0o664)
    folder = tmp_path / "backups"
    apply_and_test(lambda transaction: transaction.write(str(site), b"edited\n"), lambda: (True, ""), "server -t", journal=Journal(str(folder)))
    copies = [path for path in folder.rglob("*") if path.is_file()]
    assert len(copies) == 1 and copies[0].read_text() == "server {}\n"
    for path in [folder, *folder.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o600 if path.is_file() else 0o700), path
    assert stat.S_IMODE(site.stat().st_mode) == 0o664
