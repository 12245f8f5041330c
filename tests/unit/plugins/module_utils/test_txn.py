"""Unit tests of the per-host lock and the file transaction, on real files in a temporary folder."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils._txn import (
    ChangeRefused,
    FileTransaction,
    HostLock,
    Journal,
    TransactionError,
    apply_and_test,
    atomic_write,
    staging_writer,
)


def test_lock_excludes_a_second_run(tmp_path):
    lock = str(tmp_path / "lock")
    with HostLock(lock):
        # /proc/locks names the holder: this very process (pytest, or an xdist worker's python).
        with pytest.raises(TransactionError, match=r"another run holds the lock .* within 0.3s .*held by pid %d of uid %d, command .*(pytest|python)"
                           r".*try again when it ends" % (os.getpid(), os.geteuid())):
            with HostLock(lock, timeout=0.3):
                pass
    with HostLock(lock, timeout=0.3):
        pass


def test_lock_in_an_unwritable_place_says_what_to_do(tmp_path):
    (tmp_path / "lock").mkdir()  # a folder where the lock file should be: it cannot be opened
    with pytest.raises(TransactionError, match="set lock_path to a writable place"):
        with HostLock(str(tmp_path / "lock")):
            pass


def test_atomic_write_keeps_mode_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "site.conf"
    path.write_bytes(b"old\r\n")
    path.chmod(0o640)
    atomic_write(str(path), b"new\r\n")
    assert path.read_bytes() == b"new\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["site.conf"]


def test_rollback_restores_every_file_byte_for_byte_through_symlinks(tmp_path):
    available = tmp_path / "sites-available"
    enabled = tmp_path / "sites-enabled"
    available.mkdir()
    enabled.mkdir()
    (available / "a").write_bytes(b"server {\r\n  listen 443 ssl;\r\n}\r\n")
    (enabled / "a").symlink_to("../sites-available/a")
    main = tmp_path / "nginx.conf"
    main.write_bytes(b"http { include sites-enabled/*; }")
    backups = tmp_path / "backups"

    transaction = FileTransaction(Journal(str(backups)))
    transaction.write(str(enabled / "a"), b"changed")
    transaction.write(str(main), b"changed too")
    assert (available / "a").read_bytes() == b"server {\r\n  listen 443 ssl;\r\n}\r\n"  # queued, not made yet
    transaction.flush()
    transaction.write(str(main), b"changed again")  # a second batch: the original is the one before the first write
    transaction.flush()
    assert (enabled / "a").is_symlink() and (available / "a").read_bytes() == b"changed" and main.read_bytes() == b"changed again"

    restored = transaction.rollback()
    assert restored == [str((available / "a").resolve()), str(main.resolve())]
    assert (available / "a").read_bytes() == b"server {\r\n  listen 443 ssl;\r\n}\r\n"
    assert main.read_bytes() == b"http { include sites-enabled/*; }"
    assert (enabled / "a").is_symlink()
    saved = sorted(str(p.relative_to(backups)).split("/", 1)[1] for p in backups.rglob("*") if p.is_file())
    assert saved == sorted([str(main.resolve()).lstrip("/"), str((available / "a").resolve()).lstrip("/")])


def test_rollback_failure_names_the_file(tmp_path, journal):
    path = tmp_path / "x.conf"
    path.write_bytes(b"a")
    calls = []

    def writer(target, data):
        calls.append(target)
        if len(calls) > 1:
            raise PermissionError(13, "Permission denied")
        atomic_write(target, data)

    transaction = FileTransaction(journal, writer=writer)
    transaction.write(str(path), b"b")
    transaction.flush()
    with pytest.raises(TransactionError, match="could not restore .*x.conf \\(Permission denied\\)"):
        transaction.rollback()


def test_rollback_removes_created_files_and_links_and_brings_back_removed_ones(tmp_path, journal):
    available = tmp_path / "conf-available"
    enabled = tmp_path / "conf-enabled"
    available.mkdir()
    enabled.mkdir()
    old = tmp_path / "old.conf"
    old.write_bytes(b"keep me\n")
    transaction = FileTransaction(journal)
    transaction.write(str(available / "ocsp-stapling.conf"), b"SSLStaplingCache shmcb:/run/x(128000)\n")
    transaction.link(str(enabled / "ocsp-stapling.conf"), "../conf-available/ocsp-stapling.conf")
    transaction.remove(str(old))
    (enabled / "old.conf").symlink_to("../old.conf")
    transaction.unlink(str(enabled / "old.conf"))
    transaction.flush()
    assert (enabled / "ocsp-stapling.conf").read_bytes().startswith(b"SSLStaplingCache") and not old.exists()
    transaction.rollback()
    assert sorted(os.listdir(available)) == [] and sorted(os.listdir(enabled)) == ["old.conf"]
    assert os.readlink(enabled / "old.conf") == "../old.conf"
    assert old.read_bytes() == b"keep me\n"


def test_apply_and_test_puts_everything_back_when_the_server_refuses(tmp_path, journal):
    site = tmp_path / "site.conf"
    site.write_bytes(b"original\n")
    cache = tmp_path / "cache.conf"

    def apply(transaction):
        transaction.write(str(site), b"edited\n")
        transaction.write(str(cache), b"new file\n")

    with pytest.raises(ChangeRefused, match="nginx -t failed after the edit, so every changed file was restored byte for byte") as refused:
        apply_and_test(apply, lambda: (False, "emerg: unknown directive"), "nginx -t", journal, writer=staging_writer(os.replace))
    assert refused.value.test_output == "emerg: unknown directive"
    assert refused.value.restored == [str(site), str(cache)]
    assert site.read_bytes() == b"original\n" and not cache.exists()
    assert os.listdir(tmp_path) == ["site.conf"]


def test_apply_and_test_keeps_the_change_when_the_server_accepts_it(tmp_path, journal):
    site = tmp_path / "site.conf"
    site.write_bytes(b"original\n")
    site.chmod(0o640)
    apply_and_test(lambda transaction: transaction.write(str(site), b"edited\n"), lambda: (True, ""), "nginx -t", journal, writer=staging_writer(os.replace))
    assert site.read_bytes() == b"edited\n"


def test_a_failed_write_is_undone_and_named(tmp_path, journal):
    site = tmp_path / "site.conf"
    site.write_bytes(b"original\n")

    def apply(transaction):
        transaction.write(str(site), b"edited\n")
        transaction.write(str(tmp_path / "missing" / "x.conf"), b"cannot\n")

    with pytest.raises(ChangeRefused, match="could not change .*x.conf"):
        apply_and_test(apply, lambda: (True, ""), "apachectl -t", journal)
    assert site.read_bytes() == b"original\n"


def test_lock_without_its_folder_creates_it_for_root_alone(tmp_path):
    with HostLock(str(tmp_path / "no-such-folder" / "ocsp-stapling.lock")) as lock:
        assert lock.path == str(tmp_path / "no-such-folder" / "ocsp-stapling.lock")
        assert stat.S_IMODE(os.stat(tmp_path / "no-such-folder").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(lock.path).st_mode) == 0o600
