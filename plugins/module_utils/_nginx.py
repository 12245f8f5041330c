# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx configuration: a parser that keeps byte positions, a model of TLS sites, and a
surgical editor for the OCSP stapling directives.

Runs on managed hosts: standard library only, Python 3.8 syntax, no Ansible imports. Files are
read only through the ``reader`` given to :meth:`NginxConfig.load` and include globs expanded
only through its ``globber``, so that the module keeps its own error handling and the tests
can run on a dict.

The lexer follows ``ngx_conf_read_token`` (nginx's own) rather than a simplified grammar:
a site missed or an edit landing in the wrong block would be worse than no edit at all.

Every line the editor adds ends with ``# ocsp.stapling``; every directive it changes in place
gets ``# ocsp.stapling: was <original arguments>`` at the end of its line. ``state=absent``
reads those markers back, so present followed by absent gives the original bytes.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field

from ._configtext import (MARKER, MAX_NESTING, ConfigError, check_bom, collector_paused, indent_at, line_starts, nesting_error, read_text, sorted_glob,
                          unreadable_hint)
from ._dialect import ConfigFile, Dialect, Loader, SplicePlan, by_name, chain_of, chosen_sites, flag, include_paths, sites_at, walk, written
from ._dialect import Directive as BaseDirective
from ._dialect import Site as BaseSite

# Starts with the space the editor writes before the comment, so that removing it restores
# the line exactly.
_WAS_SUFFIX = " " + MARKER + ": was "

# Directives the editor may change in place (and so restore); `resolver` is only ever added.
_MANAGED = ("ssl_stapling", "ssl_stapling_verify", "ssl_trusted_certificate")
_FLAGS = ("ssl_stapling", "ssl_stapling_verify")

# One token of nginx's grammar, with the whitespace before it. nginx separates tokens by
# space, tab, CR and LF only (not by other Unicode or ASCII whitespace).
# - `#` starts a comment only where a token would start (`a#b` is one token);
# - `;` `{` `}` are punctuation only there too (`a}` is one token, `}` ends a block only alone);
# - quotes delimit a token only when they open it (`a"b` is one token);
# - a backslash outside quotes takes the next character into the token;
# - `${` keeps the brace inside the token (`${host}`), it does not open a block.
_TOKEN = re.compile(
    r"[ \t\r\n]*(?:"
    r"(?P<comment>#[^\n]*)"
    r"|(?P<punct>[;{}])"
    r'|(?P<dq>"[^"\\]*(?:\\[\s\S][^"\\]*)*")'
    r"|(?P<sq>'[^'\\]*(?:\\[\s\S][^'\\]*)*')"
    r"|(?P<word>(?:[^ \t\r\n;{}\"'\\#$]|\\[\s\S]|\$\{?)(?:[^ \t\r\n;{\\$]+|\\[\s\S]|\$\{?)*)"
    r"|(?P<bad>[\"'\\])"
    r"|(?P<eof>\Z))"
)
# nginx reads its configuration through a 4096-byte buffer (NGX_CONF_BUFFER) and refuses a token
# that does not fit in it with the character after it, as "too long parameter": a word or a comment
# of 4096 bytes or more, a quoted string (quotes included) of more than 4096. Below this many
# characters no token can reach that (4 bytes per character at most), so most are never measured.
_CONF_BUFFER = 4096
_SHORT_TOKEN = _CONF_BUFFER // 4 - 1

# What nginx accepts right after a closing quote (`)` for `if ($a = "b")`).
_AFTER_QUOTE = " \t\r\n;{)"

# The escapes nginx decodes when it copies a token (in and out of quotes); any other
# backslash is kept as is.
_ESCAPE = re.compile(r"\\([\"'\\tnr])")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}

# Bodies of `*_by_lua_block` are Lua, not nginx syntax: only braces, strings, long brackets
# and comments matter to find the closing brace, as in ngx_lua's own block lexer.
_LUA = re.compile(
    r"(?P<brace>[{}])"
    r"|\"(?:[^\"\\\n]|\\[\s\S])*\""
    r"|'(?:[^'\\\n]|\\[\s\S])*'"
    r"|-?-?\[(?P<level>=*)\["
    r"|--[^\n]*"
)

# When a value must be quoted to be read back as one argument.
_NEEDS_QUOTES = re.compile(r"[\s;{}#\"'$\\]")


class NginxConfigError(ConfigError):
    """A configuration nginx would reject, or one this module cannot edit safely.

    ``line`` is None when the error is about a file as a whole (the main file unreadable).
    """


@dataclass(eq=False)
class Directive(BaseDirective):
    """One nginx directive (see ``_dialect.Directive``); names are case-sensitive, so the name is the key.

    ``arg_spans`` holds the raw span of each argument, quotes included.
    """

    arg_spans: list = field(default_factory=list, repr=False)
    # Offset of the closing `}` of a block.
    block_close: int | None = field(default=None, repr=False)
    # The raw text between the braces of a block nginx does not parse (`*_by_lua_block`).
    raw_body: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Listen:
    address: str
    port: int | None
    ssl: bool
    default_server: bool
    raw: str
    # HTTP/3: a UDP socket, TLS by nature, distinct from the TCP one on the same port.
    quic: bool = False

    @property
    def socket(self) -> tuple:
        return (self.address, self.port)

    def as_dict(self) -> dict:
        return {
            "address": self.address,
            "port": self.port,
            "ssl": self.ssl,
            "default_server": self.default_server,
            "quic": self.quic,
            "raw": self.raw,
        }


@dataclass(eq=False)
class Site(BaseSite):
    """One nginx `server` block of the `http` context; values are those in effect.

    ``chain_file`` is its ``ssl_trusted_certificate``; ``stapling`` its ``ssl_stapling``."""

    server_names: list
    listens: list
    ssl_stapling_verify: bool
    resolver: list | None
    # Old-style `ssl on;` in effect: every socket of the site is TLS.
    ssl_on: bool = field(default=False, repr=False)
    # The TCP sockets that are TLS in the whole configuration: nginx ORs the `ssl` flag of every
    # listen on one address:port, so a plain `listen 443` serves TLS where another block says `ssl`.
    tls_sockets: frozenset = field(default=frozenset(), repr=False)

    def sockets(self) -> list:
        return [{"address": listen.address, "port": listen.port, "quic": listen.quic,
                 "tls": listen.ssl or listen.quic or self.ssl_on or listen.socket in self.tls_sockets}
                for listen in self.listens]

    def details(self) -> dict:
        return {
            "listens": [listen.as_dict() for listen in self.listens],
            "ssl_trusted_certificate": self.chain_file,
            "ssl_stapling_verify": self.ssl_stapling_verify,
            "resolver": None if self.resolver is None else list(self.resolver),
        }


# --- Lexer and parser ----------------------------------------------------------------------------


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), raw)


def _skip_lua(path: str, text: str, pos: int, line_of, directive: Directive) -> int:
    """Offset of the `}` closing a Lua block whose `{` ends just before ``pos``."""
    depth = 1
    while True:
        match = _LUA.search(text, pos)
        if match is None:
            raise NginxConfigError(
                path, directive.line, 'the Lua code of "%s" is not closed' % directive.name, 'add the missing "}"'
            )
        pos = match.end()
        brace = match.group("brace")
        if brace == "{":
            depth += 1
        elif brace == "}":
            depth -= 1
            if depth == 0:
                return match.start()
        elif match.group("level") is not None:
            close = "]" + match.group("level") + "]"
            end = text.find(close, pos)
            if end < 0:
                raise NginxConfigError(
                    path, line_of(match.start()), "unterminated Lua long string or comment", 'close it with "%s"' % close
                )
            pos = end + len(close)


def _check_length(text: str, start: int, end: int, kind: str, fail) -> None:
    size = len(text[start:end].encode("utf-8", "surrogateescape"))
    if size > _CONF_BUFFER if kind in ("dq", "sq") else size >= _CONF_BUFFER:
        fail(start, 'too long parameter "%s..." (%d bytes): nginx reads at most %d bytes per word, comment or quoted string' % (
            text[start:start + 10], size, _CONF_BUFFER), "shorten it (a long comment can be split into several lines)")


def _parse(path: str, text: str, depth: int = 0) -> tuple:
    """Top-level directives (with their blocks) and comment spans of one file; includes untouched.
    ``depth``: how many blocks hold the file where it is included."""
    bom = check_bom(path, text, "nginx")
    if bom:
        raise NginxConfigError(*bom)
    starts = line_starts(text)

    def line_of(offset: int) -> int:
        return bisect.bisect_right(starts, offset)

    def fail(offset: int, message: str, hint: str):
        raise NginxConfigError(path, line_of(offset), message, hint)

    root = []
    children = root
    stack = []
    words = []
    comments = []
    pos = 0
    size = len(text)
    match_token = _TOKEN.match
    while True:
        match = match_token(text, pos)
        kind = match.lastgroup
        start = match.start(kind)
        pos = match.end()
        if pos - start > _SHORT_TOKEN and kind in ("word", "dq", "sq", "comment"):
            _check_length(text, start, pos, kind, fail)
        if kind == "word":
            words.append((_unescape(match.group(kind)), start, pos))
        elif kind in ("dq", "sq"):
            words.append((_unescape(text[start + 1:pos - 1]), start, pos))
            if pos < size and text[pos] not in _AFTER_QUOTE:
                fail(pos, 'unexpected "%s" after a quoted string' % text[pos], "put a space after the closing quote")
        elif kind == "comment":
            comments.append((start, pos - 1 if text[pos - 1] == "\r" else pos))
        elif kind == "punct":
            char = text[start]
            if char == "}":
                if words:
                    fail(start, 'unexpected "}"', 'end the directive "%s" with ";" before it' % words[0][0])
                if not stack:
                    fail(start, 'unexpected "}"', 'remove it or add the "{" it should close')
                directive = stack.pop()
                directive.block_close = start
                directive.end = pos
                children = stack[-1].block if stack else root
                continue
            if not words:
                fail(start, 'unexpected "%s"' % char, "remove it or put a directive name before it")
            name, name_start, dummy = words[0]
            spans = [(word[1], word[2]) for word in words[1:]]
            directive = Directive(
                name=name,
                args=[word[0] for word in words[1:]],
                path=path,
                line=line_of(name_start),
                start=name_start,
                end=pos,
                args_start=spans[0][0] if spans else start,
                args_end=start,
                block=None if char == ";" else [],
                parent=stack[-1] if stack else None,
                arg_spans=spans,
            )
            children.append(directive)
            words = []
            if char == "{":
                if name.endswith("_by_lua_block"):
                    close = _skip_lua(path, text, pos, line_of, directive)
                    directive.raw_body = text[pos:close]
                    directive.block_close = close
                    pos = directive.end = close + 1
                else:
                    stack.append(directive)
                    children = directive.block
                    if len(stack) + depth > MAX_NESTING:
                        raise NginxConfigError(*nesting_error(path, directive.line, len(stack) + depth))
        elif kind == "eof":
            if words:
                fail(words[0][1], 'unexpected end of file in "%s", expecting ";" or "}"' % words[0][0], 'end the directive with ";"')
            if stack:
                fail(stack[-1].start, 'unexpected end of file, expecting "}": the "%s" block opened here is not closed' % stack[-1].name,
                     'add the missing "}"')
            return root, comments
        elif text[start] == "\\":
            fail(start, 'unexpected end of file after "\\"', "remove the trailing backslash")
        else:
            fail(start, "unterminated quoted string", "close the string with a matching %s" % text[start])


def _effective(directives):
    """Directives as nginx sees them in one context: includes replaced by what they include."""
    for directive in directives:
        if directive.name == "include" and directive.block is None:
            yield from _effective(directive.included)
        else:
            yield directive


class _Loader(Loader):
    error = NginxConfigError

    def __init__(self, reader, globber, realpath, prefix: str) -> None:
        super().__init__(reader, globber, realpath)
        self.prefix = prefix

    def parse(self, path: str, text: str, depth: int) -> tuple:
        return _parse(path, text, depth)

    def unreadable(self, path: str, real: str, context, include, exc: OSError) -> list:
        raise NginxConfigError(include.path, include.line, 'open() "%s" failed (%s)' % (path, exc.strerror or exc),
                               unreadable_hint(exc, path, real, "include"))

    def follow(self, directives: list) -> None:
        for directive in directives:
            if directive.name == "include" and directive.block is None:
                self._include(directive)
            elif directive.block:
                self.follow(directive.block)

    def _include(self, directive: Directive) -> None:
        if len(directive.args) != 1:
            raise NginxConfigError(directive.path, directive.line, 'invalid number of arguments in "include"', "give it exactly one path")
        # Like nginx: a pattern that matches nothing is fine, a plain path that is missing is not.
        for included in include_paths(self.prefix, directive.args[0], self.globber):
            directive.included.extend(self.load(included, directive.parent, directive))


# --- Model ---------------------------------------------------------------------------------------


def _resolve(prefix: str, value: str) -> str:
    """A path as nginx reads it: relative to the conf prefix. Values with variables and
    `data:` certificates are resolved by nginx at run time and kept as written."""
    if "$" in value or value.startswith("data:") or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(prefix, value))


def _parse_listen(directive: Directive) -> Listen:
    if not directive.args:
        raise NginxConfigError(directive.path, directive.line, 'invalid number of arguments in "listen"', "give it an address or a port")
    first = directive.args[0]
    params = directive.args[1:]
    port_text = None
    if first.startswith("unix:"):
        address, port = first, None
    else:
        if first.startswith("["):
            close = first.find("]")
            if close < 0:
                raise NginxConfigError(directive.path, directive.line, 'invalid IPv6 address in "%s" of "listen"' % first, 'close it with "]"')
            address, rest = first[:close + 1], first[close + 1:]
            port_text = rest[1:] if rest.startswith(":") else None
        elif ":" in first:
            address, port_text = first.rsplit(":", 1)
        elif first.isdigit():
            address, port_text = "*", first
        else:
            address = first
        # 0.0.0.0 is the same socket as a bare port for nginx.
        if address == "0.0.0.0":
            address = "*"
        try:
            port = 80 if port_text is None else int(port_text)
        except ValueError:
            raise NginxConfigError(directive.path, directive.line, 'invalid port in "%s" of "listen"' % first, "fix the listen address")
    return Listen(
        address=address,
        port=port,
        ssl="ssl" in params,
        default_server="default_server" in params or "default" in params,
        raw=" ".join(directive.args),
        quic="quic" in params,
    )


def _build_site(prefix: str, server: Directive, http_scope: dict, index: int) -> Site:
    own = by_name(_effective(server.block))
    scopes = (own, http_scope)

    def in_effect(name: str) -> list:
        for scope in scopes:
            if name in scope:
                return scope[name]
        return []

    listens = [_parse_listen(directive) for directive in own.get("listen", [])]
    if not listens:
        listens = [Listen(address="*", port=80, ssl=False, default_server=False, raw="*:80")]
    certificates = [directive.args[0] for directive in in_effect("ssl_certificate") if directive.args]
    keys = [directive.args[0] for directive in in_effect("ssl_certificate_key") if directive.args]
    trusted = in_effect("ssl_trusted_certificate")
    responder = in_effect("ssl_stapling_responder")
    resolver = in_effect("resolver")
    ssl_on = flag(scopes, "ssl")
    return Site(
        directive=server,
        path=server.path,
        line=server.line,
        index=index,
        server_names=[name for directive in own.get("server_name", []) for name in directive.args],
        listens=listens,
        tls=ssl_on or any(listen.ssl or listen.quic for listen in listens),
        certificates=[_resolve(prefix, path) for path in certificates],
        keys=[_resolve(prefix, path) for path in keys],
        chain_file=_resolve(prefix, trusted[-1].args[0]) if trusted and trusted[-1].args else None,
        stapling=flag(scopes, "ssl_stapling"),
        stapling_written=written(scopes, "ssl_stapling"),
        stapling_responder=responder[-1].args[0] if responder and responder[-1].args else None,
        ssl_stapling_verify=flag(scopes, "ssl_stapling_verify"),
        resolver=list(resolver[-1].args) if resolver else None,
        uses_variables=any("$" in path for path in certificates),
        # Allowed in http and server only (nginx refuses it twice in one context); values any case.
        verifies_clients=flag(scopes, "ssl_verify_client", ("on", "optional", "optional_no_ca")),
        ssl_on=ssl_on,
    )


def _tls_sockets(sites: list) -> set:
    # nginx ORs the `ssl` flag of every listen on one address:port, so a plain `listen 443`
    # shares TLS with the server that says `listen 443 ssl` (and `ssl on` makes all of a
    # server's sockets TLS).
    sockets = set()
    for site in sites:
        for listen in site.listens:
            if not listen.quic and (listen.ssl or site.ssl_on):
                sockets.add(listen.socket)
    return sockets


class NginxConfig:
    """A loaded configuration: every file once (by real path), includes followed."""

    def __init__(self, main: ConfigFile, files: dict, prefix: str) -> None:
        self.main = main
        self.files = files
        self.prefix = prefix
        self._sites = None

    @classmethod
    def load(cls, main_path: str, reader=None, globber=None, realpath=None, prefix: str | None = None) -> NginxConfig:
        """Parse ``main_path`` and everything it includes.

        ``reader(path) -> str`` must keep the text exact (CRLF, any byte: UTF-8 with
        surrogateescape and newline='') and raise OSError for a file it cannot read.
        ``globber(pattern) -> sorted list of paths``; ``realpath(path) -> path`` resolves symlinks.
        Relative include paths resolve against ``prefix``, by default the directory of ``main_path``.
        """
        if prefix is None:
            prefix = os.path.dirname(main_path)
        files = _Loader(reader or read_text, globber or sorted_glob, realpath or os.path.realpath, prefix).load_all(main_path)
        return cls(next(iter(files.values())), files, prefix)

    def sites(self) -> list:
        """Every `server` block of the `http` context (not `stream` or `mail`), in config order."""
        if self._sites is None:
            sites = []
            for http in _effective(self.main.directives):
                if http.name != "http" or http.block is None:
                    continue
                scope = list(_effective(http.block))
                http_scope = by_name(directive for directive in scope if directive.block is None)
                for server in scope:
                    if server.name == "server" and server.block is not None:
                        sites.append(_build_site(self.prefix, server, http_scope, len(sites)))
            sockets = frozenset(_tls_sockets(sites))
            for site in sites:
                site.tls_sockets = sockets
                if not site.tls:
                    site.tls = any(not listen.quic and listen.socket in sockets for listen in site.listens)
            self._sites = sites
        return list(self._sites)

    def tls_sites(self) -> list:
        return [site for site in self.sites() if site.tls]


def default_servers(sites: list) -> dict:
    """For each TLS (TCP) socket, the site nginx picks when no server name matches."""
    sockets = _tls_sockets(sites)
    explicit = {}
    first = {}
    for site in sites:
        for listen in site.listens:
            if listen.quic or listen.socket not in sockets:
                continue
            first.setdefault(listen.socket, site)
            if listen.default_server:
                explicit.setdefault(listen.socket, site)
    first.update(explicit)
    return first


# --- Editor --------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    if value and not _NEEDS_QUOTES.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _line_end(text: str, offset: int) -> int:
    """Offset of the end of the line holding ``offset``, before its CR LF or LF."""
    newline = text.find("\n", offset)
    if newline < 0:
        return len(text)
    return newline - 1 if newline > 0 and text[newline - 1] == "\r" else newline


def _is_added(text: str, start: int, end: int) -> bool:
    return text[start:end] == MARKER and start > 0 and text[start - 1] == " "


def _same(prefix: str, name: str, current: list, wanted: list) -> bool:
    """Whether a managed directive already says what is wanted (`resolver` is never compared:
    it is only added where none is in scope)."""
    if name in _FLAGS:
        # nginx reads flags case-insensitively: `ssl_stapling ON;` is on.
        return [arg.lower() for arg in current] == wanted
    return len(current) == 1 and _resolve(prefix, current[0]) == _resolve(prefix, wanted[0])


def _http_of(directive: Directive) -> Directive | None:
    parent = directive.parent
    while parent is not None and parent.name != "http":
        parent = parent.parent
    return parent


def _select(config: NginxConfig, chains: dict, include_default_servers: bool) -> list:
    """(site, chain) for every site to edit, directly chosen sites first, then the default servers of their sockets."""
    sites = config.sites()
    selected = chosen_sites(sites, chains)
    if include_default_servers:
        wanted = {os.path.normpath(path): chain for path, chain in chains.items()}
        chosen = set(site for site, chain in selected)
        defaults = default_servers(sites)
        # A pulled-in default server pulls in the defaults of its own sockets in turn. Only one whose own
        # certificate can be stapled: a catch-all without an OCSP URL (or without a certificate, as with
        # ssl_reject_handshake) would get lines nginx ignores with a warning at every test and reload,
        # and another site's chain; it is left alone and its outcome says why.
        done = 0
        while done < len(selected):
            site, chain = selected[done]
            done += 1
            for listen in site.listens:
                default = None if listen.quic else defaults.get(listen.socket)
                own = None if default is None else chain_of(default, wanted)
                if own is not None and default not in chosen:
                    chosen.add(default)
                    selected.append((default, own))
    return selected


class _FileView:
    """Look-ups by line in one file, built once per edited file."""

    def __init__(self, config_file: ConfigFile) -> None:
        self.file = config_file
        self.text = config_file.text
        self.by_start_line = {}
        self.by_end_line = {}
        for directive, dummy in walk(config_file.directives):
            self.by_start_line.setdefault(config_file.line_of(directive.start), []).append(directive)
            if directive.block is None:
                self.by_end_line.setdefault(config_file.line_of(directive.end - 1), []).append(directive)
        self.comment_of_line = dict((config_file.line_of(start), (start, end)) for start, end in config_file.comments)

    def has_marker(self, line: int) -> bool:
        comment = self.comment_of_line.get(line)
        if comment is None:
            return False
        start, end = comment
        return _is_added(self.text, start, end) or self.text.find(_WAS_SUFFIX, max(start - 1, 0), end) >= 0

    def managed_on_line(self, line: int) -> list:
        return [directive for directive in self.by_end_line.get(line, []) if directive.name in _MANAGED]


class _Plan(SplicePlan):
    """nginx's part of the plan: markers at the end of the line they concern (`# ocsp.stapling`,
    `# ocsp.stapling: was <old value>`), one per managed directive ending on a changed line."""

    error = NginxConfigError
    shared_hint = "move it out of the shared file into each server block"

    def __init__(self, config: NginxConfig, state: str, resolver: list | None = None) -> None:
        super().__init__(config, state)
        self.resolver = resolver
        # path -> lines where a value changes: each gets the markers of its managed directives
        self.changed_lines = {}
        self._http_scopes = {}
        self._views = {}

    effective = staticmethod(_effective)

    def view(self, path: str) -> _FileView:
        if path not in self._views:
            self._views[path] = _FileView(self.config.files[path])
        return self._views[path]

    def outer_scope(self, site: Site) -> dict:
        http = _http_of(site.directive)
        if http not in self._http_scopes:
            self._http_scopes[http] = by_name(_effective(http.block)) if http else {}
        return self._http_scopes[http]

    # present

    def wanted(self, site: Site, chain: str) -> list:
        wanted = [("ssl_stapling", ["on"])]
        if site.verifies_clients:
            # ssl_trusted_certificate is also where nginx finds the CAs it accepts client certificates
            # from: replacing it refuses the partners' certificates, adding one accepts certificates of the
            # stapling chain's CA. So the trust set stays as it is; nginx takes the issuer from the
            # certificate file (a full chain) or from that set.
            self.note(site, "keep the trusted CA set (the site verifies client certificates): ssl_trusted_certificate and "
                            "ssl_stapling_verify stay as they are; nginx takes the issuer from the certificate file%s" % (
                                " or from " + site.chain_file if site.chain_file else ""))
        else:
            wanted += [("ssl_stapling_verify", ["on"]), ("ssl_trusted_certificate", [chain])]
        if self.resolver and site.resolver is None:
            wanted.append(("resolver", list(self.resolver)))
        return wanted

    def current(self, found: list) -> Directive:
        if len(found) > 1:
            # nginx refuses the configuration ("is duplicate"); which one was meant is for a person to say.
            first, second = found[:2]
            raise NginxConfigError(second.path, second.line, '"%s" directive is duplicate in this server block (first at %s:%d)' % (
                second.name, first.path, first.line), "remove one of them")
        return found[-1]

    def same(self, key: str, current: list, wanted: list) -> bool:
        return _same(self.config.prefix, key, current, wanted)

    def record_change(self, directive: Directive, args: list) -> None:
        if not directive.arg_spans:
            raise NginxConfigError(directive.path, directive.line, '"%s" has no value' % directive.name, "give it one or remove it")
        path = directive.path
        self.ops.setdefault(path, []).append((directive.arg_spans[0][0], directive.arg_spans[-1][1], " ".join(_quote(arg) for arg in args)))
        self.changed_lines.setdefault(path, set()).add(self.view(path).file.line_of(directive.end - 1))

    def insertion_point(self, config_file: ConfigFile, block: Directive) -> tuple:
        return _insertion_point(config_file, block)

    def added_line(self, indent: str, name: str, args: list, newline: str) -> str:
        return "%s%s %s; %s%s" % (indent, name, " ".join(_quote(arg) for arg in args), MARKER, newline)

    def finish_present(self) -> None:
        """The `was` markers of the changed lines, then the added lines."""
        for path, lines in self.changed_lines.items():
            view = self.view(path)
            text = view.text
            for line in sorted(lines):
                if view.has_marker(line):
                    # Changed before (or added by us): the marker already holds the original.
                    continue
                # One marker per managed directive ending on this line, in order, so that absent
                # can match them up even where several share a line.
                markers = []
                for directive in view.managed_on_line(line):
                    original = text[directive.arg_spans[0][0]:directive.arg_spans[-1][1]] if directive.arg_spans else ""
                    if "\n" in original or not original:
                        raise NginxConfigError(path, directive.line, 'the value of "%s" cannot be recorded on one line' % directive.name,
                                               "put the directive and its value on one line")
                    markers.append(_WAS_SUFFIX + original)
                end = _line_end(text, view.file.line_start(line))
                self.ops[path].append((end, end, "".join(markers)))
        self.insert_ops()

    # absent

    def absent(self, path: str, sites_at_: dict) -> None:
        view = self.view(path)
        text = view.text
        config_file = view.file
        ops = []
        for start, end in config_file.comments:
            line = config_file.line_of(start)
            if _is_added(text, start, end):
                line_start = config_file.line_start(line)
                newline = text.find("\n", end)
                ops.append((line_start, len(text) if newline < 0 else newline + 1, ""))
                for directive in view.by_start_line.get(line, []):
                    self.note_at(sites_at_, directive, "remove %s %s" % (directive.name, " ".join(directive.args)))
                continue
            marker = text.find(_WAS_SUFFIX, max(start - 1, 0), end)
            if marker < 0:
                continue
            originals = text[marker:end].split(_WAS_SUFFIX)[1:]
            directives = view.managed_on_line(line)
            if len(directives) != len(originals):
                raise NginxConfigError(path, line, "the ocsp.stapling markers on this line do not match its directives",
                                       "restore the line by hand and remove the markers")
            for directive, original in zip(directives, originals):
                self.changed[(path, directive.start)] = _args_of(path, line, original)
                ops.append((directive.arg_spans[0][0], directive.arg_spans[-1][1], original))
                self.note_at(sites_at_, directive, "restore %s %s" % (directive.name, original))
            ops.append((marker, end, ""))
        if ops:
            self.ops[path] = ops

    # dead configuration

    def off_lines(self, site: Site) -> list:
        return [("ssl_stapling", ["off"])]

    def reach(self, site: Site):
        return (directive for directive, dummy in walk(list(_effective(site.directive.block))))

    # proof

    def signature(self, path: str, text: str, parsed: tuple | None = None) -> tuple:
        """Every directive (depth, name, args, Lua body) in order, keyed by start offset, apart from
        those on lines this module added, which come as a count."""
        directives, comments = parsed or _parse(path, text)
        starts = line_starts(text)
        added = set(bisect.bisect_right(starts, start) for start, end in comments if _is_added(text, start, end))
        kept = []
        count = 0
        for directive, depth in walk(directives):
            if bisect.bisect_right(starts, directive.start) in added:
                count += 1
            else:
                kept.append((directive.start, (depth, directive.name, tuple(directive.args), directive.raw_body)))
        return kept, count


def _insertion_point(config_file: ConfigFile, server: Directive) -> tuple:
    """Where new lines go in a server block, and their indentation: after the last `ssl_*`
    directive, else the last `listen` / `server_name`, else any, whose line holds nothing else
    (but a comment) and is not the line of the closing brace."""
    text = config_file.text
    close = server.block_close

    def next_line(offset: int) -> int | None:
        newline = text.find("\n", offset)
        if newline < 0 or newline >= close:
            return None
        tail = text[offset:newline].strip(" \t\r")
        return newline + 1 if not tail or tail.startswith("#") else None

    def starts_line(directive: Directive) -> bool:
        return not text[text.rfind("\n", 0, directive.start) + 1:directive.start].strip(" \t")

    children = server.block
    # The indentation of the block's own lines; a child sharing the line of `server {` has none.
    indent = None
    for child in children:
        if starts_line(child):
            indent = indent_at(text, child.start)
            break
    if indent is None:
        indent = indent_at(text, server.start) + ("\t" if indent_at(text, server.start).startswith("\t") else "    ")
    groups = (
        [child for child in children if child.name.startswith("ssl_")],
        [child for child in children if child.name in ("listen", "server_name")],
        children,
    )
    for group in groups:
        for child in reversed(group):
            offset = next_line(child.end)
            if offset is not None:
                return offset, indent_at(text, child.start) if starts_line(child) else indent
    offset = next_line(server.args_end + 1)
    if offset is None:
        raise NginxConfigError(server.path, server.line, "this server block has no line that new directives can follow",
                               "put its directives on separate lines")
    return offset, indent


def _args_of(path: str, line: int, raw: str) -> list:
    """The arguments a marker records, as nginx would read them."""
    try:
        directives = _parse(path, "x " + raw + ";")[0]
    except NginxConfigError:
        directives = []
    if len(directives) != 1:
        raise NginxConfigError(path, line, "the ocsp.stapling marker on this line is damaged", "restore the line by hand and remove the marker")
    return directives[0].args


# Where nginx accepts each managed directive: the top-level blocks (and their `server` blocks).
# `ssl_trusted_certificate` exists in the stream and mail modules too; the stapling flags do not.
_CONTEXTS = {"ssl_stapling": ("http",), "ssl_stapling_verify": ("http",), "ssl_trusted_certificate": ("http", "stream", "mail")}


def _check_contexts(config: NginxConfig) -> None:
    """nginx accepts the stapling directives in `http` and its `server` blocks only: one elsewhere
    (`events`, `location`, `if`, a `stream` server) makes `nginx -t` fail whatever the edit, so it is
    named before any edit rather than after a rollback."""
    def allowed(name: str, parent: Directive | None) -> bool:
        if parent is not None and parent.name == "server":
            parent = parent.parent
        return parent is not None and parent.parent is None and parent.name in _CONTEXTS[name]

    def visit(directives, parent):
        for directive in _effective(directives):
            if directive.block is not None:
                visit(directive.block, directive)
            elif directive.name in _MANAGED and not allowed(directive.name, parent):
                where = "the main context" if parent is None else 'a "%s" block' % parent.name
                raise NginxConfigError(directive.path, directive.line, '"%s" directive is not allowed here (in %s)' % (directive.name, where),
                                       "move it into the server block it is meant for, or into http")
    visit(config.main.directives, None)


def plan_stapling(config: NginxConfig, chains: dict, *, resolver: list | None = None, include_default_servers: bool = True,
                  state: str = "present", not_applicable: dict | None = None, dead: dict | None = None) -> tuple:
    """(edits, summary, outcomes) of one plan.

    edits: {real path: new text} for every file whose text changes; empty when nothing is to do.
    present: turn on stapling in every TLS site whose certificate is a key of ``chains`` (value: the
    chain file for ``ssl_trusted_certificate``), and in the default servers of their sockets.
    absent: undo, in every loaded file, what present did (``chains`` and the other options are not used).
    summary: per site, what changes, for people: [{path, line, index, server_names, changes: ["add ssl_stapling on", ...]}].
    outcomes: the one outcome of every TLS site (``_dialect.SplicePlan.outcomes``); ``not_applicable``
    maps certificate paths to why they cannot be stapled; ``dead`` those that never can be, whose sites get
    ``ssl_stapling off`` where it is on (``SplicePlan.remove_dead``).
    """
    with collector_paused():
        plan = _Plan(config, state, resolver)
        if state == "present":
            _check_contexts(config)
            for site, chain in _select(config, chains, include_default_servers):
                plan.present(site, chain)
            if dead:
                plan.remove_dead(config.sites(), dead)
            plan.finish_present()
        elif state == "absent":
            reached = sites_at(config.sites(), plan.reach)
            for path in config.files:
                plan.absent(path, reached)
        else:
            raise ValueError("state must be present or absent, got %r" % (state,))
        return plan.result(config.sites(), not_applicable)


class NginxDialect(Dialect):
    """nginx for the editing lifecycle: the options of the nginx_stapling module."""

    module = "nginx_stapling"

    def __init__(self, conf_path: str, resolver: list | None = None, default_servers: bool = True, reader=None) -> None:
        super().__init__(conf_path, reader)
        self.resolver = resolver
        self.default_servers = default_servers

    def load(self) -> NginxConfig:
        return NginxConfig.load(self.conf_path, reader=self.reader)

    def plan(self, config: NginxConfig, chains: dict, state: str, not_applicable: dict | None = None, dead: dict | None = None) -> tuple:
        return plan_stapling(config, chains, resolver=self.resolver or None, include_default_servers=self.default_servers, state=state,
                             not_applicable=not_applicable, dead=dead)
