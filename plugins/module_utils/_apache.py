# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apache httpd configuration: a parser that keeps byte positions, a model of TLS sites
(``<VirtualHost>`` sections), and a surgical editor for the OCSP stapling directives.

Runs on managed hosts: standard library only, Python 3.8 syntax, no Ansible imports. Files are
read only through the ``reader`` given to :meth:`ApacheConfig.load`, include globs expanded only
through its ``globber`` and symlinks resolved only through its ``realpath``.

The grammar is httpd's (``ap_cfg_getline`` / ``ap_getword_conf``): one directive per logical
line, a trailing backslash joins the next physical line, ``#`` starts a comment only as the first
non-blank character of a line, arguments are split on whitespace with "double" or 'single'
quotes, names are case-insensitive, sections ``<Name args>`` ... ``</Name>`` nest.

In Apache a comment must be on its own line (``SSLUseStapling on # x`` is an error: the comment
is an extra argument), so the markers this editor writes are whole lines just above the line they
concern:

- ``<indent># ocsp.stapling`` above every line the editor added;
- ``<indent># ocsp.stapling: was <original arguments as written>`` above every line it changed.

``state=absent`` reads those markers back (removes the marker and the added line below it, or
restores the arguments of the line below it), so present followed by absent gives the original
bytes.

Loading evaluates what httpd evaluates while reading: ``Define`` / ``UnDefine`` and ``${NAME}``
(Define values first, then ``env``; an unknown name is kept as written, as httpd does),
``<IfDefine>``, ``<IfModule>`` (``modules=None`` counts every module as loaded, so ``!mod``
conditions are false), ``ServerRoot``, ``Include`` / ``IncludeOptional`` (globs, directories,
relative to ServerRoot). ``<IfVersion>``, ``<IfFile>``, ``<IfDirective>`` and ``<IfSection>`` are
read as holding; ``<If>`` / ``<Else>`` are run-time sections and are never looked into.

mod_macro (when ``macro_module`` is loaded, or the modules are unknown) is read as httpd reads it
(modules/core/mod_macro.c): a ``<Macro name $a @b>`` body is kept unread; each ``Use name x y`` puts
the body there with every parameter name replaced, as plain text, by its value (the leftmost and,
on a tie, the longest name first; an ``@`` parameter's value is written in double quotes), and that
text is then read like any other; ``UndefMacro`` forgets a macro. What such an expansion holds has
``macro`` set (a :class:`MacroUse`) and a ``path`` that names no file (httpd's own words, ``macro
'name' (defined on line N of "F") used on line M of "G"``), so that no edit can land in it: the
text lives in the macro and is shared by every ``Use`` of it. The plan leaves a site alone, and says
why and what to do, when the lines it needs to add or change would be in a macro.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from functools import cached_property

from ._configtext import (MARKER, MAX_CONFIG_BYTES, MAX_NESTING, ConfigError, check_bom, collector_paused, depth_of, indent_at, newline_before,
                          nesting_error, read_text, sorted_glob, unreadable_hint)
from ._dialect import (ConfigFile, Dialect, Loader, SiteNotApplicable, SiteRefused, SplicePlan, by_name, chosen_sites, flag, include_paths,
                       sites_at, walk, written)
from ._dialect import Directive as BaseDirective
from ._dialect import Site as BaseSite

_WAS = MARKER + ": was "
_VAR = re.compile(r"\$\{([A-Za-z0-9_:.-]+)\}")
_BLANKS = re.compile(r"[ \t\r\n\f\v]*")
_BLANK = re.compile(r"[ \t\r\n\f\v]")
_NEEDS_QUOTES = re.compile(r"[\s\"'\\#<>]|^$")
# Sections whose condition httpd evaluates while reading the configuration.
_CONDITIONS = ("ifmodule", "ifdefine")
# Sections read as if their condition held (httpd's version, files and directives are unknown
# here): their contents count at the level of the section that holds them.
_TRANSPARENT = ("ifversion", "iffile", "ifdirective", "ifsection")
_INCLUDES = ("include", "includeoptional")
_VERIFY = ("require", "optional", "optional_no_ca")
# mod_macro's directives, and the first characters it expects of a parameter name (the `@` ones are quoted on use).
_MACRO_MODULE = "macro_module"
_PARAMETER_SIGILS = "$%@"
# What stapling needs in every chosen vhost, apart from the chain (SSLCACertificateFile), in the order it is added.
_STAPLING = (("SSLUseStapling", ["on"]), ("SSLStaplingResponderTimeout", ["5"]), ("SSLStaplingReturnResponderErrors", ["off"]))
# Directives the editor manages in a vhost, in the order it adds them.
_MANAGED = ("sslusestapling", "sslstaplingrespondertimeout", "sslstaplingreturnrespondererrors", "sslcacertificatefile")
CACHE_HEADER = "# Managed by ocsp.stapling"


class ApacheConfigError(ConfigError):
    """A configuration httpd would reject, or one this module cannot edit safely.

    ``line`` is None when the error is about a file as a whole.
    """

    # True for an include whose file does not exist: IncludeOptional skips it (and nothing else).
    missing = False


@dataclass(frozen=True)
class MacroUse:
    """Where a macro's text was put: the macro ``name``, where it is defined (``definition_path``,
    ``definition_line``) and the ``Use`` line in a file (``path``, ``line``; for a ``Use`` inside
    another macro, the outermost one, which is the line a person can find)."""

    name: str
    definition_path: str
    definition_line: int
    path: str
    line: int

    def where(self) -> str:
        return "macro '%s' (defined at %s:%d), used at %s:%d" % (self.name, self.definition_path, self.definition_line, self.path, self.line)

    def record(self) -> dict:
        return {"name": self.name, "path": self.path, "line": self.line, "definition_path": self.definition_path,
                "definition_line": self.definition_line}


@dataclass(eq=False)
class Directive(BaseDirective):
    """One httpd directive or section (see ``_dialect.Directive``); names compare in any case.

    ``start`` is the first character of the name (``<`` for a section); ``end`` is the end of the
    logical line, continuation lines and the newline included (for a section: of its opening line).
    ``args_start`` / ``args_end`` delimit the arguments as written (``raw_args``; for a section
    without the closing ``>``); they are equal, after the name, when there are none.
    ``args`` are unquoted and ``${NAME}`` expanded. For a section, ``close_start`` / ``close_end``
    delimit its ``</Name>`` line. ``active`` is False for an ``<IfModule>`` / ``<IfDefine>`` whose
    condition does not hold (its contents are parsed but not read: no include, no Define).
    """

    raw_args: str = ""
    close_start: int | None = field(default=None, repr=False)
    close_end: int | None = field(default=None, repr=False)
    active: bool = field(default=True, repr=False)
    # The arguments unquoted but not expanded.
    words: list = field(default_factory=list, repr=False)
    # The `Use` of a macro that this directive's text comes from (None: it is in a file as written).
    macro: MacroUse | None = field(default=None, repr=False)

    @cached_property
    def key(self) -> str:
        # Read hundreds of thousands of times on a large tree: lowered once.
        return self.name.lower()


@dataclass(eq=False)
class Site(BaseSite):
    """One ``<VirtualHost>``; values are those in effect (the vhost's own, else the server's).

    ``certificates`` / ``keys`` are its SSLCertificateFile / SSLCertificateKeyFile paths, ``chain_file``
    its SSLCertificateChainFile, ``stapling`` its SSLUseStapling; ``uses_variables`` is always false
    (httpd expands ``${NAME}`` while reading, so a path names one file)."""

    server_name: str | None
    server_aliases: list
    addresses: list
    ports: list
    ssl_ca_certificate_file: str | None
    ssl_ca_certificate_path: str | None
    # The macro whose text holds this <VirtualHost> (None: a file holds it): ``path`` and ``line`` are then its Use line.
    macro: MacroUse | None = None
    # mod_md staples this site's certificate itself (MDStapling on for its domain, or for all certificates).
    md_stapling: bool = False

    @property
    def server_names(self) -> list:
        return ([self.server_name] if self.server_name else []) + list(self.server_aliases)

    def sockets(self) -> list:
        # SSLEngine is per virtual host: every address of a TLS <VirtualHost> serves TLS.
        return [dict(_socket(address), tls=self.tls, quic=False) for address in self.addresses]

    def details(self) -> dict:
        return {
            "addresses": list(self.addresses),
            "ports": list(self.ports),
            "ssl_ca_certificate_file": self.ssl_ca_certificate_file,
            "ssl_certificate_chain_file": self.chain_file,
            "macro": self.macro.record() if self.macro else None,
        }


# --- Lexer and parser ----------------------------------------------------------------------------


def _words(path: str, line: int, raw: str) -> list:
    """``ap_getword_conf``: whitespace-separated words, "double" or 'single' quoted, where a
    backslash escapes only the quote that opened the word."""
    words = []
    pos = 0
    size = len(raw)
    # Searches rather than a loop per character: a 2 KiB header value or a 1 MB line took seconds.
    while True:
        pos = _BLANKS.match(raw, pos).end()
        if pos >= size:
            return words
        char = raw[pos]
        if char in "\"'":
            # The closing quote is the first one not right after a backslash (a backslash is never
            # itself escaped, so no run of them needs counting).
            end = raw.find(char, pos + 1)
            while end > 0 and raw[end - 1] == "\\":
                end = raw.find(char, end + 1)
            if end < 0:
                raise ApacheConfigError(path, line, "unterminated quoted string %s" % raw[pos:pos + 80], "close it with a matching %s" % char)
            words.append(raw[pos + 1:end].replace("\\" + char, char))
            pos = end + 1
        else:
            blank = _BLANK.search(raw, pos)
            end = size if blank is None else blank.start()
            words.append(raw[pos:end])
            pos = end


def _logical_lines(text: str):
    """(start, end, content, first line number, is comment) per non-blank logical line; ``end``
    is after its newline, ``content`` joins continuation lines without their backslash-newline
    (the indentation of a continuation line is kept, so it separates words, as in httpd)."""
    size = len(text)
    pos = 0
    number = 1
    while pos < size:
        first = number
        start = pos
        pieces = []
        while True:
            newline = text.find("\n", pos)
            end = size if newline < 0 else newline + 1
            piece = text[pos:end].rstrip("\r\n")
            number += 1
            pos = end
            # Like httpd: only a backslash right before the newline, and not a doubled one.
            if piece.endswith("\\") and not piece.endswith("\\\\") and pos < size:
                pieces.append(piece[:-1])
                continue
            pieces.append(piece.rstrip(" \t"))
            break
        content = "".join(pieces)
        stripped = content.lstrip(" \t")
        if stripped:
            yield start, pos, content, first, stripped.startswith("#")


def _parse(path: str, text: str, depth: int = 0) -> tuple:
    """Top-level directives (sections with their blocks) and comment line numbers of one file,
    as written: no include followed, no condition evaluated, ``args`` not expanded yet.
    ``depth``: how many sections hold the file where it is included."""
    bom = check_bom(path, text, "httpd")
    if bom:
        raise ApacheConfigError(*bom)
    root = []
    children = root
    stack = []
    comments = []
    for start, end, content, line, is_comment in _logical_lines(text):
        if is_comment:
            comments.append(line)
            continue
        lead = len(content) - len(content.lstrip(" \t"))
        name_start = start + lead
        body = content[lead:]
        split = re.search(r"[ \t]", body)
        name = body if split is None else body[:split.start()]
        if name.startswith("</"):
            closing = name[2:].rstrip(">")
            if not stack:
                raise ApacheConfigError(path, line, "%s without matching <%s> section" % (name, closing), "remove it or add the section it closes")
            section = stack[-1]
            if closing.lower() != section.name[1:].lower() or not body.rstrip().endswith(">"):
                raise ApacheConfigError(path, line, "expected </%s> but saw %s" % (section.name[1:], body.rstrip()),
                                        "close the %s section opened at line %d first" % (section.name, section.line))
            stack.pop()
            section.close_start = name_start
            section.close_end = end
            children = stack[-1].block if stack else root
            continue
        is_section = name.startswith("<")
        if is_section:
            # As httpd: the arguments end at the last `>` of the line.
            if ">" not in body[len(name) - 1:]:
                raise ApacheConfigError(path, line, "%s> directive missing closing '>'" % name.rstrip(">"), "end the line with '>'")
            if name.endswith(">"):
                name = name[:-1]
        # Offsets of the arguments in the text: content maps 1:1 to the text up to the first
        # continuation, so compute them from the raw span instead.
        raw_start = name_start + len(name)
        raw_end = _content_end(text, start, end)
        if is_section:
            raw_end = text.rfind(">", raw_start, raw_end)
        raw = text[raw_start:raw_end]
        stripped = raw.strip(" \t")
        if stripped:
            args_start = raw_start + len(raw) - len(raw.lstrip(" \t"))
            args_end = raw_start + len(raw.rstrip(" \t"))
        else:
            args_start = args_end = raw_start
        raw_args = text[args_start:args_end]
        joined = body[len(name):]
        if is_section:
            joined = joined[:joined.rfind(">")]
        words = _words(path, line, joined)
        directive = Directive(
            name=name,
            args=list(words),
            raw_args=raw_args,
            path=path,
            line=line,
            start=name_start,
            end=end,
            args_start=args_start,
            args_end=args_end,
            block=[] if is_section else None,
            parent=stack[-1] if stack else None,
            words=words,
        )
        children.append(directive)
        if is_section:
            stack.append(directive)
            children = directive.block
            if len(stack) + depth > MAX_NESTING:
                raise ApacheConfigError(*nesting_error(path, line, len(stack) + depth))
    if stack:
        section = stack[-1]
        raise ApacheConfigError(path, section.line, "%s> was not closed" % section.name, "add </%s>" % section.name[1:])
    return root, comments


def _content_end(text: str, start: int, end: int) -> int:
    """End of a logical line's content: before its trailing blanks and newline."""
    stop = end
    while stop > start and text[stop - 1] in " \t\r\n":
        stop -= 1
    return stop


# --- Loader --------------------------------------------------------------------------------------


def _module_name(name: str) -> str:
    """`mod_ssl.c`, `mod_ssl` and `ssl_module` all name one module: `ssl_module`."""
    if name.endswith(".c"):
        name = name[:-2]
    if name.startswith("mod_"):
        name = name[4:] + "_module"
    return name


def _substitute(line: str, parameters: list, values: list) -> str:
    """mod_macro's substitution in one line: the leftmost parameter name (the longest on a tie) is replaced
    by its value, then the search goes on after the value, until no name is left. An ``@`` parameter's value
    is put in double quotes, with its quotes and backslashes escaped."""
    position = 0
    while True:
        found = None
        for index, name in enumerate(parameters):
            at = line.find(name, position)
            if at >= 0 and (found is None or at < found[0] or (at == found[0] and len(name) > len(parameters[found[1]]))):
                found = (at, index)
        if found is None:
            return line
        at, index = found
        name, value = parameters[index], values[index]
        replacement = value
        if name.startswith("@"):
            replacement = '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
        if name != value:
            line = line[:at] + replacement + line[at + len(name):]
        # As httpd: the search resumes after as many characters as the value has, quotes not counted.
        position = at + len(value)


class _Loader(Loader):
    error = ApacheConfigError

    def __init__(self, reader, globber, realpath, server_root: str, env: dict, defines, modules) -> None:
        super().__init__(reader, globber, realpath)
        self.server_root = server_root
        self.env = dict(env or {})
        self.defines = set(defines or ())
        self.variables = {}
        self.modules = None if modules is None else set(_module_name(name) for name in modules)
        # mod_macro: name (lower case) -> (the <Macro> section, its parameter names); the texts of expansions by their pseudo path;
        # the names being expanded (httpd refuses a macro that uses itself); the characters expanded so far.
        self.macros = {}
        self.expansions = {}
        self.expanding = []
        self.expanded_size = 0

    def expand(self, word: str) -> str:
        if "${" not in word:
            return word

        def value(match):
            name = match.group(1)
            if name in self.variables:
                return self.variables[name]
            if name in self.env:
                return str(self.env[name])
            return match.group(0)
        return _VAR.sub(value, word)

    def parse(self, path: str, text: str, depth: int) -> tuple:
        return _parse(path, text, depth)

    def unreadable(self, path: str, real: str, context, include, exc: OSError) -> list:
        if exc.errno == errno.EISDIR:
            # A directory: every file in it (and in its subdirectories), in order.
            found = []
            for entry in self.globber(os.path.join(path, "*")):
                found.extend(self.load(entry, context, include))
            return found
        error = ApacheConfigError(include.path, include.line, 'could not open configuration file %s: %s' % (path, exc.strerror or exc),
                                  unreadable_hint(exc, path, real, include.name))
        # IncludeOptional skips what does not exist only; a file it cannot read is an error in httpd too.
        error.missing = exc.errno == errno.ENOENT
        raise error

    def follow(self, directives: list) -> None:
        self._read(directives)

    def _read(self, directives: list) -> None:
        """Evaluate in order, as httpd does: expansion, Define, conditions, includes."""
        for directive in directives:
            directive.args = [self.expand(word) for word in directive.words]
            key = directive.key
            if directive.block is not None:
                if key == "<macro":
                    # A template: read only where a Use puts it (its Defines and includes count there, not here).
                    if self._macros_loaded():
                        self._define_macro(directive)
                    continue
                if key[1:] in _CONDITIONS:
                    directive.active = self._holds(directive)
                if directive.active:
                    self._read(directive.block)
            elif key == "define":
                if not directive.args or len(directive.args) > 2:
                    raise ApacheConfigError(directive.path, directive.line, "Define takes one or two arguments", "write Define NAME [value]")
                self.defines.add(directive.args[0])
                if len(directive.args) == 2:
                    self.variables[directive.args[0]] = directive.args[1]
            elif key == "undefine" and directive.args:
                self.defines.discard(directive.args[0])
                self.variables.pop(directive.args[0], None)
            elif key == "serverroot" and directive.args:
                self.server_root = directive.args[0]
            elif key in _INCLUDES:
                self._include(directive)
            elif key == "use" and self._macros_loaded():
                self._use(directive)
            elif key == "undefmacro" and self._macros_loaded():
                if not directive.args or directive.args[0].lower() not in self.macros:
                    raise ApacheConfigError(directive.path, directive.line, "cannot remove undefined macro '%s'" % " ".join(directive.args),
                                            "remove the UndefMacro line or define the macro before it")
                del self.macros[directive.args[0].lower()]

    def _macros_loaded(self) -> bool:
        return self.modules is None or _MACRO_MODULE in self.modules

    def _define_macro(self, section: Directive) -> None:
        """Keep a <Macro name params...> for its uses, checked as httpd checks it."""
        if not section.args:
            raise ApacheConfigError(section.path, section.line, "<Macro macro definition: name not found", "name the macro")
        # Flags such as /IgnoreEmptyArgs come between the name and the parameters.
        parameters = section.args[1:]
        while parameters and parameters[0].startswith("/"):
            parameters = parameters[1:]
        for index, name in enumerate(parameters):
            if not name:
                raise ApacheConfigError(section.path, section.line, "macro '%s': empty argument #%d name" % (section.args[0], index + 1),
                                        "name every parameter")
            if name in parameters[:index]:
                raise ApacheConfigError(section.path, section.line, "argument name conflict in macro '%s': argument '%s'" % (
                    section.args[0], name), "give each parameter its own name")
        self.macros[section.args[0].lower()] = (section, parameters)

    def _use(self, use: Directive) -> None:
        """Put the text of the macro a ``Use`` names in its place, as httpd does, and read it there."""
        if not use.args:
            raise ApacheConfigError(use.path, use.line, "no macro name specified with Use", "write Use NAME [values]")
        name = use.args[0].lower()
        macro, parameters = self.macros.get(name, (None, None))
        if macro is None:
            raise ApacheConfigError(use.path, use.line, "macro '%s' undefined" % name, "define it with <Macro %s ...> before this line" % name)
        if name in self.expanding:
            raise ApacheConfigError(use.path, use.line, "recursive use of macro '%s' is invalid" % name, "remove the Use of the macro from itself")
        values = use.args[1:]
        if len(values) != len(parameters):
            raise ApacheConfigError(use.path, use.line, "macro '%s' (defined at %s:%d) used with %d arguments instead of %d" % (
                name, macro.path, macro.line, len(values), len(parameters)), "give one value per parameter")
        text = "".join(_substitute(line, parameters, values) + "\n" for line in self._macro_lines(macro))
        self.expanded_size += len(text)
        if self.expanded_size > MAX_CONFIG_BYTES:
            raise ApacheConfigError(use.path, use.line, "macros expand to more than %d bytes" % MAX_CONFIG_BYTES, "use fewer or smaller macros")
        # httpd's own name for the text, as `apachectl -S` prints it.
        where = 'macro \'%s\' (defined on line %d of "%s") used on line %d of "%s"' % (name, macro.line, macro.path, use.line, use.path)
        outer = use.macro
        origin = MacroUse(name, macro.path, macro.line, outer.path if outer else use.path, outer.line if outer else use.line)
        directives, dummy = _parse(where, text, depth_of(use.parent))
        self.expansions[where] = text
        for directive, dummy in walk(directives):
            directive.macro = origin
        for directive in directives:
            directive.parent = use.parent
        self.expanding.append(name)
        try:
            self._read(directives)
        finally:
            self.expanding.pop()
        use.included = directives

    def _macro_lines(self, macro: Directive) -> list:
        """The body of a <Macro> as httpd keeps it: logical lines, leading blanks and comment lines dropped."""
        text = self.files[macro.path].text if macro.path in self.files else self.expansions[macro.path]
        body = text[macro.end:macro.close_start]
        return [content.lstrip(" \t") for dummy, dummy, content, dummy, is_comment in _logical_lines(body) if not is_comment]

    def _holds(self, section: Directive) -> bool:
        if len(section.args) != 1:
            raise ApacheConfigError(section.path, section.line, "%s> takes one argument" % section.name, "give it exactly one")
        arg = section.args[0]
        negate = arg.startswith("!")
        if negate:
            arg = arg[1:]
        if section.key == "<ifmodule":
            holds = True if self.modules is None else _module_name(arg) in self.modules
        else:
            holds = arg in self.defines
        return holds != negate

    def _include(self, directive: Directive) -> None:
        if len(directive.args) != 1:
            raise ApacheConfigError(directive.path, directive.line, "%s takes one argument" % directive.name, "give it exactly one path")
        optional = directive.key == "includeoptional"
        for included in include_paths(self.server_root, directive.args[0], self.globber):
            try:
                directive.included.extend(self.load(included, directive.parent, directive))
            except ApacheConfigError as exc:
                missing = exc.path == directive.path and exc.line == directive.line and exc.missing
                if not (optional and missing):
                    raise


# --- Model ---------------------------------------------------------------------------------------


def _effective(directives):
    """Directives as httpd reads them at one level: includes replaced by what they include, the
    contents of holding conditions (and of the sections read as holding) lifted to this level,
    the rest of a false condition dropped."""
    for directive in directives:
        key = directive.key
        if directive.block is None and key in _INCLUDES + ("use",):
            # An include stands for what it includes; a Use for the text of its macro.
            yield from _effective(directive.included)
        elif directive.block is not None and key[1:] in _CONDITIONS + _TRANSPARENT:
            if directive.active:
                yield from _effective(directive.block)
        else:
            yield directive


def _deep(directives):
    """Every effective directive at any depth (inside Directory, Location, ... too)."""
    for directive in _effective(directives):
        yield directive
        if directive.block is not None:
            yield from _deep(directive.block)


def _resolve(server_root: str, value: str) -> str:
    if os.path.isabs(value):
        return os.path.normpath(value)
    return os.path.normpath(os.path.join(server_root, value))


def _socket(address: str) -> dict:
    """Host and port of a <VirtualHost> address: ``*:443``, ``[::1]:8443``, ``_default_:443``, ``192.0.2.1``.
    The port is None when none is written or it is ``*`` (any port)."""
    host, port = address, ""
    if address.startswith("["):
        close = address.find("]")
        if close >= 0:
            host, rest = address[:close + 1], address[close + 1:]
            port = rest[1:] if rest.startswith(":") else ""
    elif ":" in address:
        host, port = address.rsplit(":", 1)
    return {"address": host, "port": int(port) if port.isdigit() else None}


def _md_stapled_names(scope: list, server: dict):
    """Which sites mod_md staples: True for every certificate (MDStapling on with MDStaplingOthers, its default), else
    the set of names of the managed domains whose stapling is on (``<MDomain>`` sections and ``MDomain`` lines)."""
    default = flag((server,), "mdstapling")
    if default and not (server.get("mdstaplingothers") and not flag((server,), "mdstaplingothers")):
        return True
    names = set()
    for directive in scope:
        if directive.block is not None and directive.key in ("<mdomain", "<mdomainset"):
            own = by_name(directive.block)
            if flag((own,), "mdstapling") if "mdstapling" in own else default:
                names.update(arg.lower() for arg in directive.args)
        elif directive.block is None and directive.key in ("mdomain", "managedomain") and default:
            names.update(arg.lower() for arg in directive.args if not arg.lower() in ("auto", "manual"))
    return names


class ApacheConfig:
    """A loaded configuration: every file once (by real path), includes followed."""

    def __init__(self, main: ConfigFile, files: dict, server_root: str, reader=None) -> None:
        self.main = main
        self.files = files
        self.server_root = server_root
        self.reader = reader or read_text
        self._sites = None
        self._scope = None

    @classmethod
    def load(cls, main_path: str, reader=None, globber=None, realpath=None, server_root: str | None = None, env: dict | None = None,
             defines=None, modules=None) -> ApacheConfig:
        """Parse ``main_path`` and everything it includes.

        ``reader(path) -> str`` keeps the text exact and raises OSError (EISDIR for a directory);
        ``globber(pattern) -> sorted paths``; ``realpath(path) -> path``. Relative paths resolve
        against ``server_root`` (default: the directory of ``main_path``), which a ``ServerRoot``
        directive changes from there on. ``env`` gives ``${NAME}`` values not set by ``Define``;
        ``defines`` the ``-D`` names; ``modules`` the loaded modules (None: every ``<IfModule>`` holds).
        """
        if server_root is None:
            server_root = os.path.dirname(main_path)
        loader = _Loader(reader or read_text, globber or sorted_glob, realpath or os.path.realpath, server_root, env, defines, modules)
        files = loader.load_all(main_path)
        return cls(next(iter(files.values())), files, loader.server_root, reader)

    def server_scope(self) -> list:
        """Effective directives and sections at server scope (includes followed, conditions applied)."""
        if self._scope is None:
            self._scope = list(_effective(self.main.directives))
        return self._scope

    def server_directives(self, name: str) -> list:
        """Effective directives named ``name`` (any case) at server scope, outside every section."""
        key = name.lower()
        return [directive for directive in self.server_scope() if directive.key == key and directive.block is None]

    def sites(self) -> list:
        """Every effective ``<VirtualHost>``, in configuration order."""
        if self._sites is None:
            with collector_paused():
                scope = self.server_scope()
                server = by_name(scope)
                server_verifies = any(
                    directive.key == "sslverifyclient" and directive.args and directive.args[0].lower() in _VERIFY
                    for section in scope if section.block is not None and section.key != "<virtualhost"
                    for directive in _deep(section.block))
                self._sites = [
                    self._site(vhost, server, server_verifies, index)
                    for index, vhost in enumerate(d for d in scope if d.block is not None and d.key == "<virtualhost")
                ]
                md_stapled = _md_stapled_names(scope, server)
                for site in self._sites:
                    site.md_stapling = md_stapled is True or bool(md_stapled and md_stapled.intersection(name.lower() for name in site.server_names))
        return list(self._sites)

    def tls_sites(self) -> list:
        return [site for site in self.sites() if site.tls]

    def _site(self, vhost: Directive, server: dict, server_verifies: bool, index: int) -> Site:
        own = by_name(_effective(vhost.block))
        scopes = (own, server)

        def last(key: str) -> str | None:
            for scope in scopes:
                if key in scope and scope[key][-1].args:
                    return scope[key][-1].args[0]
            return None

        def every(key: str) -> list:
            for scope in scopes:
                if key in scope:
                    return [self.resolve(d.args[0]) for d in scope[key] if d.args]
            return []

        def path_of(key: str) -> str | None:
            value = last(key)
            return None if value is None else self.resolve(value)

        verifies = flag(scopes, "sslverifyclient", _VERIFY) or server_verifies or any(
            directive.key == "sslverifyclient" and directive.args and directive.args[0].lower() in _VERIFY
            for directive in _deep(vhost.block))
        names = own.get("servername", [])
        # A <VirtualHost> made by a macro is found at its Use line: its own text is the macro's, in no file.
        where = (vhost.macro.path, vhost.macro.line) if vhost.macro else (vhost.path, vhost.line)
        return Site(
            directive=vhost,
            path=where[0],
            line=where[1],
            index=index,
            server_name=names[-1].args[0] if names and names[-1].args else None,
            server_aliases=[name for directive in own.get("serveralias", []) for name in directive.args],
            addresses=list(vhost.args),
            ports=[port for port in (_socket(address)["port"] for address in vhost.args) if port is not None],
            tls=flag(scopes, "sslengine"),
            certificates=every("sslcertificatefile"),
            keys=every("sslcertificatekeyfile"),
            chain_file=path_of("sslcertificatechainfile"),
            stapling=flag(scopes, "sslusestapling"),
            stapling_written=written(scopes, "sslusestapling"),
            stapling_responder=last("sslstaplingforceurl"),
            verifies_clients=verifies,
            uses_variables=False,
            ssl_ca_certificate_file=path_of("sslcacertificatefile"),
            ssl_ca_certificate_path=path_of("sslcacertificatepath"),
            macro=vhost.macro,
        )

    def resolve(self, value: str) -> str:
        """A path as httpd reads it: relative to ServerRoot."""
        return _resolve(self.server_root, value)


# --- Editor --------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    if not _NEEDS_QUOTES.search(value):
        return value
    return '"' + value.replace('"', '\\"') + '"'


def cache_text(cache_spec: str, newline: str = "\n") -> str:
    """The whole text of the global file holding ``SSLStaplingCache``."""
    lines = [CACHE_HEADER, "<IfModule mod_ssl.c>", "    SSLStaplingCache " + _quote(cache_spec), "</IfModule>"]
    return newline.join(lines) + newline


def _is_our_cache_file(path: str, text: str) -> bool:
    """Whether ``text`` holds only what :func:`cache_text` writes (any spec)."""
    if not text.startswith(CACHE_HEADER):
        return False
    try:
        directives, comments = _parse(path, text)
    except ApacheConfigError:
        return False
    return (comments == [1] and len(directives) == 1 and directives[0].key == "<ifmodule" and directives[0].words == ["mod_ssl.c"]
            and len(directives[0].block) == 1 and directives[0].block[0].key == "sslstaplingcache" and len(directives[0].block[0].words) == 1)


def _marker_kind(text: str, config_file: ConfigFile, line: int) -> tuple:
    """(kind, recorded) for a comment line: ("added", None), ("was", raw args) or (None, None)."""
    start = config_file.line_start(line)
    newline = text.find("\n", start)
    content = text[start:len(text) if newline < 0 else newline].strip(" \t\r")
    if content == MARKER:
        return "added", None
    if content.startswith(_WAS):
        return "was", content[len(_WAS):]
    return None, None


class _Plan(SplicePlan):
    """Apache's part of the plan: markers are whole comment lines just above the line they concern
    (a comment cannot share a directive's line in httpd), and the server-scope stapling cache file."""

    error = ApacheConfigError
    shared_hint = "move it into each VirtualHost"

    def __init__(self, config: ApacheConfig, state: str) -> None:
        super().__init__(config, state)
        self._marked = {}
        self._server = None
        # Whether the collection's cache file is (or becomes) the server's SSLStaplingCache: only then do
        # the links that enable it (and socache_shmcb) belong to the run.
        self.cache_in_use = False

    effective = staticmethod(_effective)

    def outer_scope(self, site: Site) -> dict:
        if self._server is None:
            self._server = by_name(self.config.server_scope())
        return self._server

    def marker_above(self, directive: Directive) -> str | None:
        """The kind of our marker on the line just above ``directive``'s, if any."""
        config_file = self.config.files[directive.path]
        if directive.line < 2 or (directive.line - 1) not in self.comment_lines(directive.path):
            return None
        return _marker_kind(config_file.text, config_file, directive.line - 1)[0]

    def comment_lines(self, path: str) -> set:
        if path not in self._marked:
            self._marked[path] = set(self.config.files[path].comments)
        return self._marked[path]

    # present

    def macro_refusal(self, site: Site, chain: str) -> str | None:
        """Why the site is left alone when what the plan would write is the text of a macro, else None.

        A macro's text is shared by every Use of it, and other sites (other certificates, other chains, sites
        that must not staple) may Use it: an edit there would change them too, so the collection never makes one.
        """
        lines = "%s and SSLCACertificateFile %s" % (", ".join("%s %s" % (name, " ".join(args)) for name, args in _STAPLING), chain)
        if site.macro:
            return ("this VirtualHost is the text of %s, shared by every Use of it; the collection never edits a macro. "
                    "Add %s to the macro by hand if every site that uses it can staple, or write this site out without the macro"
                    % (site.macro.where(), lines))
        own = by_name(_effective(site.directive.block))
        for name, args in self.stapling_lines(site, chain):
            found = own.get(name.lower())
            current = self.current(found) if found else None
            if current is not None and current.macro and not self.same(current.key, current.args, args):
                return ("%s %s in this VirtualHost comes from %s, shared by every Use of it; the collection never edits a "
                        "macro. Set it in the macro by hand, or write %s %s in this VirtualHost after the Use line" % (
                            current.name, " ".join(current.args), current.macro.where(), name, " ".join(args)))
        return None

    def stapling_lines(self, site: Site, chain: str) -> list:
        """[(name, args)] the site must have for stapling, in the order they are added: SSLCACertificateFile is left
        out where the site verifies client certificates (its CA set is what it trusts)."""
        return list(_STAPLING) + ([] if site.verifies_clients else [("SSLCACertificateFile", [chain])])

    def wanted(self, site: Site, chain: str) -> list:
        if site.md_stapling:
            # Two stapling implementations for one certificate would fetch and cache twice, and which one answers is
            # up to module order; mod_md's own is what the owner chose.
            raise SiteNotApplicable("mod_md staples this site's certificate itself (MDStapling on): SSLUseStapling is not added")
        refusal = self.macro_refusal(site, chain)
        if refusal:
            raise SiteRefused(refusal)
        wanted = self.stapling_lines(site, chain)
        if site.verifies_clients:
            if site.chain_file:
                source = "SSLCertificateChainFile %s" % site.chain_file
            elif site.ssl_ca_certificate_file:
                source = "the existing SSLCACertificateFile %s" % site.ssl_ca_certificate_file
            else:
                source = "the chain in SSLCertificateFile"
            self.note(site, "keep the CA set (the site verifies client certificates): Apache finds the issuer in %s" % source)
        return wanted

    def off_lines(self, site: Site) -> list:
        if site.md_stapling:
            raise SiteRefused("stapling stays on: mod_md staples this certificate (MDStapling on), not SSLUseStapling")
        if site.macro:
            raise SiteRefused("stapling stays on: this VirtualHost is the text of %s, shared by every Use of it, and the collection "
                              "never edits a macro; set SSLUseStapling off there by hand" % site.macro.where())
        found = by_name(_effective(site.directive.block)).get("sslusestapling")
        if found and self.current(found).macro:
            raise SiteRefused("stapling stays on: its SSLUseStapling comes from %s, and the collection never edits a macro" % (
                self.current(found).macro.where()))
        return [("SSLUseStapling", ["off"])]

    def reach(self, site: Site):
        return _deep(site.directive.block)

    def same(self, key: str, current: list, wanted: list) -> bool:
        if key == "sslcacertificatefile":
            return len(current) == 1 and self.config.resolve(current[0]) == self.config.resolve(wanted[0])
        return [arg.lower() for arg in current] == wanted

    def record_change(self, directive: Directive, args: list) -> None:
        text = self.config.files[directive.path].text
        if not directive.raw_args or "\n" in directive.raw_args or text[directive.start:directive.end].rstrip("\r\n").endswith("\\"):
            raise ApacheConfigError(directive.path, directive.line, 'the value of "%s" cannot be recorded on one line' % directive.name,
                                    "put the directive and its value on one line")
        if "${" in directive.raw_args:
            raise ApacheConfigError(directive.path, directive.line, '"%s" here uses a variable; changing it would change the variable\'s users'
                                    % directive.name, "set the value by hand")
        ops = self.ops.setdefault(directive.path, [])
        ops.append((directive.args_start, directive.args_end, " ".join(_quote(arg) for arg in args)))
        if self.marker_above(directive) is None:
            line_start = directive.start - len(indent_at(text, directive.start))
            newline = newline_before(text, directive.end, self.config.files[directive.path].newline)
            ops.append((line_start, line_start, "%s%s%s%s" % (indent_at(text, directive.start), _WAS, directive.raw_args, newline)))

    def insertion_point(self, config_file: ConfigFile, block: Directive) -> tuple:
        return _insertion_point(config_file, block)

    def added_line(self, indent: str, name: str, args: list, newline: str) -> str:
        return "%s%s%s%s%s %s%s" % (indent, MARKER, newline, indent, name, " ".join(_quote(arg) for arg in args), newline)

    def present_cache(self, cache_path: str, cache_spec: str) -> None:
        server = self.config.server_directives("SSLStaplingCache")
        for vhost in (d for d in self.config.server_scope() if d.block is not None and d.key == "<virtualhost"):
            for directive in _deep(vhost.block):
                if directive.key == "sslstaplingcache":
                    self.note(None, "SSLStaplingCache inside <VirtualHost> is a syntax error in Apache (server scope only); not touched",
                              directive.path, directive.line)
        if server:
            for directive in server:
                self.note(None, "keep SSLStaplingCache %s" % " ".join(directive.args), directive.path, directive.line)
            self.cache_in_use = any(os.path.realpath(directive.path) == os.path.realpath(cache_path) for directive in server)
            return
        wanted = cache_text(cache_spec)
        _parse(cache_path, wanted)
        current = self.current_text(cache_path)
        self.cache_in_use = True
        if current == wanted:
            return
        if current is not None and not _is_our_cache_file(cache_path, current):
            raise ApacheConfigError(cache_path, None, "the file for SSLStaplingCache exists and holds something else",
                                    "remove it, or set SSLStaplingCache at server scope yourself")
        self.extra[cache_path] = wanted
        self.note(None, "add SSLStaplingCache %s" % cache_spec, cache_path, 3)

    def current_text(self, path: str) -> str | None:
        if path in self.config.files:
            return self.config.files[path].text
        try:
            return self.config.reader(path)
        except OSError:
            return None

    # absent

    def absent(self, path: str, sites_at_: dict) -> None:
        config_file = self.config.files[path]
        text = config_file.text
        by_line = {}
        for directive, dummy in walk(config_file.directives):
            by_line[directive.line] = directive
        ops = []
        for line in config_file.comments:
            kind, recorded = _marker_kind(text, config_file, line)
            if kind is None:
                continue
            directive = by_line.get(line + 1)
            if directive is None or directive.block is not None or directive.key not in _MANAGED:
                raise ApacheConfigError(path, line, "the ocsp.stapling marker here is not followed by a directive it manages",
                                        "restore the lines by hand and remove the marker")
            marker_start = config_file.line_start(line)
            if kind == "added":
                ops.append((marker_start, directive.end, ""))
                self.note_at(sites_at_, directive, "remove %s %s" % (directive.name, " ".join(directive.args)))
            else:
                try:
                    words = _words(path, line, recorded)
                except ApacheConfigError:
                    words = []
                if not words or "\n" in directive.raw_args:
                    raise ApacheConfigError(path, line, "the ocsp.stapling marker on this line is damaged",
                                            "restore the line below by hand and remove the marker")
                ops.append((marker_start, directive.start - len(indent_at(text, directive.start)), ""))
                ops.append((directive.args_start, directive.args_end, recorded))
                self.changed[(path, directive.start)] = words
                self.note_at(sites_at_, directive, "restore %s %s" % (directive.name, recorded))
        if ops:
            self.ops[path] = ops

    def absent_cache(self, cache_path: str) -> None:
        current = self.current_text(cache_path)
        if current is not None and _is_our_cache_file(cache_path, current):
            self.extra[cache_path] = None
            self.note(None, "remove the SSLStaplingCache file", cache_path, None)

    # proof

    def signature(self, path: str, text: str, parsed: tuple | None = None) -> tuple:
        """Every directive (depth, name, words) keyed by start offset, apart from those just below an
        "added" marker line, which come as a count."""
        directives, comments = parsed or _parse(path, text)
        config_file = ConfigFile(path, text, "\n", directives, comments)
        added_lines = set(line + 1 for line in comments if _marker_kind(text, config_file, line)[0] == "added")
        kept = []
        count = 0
        for directive, depth in walk(directives):
            if directive.line in added_lines:
                count += 1
            else:
                kept.append((directive.start, (depth, directive.key, tuple(directive.words))))
        return kept, count


def _insertion_point(config_file: ConfigFile, vhost: Directive) -> tuple:
    """Where new lines go in a vhost, and their indentation: after the last SSL* directive of the
    vhost's own lines, else after its ServerName / ServerAlias, else after any directive, else
    right after the ``<VirtualHost>`` line."""
    text = config_file.text
    children = [child for child in vhost.block if child.block is None]
    groups = (
        [child for child in children if child.key.startswith("ssl")],
        [child for child in children if child.key in ("servername", "serveralias")],
        children,
    )
    for group in groups:
        if group:
            anchor = group[-1]
            return anchor.end, indent_at(text, anchor.start)
    if vhost.block:
        indent = indent_at(text, vhost.block[0].start)
    else:
        outer = indent_at(text, vhost.start)
        indent = outer + ("\t" if outer.startswith("\t") else "    ")
    return vhost.end, indent


def _check_contexts(config: ApacheConfig) -> None:
    """httpd accepts the directives this editor manages at server scope and in <VirtualHost> only
    ("not allowed in <Directory> context"): one inside another section makes `httpd -t` fail whatever
    the edit, so it is named before any edit rather than after a rollback. Conditions count as
    transparent, as httpd reads them."""
    def visit(directives, section):
        for directive in _effective(directives):
            if directive.key == "<macro":
                # mod_macro: a template, read only where a `Use` expands it (inside a vhost, maybe).
                continue
            if directive.block is not None:
                visit(directive.block, directive)
            elif directive.key in _MANAGED and section is not None and section.key != "<virtualhost":
                raise ApacheConfigError(directive.path, directive.line, "%s not allowed in %s> context (opened at %s:%d)" % (
                    directive.name, section.name, section.path, section.line), "move it to the <VirtualHost> it is meant for")
    visit(config.main.directives, None)


def plan_stapling(config: ApacheConfig, chains: dict, *, cache_path: str, cache_spec: str, state: str = "present",
                  keep_cache: bool = False, not_applicable: dict | None = None, dead: dict | None = None) -> tuple:
    """(edits, summary, outcomes) of one plan.

    edits: {real path: new text, or None to delete the file}, only for files that change.
    present: in every TLS vhost one of whose SSLCertificateFile paths is a key of ``chains``,
    SSLUseStapling on, SSLStaplingResponderTimeout 5, SSLStaplingReturnResponderErrors off and
    SSLCACertificateFile <chain> (not in a vhost that verifies client certificates); and
    ``cache_path`` holding ``SSLStaplingCache <cache_spec>`` unless one is in effect at server scope
    (only when a site is chosen: no site, no cache). absent: undo what present did, in every loaded
    file; delete ``cache_path`` if it holds only what present wrote, unless ``keep_cache``.
    summary: [{path, line, index, server_names, changes: [...]}]. outcomes: the one outcome of every
    TLS site; ``not_applicable`` maps certificate paths to why they cannot be stapled; ``dead`` those that
    never can be, whose sites get ``SSLUseStapling off`` where it is on (``SplicePlan.remove_dead``).
    """
    with collector_paused():
        return _planned(config, chains, cache_path, cache_spec, state, keep_cache, dead).result(config.sites(), not_applicable)


def _planned(config: ApacheConfig, chains: dict, cache_path: str, cache_spec: str, state: str, keep_cache: bool,
             dead: dict | None = None) -> _Plan:
    plan = _Plan(config, state)
    if state == "present":
        _check_contexts(config)
        for site, chain in chosen_sites(config.sites(), chains):
            plan.present(site, chain)
        if dead:
            plan.remove_dead(config.sites(), dead)
        plan.insert_ops()
        # The cache serves the sites this run staples (or that staple already): none, no cache.
        if any(site not in plan.refused for site in plan.chosen):
            plan.present_cache(cache_path, cache_spec)
    elif state == "absent":
        reached = sites_at(config.sites(), plan.reach)
        # keep_cache: Apache 2.4.71 falls back to a default stapling cache where socache_shmcb stays loaded, and a
        # graceful (or SIGHUP) restart that goes from an explicit SSLStaplingCache to that default cannot allocate its
        # segment and exits (measured). Without SSLUseStapling the directive does nothing, so keeping it is safe.
        kept = os.path.realpath(cache_path) if keep_cache else None
        for path in config.files:
            if kept is None or os.path.realpath(path) != kept:
                plan.absent(path, reached)
        if not keep_cache:
            plan.absent_cache(cache_path)
    else:
        raise ValueError("state must be present or absent, got %r" % (state,))
    return plan


def link_changes(links: dict, state: str) -> dict:
    """The symlinks to create (present, where nothing is) or remove (absent, where ours is): path -> target."""
    changes = {}
    for path, target in sorted(links.items()):
        exists = os.path.lexists(path)
        if state == "present" and not exists:
            changes[path] = target
        elif state == "absent" and exists and os.path.islink(path) and os.readlink(path) == target:
            changes[path] = target
    return changes


class ApacheDialect(Dialect):
    """Apache for the editing lifecycle: the options of the apache_stapling module."""

    module = "apache_stapling"

    def __init__(self, conf_path: str, cache_path: str, cache_spec: str, server_root: str | None = None, env: dict | None = None,
                 modules=None, keep_cache: bool = False, links: dict | None = None, reader=None, defines=None) -> None:
        super().__init__(conf_path, reader)
        self.cache_path = cache_path
        self.cache_spec = cache_spec
        self.server_root = server_root
        self.env = dict(env or {})
        self.modules = None if modules is None else set(modules)
        # The -D names Apache is started with (server_info's defines), for <IfDefine>.
        self.defines = list(defines or ())
        self.keep_cache = keep_cache
        self.wanted_links = dict(links or {})
        self.cache_in_use = False

    def load(self) -> ApacheConfig:
        return ApacheConfig.load(self.conf_path, reader=self.reader, server_root=self.server_root, env=self.env, defines=self.defines,
                                 modules=self.modules)

    def plan(self, config: ApacheConfig, chains: dict, state: str, not_applicable: dict | None = None, dead: dict | None = None) -> tuple:
        with collector_paused():
            plan = _planned(config, chains, self.cache_path, self.cache_spec, state, self.keep_cache, dead)
            self.cache_in_use = plan.cache_in_use
            return plan.result(config.sites(), not_applicable)

    def before(self, config: ApacheConfig, path: str) -> str:
        # The stapling cache file is the collection's own and may lie outside what the configuration includes.
        if path in config.files:
            return config.files[path].text
        try:
            return self.reader(path)
        except OSError:
            return ""

    def links(self, recovered: dict | None, state: str) -> dict:
        # The links enable the collection's cache file and what it needs: none when the server has an
        # SSLStaplingCache of its own or no site is stapled (a link to a file never written would make a
        # configuration that includes conf-enabled/*.conf with Include, not IncludeOptional, fail to start).
        if state == "present" and not self.cache_in_use:
            return {}
        return link_changes(self.links_after_recovery(recovered, state), state)

    def intent(self, recovered: dict | None, state: str) -> dict:
        return {"links": self.links_after_recovery(recovered, state)}

    def links_after_recovery(self, recovered: dict | None, state: str) -> dict:
        """The links wanted, plus those that a rollback just removed and that the interrupted run meant to create.

        The controller read the host before the rollback and may have taken such a link for the host's own
        (socache_shmcb looked loaded through it), leaving it out of ``links``; without it the server test fails.
        """
        wanted = dict(self.wanted_links)
        intent = (recovered or {}).get("intent") or {}
        if state == "present" and intent.get("module") == self.module and intent.get("state") == "present":
            removed = set(recovered["paths"])
            for path, target in sorted((intent.get("links") or {}).items()):
                if path in removed:
                    wanted.setdefault(path, target)
        return wanted
