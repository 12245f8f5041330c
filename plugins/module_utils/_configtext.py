# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text handling that the nginx and Apache editors share: reading, errors, lines, splicing.

Configuration files are read and written as text that maps back to the very same bytes, edited by
splicing (start, end, new text) operations into it, and every line the collection adds or changes
carries one marker comment. Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import gc
import glob
import os
import stat


class ConfigError(Exception):
    """A configuration its server would reject, or one the collection cannot edit safely: the error
    names the file, the line (None when it is about the file as a whole), what is wrong and what to do."""

    def __init__(self, path: str, line: int | None, message: str, hint: str) -> None:
        super().__init__(path, line, message, hint)
        self.path = path
        self.line = line
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        where = self.path if self.line is None else "%s:%d" % (self.path, self.line)
        return printable("%s: %s; %s" % (where, self.message, self.hint))


def printable(text: str) -> str:
    """``text`` with the bytes that are not UTF-8 (kept as surrogates by read_text) shown as \\xNN.

    A module result must be valid UTF-8: ansible-core refuses one with a lone surrogate ("Refusing to
    deserialize an invalid UTF8 string value") and the task fails after the files were changed, with
    the module's own message lost. A Latin-1 comment in a file is enough to put one in a diff."""
    if text.isascii():
        return text  # the common case, checked without encoding
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class LineIndex:
    """Offsets to 1-based line numbers and back, for one text."""

    def __init__(self, text: str) -> None:
        self._starts = line_starts(text)

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)

    def line_start(self, line: int) -> int:
        return self._starts[line - 1]


# The comment that marks what this collection added or changed, so that `state: absent` can undo it.
MARKER = "# ocsp.stapling"


# The most read_text reads of one configuration file. Real ones are kilobytes (the benchmark tree of
# 4,000 server blocks is 400 files of about 4 KiB, 1.7 MB in all) and the parser is proven on a
# 50 MiB file; the cap is there so that a huge or endless file (a 2 GiB log named by an include, a
# /proc-like file) is refused at once instead of filling the host's memory.
MAX_CONFIG_BYTES = 64 * 1024 * 1024

# Reads are made in pieces of at least this size, so that a file whose size fstat does not tell
# (0 for /proc-like files) takes no more memory than its content.
_READ_CHUNK = 64 * 1024


def _mib(count: int) -> str:
    if count % (1024 * 1024) == 0:
        return "%d MiB" % (count // (1024 * 1024))
    return "%.1f MiB" % (count / (1024.0 * 1024)) if count >= 1024 * 1024 else "%d bytes" % count


def read_bytes(path: str, limit: int, kind: str = "file") -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; OSError otherwise.

    Only a regular file is read: opening a FIFO for reading would wait for a writer forever (the
    run would hang, holding the host lock when an editor reads), and a device or socket is no file
    of a configuration (/dev/zero never ends). The open is non-blocking for that reason; a
    directory raises IsADirectoryError, as the Apache loader expects. A file larger than ``limit``
    is refused by its size before a byte is read, and a file that holds more than its size says
    (/proc-like files) by reading at most ``limit`` + 1 bytes: a run never holds more than that.
    ``kind`` names what the file should be, in that message.
    """
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(handle)
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(status.st_mode):
            what = "a FIFO" if stat.S_ISFIFO(status.st_mode) else "a socket" if stat.S_ISSOCK(status.st_mode) else "a device"
            raise OSError(errno.EINVAL, "not a regular file but %s, which the server would wait on or misread" % what, path)
        if status.st_size > limit:
            raise _too_large(path, "%d bytes (%s)" % (status.st_size, _mib(status.st_size)), limit, kind)
        chunks = []
        total = 0
        while total <= limit:
            # fstat's size (+1 to see the end of the file) in one read, at most what the cap still allows.
            chunk = os.read(handle, min(max(status.st_size + 1 - total, _READ_CHUNK), limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise _too_large(path, "at least %d bytes (its size says %d)" % (total, status.st_size), limit, kind)
        return b"".join(chunks)
    finally:
        os.close(handle)


def _too_large(path: str, size: str, limit: int, kind: str) -> OSError:
    return OSError(errno.EFBIG, "the file holds %s, more than the %s cap for a %s, so it is not read: check that the path names "
                                "the right file, a real %s is far smaller" % (size, _mib(limit), kind, kind), path)


def read_text(path: str) -> str:
    """A config file as text that writes back to the very same bytes (CRLF and odd bytes included).

    Read with :func:`read_bytes`: a regular file of at most MAX_CONFIG_BYTES only.
    """
    return read_bytes(path, MAX_CONFIG_BYTES, "configuration file").decode("utf-8", errors="surrogateescape")


def unreadable_hint(exc: OSError, path: str, real: str, what: str) -> str:
    """What to do about an included file that cannot be read, by the reason it cannot."""
    if exc.errno == errno.ENOENT and real != path:
        return "%s is a symlink to %s, which does not exist: remove the link or restore its target" % (path, real)
    if exc.errno == errno.EISDIR:
        return "it is a directory: include the files in it with a glob such as %s" % os.path.join(path, "*.conf")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "make it readable by the user this runs as, or fix the path of the %s" % what
    if exc.errno == errno.EINVAL:
        return "replace it with a regular file, or fix the path of the %s" % what
    if exc.errno == errno.EFBIG:
        return "fix the path of the %s" % what
    return "fix the path of the %s or create the file" % what


# Neither server limits how deep blocks nest or includes chain, but this module walks them
# recursively, and Python's recursion limit (1,000 frames) crashed it at about 500 levels. These
# limits are far beyond any real configuration and well within that budget.
MAX_NESTING = 100
MAX_INCLUDE_DEPTH = 32


def nesting_error(path: str, line: int, depth: int) -> tuple:
    """The ConfigError arguments for a block opened ``depth`` levels deep (includes counted)."""
    return (path, line, "blocks nested %d deep (counting the blocks around the include of this file); at most %d are supported" % (
        depth, MAX_NESTING), "move the inner blocks out, into fewer levels")


def include_depth_error(path: str, line: int) -> tuple:
    return (path, line, "includes nested more than %d deep" % MAX_INCLUDE_DEPTH, "include the files from fewer levels")


def depth_of(directive) -> int:
    """How many blocks hold ``directive``'s children: the directive and its parents."""
    depth = 0
    while directive is not None:
        depth += 1
        directive = directive.parent
    return depth


# U+FEFF as the first character: neither nginx nor httpd skips it (both read it as part of the
# first directive's name and refuse the file), so a file starting with it is an error here too,
# rather than a site silently not found.
BOM = "\ufeff"


def check_bom(path: str, text: str, server: str):
    """The ConfigError arguments for a file that starts with a UTF-8 byte order mark, else None."""
    if text.startswith(BOM):
        return (path, 1, "the file starts with a UTF-8 byte order mark (bytes EF BB BF), which %s reads as part of the first directive name" % server,
                "save the file as UTF-8 without BOM (remove its first 3 bytes)")
    return None


def text_bytes(text: str) -> bytes:
    """The inverse of read_text."""
    return text.encode("utf-8", errors="surrogateescape")


def sorted_glob(pattern: str) -> list:
    """Include globs expand in name order, as both servers do."""
    return sorted(glob.glob(pattern))


def newline_of(text: str) -> str:
    """The line ending a file uses, judged by its first line, for the lines an edit adds."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def newline_before(text: str, offset: int, default: str) -> str:
    """The ending of the line that ends right before ``offset`` (``default`` if none does): lines an
    edit adds take the ending of the line they follow, so that a file with mixed endings keeps each
    part as it is."""
    if offset > 0 and text[offset - 1] == "\n":
        return "\r\n" if offset > 1 and text[offset - 2] == "\r" else "\n"
    return default


def line_starts(text: str) -> list:
    """Offsets at which lines start, for bisecting an offset to its 1-based line."""
    starts = [0]
    newline = text.find("\n")
    while newline >= 0:
        starts.append(newline + 1)
        newline = text.find("\n", newline + 1)
    return starts


def indent_at(text: str, offset: int) -> str:
    """The leading blanks of the line holding ``offset``, so that added lines line up with it."""
    line_start = text.rfind("\n", 0, offset) + 1
    end = line_start
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[line_start:end]


def splice(text: str, ops: list) -> str:
    """Apply (start, end, new text) replacements; callers guarantee that they never overlap."""
    pieces = []
    pos = 0
    for start, end, new in sorted(ops, key=lambda op: (op[0], op[1])):
        pieces.append(text[pos:start])
        pieces.append(new)
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def summarise_notes(notes: list) -> list:
    """Per site (or per file and line for changes outside a site), the changes of a plan, for people:
    [{path, line, index, server_names, changes}]; ``notes`` holds (site or None, path, line, change)."""
    entries = []
    by_key = {}
    for site, path, line, change in notes:
        key = site if site is not None else (path, line)
        if key not in by_key:
            by_key[key] = {
                "path": path,
                "line": line,
                "index": None if site is None else site.index,
                "server_names": [] if site is None else list(site.server_names),
                "changes": [],
            }
            entries.append(by_key[key])
        if change not in by_key[key]["changes"]:
            by_key[key]["changes"].append(change)
    return entries


@contextlib.contextmanager
def collector_paused():
    """Parsing makes a few objects per directive, all alive until the run ends; Python's cyclic
    collector would walk them again at every threshold, so that time grew with the square of the
    configuration's size (measured: 4,000 server blocks took 5x as long to load as 2,000)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
