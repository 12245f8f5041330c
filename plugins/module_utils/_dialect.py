# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every server dialect shares, and the interface each one fills in.

A dialect (``_nginx``, ``_apache``) is three layers, each with its shared half here:

- reading and parsing: :class:`Loader` follows includes (cycles, depth, globs, unreadable files)
  and keeps every file once, as a :class:`ConfigFile`; the dialect parses one file's text and
  says what its includes and conditions mean;
- the model of files and sites: :func:`walk`, :func:`by_name`, :func:`flag`, :func:`sites_at`,
  :func:`chosen_sites`; the dialect builds its ``Site`` objects;
- the edit plan: :class:`SplicePlan` holds the splice operations, the notes for people, the lines
  added, the directives changed, the "is this the same value" rule, the re-parse proof and the
  result; the dialect says where lines go, how they are written and marked, and how to undo them.

:class:`Dialect` is what the editing lifecycle (``_lifecycle.run_edit``) drives: load, plan, and
what to show as the file before. No Ansible imports: this runs on managed hosts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ._configtext import (MAX_INCLUDE_DEPTH, ConfigError, LineIndex, collector_paused, depth_of, include_depth_error, newline_before,
                          newline_of, read_text, splice, summarise_notes)

GLOB_CHARS = "*?["

# The one outcome every TLS site gets in a run (state present), with a reason a person can act on.
STAPLED = "stapled"  # this run turned stapling on (verify then proves it)
ALREADY = "already"  # stapling was already configured as wanted: nothing changed
NOT_APPLICABLE = "not applicable"  # the site cannot be stapled (no OCSP URL, no certificate, ...): left alone
NOT_HANDLED = "not handled"  # the site could be stapled, but this run did not: why, and what to do
# With state absent.
REMOVED = "removed"  # what the collection had added or changed was taken back
UNCHANGED = "unchanged"  # nothing of the collection's was there


class SiteRefused(Exception):
    """A chosen site the plan leaves alone (and why): it gets the outcome "not handled", the run goes on."""

    outcome = NOT_HANDLED


class SiteNotApplicable(SiteRefused):
    """A chosen site that has no use for the collection's stapling (another mechanism staples it): "not applicable"."""

    outcome = NOT_APPLICABLE


@dataclass(eq=False)
class Directive:
    """One directive or block, with the offsets needed to edit it in place; a dialect adds its own fields.

    Offsets are ``str`` indices into the text of the file at ``path``; ``line`` is 1-based. ``block``
    lists a block's children (None for a simple directive). For an include, ``included`` lists the
    top-level directives of the included files, whose ``parent`` is that of the include (the context
    the server reads them in), not the include itself.
    """

    name: str
    args: list
    path: str
    line: int
    start: int
    end: int
    args_start: int
    args_end: int
    block: list | None = field(default=None, repr=False)
    parent: Directive | None = field(default=None, repr=False)
    included: list = field(default_factory=list, repr=False)

    @property
    def key(self) -> str:
        """The name as the server compares it."""
        return self.name


@dataclass(eq=False)
class Site:
    """One site of a server (an nginx ``server`` block, an Apache ``<VirtualHost>``), with the values
    in effect there: what every dialect knows of a site, under one name each. A dialect adds its own
    fields and says what ``server_names``, ``sockets()`` and ``details()`` are for it."""

    directive: Directive = field(repr=False)
    path: str
    line: int
    index: int
    tls: bool
    # Certificate and key paths in effect, resolved as the server reads them.
    certificates: list
    keys: list
    # The chain file the site already names (nginx ssl_trusted_certificate, Apache SSLCertificateChainFile).
    chain_file: str | None
    # Stapling on in effect (nginx ssl_stapling, Apache SSLUseStapling).
    stapling: bool
    # Whether a scope in effect writes that directive at all: "off" as written and "absent" (the
    # server's default) read the same to the server, but not to an auditor of the configuration.
    stapling_written: bool
    # The OCSP responder the configuration names in place of the certificate's (nginx ssl_stapling_responder,
    # Apache SSLStaplingForceURL), or None: with one, a certificate without an OCSP URL can still be stapled.
    stapling_responder: str | None
    # The site asks clients for certificates: its trust set must not change.
    verifies_clients: bool
    # A certificate path holds variables that only the running server resolves: it names no single file.
    uses_variables: bool

    def sockets(self) -> list:
        """[{address, port, tls, quic}] where the site accepts connections."""
        raise NotImplementedError

    def details(self) -> dict:
        """What only this server knows of the site, for people and for server_info's ``details``."""
        raise NotImplementedError


@dataclass(eq=False)
class ConfigFile(LineIndex):
    """One configuration file as read: its exact text, its newline, its parsed directives and comments."""

    path: str
    text: str
    newline: str
    directives: list = field(repr=False)
    # Where the comments are, in the dialect's terms (nginx: (start, end) offsets; Apache: line numbers).
    comments: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        LineIndex.__init__(self, self.text)


def walk(directives, depth: int = 0):
    """(directive, depth) for every directive as written, blocks entered, includes not followed."""
    for directive in directives:
        yield directive, depth
        if directive.block:
            yield from walk(directive.block, depth + 1)


def by_name(directives) -> dict:
    """The simple directives (not blocks) of one scope by key, in order: key -> [directive, ...]."""
    found = {}
    for directive in directives:
        if directive.block is None:
            found.setdefault(directive.key, []).append(directive)
    return found


def flag(scopes: tuple, key: str, values: tuple = ("on",)) -> bool:
    """Whether the innermost scope that sets ``key`` sets it to one of ``values`` (any case)."""
    for scope in scopes:
        if key in scope:
            args = scope[key][-1].args
            return len(args) == 1 and args[0].lower() in values
    return False


def written(scopes: tuple, key: str) -> bool:
    """Whether any scope in ``scopes`` writes ``key`` (whatever its value)."""
    return any(key in scope for scope in scopes)


def include_paths(base: str, pattern: str, globber) -> list:
    """The files an include names, relative to ``base``: a glob's matches (none is fine), else the path itself."""
    path = os.path.join(base, pattern)
    return globber(path) if any(char in path for char in GLOB_CHARS) else [path]


class Loader:
    """Reads a main file and everything it includes, each real path parsed per inclusion and kept once.

    A dialect supplies ``error`` (its ConfigError), :meth:`parse`, :meth:`unreadable` (what an
    include that cannot be read means) and :meth:`follow` (includes, conditions, variables).
    """

    error = ConfigError

    def __init__(self, reader, globber, realpath) -> None:
        self.reader = reader
        self.globber = globber
        self.realpath = realpath
        self.files = {}
        # Real paths being parsed, outermost first: a path met again is an include cycle.
        self.stack = []

    def parse(self, path: str, text: str, depth: int) -> tuple:
        """(directives, comments) of one file's text; ``depth`` is the nesting it is included at."""
        raise NotImplementedError

    def unreadable(self, path: str, real: str, context, include, exc: OSError) -> list:
        """The directives an include stands for when its file cannot be read, or the error to raise."""
        raise NotImplementedError

    def follow(self, directives: list) -> None:
        """Act on what a freshly parsed file says as the server does while reading (includes at least)."""
        raise NotImplementedError

    def load(self, path: str, context, include) -> list:
        real = self.realpath(path)
        if real in self.stack:
            cycle = " -> ".join(self.stack[self.stack.index(real):] + [real])
            raise self.error(include.path, include.line, "include cycle: %s" % cycle, "remove the include that closes the cycle")
        try:
            text = self.reader(real)
        except OSError as exc:
            if include is None:
                raise self.error(path, None, "cannot read the configuration (%s)" % (exc.strerror or exc),
                                 "check the path of the main configuration file")
            return self.unreadable(path, real, context, include, exc)
        if len(self.stack) >= MAX_INCLUDE_DEPTH:
            raise self.error(*include_depth_error(include.path, include.line))
        # A file included twice is parsed once per inclusion, so that every copy of its directives
        # knows its own context; the first parse is the one kept in `files`.
        directives, comments = self.parse(real, text, depth_of(context))
        if real not in self.files:
            self.files[real] = ConfigFile(real, text, newline_of(text), directives, comments)
        for directive in directives:
            directive.parent = context
        self.stack.append(real)
        self.follow(directives)
        self.stack.pop()
        return directives

    def load_all(self, main_path: str) -> dict:
        """Every file of the configuration by real path, the main file first."""
        with collector_paused():
            self.load(main_path, None, None)
        return self.files


def sites_at(sites: list, inner) -> dict:
    """(path, directive start) -> the sites whose block reaches that directive (``inner(site)`` lists them):
    a file included by several sites is edited once and reported for each."""
    found = {}
    for site in sites:
        for directive in inner(site):
            found.setdefault((directive.path, directive.start), []).append(site)
    return found


def chain_of(site, chains: dict) -> str | None:
    """The chain file for the first of the site's certificates that ``chains`` (normalised paths) names."""
    for path in site.certificates:
        chain = chains.get(os.path.normpath(path))
        if chain is not None:
            return chain
    return None


def chosen_sites(sites: list, chains: dict) -> list:
    """(site, chain) for every TLS site that serves a certificate named in ``chains``, in configuration order."""
    wanted = {os.path.normpath(path): chain for path, chain in chains.items()}
    selected = []
    for site in sites:
        chain = chain_of(site, wanted) if site.tls else None
        if chain is not None:
            selected.append((site, chain))
    return selected


class SplicePlan:
    """One plan of edits over a loaded configuration, shared by the dialects.

    Edits are (start, end, new text) splices per file, keyed by where they land, so that a file
    included twice (and so a directive met through several sites) is edited once. Every text is
    proven by re-parsing it (:meth:`check`) before it is returned.

    A dialect supplies: ``effective`` (the directives of a block as the server reads them),
    :meth:`outer_scope`, :meth:`same`, :meth:`record_change` (the splice and marker for a changed
    value), :meth:`insertion_point`, :meth:`added_line`, :meth:`signature`, :meth:`present_site`'s
    wanted directives through :meth:`wanted`, and :meth:`absent` (reading its markers back).
    """

    error = ConfigError
    # What to do when one shared directive would need two values, for the dialect's people.
    shared_hint = "move it into each site"

    def __init__(self, config, state: str) -> None:
        self.config = config
        self.state = state
        # path -> [(start, end, new text)]
        self.ops = {}
        # [(site or None, path, line, change)]
        self.notes = []
        # path -> whole new text, or None to delete: files that are not spliced (Apache's cache file)
        self.extra = {}
        # (path, directive start) -> the arguments it gets: new ones (present) or restored ones (absent)
        self.changed = {}
        # (path, offset) -> {key: line}: the lines to add at one place, one per directive key
        self.insertions = {}
        self._added_per_path = None
        # For the outcomes: site -> chain of every site chosen to staple; the sites this plan changes;
        # site -> (outcome, reason) of a chosen site left alone.
        self.chosen = {}
        self.edited = set()
        self.refused = {}
        # Dead configuration (remove_dead): site -> why its certificates can never be stapled, for the sites whose
        # stapling this plan turns off; site -> why a site with such certificates keeps its stapling on.
        self.dead = {}
        self.kept_on = {}

    # -- what a dialect fills in

    @staticmethod
    def effective(directives):
        raise NotImplementedError

    def outer_scope(self, site) -> dict:
        """The directives in effect around the site (nginx: its http block; Apache: server scope), by key."""
        raise NotImplementedError

    def wanted(self, site, chain: str) -> list:
        """[(name, args)] the site must have for stapling, in the order they are added."""
        raise NotImplementedError

    def same(self, key: str, current: list, wanted: list) -> bool:
        raise NotImplementedError

    def record_change(self, directive, args: list) -> None:
        """The splices that give ``directive`` the arguments ``args`` and record the old ones."""
        raise NotImplementedError

    def insertion_point(self, config_file: ConfigFile, block) -> tuple:
        """(offset, indent) where new lines go in a site's block."""
        raise NotImplementedError

    def added_line(self, indent: str, name: str, args: list, newline: str) -> str:
        """The text of one added directive, with its marker."""
        raise NotImplementedError

    def signature(self, path: str, text: str, parsed: tuple | None = None) -> tuple:
        """(kept, added): every directive not added by the collection as (start, (depth, key, args, ...)), and a count of the others."""
        raise NotImplementedError

    def absent(self, path: str, sites_at_: dict) -> None:
        raise NotImplementedError

    def off_lines(self, site) -> list:
        """[(name, args)] that turn stapling off in ``site``; raises :class:`SiteRefused` where the plan must not."""
        raise NotImplementedError

    def reach(self, site):
        """Every directive the server reads for the site's block, includes followed: who shares which line."""
        raise NotImplementedError

    def current(self, found: list):
        """The one directive in effect of those a scope has under one key (the last, as the servers read them)."""
        return found[-1]

    # -- shared steps

    def note(self, site, change: str, path: str | None = None, line: int | None = None) -> None:
        if site is not None:
            path, line = site.path, site.line
        self.notes.append((site, path, line, change))

    def note_at(self, sites_at_: dict, directive, change: str) -> None:
        """Note a change for every site that reaches ``directive`` (a file included by several)."""
        sites = sites_at_.get((directive.path, directive.start))
        if not sites:
            self.note(None, change, directive.path, directive.line)
        for site in sites or ():
            self.note(site, change)
            self.edited.add(site)

    def present(self, site, chain: str) -> None:
        """Give one site what :meth:`wanted` says: change what it sets otherwise, add what is not in effect."""
        self.chosen[site] = chain
        try:
            self.give(site, self.wanted(site, chain))
        except SiteRefused as exc:
            self.refused[site] = (exc.outcome, str(exc))

    def remove_dead(self, sites: list, dead: dict) -> None:
        """Turn stapling off in the TLS sites left alone that have it on while each of their certificates can never be
        stapled (``dead``: certificate path -> why, such as no OCSP URL or self-signed): "dead configuration", which
        makes nginx warn on every reload and Apache log an error on every start. Only the stapling flag changes, never
        what a site trusts; each change is marked like any other, and state=absent takes it back.

        A site keeps stapling on, with the reason in its outcome, when its configuration names a responder of its own
        (it may staple all the same), or when the line to change is shared with a site that must keep it.
        """
        reasons = {os.path.normpath(path): reason for path, reason in dead.items()}
        candidates = {}
        for site in sites:
            if not (site.tls and site.stapling and site.certificates) or site.uses_variables or site in self.chosen:
                continue
            why = [reasons.get(os.path.normpath(path)) for path in site.certificates]
            if None in why:
                continue
            if site.stapling_responder:
                self.kept_on[site] = "stapling stays on: the configuration names the OCSP responder %s for it" % site.stapling_responder
                continue
            candidates[site] = "; ".join(dict.fromkeys(why))
        if not candidates:
            return
        reached = sites_at(sites, self.reach)
        for site, reason in candidates.items():
            try:
                wanted = self.off_lines(site)
                own = by_name(self.effective(site.directive.block))
                for name, dummy in wanted:
                    found = own.get(name.lower())
                    if found:
                        directive = self.current(found)
                        others = [other for other in reached.get((directive.path, directive.start), ()) if other not in candidates]
                        if others:
                            raise SiteRefused("stapling stays on: %s at %s:%d is shared with the site at %s:%d, which keeps it" % (
                                directive.name, directive.path, directive.line, others[0].path, others[0].line))
                self.give(site, wanted)
            except SiteRefused as exc:
                self.kept_on[site] = str(exc)
            else:
                self.dead[site] = reason

    def give(self, site, wanted: list) -> None:
        """Give one site the directives ``wanted`` ([(name, args)]): change what it sets otherwise, add what is not in effect.
        Raises :class:`SiteRefused` (nothing planned for the site) when no line can be added to its block."""
        own = by_name(self.effective(site.directive.block))
        outer = self.outer_scope(site)
        steps, additions = [], []
        for name, args in wanted:
            key = name.lower()
            if key in own:
                directive = self.current(own[key])
                if not self.same(key, directive.args, args):
                    steps.append((directive, name, args))
            elif not (key in outer and self.same(key, outer[key][-1].args, args)):
                additions.append((name, args))
                steps.append((None, name, args))
        if additions:
            try:
                self.insertion_point(self.config.files[site.directive.path], site.directive)
            except ConfigError as exc:
                # A block written so that no line can follow (all on one line): this site alone is left, with what to
                # do, and every other site of the host still gets its outcome.
                raise SiteRefused("%s (%s:%d); %s" % (exc.message, exc.path, exc.line or site.line, exc.hint)) from None
        for directive, name, args in steps:
            if directive is None:
                self.note(site, "add %s %s" % (name, " ".join(args)))
            else:
                self.set_args(site, directive, args)
        if additions:
            self.add_lines(site, additions)

    def set_args(self, site, directive, args: list) -> None:
        key = (directive.path, directive.start)
        previous = self.changed.get(key)
        if previous is not None and previous != args:
            raise self.error(directive.path, directive.line, '"%s" here is shared by sites that need different values (%s, %s)' % (
                directive.name, " ".join(previous), " ".join(args)), self.shared_hint)
        self.note(site, "set %s %s (was %s)" % (directive.name, " ".join(args), " ".join(directive.args)))
        self.edited.add(site)
        if previous is None:
            self.changed[key] = list(args)
            self.record_change(directive, args)

    def add_lines(self, site, additions: list) -> None:
        self.edited.add(site)
        block = site.directive
        config_file = self.config.files[block.path]
        offset, indent = self.insertion_point(config_file, block)
        lines = self.insertions.setdefault((block.path, offset), {})
        newline = newline_before(config_file.text, offset, config_file.newline)
        # A block of a file included twice is met once per copy, with the same lines.
        for name, args in additions:
            lines[name.lower()] = self.added_line(indent, name, args, newline)

    def insert_ops(self) -> None:
        for (path, offset), lines in self.insertions.items():
            self.ops.setdefault(path, []).append((offset, offset, "".join(lines.values())))

    def lines_added(self, path: str) -> int:
        """How many lines the plan adds to ``path``; counted once for all files, as the check runs per file."""
        if self._added_per_path is None:
            self._added_per_path = {}
            for (where, dummy), lines in self.insertions.items():
                self._added_per_path[where] = self._added_per_path.get(where, 0) + len(lines)
        return self._added_per_path.get(path, 0)

    def check(self, path: str, old: str, new: str) -> None:
        """Re-read the edited text and prove that it holds the same directives as before apart from
        the intended changes: a layout the editor did not foresee fails here, not in the server."""
        try:
            new_kept, new_added = self.signature(path, new)
        except ConfigError as exc:
            raise self.error(path, exc.line, "the edited file would not parse (%s)" % exc.message, "edit this file by hand")
        loaded = self.config.files[path]
        old_kept, old_added = self.signature(path, old, (loaded.directives, loaded.comments))
        expected = []
        for start, entry in old_kept:
            args = self.changed.get((path, start))
            expected.append(entry if args is None else entry[:2] + (tuple(args),) + entry[3:])
        added = 0 if self.state == "absent" else old_added + self.lines_added(path)
        if [entry for dummy, entry in new_kept] != expected or new_added != added:
            raise self.error(path, None, "the edit would change more than the OCSP stapling directives", "edit this file by hand")

    def texts(self) -> dict:
        """{path: new text, or None to delete} for every file that changes, each proven by :meth:`check`."""
        edits = {}
        for path, ops in self.ops.items():
            old = self.config.files[path].text
            new = splice(old, ops)
            if new != old:
                self.check(path, old, new)
                edits[path] = new
        edits.update(self.extra)
        return edits

    def outcomes(self, sites: list, not_applicable: dict) -> list:
        """The one outcome of every TLS site in ``sites``: [{path, line, index, server_names, certificates, outcome, reason}].

        ``not_applicable`` maps certificate paths to why they cannot be stapled (the preflight's verdicts).
        """
        reasons = {os.path.normpath(path): reason for path, reason in (not_applicable or {}).items()}
        for site, reason in self.dead.items():
            reasons.update((os.path.normpath(path), reason) for path in site.certificates if os.path.normpath(path) not in reasons)
        found = []
        for site in sites:
            if not site.tls:
                continue
            if self.state == "absent":
                outcome, reason = (REMOVED, "what the collection had added or changed was taken back") if site in self.edited else (
                    UNCHANGED, "nothing of the collection's was there")
            elif site in self.refused:
                outcome, reason = self.refused[site]
            elif site in self.chosen:
                outcome, reason = (STAPLED, "stapling turned on with the chain file %s" % self.chosen[site]) if site in self.edited else (
                    ALREADY, "stapling was already configured as wanted")
            else:
                outcome, reason = _left_alone(site, reasons)
                if site in self.dead:
                    reason += "; stapling turned off, since it could never work (dead configuration)"
                elif site in self.kept_on:
                    reason += "; " + self.kept_on[site]
            found.append({"path": site.path, "line": site.line, "index": site.index, "server_names": list(site.server_names),
                          "certificates": list(site.certificates), "outcome": outcome, "reason": reason})
        return found

    def result(self, sites: list, not_applicable: dict | None = None) -> tuple:
        """(edits, summary, outcomes): :meth:`texts`; per site, what changes, for people; :meth:`outcomes`."""
        return self.texts(), summarise_notes(self.notes), self.outcomes(sites, not_applicable)


def _left_alone(site, reasons: dict) -> tuple:
    """(outcome, reason) of a TLS site the plan did not choose."""
    if not site.certificates:
        return NOT_APPLICABLE, "the site has no certificate of its own (it refuses handshakes, or takes one only at run time)"
    if site.uses_variables:
        return NOT_APPLICABLE, ("its certificate path uses variables (%s): the server picks the file per handshake, so there is no single "
                                "certificate to judge and staple" % ", ".join(site.certificates))
    for path in site.certificates:
        reason = reasons.get(os.path.normpath(path))
        if reason is not None:
            return NOT_APPLICABLE, "%s: %s" % (path, reason)
    return NOT_HANDLED, ("its certificate %s was not given to this run (chains): the roles give every certificate of the host; "
                         "called alone, give it in chains, or its reason in not_applicable" % ", ".join(site.certificates))


class Dialect:
    """What the editing lifecycle needs from one server, configured with the module's options.

    ``module`` names the module in the result and the journal; :meth:`load` reads the configuration;
    :meth:`plan` returns (edits, summary, outcomes) for ``chains`` (certificate path -> chain file), ``state`` and
    ``not_applicable`` (certificate path -> why it cannot be stapled) and ``dead`` (certificate path -> why it never
    can be: stapling that is on for such a site's certificates is turned off);
    :meth:`before` is a file's text for the diff; :meth:`links` the symlinks to create or remove
    (None for a server without any) and :meth:`intent` what a later recovery must know of this run.
    """

    module = ""

    def __init__(self, conf_path: str, reader=None) -> None:
        self.conf_path = conf_path
        self.reader = reader or read_text

    def load(self):
        raise NotImplementedError

    def plan(self, config, chains: dict, state: str, not_applicable: dict | None = None, dead: dict | None = None) -> tuple:
        raise NotImplementedError

    def before(self, config, path: str) -> str:
        return config.files[path].text if path in config.files else ""

    def links(self, recovered: dict | None, state: str) -> dict | None:
        return None

    def intent(self, recovered: dict | None, state: str) -> dict:
        return {}
