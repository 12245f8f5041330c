# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Transactional edits of server configuration files on a managed host.

One lock per host serialises runs (two plays, or a play and a person's script); every touched
file is backed up before it is replaced, and a failed server test puts every file back byte for
byte. Standard library only: this runs on managed hosts.

Crash safety. A run can die at any point (SIGKILL, OOM killer, power cut, a lost SSH session
taking sudo with it), and then no ``finally`` runs. So a transaction with a journal writes ahead:
before any change it durably records what is at every path it will touch - a backup of the file
with its mode and owner, "nothing", or a symlink's target - and only then makes the changes. The
journal is removed once the server test has passed (the commit) or once a rollback is complete. A
journal found at the start of a run therefore means "a transaction was interrupted": ``recover``
rolls it back, every path to its state before that transaction, so that the run starts from a
state the server has already accepted and converges from there.

Every file is replaced by a rename (never rewritten in place) and every symlink is created or
replaced in one call, so whatever the moment of the crash, each path holds either its old or its
new content, never a part of one.

What is made durable is batched, since a transaction knows every path it will change before it
starts (see FileTransaction.flush): all backup copies are written, then synced together, then one
journal append and one fsync make the whole record durable; all new files are staged beside their
targets, then synced together, then renamed one by one; each folder is synced once. A file's own
fsync is kept (never a file-system-wide sync: ``syncfs`` would also flush every other process's
dirty data on a busy host, and before Linux 5.8 it does not report a failed write-back), but the
fsyncs of one batch are issued together from a few threads, so that the file system joins them into
few journal commits and cache flushes instead of paying one per file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import signal
import stat
import tempfile
import threading
import time

from ._trust import UntrustedPath, check_state_file, open_state_file, private_folder, read_state_file

JOURNAL_NAME = "ocsp-stapling.journal"
# Version 3: a header line, then one JSON record per line, appended. The header's phase is "recording": the
# steps (what was at each path) are appended with their copies named, and only the record {"phase": "applying"},
# fsynced after the copies and the steps, makes them count; a change waits for it. Steps after the last such
# record were never acted on: a recovery restores nothing for them and does not trust their copies.
# Version 2 (the same lines, each step fsynced before its own change, no "recording" phase) and version 1 (one
# JSON document, rewritten at every step) are still read, so that a journal left by an earlier release is
# rolled back all the same: every step of theirs counts.
JOURNAL_VERSION = 3
_READABLE_JOURNAL_VERSIONS = (1, 2, 3)
# Prefix of every temporary file this module puts beside a configuration file. It starts with a dot
# so that include globs such as ``sites-enabled/*`` never load one, and a recovery removes the ones
# a killed run left in the folders it touched.
TEMPORARY_PREFIX = ".ocsp-stapling-"

# Test hook, inert unless set: the crash tests set it to one of KILL_STEPS, and the process SIGKILLs
# itself the first time it reaches that step, as a power cut would stop it there.
KILL_AT_VARIABLE = "OCSP_STAPLING_TEST_KILL_AT"
KILL_STEPS = ("before-backup", "after-copies", "after-backup", "after-staging", "between-files", "after-write", "before-test",
              "after-test-before-commit", "during-rollback")


def checkpoint(step: str) -> None:
    """Test hook: die here (SIGKILL, no cleanup) when OCSP_STAPLING_TEST_KILL_AT names ``step``."""
    if os.environ.get(KILL_AT_VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)


class TransactionError(Exception):
    """The transaction could not start, or could not put the files back; the message says which file."""


class ChangeRefused(TransactionError):
    """The change was made, refused and undone; ``restored`` lists the paths put back."""

    def __init__(self, message: str, restored: list, test_output: str | None = None) -> None:
        super().__init__(message)
        self.restored = restored
        self.test_output = test_output


LOCK_ADVICE = ("if no ocsp.stapling run is going on, remove it and run again; better, set lock_path to a file in a folder that only "
               "root can write (the default, %s, is one)")
DEFAULT_LOCK_PATH = "/run/ocsp-stapling/lock"


def lock_holders(handle: int) -> list:
    """Who holds a flock on the open file ``handle``, from /proc/locks: ["pid 123 (uid 0, nginx_stapling ...)", ...].

    The kernel's own table, not a note in the file: it names the holder even when that is not an
    ocsp.stapling run (another user who took the lock), and it needs no write to the lock file.
    """
    status = os.fstat(handle)
    inode = "%02x:%02x:%d" % (os.major(status.st_dev), os.minor(status.st_dev), status.st_ino)
    holders = []
    try:
        with open("/proc/locks", "r", encoding="ascii", errors="replace") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return holders
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters are listed as "1: -> FLOCK ...".
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != inode:
            continue
        pid = fields[4]
        try:
            owner = os.stat("/proc/%s" % pid).st_uid
            with open("/proc/%s/cmdline" % pid, "rb") as stream:
                command = stream.read(300).replace(b"\0", b" ").decode("utf-8", errors="replace").strip()
        except OSError:
            holders.append("pid %s" % pid)
            continue
        holders.append("pid %s of uid %d, command %s" % (pid, owner, command[:200] or "?"))
    return holders


class HostLock:
    """An exclusive flock on ``path``, waited for at most ``timeout`` seconds.

    The lock file is opened without following a symlink at its name, and used only when it is a
    regular file owned by root that no other user can write, in a folder that passes the checks of
    _trust: a name another user planted (a symlink, a file of theirs that they hold locked) stops
    the run at once with the owner named, instead of steering it or holding it up. The folder is
    created root-only when missing. A shared folder with the sticky bit (``/run/lock``) is accepted,
    since the lock file itself is then checked.
    """

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd = None

    def __enter__(self) -> HostLock:
        advice = LOCK_ADVICE % DEFAULT_LOCK_PATH
        try:
            folder = private_folder(os.path.dirname(os.path.abspath(self.path)), "the folder of the lock file", advice, shared_ok=True)
            self.path = os.path.join(folder, os.path.basename(self.path))
            try:
                self._fd = open_state_file(self.path, "the lock file", advice, os.O_RDWR | os.O_CREAT, 0o600)
            except PermissionError:
                # fs.protected_regular refuses root an O_CREAT open of another user's file in a shared folder: say whose it is.
                check_state_file(self.path, "the lock file", advice)
                raise
        except UntrustedPath as exc:
            raise TransactionError(str(exc)) from None
        except OSError as exc:
            raise TransactionError("cannot open the lock file %s: %s; set lock_path to a writable place" % (
                self.path, exc.strerror or exc)) from None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    holders = lock_holders(self._fd)
                    os.close(self._fd)
                    self._fd = None
                    raise TransactionError("another run holds the lock %s and did not release it within %gs (lock_timeout); held by %s: "
                                           "try again when it ends, or raise lock_timeout" % (
                                               self.path, self.timeout, "; ".join(holders) or "a process /proc/locks does not name")) from None
                time.sleep(0.1)

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def fsync_folder(folder: str) -> None:
    """Make the names in ``folder`` durable: a rename or unlink is only on disk once its folder is synced."""
    fd = os.open(folder or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# How many fsyncs of one batch are in flight at once. Each blocks in the kernel (the GIL is released), so a few
# threads are enough for the file system to join them into one journal commit and one cache flush.
_SYNC_THREADS = 8


def sync_files(paths: list) -> None:
    """fsync every file in ``paths`` (their bytes and inodes; not their names: see fsync_folder), together.

    The same guarantee and error reporting as one fsync after another, at about the cost of one: a
    file system commits concurrent fsyncs together. Raises the first OSError met, after all are done.
    """
    pending = list(paths)[::-1]
    failures = []

    def work() -> None:
        while True:
            try:
                path = pending.pop()  # atomic: each path is taken by one thread
            except IndexError:
                return
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                failures.append(exc)

    # Plain threads (threading is loaded by Ansible anyway; concurrent.futures would cost an import in every run).
    workers = [threading.Thread(target=work) for _number in range(min(_SYNC_THREADS, len(pending)) - 1)]
    for worker in workers:
        worker.start()
    work()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]


class StagingWriter:
    """Replaces a file by renaming a new file staged beside it, in two steps that a transaction batches.

    ``stage(path, data)`` writes the new bytes to a temporary file in the folder of ``path`` (a
    rename across file systems is not atomic) whose name starts with TEMPORARY_PREFIX, so that include
    globs such as ``sites-enabled/*`` never load it; ``publish(staged, path)`` renames it over ``path``.
    The caller makes the staged file durable in between (sync_files): a rename must never publish
    bytes that are not on disk yet. Called as ``writer(path, data)`` it does all three for one file.

    With ``move`` (modules pass AnsibleModule.atomic_move, which also keeps the SELinux context and
    the attributes of the file it replaces), a new file gets mode 0644; without, the owner and mode
    of the file replaced are kept and os.replace renames.
    """

    def __init__(self, move=None) -> None:
        self._move = move

    def stage(self, path: str, data: bytes) -> str:
        try:
            status = os.stat(path)
        except FileNotFoundError:
            status = None
        handle, staged = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=TEMPORARY_PREFIX)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            if status is None:
                os.chmod(staged, 0o644)
            elif self._move is None:
                os.chmod(staged, status.st_mode & 0o7777)
                if os.geteuid() == 0:
                    os.chown(staged, status.st_uid, status.st_gid)
        except BaseException:
            os.unlink(staged)
            raise
        return staged

    def publish(self, staged: str, path: str) -> None:
        try:
            if self._move is None:
                os.replace(staged, path)
            else:
                self._move(staged, path)
        finally:
            if os.path.lexists(staged):
                os.unlink(staged)

    def __call__(self, path: str, data: bytes) -> None:
        staged = self.stage(path, data)
        try:
            sync_files([staged])
        except BaseException:
            os.unlink(staged)
            raise
        self.publish(staged, path)


# Replace ``path`` with ``data`` in one rename, keeping its owner and mode (the writer of the tests and of plain use).
atomic_write = StagingWriter()


def _durable_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write a file of our own (journal, backup) atomically and durably: temporary file, fsync, rename, fsync of the folder."""
    folder = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    fsync_folder(folder)


def _missing_folders(path: str) -> list:
    """The folders that must be made for ``path`` to exist, outermost first."""
    missing = []
    folder = os.path.abspath(path)
    while not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing[::-1]


def _atomic_symlink(target: str, path: str) -> None:
    """Make ``path`` a symlink to ``target``, replacing whatever is there in one rename (never a moment without it)."""
    folder = os.path.dirname(path) or "."
    for _attempt in range(100):
        temporary = os.path.join(folder, "%s%s" % (TEMPORARY_PREFIX, os.urandom(6).hex()))
        try:
            os.symlink(target, temporary)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.EEXIST, "no free temporary name in %s" % folder)
    try:
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Symlink:
    """What was at a path that was a symlink, to put the link back (not a copy of its target)."""

    def __init__(self, target: str) -> None:
        self.target = target


# The name of one transaction's backup folder (see _Backups): a recovery removes copies only inside such a folder.
_STAMP = re.compile(r"^[0-9]{8}T[0-9]{6}(\.[0-9]{1,3})?$")
BACKUP_ADVICE = ("check that nothing in it was put there by someone else, then make it root's and not writable by others "
                 "(chown root: FOLDER; chmod go-w FOLDER), or set backup_dir to a new folder")
# No journal or backup this collection writes comes near it; a bigger file there was not written by it.
MAX_JOURNAL_BYTES = 16 << 20
MAX_COPY_BYTES = 1 << 30


def state_folder(path: str, what: str, create: bool = True) -> str | None:
    """The real path of a folder of the collection's own state (backups, journal), checked (see _trust); None when absent."""
    try:
        return private_folder(path, what, BACKUP_ADVICE.replace("FOLDER", path), create=create)
    except UntrustedPath as exc:
        raise TransactionError(str(exc)) from None


class _Backups:
    """Copies of the original files, under one folder per transaction (a time stamp) that mirrors their paths.

    Outside the server's config tree on purpose: a backup beside the file would be loaded by an
    include glob and break the server. ``name`` says where a copy goes, ``save`` writes it,
    ``make_durable`` syncs every copy saved since, then each folder that got a new name, once: the
    journal names the copies before they are written and makes them count only after that (see
    Journal). The folders are root's with mode 0700 and the copies mode 0600, whatever the mode of
    the original: a configuration file may hold secrets, and a copy must never be more readable than it.
    """

    def __init__(self, base: str) -> None:
        self.base = base
        self.root = None
        self._made = False  # whether self.root exists yet
        self._unsynced_files = []
        self._unsynced_folders = set()  # folders that got a new name (a copy or a folder) since the last make_durable

    def name(self, path: str) -> str:
        """Where the copy of ``path`` goes. Nothing is made yet: the journal names a copy before it is written (see Journal)."""
        if self.root is None:
            self.base = state_folder(self.base, "the backup folder")
            stamp = time.strftime("%Y%m%dT%H%M%S")
            # Two runs in one second must not share a folder: the second would overwrite the first's copies. Runs
            # hold the host lock, so a name free now is still free when save() makes it.
            for suffix in [""] + [".%d" % number for number in range(1, 1000)]:
                if not os.path.lexists(os.path.join(self.base, stamp + suffix)):
                    self.root = os.path.join(self.base, stamp + suffix)
                    break
            else:
                raise OSError(errno.EEXIST, "no free backup folder name in %s" % self.base)
        return os.path.join(self.root, path.lstrip(os.sep))

    def save(self, target: str, data: bytes) -> None:
        """Write the copy at ``target`` (a name given by ``name``), not synced yet: see make_durable."""
        if not self._made:
            os.mkdir(self.root, 0o700)  # fails if it appeared since: never writes into a folder it did not make
            self._made = True
            self._unsynced_folders.add(self.base)
        for new in _missing_folders(os.path.dirname(target)):
            os.mkdir(new, 0o700)
            self._unsynced_folders.add(os.path.dirname(new))
        # The folder is this transaction's own, new and root's: the copy is written at its name at once (no rename).
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.fchmod(handle, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
        finally:
            os.close(handle)
        self._unsynced_files.append(target)
        self._unsynced_folders.add(os.path.dirname(target))

    def make_durable(self) -> None:
        """Sync every copy saved since the last call, then each folder that got a new name, once."""
        sync_files(self._unsynced_files)
        for folder in sorted(self._unsynced_folders, key=len, reverse=True):
            fsync_folder(folder)
        self._unsynced_files, self._unsynced_folders = [], set()


def _remove_copies(folder: str, root: str | None, steps: list) -> None:
    """Remove the backup copies that ``steps`` name and the folders they leave empty, inside one transaction's ``root``.

    Never a recursive delete: only the files the journal lists as copies, only inside a backup
    folder of this transaction's shape directly in ``folder``; whatever else is there stays.
    """
    if not root or os.path.dirname(root) != folder or not _STAMP.match(os.path.basename(root)) or os.path.islink(root):
        return
    for step in steps:
        copy = step.get("backup")
        if isinstance(copy, str) and _inside(root, copy) and os.path.isfile(copy) and not os.path.islink(copy):
            os.unlink(copy)
    for current, _folders, _files in os.walk(root, topdown=False):
        try:
            os.rmdir(current)
        except OSError:
            pass  # not empty: something we did not write is there, and stays


def _inside(folder: str, path: str) -> bool:
    """Whether ``path`` lies under ``folder``, both taken literally (no ``..``) and with their links resolved."""
    if os.path.normpath(path) != path:
        return False
    return os.path.realpath(path).startswith(os.path.realpath(folder).rstrip(os.sep) + os.sep)


class JournalError(TransactionError):
    """A journal exists but cannot be trusted: it is left where it is, and the message says what to do."""


class Journal:
    """The write-ahead record of one transaction: ``folder``/ocsp-stapling.journal.

    A header line (version, pid, start, intent; phase "recording") written atomically, then one JSON
    record per line, appended: the steps (what was at each path, with the name of its copy, synced
    before any copy is written, so that every copy on disk is named), a phase, a step made. Steps count
    from the first {"phase": "applying"} after them, which is synced once their copies are durable; no
    change is made before it. A recovery therefore neither restores nor trusts the copies of steps
    after the last such record (a run killed while recording changed nothing). A crash in the middle of
    an append leaves a torn last line, which the reader passes over.

    ``intent`` is what the caller wants a later recovery to know about the run (module, state, ...).
    With ``keep_backups`` false the copies are removed with the journal (the caller asked for no
    backup folder); otherwise they stay in ``folder`` as the history they always were, except copies
    of steps that never counted. The folder must pass the checks of _trust (it is created root-only
    when missing).
    """

    def __init__(self, folder: str, intent: dict | None = None, keep_backups: bool = True) -> None:
        self.folder = folder
        # How messages name the folder: the caller's backup folder, or the one beside the lock.
        self.what = "the backup folder" if keep_backups else "the journal folder"
        self.path = os.path.join(folder, JOURNAL_NAME)
        self.backups = _Backups(folder)
        self.keep_backups = keep_backups
        self.state = dict(version=JOURNAL_VERSION, pid=os.getpid(), started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                          intent=intent or {}, keep_backups=keep_backups, phase="recording", steps=[])
        self.applied = 0  # how many of the steps count (see the class docstring)
        self._numbers = {}  # id(step) -> its index in the journal, for the "done" records
        self._fd = None

    def begin(self) -> None:
        # Recorded paths are real ones, so that a recovery can hold every copy to the folder it trusts.
        self.folder = state_folder(self.folder, self.what)
        self.path = os.path.join(self.folder, JOURNAL_NAME)
        self.backups.base = self.folder
        if os.path.lexists(self.path):
            # recover() runs first under the same lock; a journal here means it was not called.
            raise JournalError("%s exists: an interrupted transaction must be recovered before a new one starts" % self.path)
        header = {key: self.state[key] for key in ("version", "pid", "started", "intent", "keep_backups", "phase")}
        _durable_write(self.path, _journal_line(header))
        # The folder passed the checks of _trust, and the file was just made there by this process.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))

    def _append(self, records: list, durable: bool = True) -> None:
        data = b"".join(_journal_line(record) for record in records)
        while data:
            data = data[os.write(self._fd, data):]
        if durable:
            os.fsync(self._fd)

    def record(self, steps: list) -> None:
        """Append what is at each path before it changes, with the name of its copy, in one write and one fsync. The
        steps count only from the next set_phase("applying"), once their copies are written and durable."""
        records = []
        for step in steps:
            self._numbers[id(step)] = len(self.state["steps"])
            self.state["steps"].append(step)
            record = {"step": step}
            if self.state.get("backup_root") != self.backups.root:
                self.state["backup_root"] = record["backup_root"] = self.backups.root
            records.append(record)
        if records:
            self._append(records)

    def step_done(self, step: dict) -> None:
        """Note that a recorded step was made. Not synced: a recovery restores every step either way, the mark only
        tells a person how far the run got, and the next synced record carries it to disk."""
        self._append([{"done": self._numbers[id(step)]}], durable=False)

    def set_phase(self, phase: str) -> None:
        """Append the phase, durably. "applying" is the point from which every step recorded so far counts."""
        self.state["phase"] = phase
        self._append([{"phase": phase}])
        if phase == "applying":
            self.applied = len(self.state["steps"])

    def discard(self) -> None:
        """The commit point (or the end of a complete rollback): afterwards nothing is left to recover."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        os.unlink(self.path)
        fsync_folder(self.folder)
        steps = self.state["steps"]
        # Copies of steps that never counted were never the record of a change: no history to keep.
        _remove_copies(self.folder, self.backups.root, steps if not self.keep_backups else steps[self.applied:])


class FileTransaction:
    """Files replaced, created, linked or removed, with what was there before, so that all of it can be put back.

    ``write``, ``makedirs``, ``remove``, ``link`` and ``unlink`` queue a change; ``flush`` makes the
    queued changes, batched (see the module docstring):

    1. what is at every path is read, and every step appended to the ``journal`` in one write and
       one fsync, with the name of its copy (nothing changed yet);
    2. a copy of every file is written, the copies are synced together, and one more fsync of the
       journal ("applying") makes the whole record count;
    3. the new folders are made, every new file is staged beside its target and the staged files are
       synced together;
    4. the staged files are renamed over their targets, and links and removals made, one by one in
       the order queued, each marked done.

    A writer without ``stage`` (a plain ``writer(path, data)``) writes each file in step 4 instead.
    There is no unjournaled mode, so what the tests run is what the modules run.
    """

    def __init__(self, journal: Journal, writer=atomic_write) -> None:
        self._writer = writer
        self._journal = journal
        journal.begin()
        self._backups = journal.backups
        self.steps = []  # what was at each touched path before, in the order first touched (see _record)
        self.originals = {}  # real path -> original bytes, _Symlink, or None where nothing was
        self.folders = []  # folders created, parents first, removed again by a rollback
        self.current = None  # the path being changed, to name it when the change fails
        self._queue = []  # (operation, path, argument) waiting for flush()
        self._made = set()  # paths changed so far (steps marked done)

    def _record(self, path: str, operation: str) -> dict | None:
        """Note what is at ``path`` before its first change, with a copy of a file (not durable yet: see flush); None
        when already noted."""
        if path in self.originals and operation != "mkdir":
            return None
        self.current = path
        step = dict(op=operation, path=path, done=False)
        # What is there decides what to record, not the operation: a link() that finds a file in its way
        # fails, and its rollback must not then remove that file.
        if operation == "mkdir":
            before = None
        elif os.path.islink(path):
            before = _Symlink(os.readlink(path))
            step.update(kind="symlink", target=before.target)
        elif os.path.isfile(path):
            status = os.stat(path)
            with open(path, "rb") as stream:
                before = stream.read()
            step.update(kind="file", sha256=_digest(before), mode=stat.S_IMODE(status.st_mode), uid=status.st_uid, gid=status.st_gid)
            step["backup"] = self._backups.name(path)  # written by flush, once the journal names it
        else:
            before = None
        step.setdefault("kind", "absent")
        if operation == "mkdir":
            self.folders.append(path)
        else:
            self.originals[path] = before
        self.steps.append(dict(step, data=before))
        return step

    def _mark(self, step: dict | None) -> None:
        """Mark a recorded step as made (a recovery restores it either way: the mark tells a person how far the run got)."""
        if step is not None:
            step["done"] = True
            self._made.add(step["path"])
            self._journal.step_done(step)

    def write(self, path: str, data: bytes, mode: int | None = None) -> None:
        """Replace ``path`` with ``data``; with ``mode``, set its permission bits too (else they are kept)."""
        self._queue.append(("write", path, (data, mode)))

    def makedirs(self, path: str, mode: int = 0o755) -> None:
        """Create the folder ``path`` and its missing parents with ``mode``, as a rollback will remove them."""
        self._queue.append(("makedirs", path, mode))

    def remove(self, path: str) -> None:
        self._queue.append(("remove", path, None))

    def link(self, path: str, target: str) -> None:
        """Create the symlink ``path`` -> ``target`` (as a2enmod / a2enconf do); nothing must be there."""
        self._queue.append(("link", path, target))

    def unlink(self, path: str) -> None:
        """Remove the symlink ``path`` itself (as a2disconf does), never its target."""
        self._queue.append(("unlink", path, None))

    def _plan(self, queue: list) -> list:
        """Record every queued change (phase 1 of flush); returns [(journal step or None, operation, path, argument)]."""
        planned = []
        for operation, path, argument in queue:
            if operation == "makedirs":
                for folder in _missing_folders(path):
                    if folder not in self.folders:  # two files queued into one new folder: it is made once
                        planned.append((self._record(folder, "mkdir"), "mkdir", folder, argument))
                continue
            if operation in ("write", "remove"):
                path = os.path.realpath(path)  # a symlinked site is edited at its target; the link stays
            planned.append((self._record(path, operation), operation, path, argument))
        return planned

    def flush(self) -> None:
        """Make every queued change, batched (see the class docstring). An OSError leaves the changes made so far for
        rollback() to undo, and ``current`` names the path it was about."""
        queue, self._queue = self._queue, []
        checkpoint("before-backup")
        planned = self._plan(queue)
        steps = [step for step, _operation, _path, _argument in planned if step is not None]
        self._journal.record(steps)  # first the names: no copy is ever on disk that the journal does not name
        for step in steps:
            if step["kind"] == "file":
                self._backups.save(step["backup"], self.originals[step["path"]])
        self._backups.make_durable()
        checkpoint("after-copies")  # copies durable and named, but they do not count yet: a recovery restores nothing
        self._journal.set_phase("applying")
        checkpoint("after-backup")
        for step, operation, path, mode in planned:
            if operation == "mkdir":
                self.current = path
                os.mkdir(path)
                os.chmod(path, mode)  # mkdir's mode is cut by the umask
                self._mark(step)
        staged = {}
        try:
            if hasattr(self._writer, "stage"):
                for number, (_step, operation, path, argument) in enumerate(planned):
                    if operation == "write":
                        self.current = path
                        staged[number] = self._writer.stage(path, argument[0])
                sync_files(staged.values())
            checkpoint("after-staging")  # every new file durable beside its target, no target changed yet
            for number, (step, operation, path, argument) in enumerate(planned):
                if operation == "mkdir":
                    continue
                self.current = path
                if operation == "write":
                    if number in staged:
                        self._writer.publish(staged.pop(number), path)
                    else:
                        self._writer(path, argument[0])
                    if argument[1] is not None:
                        os.chmod(path, argument[1])
                elif operation == "link":
                    os.symlink(argument, path)  # fails when something is there: never replaces a file or link silently
                else:  # remove a file, unlink a link (never its target)
                    os.unlink(path)
                self._mark(step)
                checkpoint("between-files")
        finally:
            for leftover in staged.values():
                if os.path.lexists(leftover):
                    os.unlink(leftover)

    def synced(self) -> None:
        """Make every change durable (the folders of the renames, each once), before the journal goes at the commit."""
        for folder in sorted({os.path.dirname(step["path"]) for step in self.steps}):
            if os.path.isdir(folder):
                fsync_folder(folder)

    def rollback(self) -> list:
        """Put every touched path back as it was; return the paths restored (files and links, then folders)."""
        self._journal.set_phase("rolling-back")
        failures = _restore(self.steps, lambda step: step["data"], self._writer)
        if failures:
            raise TransactionError("could not restore %s: restore them from the backups by hand; the journal %s lists them and the next "
                                   "run tries again" % (", ".join(failures), self._journal.path))
        self._journal.discard()
        changed = self._made | {self.current}  # the one being changed when it failed may be half made
        return [path for path in list(self.originals) + self.folders if path in changed]


def _same_file(path: str, step: dict, data: bytes) -> bool:
    """Whether ``path`` already is the regular file ``step`` recorded (bytes, mode, and owner where we could set it)."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(status.st_mode) or stat.S_IMODE(status.st_mode) != step["mode"]:
        return False
    if os.geteuid() == 0 and (status.st_uid, status.st_gid) != (step["uid"], step["gid"]):
        return False
    with open(path, "rb") as stream:
        return stream.read() == data


def _restore_step(step: dict, original, writer) -> bool:
    """Put one path back; return whether anything had to change. Safe to repeat (a recovery may be interrupted too)."""
    path = step["path"]
    if step["op"] == "mkdir":
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
            return True
        return False
    if step["kind"] == "file":
        if _same_file(path, step, original):
            return False
        if os.path.islink(path):
            os.unlink(path)  # the writer would follow a link; the path held a plain file
        writer(path, original)
        os.chmod(path, step["mode"])
        if os.geteuid() == 0:
            os.chown(path, step["uid"], step["gid"])
        return True
    if step["kind"] == "symlink":
        if os.path.islink(path) and os.readlink(path) == step["target"]:
            return False
        _atomic_symlink(step["target"], path)
        return True
    if os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)
        return True
    return False


def _restore(steps: list, original, writer, restored: list | None = None) -> list:
    """Undo ``steps``, last first; return the failures ("path (reason)"). Paths changed go to ``restored``."""
    failures = []
    # A run killed inside a writer leaves its temporary file beside the target: ours, maybe half written, and
    # in the way of the removal of a folder the transaction created. First thing to go.
    for folder in sorted({os.path.dirname(step["path"]) for step in steps} | {step["path"] for step in steps if step["op"] == "mkdir"}):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(TEMPORARY_PREFIX) and not os.path.isdir(os.path.join(folder, name)):
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError as exc:
                    failures.append("%s (%s)" % (os.path.join(folder, name), exc.strerror or exc))
    for number, step in enumerate(reversed(steps)):
        if number == 1:
            checkpoint("during-rollback")  # one path is back, the others not yet
        try:
            if _restore_step(step, original(step), writer) and restored is not None:
                restored.append(step["path"])
        except OSError as exc:
            failures.append("%s (%s)" % (step["path"], exc.strerror or exc))
    return failures


def journal_folder(backup_dir: str | None, lock_path: str) -> tuple:
    """Where the journal lives, and whether its backups stay: (folder, keep_backups).

    In the backup folder when there is one (persistent: /var/backups survives a reboot); without
    one, in a folder beside the lock file (the backups are then removed at the end of each transaction).
    """
    if backup_dir:
        return backup_dir, True
    return lock_path + ".journal", False


def _journal_line(record: dict) -> bytes:
    return (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def _fold_journal(text: str) -> dict:
    """The state a journal's text describes: version 1 as it is; versions 2 and 3 folded from their lines. ValueError when
    it is neither; a torn last line (a crash in the middle of an append) is passed over. For version 3, ``applied`` is
    how many steps count: those before the last "applying" phase record (see Journal)."""
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and whole.get("version") == 1:
        return whole
    lines = text.split("\n")
    state = json.loads(lines[0])
    if not isinstance(state, dict) or state.get("version") not in (2, 3):
        return state
    state["steps"] = []
    if state["version"] == 3:
        state["applied"] = 0
    records = lines[1:]
    for number, line in enumerate(records):
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(records) - 1:
                break  # torn by a crash: the change it was about was never made
            raise
        if not isinstance(record, dict):
            raise ValueError("line %d is not a record" % (number + 2))
        if "step" in record:
            state["steps"].append(record["step"])
        if "backup_root" in record:
            state["backup_root"] = record["backup_root"]
        if "phase" in record:
            state["phase"] = record["phase"]
            if record["phase"] == "applying" and "applied" in state:
                state["applied"] = len(state["steps"])
        if "done" in record:
            index = record["done"]
            if not isinstance(index, int) or not 0 <= index < len(state["steps"]) or not isinstance(state["steps"][index], dict):
                raise ValueError("line %d marks a step that is not there" % (number + 2))
            state["steps"][index]["done"] = True
    return state


def read_journal(path: str) -> dict:
    """The journal at ``path`` as one state (version 2 folded from its lines), checked; JournalError with what to do when
    it cannot be trusted."""
    folder = os.path.dirname(path)
    advice = ("the files it names may be half changed: compare them with the newest copies under %s, put back what differs, "
              "then delete %s and run again" % (folder, path))
    try:
        state = _fold_journal(read_state_file(path, "the journal", "delete it after checking the files it names by hand",
                                              MAX_JOURNAL_BYTES).decode("utf-8"))
    except UntrustedPath as exc:
        raise JournalError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise JournalError("cannot read %s, the journal of an interrupted ocsp.stapling run (%s); %s" % (
            path, getattr(exc, "strerror", None) or exc, advice)) from None
    problem = None
    if not isinstance(state, dict) or state.get("version") not in _READABLE_JOURNAL_VERSIONS or not isinstance(state.get("steps"), list):
        problem = "not a journal of version %s" % " or ".join(str(version) for version in _READABLE_JOURNAL_VERSIONS)
    else:
        for step in state["steps"]:
            problem = _step_problem(step, folder)
            if problem:
                break
    if problem:
        raise JournalError("cannot use %s, the journal of an interrupted ocsp.stapling run: %s; %s" % (path, problem, advice))
    return state


def _step_problem(step, folder: str) -> str | None:
    """What makes one journal step unusable, or None."""
    if not isinstance(step, dict) or not isinstance(step.get("path"), str) or not os.path.isabs(step["path"]) \
            or step.get("op") not in ("write", "remove", "link", "unlink", "mkdir") \
            or step.get("kind") not in ("file", "absent", "symlink") \
            or (step["kind"] == "file" and not all(key in step for key in ("backup", "sha256", "mode", "uid", "gid"))) \
            or (step["kind"] == "symlink" and not isinstance(step.get("target"), str)):
        return "step %r is incomplete" % (step,)
    # A path is taken literally: "/etc/../root/x" is no path this collection writes.
    if os.path.normpath(step["path"]) != step["path"]:
        return "step %r names a path that is not normal" % (step,)
    # Copies are only ever made inside the journal's own folder, which only root can write.
    if step["kind"] == "file" and not (isinstance(step["backup"], str) and _inside(folder, step["backup"])):
        return "step %r names a copy outside %s" % (step, folder)
    return None


def _load_backup(path: str, step: dict) -> bytes:
    """The copy a journal step names: inside the journal's folder (checked by read_journal), a regular file of root's."""
    try:
        data = read_state_file(step["backup"], "the backup", "restore %s by hand, then delete %s" % (step["path"], path), MAX_COPY_BYTES)
    except UntrustedPath as exc:
        raise JournalError(str(exc)) from None
    except OSError as exc:
        raise JournalError("the backup %s of %s, named by the journal %s, cannot be read (%s): restore %s by hand, then delete %s" % (
            step["backup"], step["path"], path, exc.strerror, step["path"], path)) from None
    if _digest(data) != step["sha256"]:
        raise JournalError("the backup %s of %s, named by the journal %s, is not the copy that was made: restore %s by hand, then delete %s" % (
            step["backup"], step["path"], path, step["path"], path))
    return data


def recover(folder: str, writer=atomic_write, check: bool = False, what: str = "the journal folder") -> dict | None:
    """Roll back the transaction whose journal a killed run left in ``folder``; None when there is none.

    Call it under the host lock, before planning. Every journaled path goes back to its state
    before that transaction (files byte for byte with mode and owner, links, "nothing" for what it
    created, its new folders removed), whatever step it was stopped at, since the server never
    reloaded a configuration that was not committed. With ``check`` nothing is changed: the
    report says what would be. Returns {journal, paths (put back, or that would be), phase,
    started, pid, intent}. Safe to repeat: a recovery that is itself interrupted leaves the journal.
    """
    try:
        return _recover(folder, writer, check, what)
    except OSError as exc:
        # Whatever stopped it (a folder that cannot be read, a full disk), the journal stays for the next run.
        raise TransactionError("could not recover the interrupted transaction recorded in %s (%s: %s); fix that and run again" % (
            os.path.join(folder, JOURNAL_NAME), getattr(exc, "filename", None) or folder, exc.strerror or exc)) from None


def _recover(folder: str, writer, check: bool, what: str) -> dict | None:
    # A journal is only read from a folder no other user can write (see _trust): whoever could plant one there could
    # have the next run as root write, link and remove what they like.
    folder = state_folder(folder, what, create=False)
    if folder is None:
        return None
    path = os.path.join(folder, JOURNAL_NAME)
    if not check:
        # A run killed while writing the journal leaves a temporary file and the previous journal (or none); the
        # temporary one was never the journal, so it is only removed.
        for name in os.listdir(folder):
            if name.startswith("." + JOURNAL_NAME + "."):
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError:
                    pass
    if not os.path.lexists(path):
        return None
    state = read_journal(path)
    # Steps recorded after the last "applying" record (version 3) were never acted on: nothing to restore, and their
    # copies may be incomplete, so they are neither read nor trusted.
    counted = state.get("applied", len(state["steps"]))
    steps, uncounted = state["steps"][:counted], state["steps"][counted:]
    originals = {}
    for step in steps:
        if step["kind"] == "file":
            originals[step["path"]] = _load_backup(path, step)
    report = dict(journal=path, phase=state.get("phase"), started=state.get("started"), pid=state.get("pid"), intent=state.get("intent") or {})
    if check:
        report["paths"] = [step["path"] for step in reversed(steps) if _differs(step, originals.get(step["path"]))]
        return report
    restored = []
    failures = _restore(steps, lambda step: originals.get(step["path"]), writer, restored)
    if failures:
        raise TransactionError("could not roll back the interrupted transaction of %s: %s; fix that and run again (the journal stays)" % (
            path, ", ".join(failures)))
    for folder_name in sorted({os.path.dirname(step["path"]) for step in steps}):
        if os.path.isdir(folder_name):
            fsync_folder(folder_name)
    os.unlink(path)
    fsync_folder(folder)
    _remove_copies(folder, state.get("backup_root"), state["steps"] if state.get("keep_backups", True) is False else uncounted)
    report["paths"] = restored
    return report


def _differs(step: dict, original) -> bool:
    """Whether restoring ``step`` would change anything (check mode)."""
    path = step["path"]
    if step["op"] == "mkdir":
        return os.path.isdir(path) and not os.path.islink(path)
    if step["kind"] == "file":
        return not _same_file(path, step, original)
    if step["kind"] == "symlink":
        return not (os.path.islink(path) and os.readlink(path) == step["target"])
    return os.path.lexists(path) and not os.path.isdir(path)


def staging_writer(move) -> StagingWriter:
    """The writer of the modules: stage the data beside the file, and let ``move(staged, path)`` replace it (see StagingWriter).

    Modules pass AnsibleModule.atomic_move, which also keeps the SELinux context of the file.
    """
    return StagingWriter(move)


def apply_and_test(apply, test, test_name: str, journal: Journal, writer=atomic_write) -> None:
    """Make the changes (``apply(transaction)`` queues them, FileTransaction.flush makes them), then ask the server
    (``test() -> (ok, output)``).

    When a change cannot be made or the server refuses the result, everything is put back byte for
    byte and ChangeRefused says why; nothing is reloaded either way, that is the caller's next step.
    The ``journal`` (see Journal) makes the transaction survive a crash: a later ``recover`` undoes it.
    """
    transaction = FileTransaction(journal, writer=writer)
    try:
        apply(transaction)
        transaction.flush()
    except OSError as exc:
        restored = transaction.rollback()
        raise ChangeRefused("could not change %s (%s); everything was put back" % (transaction.current, exc.strerror or exc), restored) from None
    except Exception:
        transaction.rollback()
        raise
    checkpoint("after-write")
    journal.set_phase("testing")
    checkpoint("before-test")
    try:
        passed, output = test()
    except Exception:
        transaction.rollback()
        raise
    if not passed:
        restored = transaction.rollback()
        raise ChangeRefused("%s failed after the edit, so every changed file was restored byte for byte and nothing was reloaded: %s" % (
            test_name, output), restored, output)
    checkpoint("after-test-before-commit")
    transaction.synced()
    journal.discard()


def recovery_message(report: dict, check: bool = False) -> str:
    """The warning a module gives when it found the journal of an interrupted transaction."""
    intent = report.get("intent") or {}
    found = "an interrupted ocsp.stapling transaction (journal %s, started %s by %s pid %s, stopped while %s)" % (
        report["journal"], report.get("started"), intent.get("module", "a run"), report.get("pid"), report.get("phase"))
    paths = ", ".join(report["paths"]) or "nothing had changed yet"
    if check:
        return "%s would be rolled back first by a run that is not in check mode, putting back: %s; the changes shown here are " \
               "against the files as the interrupted run left them" % (found, paths)
    return "%s was rolled back before this run planned its changes; put back: %s" % (found, paths)


class RecoveringLock:
    """The host lock, then the rollback of a transaction that a killed run left half done, then the run's own work.

    Both editing modules start this way: under the lock and before anything is read, so that they plan
    from the files as they were before the interrupted run. ``recovered`` is its report (None when there
    was nothing to roll back) and stays readable after the block, for the module's failure result;
    ``warn`` receives the sentence a person reads. ``journal()`` is the journal of this run's transaction.
    """

    def __init__(self, lock_path: str, backup_dir: str | None, writer=atomic_write, check: bool = False, warn=None,
                 lock_timeout: float = 60.0) -> None:
        self._lock = HostLock(lock_path, lock_timeout)
        self._backup_dir = backup_dir
        self._writer = writer
        self._check = check
        self._warn = warn
        self.recovered = None
        self._folder = None
        self._keep_backups = True

    def __enter__(self) -> RecoveringLock:
        self._lock.__enter__()
        try:
            self._folder, self._keep_backups = journal_folder(self._backup_dir, self._lock.path)
            self.recovered = recover(self._folder, self._writer, check=self._check,
                                     what="the backup folder" if self._keep_backups else "the journal folder")
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        if self.recovered and self._warn is not None:
            self._warn(recovery_message(self.recovered, self._check))
        return self

    def __exit__(self, *exc_info) -> None:
        self._lock.__exit__(*exc_info)

    def journal(self, intent: dict) -> Journal:
        return Journal(self._folder, intent=intent, keep_backups=self._keep_backups)
