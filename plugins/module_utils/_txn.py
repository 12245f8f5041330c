# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Transactional edits of server configuration files on a managed host.

One lock per host serialises runs (two plays, or a play and a person's script); every touched
file is backed up before it is replaced, and a failed server test puts every file back byte for
byte. Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import time


class TransactionError(Exception):
    """The transaction could not start, or could not put the files back; the message says which file."""


class ChangeRefused(TransactionError):
    """The change was made, refused and undone; ``restored`` lists the paths put back."""

    def __init__(self, message: str, restored: list, test_output: str | None = None) -> None:
        super().__init__(message)
        self.restored = restored
        self.test_output = test_output


class HostLock:
    """An exclusive flock on ``path``, waited for at most ``timeout`` seconds."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        if not os.path.isdir(os.path.dirname(path) or "."):
            # Not every host has /run/lock; the temporary folder serialises runs just as well.
            path = os.path.join(tempfile.gettempdir(), os.path.basename(path))
        self.path = path
        self.timeout = timeout
        self._fd = None

    def __enter__(self) -> HostLock:
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise TransactionError("cannot open the lock file %s: %s; set lock_path to a writable place" % (self.path, exc.strerror)) from None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    os.close(self._fd)
                    self._fd = None
                    raise TransactionError("another ocsp.stapling run holds %s since more than %ds; try again when it ends" % (
                        self.path, self.timeout)) from None
                time.sleep(0.1)

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, keeping its owner and mode.

    The temporary file lives in the same folder (a rename across file systems is not atomic) and
    starts with a dot so that include globs such as ``sites-enabled/*`` never pick it up.
    """
    folder = os.path.dirname(path) or "."
    try:
        status = os.stat(path)
    except FileNotFoundError:
        status = None
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".ocsp-stapling-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if status is not None:
            os.chmod(temporary, status.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(temporary, status.st_uid, status.st_gid)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


class _Symlink:
    """What was at a path that was a symlink, to put the link back (not a copy of its target)."""

    def __init__(self, target: str) -> None:
        self.target = target


class FileTransaction:
    """Files replaced, created, linked or removed so far, with what was there before, so that all of
    it can be put back."""

    def __init__(self, writer=atomic_write, backup_dir: str | None = None) -> None:
        self._writer = writer
        self._backup_dir = backup_dir
        self.originals = {}  # real path -> original bytes, or None where nothing was; in the order first touched
        self.modes = {}  # real path -> original permission bits, for the files whose mode a write sets
        self.folders = []  # folders created, parents first, removed again by a rollback
        self.current = None  # the path being changed, to name it when the change fails

    def _remember(self, path: str) -> None:
        if path in self.originals:
            return
        if os.path.lexists(path):
            with open(path, "rb") as stream:
                self.originals[path] = stream.read()
            if self._backup_dir:
                self._save_backup(path, self.originals[path])
        else:
            self.originals[path] = None

    def write(self, path: str, data: bytes, mode: int | None = None) -> None:
        """Replace ``path`` with ``data``; with ``mode``, set its permission bits too (else they are kept)."""
        path = os.path.realpath(path)  # a symlinked site is edited at its target; the link stays
        self.current = path
        self._remember(path)
        if mode is not None and path not in self.modes and self.originals[path] is not None:
            self.modes[path] = os.stat(path).st_mode & 0o7777
        self._writer(path, data)
        if mode is not None:
            os.chmod(path, mode)

    def makedirs(self, path: str, mode: int = 0o755) -> None:
        """Create the folder ``path`` and its missing parents with ``mode``, as a rollback will remove them."""
        missing = []
        folder = os.path.abspath(path)
        while not os.path.isdir(folder):
            missing.append(folder)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        for folder in reversed(missing):
            self.current = folder
            os.mkdir(folder)
            self.folders.append(folder)
            os.chmod(folder, mode)  # mkdir's mode is cut by the umask

    def remove(self, path: str) -> None:
        path = os.path.realpath(path)
        self.current = path
        self._remember(path)
        os.unlink(path)

    def link(self, path: str, target: str) -> None:
        """Create the symlink ``path`` -> ``target`` (as a2enmod / a2enconf do); nothing must be there."""
        self.current = path
        self.originals.setdefault(path, None)
        os.symlink(target, path)

    def unlink(self, path: str) -> None:
        """Remove the symlink ``path`` itself (as a2disconf does), never its target."""
        self.current = path
        self.originals.setdefault(path, _Symlink(os.readlink(path)))
        os.unlink(path)

    def _save_backup(self, path: str, data: bytes) -> None:
        # Outside the server's config tree on purpose: a backup beside the file would be loaded by
        # an include glob and break the server.
        target = os.path.join(self._backup_dir, time.strftime("%Y%m%dT%H%M%S"), path.lstrip(os.sep))
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        with open(target, "wb") as stream:
            stream.write(data)

    def rollback(self) -> list:
        """Put every touched path back as it was; return the paths restored."""
        failures = []
        for path, data in reversed(list(self.originals.items())):
            try:
                if data is None or isinstance(data, _Symlink):
                    if os.path.lexists(path):
                        os.unlink(path)
                    if isinstance(data, _Symlink):
                        os.symlink(data.target, path)
                else:
                    self._writer(path, data)
                    if path in self.modes:
                        os.chmod(path, self.modes[path])
            except OSError as exc:
                failures.append("%s (%s)" % (path, exc.strerror or exc))
        # Last, when the files in them are gone again; deepest first.
        for folder in reversed(self.folders):
            try:
                os.rmdir(folder)
            except OSError as exc:
                failures.append("%s (%s)" % (folder, exc.strerror or exc))
        if failures:
            raise TransactionError("could not restore %s: restore them from the backups by hand" % ", ".join(failures))
        return list(self.originals) + self.folders


def staging_writer(move):
    """A writer that stages the data beside the file and lets ``move(staged, path)`` replace it.

    Modules pass AnsibleModule.atomic_move, which also keeps the SELinux context of the file.
    """
    def write(path: str, data: bytes) -> None:
        handle, staged = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".ocsp-stapling-")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        if not os.path.exists(path):
            os.chmod(staged, 0o644)
        move(staged, path)
    return write


def apply_and_test(apply, test, test_name: str, writer=atomic_write, backup_dir: str | None = None) -> None:
    """Make the changes (``apply(transaction)``), then ask the server (``test() -> (ok, output)``).

    When a change cannot be made or the server refuses the result, everything is put back byte for
    byte and ChangeRefused says why; nothing is reloaded either way, that is the caller's next step.
    """
    transaction = FileTransaction(writer=writer, backup_dir=backup_dir)
    try:
        apply(transaction)
    except OSError as exc:
        restored = transaction.rollback()
        raise ChangeRefused("could not change %s (%s); everything was put back" % (transaction.current, exc.strerror or exc), restored) from None
    passed, output = test()
    if not passed:
        restored = transaction.rollback()
        raise ChangeRefused("%s failed after the edit, so every changed file was restored byte for byte and nothing was reloaded: %s" % (
            test_name, output), restored, output)
