# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which places on a managed host may hold the state of a run that runs as root.

The editing modules keep state of their own between and during runs: the host lock, the journal of
the transaction in progress, the backups it names and the chain files. Each of them steers what a
later run as root does (a journal is replayed, a chain file is overwritten or removed), so each is
only trusted where no other local user can have put or changed it:

- every folder on the way to it is owned by root (or by the user this runs as) and is not writable
  by group or others, except a shared folder with the sticky bit (``/tmp``, ``/run/lock``), where
  other users can add names of their own but never rename or remove ours;
- every symlink on the way is owned by root (or this user) too; it is followed, and its target is
  held to the same rules;
- the folder that holds the state, and the state itself, are owned by root (or this user), not
  writable by group or others, not symlinks; the sticky-bit exception stops at their parent.

Anything else stops the run with a message that names the path, what is wrong with it, and what to
do. Folders this module creates are created that way (root-owned, mode 0700 unless the caller needs
others to read them), one component at a time, so there is no moment in which a name is open to a
plant. Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import errno
import os
import stat

# A path with more symlinks on the way than this is refused, as the kernel does (ELOOP, 40 in Linux).
MAX_SYMLINKS = 40


class UntrustedPath(Exception):
    """State of the collection in a place that another local user can write; the message says what to do."""


def trusted_uids() -> set:
    """Owners whose files and folders the run may trust: root, and the user it runs as."""
    return {0, os.geteuid()}


def _owner(uid: int) -> str:
    try:
        import pwd  # not on every platform; only the message needs it

        return "uid %d (%s)" % (uid, pwd.getpwuid(uid).pw_name)
    except (ImportError, KeyError):
        return "uid %d" % uid


def _problem(status: os.stat_result, shared_ok: bool) -> str | None:
    """What makes a file or folder with ``status`` untrustworthy, or None."""
    if status.st_uid not in trusted_uids():
        return "is owned by %s, not by root" % _owner(status.st_uid)
    if status.st_mode & 0o022:
        if shared_ok and stat.S_ISDIR(status.st_mode) and status.st_mode & stat.S_ISVTX:
            return None
        return "is writable by %s (mode %04o)" % ("group and others" if status.st_mode & 0o022 == 0o022 else
                                                  "its group" if status.st_mode & 0o020 else "others", stat.S_IMODE(status.st_mode))
    return None


def _refuse(path: str, what: str, problem: str, advice: str) -> UntrustedPath:
    return UntrustedPath("%s %s %s, so another local user may have put or changed it, and a run as root must not trust it: %s" % (
        what, path, problem, advice))


def walk_folder(path: str, what: str, advice: str, shared_ok: bool = False) -> tuple:
    """Check every existing folder and symlink on the way to the folder ``path``, from ``/``.

    Returns (the real path of the deepest folder that exists, the components still missing below it).
    Raises UntrustedPath naming the first component that fails the rules of the module docstring;
    ``what`` names the state (``the backup folder``) and ``advice`` says what to do, for that message.
    """
    pending = [part for part in os.path.abspath(path).split(os.sep) if part]
    real = os.sep
    links = 0
    status = os.lstat(real)
    problem = _problem(status, shared_ok=True)
    if problem:
        raise _refuse(real, "the folder", problem, advice)
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            real = os.path.dirname(real)
            continue
        candidate = os.path.join(real, name)
        try:
            status = os.lstat(candidate)
        except FileNotFoundError:
            return real, [name] + pending
        if stat.S_ISLNK(status.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise _refuse(path, what, "has more than %d symlinks on its way" % MAX_SYMLINKS, advice)
            if status.st_uid not in trusted_uids():
                raise _refuse(candidate, "the symlink on the way to %s" % what, "is owned by %s, not by root" % _owner(status.st_uid), advice)
            target = os.readlink(candidate)
            if target.startswith(os.sep):
                real = os.sep
            pending = [part for part in target.split(os.sep) if part] + pending
            continue
        if not stat.S_ISDIR(status.st_mode):
            raise _refuse(candidate, "the path on the way to %s" % what, "is not a folder", advice)
        # The folder that holds the state itself gets no sticky-bit exception (see the module docstring).
        problem = _problem(status, shared_ok=shared_ok or bool(pending))
        if problem:
            raise _refuse(candidate, what if not pending else "the folder on the way to %s" % what, problem, advice)
        real = candidate
    return real, []


def private_folder(path: str, what: str, advice: str, create: bool = True, mode: int = 0o700, shared_ok: bool = False) -> str | None:
    """The real path of the trusted folder ``path``, created with ``mode`` (and its missing parents, 0755) when absent.

    Without ``create`` an absent folder gives None (check mode, or nothing to recover). Raises
    UntrustedPath when it, or anything on its way, could have been planted by another user.
    ``shared_ok`` lets the folder itself be a shared one with the sticky bit (the lock's folder,
    ``/run/lock``): fit only for a state file that is then checked itself.
    """
    real, missing = walk_folder(path, what, advice, shared_ok)
    if not missing:
        return real
    if not create:
        return None
    for number, name in enumerate(missing):
        real = os.path.join(real, name)
        last = number == len(missing) - 1
        try:
            os.mkdir(real, mode if last else 0o755)
        except FileExistsError:
            # Someone made it between the walk and now: it is judged like any folder that was there.
            return private_folder(path, what, advice, create, mode, shared_ok)
        # mkdir's mode is cut by the umask, never widened: set exactly what was asked.
        os.chmod(real, mode if last else 0o755)
        _fsync_parent(real)
    return real


def _fsync_parent(path: str) -> None:
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_state_file(path: str, what: str, advice: str) -> os.stat_result | None:
    """lstat of a state file that may exist (a chain file, a backup): None when absent; UntrustedPath unless it is
    a regular file (not a symlink) owned by root and not writable by group or others."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(status.st_mode):
        raise _refuse(path, what, "is a symlink (to %s)" % os.readlink(path), advice)
    if not stat.S_ISREG(status.st_mode):
        raise _refuse(path, what, "is not a regular file", advice)
    problem = _problem(status, shared_ok=False)
    if problem:
        raise _refuse(path, what, problem, advice)
    return status


def open_state_file(path: str, what: str, advice: str, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """Open a state file without following a symlink at its name, and check what was opened; returns the descriptor.

    With ``os.O_CREAT`` in ``flags`` it is created with ``mode`` when absent. The checks are made on the
    open descriptor (fstat), so that what is checked is what is used.
    """
    try:
        handle = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(path, what, "is a symlink (to %s)" % os.readlink(path), advice) from None
        raise
    try:
        status = os.fstat(handle)
        problem = None if stat.S_ISREG(status.st_mode) else "is not a regular file"
        problem = problem or _problem(status, shared_ok=False)
        if problem:
            raise _refuse(path, what, problem, advice)
    except BaseException:
        os.close(handle)
        raise
    return handle


def read_state_file(path: str, what: str, advice: str, limit: int) -> bytes:
    """The bytes of a trusted state file (see open_state_file), at most ``limit`` of them (more is refused)."""
    handle = open_state_file(path, what, advice)
    with os.fdopen(handle, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise UntrustedPath("%s %s is larger than %d bytes, which no file this collection writes is: %s" % (what, path, limit, advice))
    return data
