# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text handling that the nginx and Apache editors share.

Configuration files are read and written as text that maps back to the very same bytes, edited by
splicing (start, end, new text) operations into it, and every line the collection adds or changes
carries one marker comment. Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import glob


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
        return "%s: %s; %s" % (where, self.message, self.hint)


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


def read_text(path: str) -> str:
    """A config file as text that writes back to the very same bytes (CRLF and odd bytes included)."""
    with open(path, "r", encoding="utf-8", errors="surrogateescape", newline="") as stream:
        return stream.read()


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


class EditPlan:
    """What both editors' plans share: the splice operations per file, the notes for people, and the
    texts they produce, each proven by the editor's own ``check`` (re-parse) before it is returned."""

    def __init__(self, config, state: str) -> None:
        self.config = config
        self.state = state
        # path -> [(start, end, new text)]
        self.ops = {}
        # [(site or None, path, line, change)]
        self.notes = []
        # path -> whole new text, or None to delete: files that are not spliced (Apache's cache file)
        self.extra = {}

    def note(self, site, change: str, path: str | None = None, line: int | None = None) -> None:
        raise NotImplementedError

    def check(self, path: str, old: str, new: str) -> None:
        raise NotImplementedError

    def note_at(self, sites_at: dict, directive, change: str) -> None:
        """Note a change for every site that reaches ``directive`` (a file included by several)."""
        sites = sites_at.get((directive.path, directive.start))
        if not sites:
            self.note(None, change, directive.path, directive.line)
        for site in sites or ():
            self.note(site, change)

    def texts(self) -> dict:
        edits = {}
        for path, ops in self.ops.items():
            old = self.config.files[path].text
            new = splice(old, ops)
            if new != old:
                self.check(path, old, new)
                edits[path] = new
        edits.update(self.extra)
        return edits


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
