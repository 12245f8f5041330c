"""Unit tests of the nginx parser, site model and stapling editor.

The corpus under fixtures/nginx/ holds whole /etc/nginx trees (Debian, RHEL, one with nothing
left to do), read through a fake host: the tests never touch the real file system beyond the
fixtures, and symlinks and CRLF files exist only in the fake host (sanity forbids both in git).
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import pathlib
import posixpath
import time

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils._nginx import (
    Listen,
    _Plan,
    NginxConfig,
    NginxConfigError,
    default_servers,
    plan_stapling,
)
from ansible_collections.ocsp.stapling.plugins.module_utils._sites import site_record

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "nginx"


def stapling_edits(config, chains, **options):
    """The edits of the one plan the module runs (plan_stapling), for the tests that look at the texts only."""
    return plan_stapling(config, chains, **options)[0]


def edit_summary(config, chains, **options):
    """The per-site summary of the one plan the module runs (plan_stapling)."""
    return plan_stapling(config, chains, **options)[1]


ETC = "/etc/nginx"

DEBIAN_LINKS = {
    ETC + "/sites-enabled/default": "../sites-available/default",
    ETC + "/sites-enabled/example.com": ETC + "/sites-available/example.com",
}
DEBIAN_CRLF = (ETC + "/conf.d/legacy.conf",)

# Certificate -> chain, for every certificate of the corpus that has a responder to ask.
CHAINS = {
    "/etc/ssl/example.com/fullchain.pem": "/etc/ssl/example.com/chain.pem",
    "/etc/ssl/shop/rsa.crt": "/etc/ssl/shop/chain.pem",
    "/etc/ssl/shop/static.crt": "/etc/ssl/shop/static chain.pem",
    "/etc/ssl/partners/partners.crt": "/etc/ssl/partners/chain.pem",
    "/etc/ssl/api/api.pem": "/etc/ssl/api/chain.pem",
    "/etc/pki/nginx/server.crt": "/etc/pki/nginx/chain.pem",
    "/etc/pki/tls/certs/app.example.com.crt": "/etc/pki/tls/certs/app.example.com.chain.pem",
    "/etc/pki/tls/certs/done.example.com.crt": "/etc/pki/tls/certs/done.example.com.chain.pem",
    "/etc/ssl/one.crt": "/etc/ssl/chain.pem",
    "/etc/ssl/two.crt": "/etc/ssl/chain.pem",
}
RESOLVER = ["127.0.0.53"]


class FakeHost:
    """A host's files in a dict, with the reader, globber and realpath the module would pass."""

    def __init__(self, files: dict | None = None, links: dict | None = None) -> None:
        self.files = dict(files or {})
        self.links = dict(links or {})
        self.reads = []

    @classmethod
    def tree(cls, name: str, links: dict | None = None, crlf: tuple = ()) -> FakeHost:
        """A fixture tree mounted at /etc/nginx."""
        files = {}
        root = FIXTURES / name
        for path in sorted(root.rglob("*")):
            if path.is_file():
                target = ETC + "/" + path.relative_to(root).as_posix()
                text = path.read_bytes().decode("utf-8", "surrogateescape")
                files[target] = text.replace("\n", "\r\n") if target in crlf else text
        return cls(files, links)

    def read(self, path: str) -> str:
        self.reads.append(path)
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return self.files[path]

    def glob(self, pattern: str) -> list:
        directory, name = posixpath.split(pattern)
        return sorted(
            path
            for path in list(self.files) + list(self.links)
            if posixpath.dirname(path) == directory and not posixpath.basename(path).startswith(".")
            and fnmatch.fnmatchcase(posixpath.basename(path), name)
        )

    def realpath(self, path: str) -> str:
        while path in self.links:
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), self.links[path]))
        return path

    def load(self, main: str = ETC + "/nginx.conf", **kwargs) -> NginxConfig:
        return NginxConfig.load(main, reader=self.read, globber=self.glob, realpath=self.realpath, **kwargs)


def debian() -> FakeHost:
    return FakeHost.tree("debian", DEBIAN_LINKS, DEBIAN_CRLF)


def rhel() -> FakeHost:
    return FakeHost.tree("rhel")


def done() -> FakeHost:
    return FakeHost.tree("done")


TREES = {"debian": debian, "rhel": rhel, "done": done}


def one_file(text: str, path: str = ETC + "/nginx.conf", **kwargs) -> NginxConfig:
    return FakeHost({path: text}).load(path, **kwargs)


def expected(relative: str, crlf: bool = False) -> str:
    text = (FIXTURES / "expected" / relative).read_bytes().decode("utf-8", "surrogateescape")
    return text.replace("\n", "\r\n") if crlf else text


def names(directives) -> list:
    return [(directive.name, directive.args) for directive in directives]


# --- Lexer and parser ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, parsed",
    [
        pytest.param("return 200 a#b;", [("return", ["200", "a#b"])], id="hash-inside-token"),
        pytest.param("return 200 a; #b;\n", [("return", ["200", "a"])], id="comment-after-directive"),
        pytest.param('return 200 "${host};{}#";', [("return", ["200", "${host};{}#"])], id="braces-in-quotes"),
        pytest.param("set $x ${y}z;", [("set", ["$x", "${y}z"])], id="variable-braces"),
        pytest.param("set $x a}b;", [("set", ["$x", "a}b"])], id="brace-inside-token"),
        pytest.param("set $x \\{a;", [("set", ["$x", "\\{a"])], id="escaped-brace"),
        pytest.param("set $x a\\;b;", [("set", ["$x", "a\\;b"])], id="escaped-semicolon"),
        pytest.param("set $x 'it\\'s' \"a\\\"b\" \"c\\\\d\";", [("set", ["$x", "it's", 'a"b', "c\\d"])], id="quote-escapes"),
        pytest.param('set $x "a\\tb";', [("set", ["$x", "a\tb"])], id="tab-escape"),
        pytest.param("set $x a\"b;", [("set", ["$x", 'a"b'])], id="quote-inside-token"),
        pytest.param("a\r\n\tb\r\n;", [("a", ["b"])], id="crlf-whitespace"),
        pytest.param('if ($a = "b") { }', [("if", ["($a", "=", "b", ")"])], id="quote-before-paren"),
        pytest.param("# caf\u00e9 { \u00fcber }\nx 1;", [("x", ["1"])], id="utf8-comment-with-braces"),
        pytest.param("x 1;\n# no newline at the end", [("x", ["1"])], id="comment-at-eof"),
    ],
)
def test_lexer_follows_nginx(text, parsed):
    assert names(one_file(text).main.directives) == parsed


def test_positions_cover_the_exact_text():
    text = "http {\n\tserver {\n\t\tlisten  443 ssl ;\n\t\tssl_trusted_certificate \"/a b.pem\";\n\t}\n}\n"
    config = one_file(text)
    http = config.main.directives[0]
    server = http.block[0]
    listen, trusted = server.block
    assert (listen.line, text[listen.start:listen.end]) == (3, "listen  443 ssl ;")
    assert text[listen.args_start:listen.args_end] == "443 ssl "
    assert [text[start:end] for start, end in listen.arg_spans] == ["443", "ssl"]
    assert trusted.args == ["/a b.pem"]
    assert text[trusted.arg_spans[0][0]:trusted.arg_spans[0][1]] == '"/a b.pem"'
    assert text[server.start:server.end] == "server {\n\t\tlisten  443 ssl ;\n\t\tssl_trusted_certificate \"/a b.pem\";\n\t}"
    assert text[server.args_end] == "{" and text[server.block_close] == "}"
    assert (server.parent, listen.parent) == (http, server)
    assert config.main.line_of(trusted.start) == trusted.line == 4


def test_lua_block_body_is_raw():
    text = (
        "location / {\n"
        "    content_by_lua_block {\n"
        "        local s = \"}\" .. '{'  -- a } in a comment\n"
        "        local t = { [[ } ]], --[==[ { ]==] 1 }\n"
        "        ngx.say(s)\n"
        "    }\n"
        "    add_header X-After lua;\n"
        "}\n"
    )
    location = one_file(text).main.directives[0]
    lua, after = location.block
    assert lua.name == "content_by_lua_block" and lua.block == []
    assert lua.raw_body.strip().startswith("local s") and lua.raw_body.rstrip().endswith("ngx.say(s)")
    assert (after.name, after.args, after.line) == ("add_header", ["X-After", "lua"], 7)


def test_map_geo_types_split_clients_parse_generically():
    config = rhel().load()
    http = [d for d in config.main.directives if d.name == "http"][0]
    by_name = {d.name: d for d in http.block}
    assert names(by_name["geo"].block) == [("default", ["0"]), ("10.0.0.0/8", ["1"]), ("192.168.0.0/16", ["1"])]
    assert names(by_name["split_clients"].block) == [("50%", ["a"]), ("*", ["b"])]
    assert by_name["split_clients"].args == ["${remote_addr}AAA", "$variant"]
    shop = debian().load().files[ETC + "/conf.d/shop.conf"]
    assert names(shop.directives[0].block) == [("default", ["upgrade"]), ("", ["close"])]


@pytest.mark.parametrize(
    "text, line, message",
    [
        pytest.param("http {\n  server {\n    listen 443;\n  }\n", 1, 'the "http" block opened here is not closed', id="unclosed-block"),
        pytest.param("events {}\n}\nhttp {}\n", 2, 'unexpected "}"', id="stray-close"),
        pytest.param("server {\n  listen 443 }\n", 2, 'unexpected "}"', id="close-inside-directive"),
        pytest.param("x 1;\nreturn 200 \"unterminated;\n}\n", 2, "unterminated quoted string", id="unterminated-quote"),
        pytest.param("x 1;\ny 'a'b;\n", 2, 'unexpected "b" after a quoted string', id="text-after-quote"),
        pytest.param("x 1;\n  ;\n", 2, 'unexpected ";"', id="lone-semicolon"),
        pytest.param("x 1;\nworker_processes 4\n", 2, 'expecting ";" or "}"', id="missing-semicolon"),
        pytest.param("a {\n b_by_lua_block {\n  x = '}'\n", 2, 'the Lua code of "b_by_lua_block" is not closed', id="unclosed-lua"),
        pytest.param("x \\", 1, 'after "\\"', id="trailing-backslash"),
    ],
)
def test_syntax_errors_name_file_and_line(text, line, message):
    with pytest.raises(NginxConfigError) as caught:
        one_file(text, "/etc/nginx/broken.conf")
    error = caught.value
    assert (error.path, error.line) == ("/etc/nginx/broken.conf", line)
    assert message in error.message
    assert str(error).startswith("/etc/nginx/broken.conf:%d: %s; " % (line, error.message))
    assert error.hint and str(error).endswith(error.hint)


def test_error_in_included_file_names_that_file():
    host = FakeHost({"/n/main.conf": "http {\n  include sites/*.conf;\n}\n", "/n/sites/b.conf": "server {\n  listen 443 ssl\n}\n"})
    with pytest.raises(NginxConfigError) as caught:
        host.load("/n/main.conf")
    assert (caught.value.path, caught.value.line) == ("/n/sites/b.conf", 3)


def test_missing_plain_include_is_an_error_like_nginx():
    host = FakeHost({"/n/main.conf": "events {}\nhttp {\n  include /n/missing.conf;\n}\n"})
    with pytest.raises(NginxConfigError) as caught:
        host.load("/n/main.conf")
    error = caught.value
    assert (error.path, error.line) == ("/n/main.conf", 3)
    assert 'open() "/n/missing.conf" failed (No such file or directory)' in str(error)


def test_unreadable_main_file():
    with pytest.raises(NginxConfigError) as caught:
        FakeHost().load("/n/nginx.conf")
    assert caught.value.line is None
    assert str(caught.value).startswith("/n/nginx.conf: cannot read the configuration (No such file or directory); ")


def test_glob_matching_nothing_is_fine():
    config = one_file("include /usr/share/nginx/modules/*.conf;\nhttp { include conf.d/*.conf; }\n")
    assert [d.included for d in config.main.directives[:1]] == [[]]
    assert list(config.files) == [ETC + "/nginx.conf"]


def test_include_cycle_is_an_error():
    host = FakeHost({
        "/n/nginx.conf": "http {\n  include /n/a.conf;\n}\n",
        "/n/a.conf": "# a\ninclude /n/b.conf;\n",
        "/n/b.conf": "\n\ninclude a.conf;\n",
    })
    with pytest.raises(NginxConfigError) as caught:
        host.load("/n/nginx.conf")
    assert (caught.value.path, caught.value.line) == ("/n/b.conf", 3)
    assert "include cycle: /n/a.conf -> /n/b.conf -> /n/a.conf" in caught.value.message


def test_glob_that_matches_the_including_file_is_a_cycle():
    host = FakeHost({"/n/nginx.conf": "events {}\ninclude /n/*.conf;\n"})
    with pytest.raises(NginxConfigError, match="include cycle"):
        host.load("/n/nginx.conf")


def test_relative_includes_resolve_against_the_prefix():
    host = FakeHost({
        "/etc/nginx/nginx.conf": "http { include sites/*.conf; }\n",
        "/etc/nginx/sites/a.conf": "server { listen 80; }\n",
        "/opt/prefix/sites/b.conf": "server { listen 81; }\n",
    })
    assert [site.path for site in host.load().sites()] == ["/etc/nginx/sites/a.conf"]
    assert [site.path for site in host.load(prefix="/opt/prefix").sites()] == ["/opt/prefix/sites/b.conf"]


def test_file_included_twice_is_loaded_once_and_seen_in_each_context():
    host = FakeHost({
        "/n/nginx.conf": "http {\n  server { listen 443 ssl; include /n/tls.conf; }\n  server { listen 8443 ssl; include /n/tls.conf; }\n}\n",
        "/n/tls.conf": "ssl_certificate /c/a.pem;\nssl_stapling on;\n",
    })
    config = host.load("/n/nginx.conf")
    assert list(config.files) == ["/n/nginx.conf", "/n/tls.conf"]
    first, second = config.sites()
    assert first.certificates == second.certificates == ["/c/a.pem"]
    assert first.stapling and second.stapling
    includes = [server.block[1] for server in (first.directive, second.directive)]
    assert includes[0].included[0] is not includes[1].included[0]
    assert [include.included[0].parent for include in includes] == [first.directive, second.directive]


def test_symlinked_site_is_read_and_edited_at_its_target():
    host = debian()
    config = host.load()
    target = ETC + "/sites-available/example.com"
    assert target in config.files and ETC + "/sites-enabled/example.com" not in config.files
    assert ETC + "/sites-available/default" in config.files
    assert not [path for path in host.reads if "/sites-enabled/" in path]
    site = [site for site in config.sites() if "example.com" in site.server_names and site.tls][0]
    assert site.path == target
    edits = stapling_edits(config, {"/etc/ssl/example.com/fullchain.pem": "/etc/ssl/example.com/chain.pem"}, include_default_servers=False)
    assert list(edits) == [target]


def test_default_reader_globber_and_realpath_on_real_files(tmp_path):
    (tmp_path / "sites-available").mkdir()
    (tmp_path / "sites-enabled").mkdir()
    main = tmp_path / "nginx.conf"
    main.write_bytes(b"events {}\r\nhttp {\r\n    include sites-enabled/*;\r\n}\r\n")
    site = tmp_path / "sites-available" / "a"
    # Not UTF-8 everywhere: a Latin-1 comment must come back byte for byte.
    site.write_bytes(b"# caf\xe9\nserver {\n    listen 443 ssl;\n    ssl_certificate /c/a.pem;\n}\n")
    (tmp_path / "sites-enabled" / "a").symlink_to("../sites-available/a")
    config = NginxConfig.load(str(main))
    real_site = os.path.realpath(str(site))
    assert list(config.files) == [os.path.realpath(str(main)), real_site]
    assert (config.main.newline, config.files[real_site].newline) == ("\r\n", "\n")
    edits = stapling_edits(config, {"/c/a.pem": "/c/chain.pem"})
    assert list(edits) == [real_site]
    assert edits[real_site].encode("utf-8", "surrogateescape").startswith(b"# caf\xe9\nserver {\n")


@pytest.mark.parametrize("tree", sorted(TREES))
def test_every_corpus_file_is_loaded(tree):
    host = TREES[tree]()
    assert sorted(host.load().files) == sorted(host.files)


@pytest.mark.parametrize("tree", sorted(TREES))
def test_files_keep_their_exact_text(tree):
    host = TREES[tree]()
    config = host.load()
    for path, config_file in config.files.items():
        assert config_file.text == host.files[path]
        assert config_file.newline == ("\r\n" if path in DEBIAN_CRLF else "\n")


def test_corpus_has_a_crlf_file_and_one_without_final_newline():
    host = debian()
    assert host.files[ETC + "/conf.d/legacy.conf"].count("\r\n") == host.files[ETC + "/conf.d/legacy.conf"].count("\n") > 5
    assert host.files[ETC + "/conf.d/quic.conf"].endswith("}")


# --- Model ---------------------------------------------------------------------------------------


def test_debian_sites():
    config = debian().load()
    summary = [(site.path.replace(ETC + "/", ""), site.line, site.index, site.server_names, site.tls) for site in config.sites()]
    assert summary == [
        ("conf.d/catchall.conf", 2, 0, ["_"], True),
        ("conf.d/legacy.conf", 3, 1, ["partners.example.com"], True),
        ("conf.d/quic.conf", 2, 2, ["api.example.org"], True),
        ("conf.d/shop.conf", 15, 3, ["shop.example.net"], False),
        ("conf.d/shop.conf", 21, 4, ["shop.example.net"], True),
        ("conf.d/shop.conf", 43, 5, ["admin.shop.example.net", "admin.example.net"], True),
        ("conf.d/shop.conf", 56, 6, ["static.shop.example.net"], True),
        ("sites-available/default", 21, 7, ["_"], False),
        ("sites-available/example.com", 4, 8, ["example.com", "www.example.com"], False),
        ("sites-available/example.com", 18, 9, ["example.com", "www.example.com"], True),
    ]
    assert [site.index for site in config.tls_sites()] == [0, 1, 2, 4, 5, 6, 9]


def test_site_details():
    sites = debian().load().sites()
    catchall, legacy, quic, dummy, shop, admin, static, dummy, dummy, example = sites
    assert catchall.certificates == ["/etc/ssl/certs/ssl-cert-snakeoil.pem"]
    assert catchall.keys == ["/etc/ssl/private/ssl-cert-snakeoil.key"]
    assert legacy.ssl_on and legacy.listens == [Listen("*", 443, False, False, "443")]
    assert quic.listens == [Listen("*", 443, False, False, "443 quic reuseport", quic=True), Listen("*", 443, True, False, "443 ssl")]
    assert shop.certificates == ["/etc/ssl/shop/rsa.crt", "/etc/ssl/shop/ecdsa.crt"]
    assert shop.keys == ["/etc/ssl/shop/rsa.key", "/etc/ssl/shop/ecdsa.key"]
    assert (shop.stapling, shop.chain_file, shop.resolver) == (False, "/etc/ssl/shop/old chain.pem", None)
    assert (admin.certificates, admin.uses_variables, shop.uses_variables) == (["$ssl_server_name.crt"], True, False)
    assert static.listens == [Listen("*", 8443, True, False, "8443 ssl")]
    assert example.listens == [
        Listen("*", 443, True, True, "443 ssl http2 default_server"),
        Listen("[::]", 443, True, True, "[::]:443 ssl http2 default_server ipv6only=on"),
    ]
    assert example.resolver == ["10.0.0.53", "[fd00::53]", "valid=300s"]
    # What server_info returns for it: the one site record, nginx's own facts under details.
    record = site_record(example, "nginx")
    assert json.loads(json.dumps(record)) == record
    assert sorted(record["details"]) == sorted(["listens", "ssl_trusted_certificate", "ssl_stapling_verify", "resolver"])
    assert record["details"]["listens"][1] == {"address": "[::]", "port": 443, "ssl": True, "default_server": True, "quic": False,
                                               "raw": "[::]:443 ssl http2 default_server ipv6only=on"}


@pytest.mark.parametrize(
    "args, listen",
    [
        ("443 ssl", Listen("*", 443, True, False, "443 ssl")),
        ("*:8443 ssl default", Listen("*", 8443, True, True, "*:8443 ssl default")),
        ("0.0.0.0:443 ssl", Listen("*", 443, True, False, "0.0.0.0:443 ssl")),
        ("192.0.2.1:443 ssl", Listen("192.0.2.1", 443, True, False, "192.0.2.1:443 ssl")),
        ("192.0.2.1", Listen("192.0.2.1", 80, False, False, "192.0.2.1")),
        ("localhost:8080", Listen("localhost", 8080, False, False, "localhost:8080")),
        ("[::1]", Listen("[::1]", 80, False, False, "[::1]")),
        ("[2001:db8::1]:443 ssl http2", Listen("[2001:db8::1]", 443, True, False, "[2001:db8::1]:443 ssl http2")),
        ("unix:/run/nginx.sock ssl", Listen("unix:/run/nginx.sock", None, True, False, "unix:/run/nginx.sock ssl")),
    ],
)
def test_listen_forms(args, listen):
    config = one_file("http { server { listen %s; } }\n" % args)
    assert config.sites()[0].listens == [listen]


@pytest.mark.parametrize(
    "args, message",
    [("", 'invalid number of arguments in "listen"'), (" 192.0.2.1:https", 'invalid port in "192.0.2.1:https"'), (" [::1:443", "invalid IPv6 address")],
)
def test_listen_errors(args, message):
    config = one_file("http {\n server {\n  listen%s;\n }\n}\n" % args)
    with pytest.raises(NginxConfigError) as caught:
        config.sites()
    assert (caught.value.line, message in caught.value.message) == (3, True)


def test_server_without_listen_listens_on_port_80():
    site = one_file("http { server { server_name a; } }\n").sites()[0]
    assert (site.listens, site.tls) == ([Listen("*", 80, False, False, "*:80")], False)


def test_only_http_servers_are_sites():
    config = rhel().load()
    assert [(site.path, site.line) for site in config.sites()] == [
        (ETC + "/conf.d/app.conf", 2),
        (ETC + "/conf.d/done.conf", 2),
        (ETC + "/nginx.conf", 52),
        (ETC + "/nginx.conf", 72),
    ]
    assert all(9993 not in [listen.port for listen in site.listens] for site in config.sites())


def test_values_inherited_from_http():
    app, finished, plain, tls = rhel().load().sites()
    assert (app.resolver, app.stapling, app.ssl_stapling_verify) == (["127.0.0.1", "valid=30s", "ipv6=off"], True, False)
    assert (finished.ssl_stapling_verify, finished.chain_file) == (True, "/etc/pki/tls/certs/done.example.com.chain.pem")
    assert (plain.tls, tls.tls, tls.certificates) == (False, True, ["/etc/pki/nginx/server.crt"])
    one, two = done().load().sites()
    assert one.chain_file == two.chain_file == "/etc/ssl/chain.pem"
    assert one.stapling and two.stapling and one.ssl_stapling_verify
    assert one.resolver == ["192.0.2.53"]


def test_certificate_inherited_from_http_and_relative_to_the_prefix():
    site = one_file("http {\n ssl_certificate certs/all.pem;\n server { listen 443 ssl; }\n}\n").sites()[0]
    assert site.certificates == [ETC + "/certs/all.pem"]


def test_plain_listen_on_a_tls_socket_is_tls():
    # nginx ORs the ssl flag of one address:port across servers.
    config = one_file("http {\n server { listen 443 ssl; }\n server { listen 443; listen 80; }\n server { listen 80; }\n}\n")
    assert [site.tls for site in config.sites()] == [True, True, False]
    assert list(default_servers(config.sites())) == [("*", 443)]


def test_ssl_on_at_http_level_makes_every_server_tls():
    config = one_file("http {\n ssl on;\n server { listen 443; }\n server { listen 8443; ssl off; }\n}\n")
    assert [site.tls for site in config.sites()] == [True, False]


def test_default_servers():
    sites = debian().load().sites()
    defaults = {socket: site.index for socket, site in default_servers(sites).items()}
    # Explicit default_server wins over the first server in config order.
    assert defaults == {("*", 443): 9, ("[::]", 443): 9, ("*", 8443): 0}
    defaults = {socket: site.index for socket, site in default_servers(rhel().load().sites()).items()}
    # No default_server: the first in config order.
    assert defaults == {("*", 443): 0, ("[::]", 443): 3}


# --- Editor: present -----------------------------------------------------------------------------


def test_present_on_the_debian_tree():
    host = debian()
    edits = stapling_edits(host.load(), CHAINS, resolver=RESOLVER)
    # The catch-all default server on 8443 serves the snakeoil certificate, which cannot be stapled: left alone.
    assert sorted(edits) == sorted(ETC + "/" + name for name in (
        "conf.d/legacy.conf", "conf.d/quic.conf", "conf.d/shop.conf", "sites-available/example.com"))
    for name in ("conf.d/quic.conf", "conf.d/shop.conf", "sites-available/example.com"):
        assert edits[ETC + "/" + name] == expected("debian/" + name), name
    assert edits[ETC + "/conf.d/legacy.conf"] == expected("debian/conf.d/legacy.conf", crlf=True)


def test_present_on_the_rhel_tree():
    host = rhel()
    edits = stapling_edits(host.load(), CHAINS, resolver=RESOLVER)
    assert sorted(edits) == [ETC + "/conf.d/app.conf", ETC + "/nginx.conf"]
    assert edits[ETC + "/conf.d/app.conf"] == expected("rhel/conf.d/app.conf")
    assert edits[ETC + "/nginx.conf"] == expected("rhel/nginx.conf")


def test_nothing_to_do_gives_no_edits():
    assert stapling_edits(done().load(), CHAINS, resolver=RESOLVER) == {}
    chains = {"/etc/pki/tls/certs/done.example.com.crt": CHAINS["/etc/pki/tls/certs/done.example.com.crt"]}
    assert stapling_edits(rhel().load(), chains, resolver=RESOLVER, include_default_servers=False) == {}
    assert edit_summary(rhel().load(), chains, include_default_servers=False) == []


@pytest.mark.parametrize("tree", sorted(TREES))
def test_present_twice_changes_nothing_the_second_time(tree):
    host = TREES[tree]()
    host.files.update(stapling_edits(host.load(), CHAINS, resolver=RESOLVER))
    assert stapling_edits(host.load(), CHAINS, resolver=RESOLVER) == {}


@pytest.mark.parametrize("tree", sorted(TREES))
def test_present_then_absent_gives_back_every_file_byte_for_byte(tree):
    host = TREES[tree]()
    original = dict(host.files)
    host.files.update(stapling_edits(host.load(), CHAINS, resolver=RESOLVER))
    host.files.update(stapling_edits(host.load(), {}, state="absent"))
    assert host.files == original
    assert stapling_edits(host.load(), {}, state="absent") == {}


def test_each_corpus_file_round_trips_on_its_own():
    """Every corpus file, edited alone (its sites only, no default servers pulled in)."""
    for make in TREES.values():
        host = make()
        original = dict(host.files)
        config = host.load()
        for path in original:
            sites = [site for site in config.tls_sites() if site.path == path]
            chains = {cert: "/chains/%d.pem" % site.index for site in sites for cert in site.certificates}
            edited = stapling_edits(config, chains, resolver=RESOLVER, include_default_servers=False)
            assert set(edited) <= {path}
            host.files.update(edited)
            host.files.update(stapling_edits(host.load(), {}, state="absent"))
            assert host.files == original, path


def test_default_server_is_pulled_in_only_with_its_own_chain():
    config = debian().load()
    shop_only = {"/etc/ssl/shop/rsa.crt": "/etc/ssl/shop/chain.pem"}
    with_own = dict(shop_only, **{"/etc/ssl/example.com/fullchain.pem": "/etc/ssl/example.com/chain.pem"})
    # shop (4) listens on *:443 and [::]:443, whose default server is example.com (9): pulled in with its own chain
    # even where stapling was asked for shop alone...
    touched = {entry["index"]: entry for entry in edit_summary(config, with_own, include_default_servers=True)}
    assert sorted(touched) == [4, 9]
    assert "add ssl_trusted_certificate /etc/ssl/example.com/chain.pem" in touched[9]["changes"]
    # ...never with another site's chain: a default server whose certificate cannot be stapled is left alone.
    assert [entry["index"] for entry in edit_summary(config, shop_only)] == [4]
    assert [entry["index"] for entry in edit_summary(config, shop_only, include_default_servers=False)] == [4]
    # static (6) on *:8443: the catch-all (0) serves the snakeoil certificate, which has no chain.
    touched = {entry["index"]: entry for entry in edit_summary(config, {"/etc/ssl/shop/static.crt": "/c/static.pem"})}
    assert sorted(touched) == [6]


def test_selection_by_any_certificate_of_a_site():
    config = debian().load()
    entries = edit_summary(config, {"/etc/ssl/shop/ecdsa.crt": "/c/ecdsa-chain.pem"}, include_default_servers=False)
    assert [(entry["index"], entry["changes"]) for entry in entries] == [
        (4, [
            "set ssl_stapling on (was off)",
            "add ssl_stapling_verify on",
            "set ssl_trusted_certificate /c/ecdsa-chain.pem (was /etc/ssl/shop/old chain.pem)",
        ]),
    ]


def test_resolver_is_added_only_where_none_is_in_scope():
    config = debian().load()
    summary = {entry["index"]: entry["changes"] for entry in edit_summary(config, CHAINS, resolver=RESOLVER)}
    with_resolver = sorted(index for index, changes in summary.items() if "add resolver 127.0.0.53" in changes)
    # example.com (9) has one from snippets/ssl-params.conf.
    assert with_resolver == [1, 2, 4, 6]
    summary = {entry["index"]: entry["changes"] for entry in edit_summary(config, CHAINS)}
    assert not [changes for changes in summary.values() if any(change.startswith("add resolver") for change in changes)]
    summary = edit_summary(rhel().load(), CHAINS, resolver=RESOLVER)
    assert not [entry for entry in summary if any(change.startswith("add resolver") for change in entry["changes"])]


def test_http_block_is_never_edited():
    text = "http {\n    ssl_stapling off;\n    server {\n        listen 443 ssl;\n        ssl_certificate /c/a.pem;\n    }\n}\n"
    edits = stapling_edits(one_file(text), {"/c/a.pem": "/c/chain.pem"})
    assert edits[ETC + "/nginx.conf"] == (
        "http {\n    ssl_stapling off;\n    server {\n        listen 443 ssl;\n        ssl_certificate /c/a.pem;\n"
        "        ssl_stapling on; # ocsp.stapling\n"
        "        ssl_stapling_verify on; # ocsp.stapling\n"
        "        ssl_trusted_certificate /c/chain.pem; # ocsp.stapling\n"
        "    }\n}\n"
    )


def test_in_place_change_keeps_the_rest_of_the_line():
    text = "http { server {\n\tlisten 443 ssl;\n\tssl_certificate /c/a.pem;\n\tssl_stapling   off  ;   # not yet\t\n} }\n"
    edits = stapling_edits(one_file(text), {"/c/a.pem": "/c/chain.pem"})
    assert edits[ETC + "/nginx.conf"] == (
        "http { server {\n\tlisten 443 ssl;\n\tssl_certificate /c/a.pem;\n"
        "\tssl_stapling   on  ;   # not yet\t # ocsp.stapling: was off\n"
        "\tssl_stapling_verify on; # ocsp.stapling\n"
        "\tssl_trusted_certificate /c/chain.pem; # ocsp.stapling\n"
        "} }\n"
    )


def test_several_changed_directives_on_one_line():
    text = "http { server {\n  listen 443 ssl; ssl_certificate /c/a.pem;\n  ssl_stapling off; ssl_stapling_verify off; ssl_trusted_certificate /c/x.pem;\n} }\n"
    host = FakeHost({ETC + "/nginx.conf": text})
    edits = stapling_edits(host.load(), {"/c/a.pem": "/c/chain.pem"})
    assert edits[ETC + "/nginx.conf"].splitlines()[2] == (
        "  ssl_stapling on; ssl_stapling_verify on; ssl_trusted_certificate /c/chain.pem;"
        " # ocsp.stapling: was off # ocsp.stapling: was off # ocsp.stapling: was /c/x.pem"
    )
    host.files.update(edits)
    assert stapling_edits(host.load(), {}, state="absent") == {ETC + "/nginx.conf": text}


def test_only_some_managed_directives_of_a_line_change():
    text = "http { server {\n  listen 443 ssl; ssl_certificate /c/a.pem;\n  ssl_stapling on; ssl_stapling_verify off;\n} }\n"
    host = FakeHost({ETC + "/nginx.conf": text})
    edits = stapling_edits(host.load(), {"/c/a.pem": "/c/chain.pem"})
    assert edits[ETC + "/nginx.conf"].splitlines()[2] == (
        "  ssl_stapling on; ssl_stapling_verify on; # ocsp.stapling: was on # ocsp.stapling: was off"
    )
    host.files.update(edits)
    assert stapling_edits(host.load(), {}, state="absent") == {ETC + "/nginx.conf": text}


def test_new_chain_updates_our_lines_and_keeps_the_original_value():
    text = "http { server {\n  listen 443 ssl;\n  ssl_certificate /c/a.pem;\n  ssl_trusted_certificate /c/old.pem;\n} }\n"
    host = FakeHost({ETC + "/nginx.conf": text})
    host.files.update(stapling_edits(host.load(), {"/c/a.pem": "/c/one.pem"}))
    host.files.update(stapling_edits(host.load(), {"/c/a.pem": "/c/two.pem"}))
    assert host.files[ETC + "/nginx.conf"].splitlines()[3] == "  ssl_trusted_certificate /c/two.pem; # ocsp.stapling: was /c/old.pem"
    host.files.update(stapling_edits(host.load(), {}, state="absent"))
    assert host.files[ETC + "/nginx.conf"] == text


def test_new_values_are_quoted_only_when_needed():
    text = "http { server {\n  listen 443 ssl;\n  ssl_certificate /c/a.pem;\n  ssl_stapling on;\n  ssl_stapling_verify on;\n} }\n"
    edits = stapling_edits(one_file(text), {"/c/a.pem": '/c/my "chain" $1;.pem'})
    assert '  ssl_trusted_certificate "/c/my \\"chain\\" $1;.pem"; # ocsp.stapling\n' in edits[ETC + "/nginx.conf"]
    host = FakeHost({ETC + "/nginx.conf": edits[ETC + "/nginx.conf"]})
    assert host.load().sites()[0].chain_file == '/c/my "chain" $1;.pem'


def test_crlf_file_gets_crlf_lines_and_keeps_the_others():
    host = debian()
    edits = stapling_edits(host.load(), {"/etc/ssl/partners/partners.crt": "/c/p.pem"}, include_default_servers=False)
    new = edits[ETC + "/conf.d/legacy.conf"]
    assert "\n" not in new.replace("\r\n", "")
    assert "    ssl_stapling on; # ocsp.stapling\r\n" in new
    assert "partners.key;  \t\r\n    ssl_stapling on;" in new


def test_anchor_with_a_directive_sharing_the_opening_line():
    text = "http {\n    server { listen 443 ssl; server_name a;\n        ssl_certificate /c/a.pem; # RSA\n        location / { }\n    }\n}\n"
    edits = stapling_edits(one_file(text), {"/c/a.pem": "/c/chain.pem"}, resolver=["192.0.2.53", "[2001:db8::53]"])
    assert edits[ETC + "/nginx.conf"] == (
        "http {\n    server { listen 443 ssl; server_name a;\n        ssl_certificate /c/a.pem; # RSA\n"
        "        ssl_stapling on; # ocsp.stapling\n"
        "        ssl_stapling_verify on; # ocsp.stapling\n"
        "        ssl_trusted_certificate /c/chain.pem; # ocsp.stapling\n"
        "        resolver 192.0.2.53 [2001:db8::53]; # ocsp.stapling\n"
        "        location / { }\n    }\n}\n"
    )


def test_server_whose_directives_share_lines_gets_lines_after_its_opening():
    text = "http {\n  server {\n    listen 443 ssl; ssl_certificate /c/a.pem; }\n}\n"
    edits = stapling_edits(one_file(text), {"/c/a.pem": "/c/chain.pem"})
    assert edits[ETC + "/nginx.conf"] == (
        "http {\n  server {\n"
        "    ssl_stapling on; # ocsp.stapling\n"
        "    ssl_stapling_verify on; # ocsp.stapling\n"
        "    ssl_trusted_certificate /c/chain.pem; # ocsp.stapling\n"
        "    listen 443 ssl; ssl_certificate /c/a.pem; }\n}\n"
    )


def test_server_on_one_line_cannot_be_edited():
    """Such a site is left alone, with what to do; the other sites of the configuration still get theirs."""
    config = one_file("http {\n    server { listen 443 ssl; ssl_certificate /c/a.pem; }\n"
                      "    server {\n        listen 443 ssl;\n        ssl_certificate /c/b.pem;\n    }\n}\n")
    edits, dummy, outcomes = plan_stapling(config, {"/c/a.pem": "/c/chain.pem", "/c/b.pem": "/c/chain.pem"})
    (one_line, other) = outcomes
    assert one_line["outcome"] == "not handled" and one_line["line"] == 2
    assert "no line that new directives can follow (%s:2); put its directives on separate lines" % (ETC + "/nginx.conf") in one_line["reason"]
    assert other["outcome"] == "stapled" and edits[ETC + "/nginx.conf"].count("ssl_stapling on") == 1


def test_directive_in_a_shared_snippet_is_edited_there_once():
    host = FakeHost({
        "/n/nginx.conf": "http {\n  server { listen 443 ssl;\n    ssl_certificate /c/a.pem;\n    include /n/tls.conf;\n  }\n"
                         "  server { listen 8443 ssl;\n    ssl_certificate /c/b.pem;\n    include /n/tls.conf;\n  }\n}\n",
        "/n/tls.conf": "ssl_stapling off;\n",
    })
    chains = {"/c/a.pem": "/c/chain.pem", "/c/b.pem": "/c/chain.pem"}
    edits = stapling_edits(host.load("/n/nginx.conf"), chains)
    assert edits["/n/tls.conf"] == "ssl_stapling on; # ocsp.stapling: was off\n"
    assert "ssl_stapling " not in edits["/n/nginx.conf"]


def test_change_on_a_last_line_without_newline():
    host = FakeHost({
        "/n/nginx.conf": "http {\n  server {\n    listen 443 ssl;\n    ssl_certificate /c/a.pem;\n    include /n/tls.conf;\n  }\n}\n",
        "/n/tls.conf": "ssl_stapling_verify on;\nssl_stapling off;",
    })
    original = dict(host.files)
    edits = stapling_edits(host.load("/n/nginx.conf"), {"/c/a.pem": "/c/chain.pem"})
    assert edits["/n/tls.conf"] == "ssl_stapling_verify on;\nssl_stapling on; # ocsp.stapling: was off"
    host.files.update(edits)
    host.files.update(stapling_edits(host.load("/n/nginx.conf"), {}, state="absent"))
    assert host.files == original


def test_value_that_spans_lines_is_not_changed():
    text = "http { server {\n  listen 443 ssl;\n  ssl_certificate /c/a.pem;\n  ssl_trusted_certificate \"/c/a\n.pem\";\n} }\n"
    with pytest.raises(NginxConfigError) as caught:
        stapling_edits(one_file(text), {"/c/a.pem": "/c/chain.pem"})
    assert (caught.value.line, caught.value.hint) == (4, "put the directive and its value on one line")


def test_directive_without_value_is_not_guessed():
    text = "http { server {\n  listen 443 ssl;\n  ssl_certificate /c/a.pem;\n  ssl_stapling;\n} }\n"
    with pytest.raises(NginxConfigError) as caught:
        stapling_edits(one_file(text), {"/c/a.pem": "/c/chain.pem"})
    assert (caught.value.line, caught.value.message) == (4, '"ssl_stapling" has no value')


def test_conflicting_values_in_a_shared_snippet_are_refused():
    host = FakeHost({
        "/n/nginx.conf": "http {\n  server { listen 443 ssl;\n    ssl_certificate /c/a.pem;\n    include /n/tls.conf;\n  }\n"
                         "  server { listen 8443 ssl;\n    ssl_certificate /c/b.pem;\n    include /n/tls.conf;\n  }\n}\n",
        "/n/tls.conf": "ssl_stapling on;\nssl_trusted_certificate /c/old.pem;\n",
    })
    with pytest.raises(NginxConfigError) as caught:
        stapling_edits(host.load("/n/nginx.conf"), {"/c/a.pem": "/c/a-chain.pem", "/c/b.pem": "/c/b-chain.pem"})
    assert (caught.value.path, caught.value.line) == ("/n/tls.conf", 2)
    assert "shared by sites" in caught.value.message


def test_an_edit_that_would_change_other_directives_is_refused():
    # The marker would land inside the Lua code that starts on the changed line.
    text = "http { server {\n  listen 443 ssl;\n  ssl_certificate /c/a.pem;\n  ssl_stapling off; set_by_lua_block $x {\n    return 1\n  }\n} }\n"
    with pytest.raises(NginxConfigError, match="would change more than the OCSP stapling directives"):
        stapling_edits(one_file(text), {"/c/a.pem": "/c/chain.pem"})


def test_an_edit_that_would_not_parse_is_refused():
    config = one_file("events {}\n")
    with pytest.raises(NginxConfigError) as caught:
        _Plan(config, "present").check(ETC + "/nginx.conf", "events {}\n", "events {\n")
    assert str(caught.value) == (
        ETC + "/nginx.conf:1: the edited file would not parse (unexpected end of file, expecting \"}\": "
        "the \"events\" block opened here is not closed); edit this file by hand"
    )


def test_edit_summary():
    entries = edit_summary(debian().load(), CHAINS, resolver=RESOLVER)
    by_index = {entry["index"]: entry for entry in entries}
    assert by_index[4] == {
        "path": ETC + "/conf.d/shop.conf",
        "line": 21,
        "index": 4,
        "server_names": ["shop.example.net"],
        "changes": [
            "set ssl_stapling on (was off)",
            "add ssl_stapling_verify on",
            "set ssl_trusted_certificate /etc/ssl/shop/chain.pem (was /etc/ssl/shop/old chain.pem)",
            "add resolver 127.0.0.53",
        ],
    }
    host = debian()
    host.files.update(stapling_edits(host.load(), CHAINS, resolver=RESOLVER))
    by_index = {entry["index"]: entry for entry in edit_summary(host.load(), {}, state="absent")}
    # In the order of the file.
    assert by_index[4]["changes"] == [
        "restore ssl_stapling off",
        'restore ssl_trusted_certificate "/etc/ssl/shop/old chain.pem"',
        "remove ssl_stapling_verify on",
        "remove resolver 127.0.0.53",
    ]


# --- Editor: absent ------------------------------------------------------------------------------


def test_absent_without_markers_changes_nothing():
    for make in TREES.values():
        assert stapling_edits(make().load(), CHAINS, state="absent") == {}


def test_absent_removes_only_whole_marker_lines():
    text = (
        "http { server {\n  listen 443 ssl;\n  ssl_certificate /c/a.pem;\n"
        "  ssl_stapling on; # ocsp.stapling\n"
        "  # ocsp.stapling is what added the line above\n"
        "  return 200 \"# ocsp.stapling\";\n"
        "} }\n"
    )
    edits = stapling_edits(one_file(text), {}, state="absent")
    assert edits[ETC + "/nginx.conf"] == text.replace("  ssl_stapling on; # ocsp.stapling\n", "")


def test_absent_refuses_a_damaged_marker():
    text = "http { server {\n  listen 443 ssl;\n  ssl_stapling on; # ocsp.stapling: was off # ocsp.stapling: was off\n} }\n"
    with pytest.raises(NginxConfigError) as caught:
        stapling_edits(one_file(text), {}, state="absent")
    assert (caught.value.line, caught.value.message) == (3, "the ocsp.stapling markers on this line do not match its directives")


def test_absent_refuses_a_marker_whose_value_does_not_parse():
    text = "http { server {\n  listen 443 ssl;\n  ssl_trusted_certificate /c/new.pem; # ocsp.stapling: was \"/c/old.pem\n} }\n"
    with pytest.raises(NginxConfigError) as caught:
        stapling_edits(one_file(text), {}, state="absent")
    assert (caught.value.line, caught.value.message) == (3, "the ocsp.stapling marker on this line is damaged")


def test_absent_outside_any_site():
    text = "http {\n  ssl_stapling on; # ocsp.stapling\n  server { listen 80; }\n}\n"
    config = one_file(text)
    assert edit_summary(config, {}, state="absent") == [
        {"path": ETC + "/nginx.conf", "line": 2, "index": None, "server_names": [], "changes": ["remove ssl_stapling on"]},
    ]
    assert stapling_edits(config, {}, state="absent") == {ETC + "/nginx.conf": "http {\n  server { listen 80; }\n}\n"}


def test_unknown_state():
    with pytest.raises(ValueError):
        stapling_edits(done().load(), CHAINS, state="enabled")


# --- Scale ---------------------------------------------------------------------------------------


def test_parse_2000_servers_in_200_files():
    files = {"/n/nginx.conf": "events {}\nhttp {\n    resolver 192.0.2.53;\n    include /n/sites/*.conf;\n}\n"}
    server = (
        "# site {n}\n"
        "server {{\n"
        "    listen 443 ssl;\n"
        "    listen [::]:443 ssl;\n"
        "    server_name s{n}.example.com www.s{n}.example.com;\n"
        "    ssl_certificate /etc/ssl/s{n}.crt;\n"
        "    ssl_certificate_key /etc/ssl/s{n}.key;\n"
        "    add_header X-Site \"s{n}; {{json}}\";\n"
        "    location / {{\n"
        "        proxy_pass http://127.0.0.1:{port};\n"
        "        if ($http_x_test) {{ return 403; }}\n"
        "    }}\n"
        "}}\n"
    )
    for number in range(200):
        files["/n/sites/%03d.conf" % number] = "".join(
            server.format(n=number * 10 + index, port=8000 + index) for index in range(10))
    host = FakeHost(files)
    started = time.perf_counter()
    config = host.load("/n/nginx.conf")
    parsed = time.perf_counter()
    sites = config.tls_sites()
    modelled = time.perf_counter()
    edits = stapling_edits(config, {site.certificates[0]: "/etc/ssl/chain.pem" for site in sites})
    edited = time.perf_counter()
    print("\nnginx: 2000 servers in 200 files (%d KiB): parse %.3fs, sites %.3fs, edits for all %.3fs" % (
        sum(len(text) for text in files.values()) // 1024, parsed - started, modelled - parsed, edited - modelled))
    assert len(sites) == 2000 and len(config.files) == 201 and len(edits) == 200


# --- every site one outcome; trust kept (issue 13) -------------------------------------------------


def test_every_tls_site_gets_exactly_one_outcome_with_its_reason():
    config = debian().load()
    not_applicable = {"/etc/ssl/certs/ssl-cert-snakeoil.pem": "the certificate has no OCSP URL"}
    chains = {path: chain for path, chain in CHAINS.items() if path != "/etc/ssl/shop/static.crt"}
    dummy, dummy, outcomes = plan_stapling(config, chains, resolver=RESOLVER, not_applicable=not_applicable)
    by_index = {entry["index"]: (entry["outcome"], entry["reason"]) for entry in outcomes}
    assert sorted(by_index) == sorted(site.index for site in config.tls_sites())
    assert by_index[0] == ("not applicable", "/etc/ssl/certs/ssl-cert-snakeoil.pem: the certificate has no OCSP URL")
    assert by_index[4][0] == by_index[9][0] == "stapled"
    assert by_index[5][0] == "not applicable" and "uses variables" in by_index[5][1]
    assert by_index[6][0] == "not handled" and "/etc/ssl/shop/static.crt was not given to this run" in by_index[6][1]


def test_a_second_run_says_already():
    host = debian()
    host.files.update(stapling_edits(host.load(), CHAINS, resolver=RESOLVER))
    dummy, dummy, outcomes = plan_stapling(host.load(), CHAINS, resolver=RESOLVER)
    assert {entry["outcome"] for entry in outcomes if entry["certificates"][0] in CHAINS} == {"already"}
    dummy, dummy, outcomes = plan_stapling(host.load(), CHAINS, state="absent")
    assert {entry["outcome"] for entry in outcomes if entry["certificates"][0] in CHAINS} == {"removed"}


@pytest.mark.parametrize("verify", ["on", "optional", "OPTIONAL_NO_CA"])
@pytest.mark.parametrize("where", ["server", "http"])
def test_a_site_that_verifies_clients_keeps_its_trusted_ca_set(verify, where):
    """ssl_trusted_certificate is also where nginx takes the CAs of client certificates from: replaced, partners are
    refused; added, certificates of the stapling chain's CA are accepted. Neither may happen."""
    setting = "ssl_verify_client %s;" % verify
    text = ("events {}\nhttp {\n    %s\n    server {\n        listen 443 ssl;\n        server_name partners.test;\n"
            "        ssl_certificate /c/a.pem;\n        ssl_certificate_key /c/a.key;\n        %s\n"
            "        ssl_trusted_certificate /c/partners-ca.pem;\n    }\n    server {\n        listen 443 ssl;\n"
            "        server_name open.test;\n        ssl_certificate /c/b.pem;\n        ssl_certificate_key /c/b.key;\n"
            "        ssl_verify_client off;\n    }\n}\n") % (setting if where == "http" else "", setting if where == "server" else "")
    config = FakeHost({ETC + "/nginx.conf": text}).load()
    edits, summary, outcomes = plan_stapling(config, {"/c/a.pem": "/c/chain.pem", "/c/b.pem": "/c/chain.pem"}, resolver=RESOLVER)
    new = edits[ETC + "/nginx.conf"]
    partners, open_site = summary
    assert "ssl_trusted_certificate /c/partners-ca.pem;\n" in new and new.count("/c/chain.pem") == 1
    assert partners["changes"][0].startswith("keep the trusted CA set (the site verifies client certificates)")
    assert not any("ssl_trusted_certificate" in change or "ssl_stapling_verify" in change for change in partners["changes"][1:])
    assert "add ssl_trusted_certificate /c/chain.pem" in open_site["changes"]
    assert [entry["outcome"] for entry in outcomes] == ["stapled", "stapled"]


# Dead configuration: stapling on for certificates that can never be stapled (remove_dead).

DEAD_TREE = """events {}
http {
    ssl_stapling on;
    include /etc/nginx/shared-stapling.conf;
    server {
        listen 443 ssl;
        server_name inherits.test;
        ssl_certificate /c/nourl.pem;
        ssl_certificate_key /c/nourl.key;
    }
    server {
        listen 443 ssl;
        server_name own.test;
        ssl_certificate /c/self.pem;
        ssl_certificate_key /c/self.key;
        ssl_stapling on;
        ssl_trusted_certificate /c/partners.pem;
        ssl_verify_client on;
    }
    server {
        listen 443 ssl;
        server_name responder.test;
        ssl_certificate /c/nourl.pem;
        ssl_certificate_key /c/nourl.key;
        ssl_stapling_responder http://ocsp.internal/;
    }
    server {
        listen 443 ssl;
        server_name good.test;
        ssl_certificate /c/good.pem;
        ssl_certificate_key /c/good.key;
    }
}
"""
DEAD = {"/c/nourl.pem": "the certificate carries no OCSP URL", "/c/self.pem": "the certificate is self-signed"}


def dead_host(tree: str = DEAD_TREE) -> FakeHost:
    return FakeHost({ETC + "/nginx.conf": tree, ETC + "/shared-stapling.conf": "# nothing\n"})


def test_dead_configuration_is_turned_off_site_by_site_and_taken_back_by_absent():
    host = dead_host()
    edits, summary, outcomes = plan_stapling(host.load(), {"/c/good.pem": "/c/chain.pem"}, resolver=[], not_applicable=DEAD, dead=DEAD)
    new = edits[ETC + "/nginx.conf"]
    # Inherited from http: a line in the site's own block; the http line serves the other sites.
    assert "        ssl_certificate_key /c/nourl.key;\n        ssl_stapling off; # ocsp.stapling\n" in new
    assert new.count("ssl_stapling on;") == 1  # http: the good site inherits it
    # Its own line: changed in place and marked; the trusted set of a site that verifies clients is untouched.
    assert "        ssl_stapling off; # ocsp.stapling: was on\n        ssl_trusted_certificate /c/partners.pem;\n" in new
    by_name = {entry["server_names"][0]: entry for entry in outcomes}
    assert by_name["inherits.test"]["outcome"] == "not applicable"
    assert by_name["inherits.test"]["reason"] == ("/c/nourl.pem: the certificate carries no OCSP URL; "
                                                  "stapling turned off, since it could never work (dead configuration)")
    assert by_name["own.test"]["reason"].endswith("(dead configuration)")
    # A responder of its own may make stapling work without the certificate's URL: left on, and said so.
    assert by_name["responder.test"]["reason"].endswith(
        "stapling stays on: the configuration names the OCSP responder http://ocsp.internal/ for it")
    assert by_name["good.test"]["outcome"] == "stapled"
    changes = {entry["server_names"][0]: entry["changes"] for entry in summary}
    assert changes["inherits.test"] == ["add ssl_stapling off"]
    assert changes["own.test"] == ["set ssl_stapling off (was on)"]
    # A second run is idempotent; absent restores the text byte for byte.
    host.files.update(edits)
    assert plan_stapling(host.load(), {"/c/good.pem": "/c/chain.pem"}, resolver=[], not_applicable=DEAD, dead=DEAD)[0] == {}
    host.files.update(plan_stapling(host.load(), {}, state="absent")[0])
    assert host.files[ETC + "/nginx.conf"] == DEAD_TREE


def test_dead_configuration_is_kept_without_the_option():
    edits, dummy, outcomes = plan_stapling(dead_host().load(), {"/c/good.pem": "/c/chain.pem"}, resolver=[], not_applicable=DEAD)
    assert "ssl_stapling off" not in edits[ETC + "/nginx.conf"]
    assert all("dead configuration" not in entry["reason"] for entry in outcomes)


def test_a_stapling_line_shared_with_a_site_that_keeps_it_stays_on():
    """One included file gives two sites their ssl_stapling: turning it off for the dead one would turn it off for the
    other, whose certificate can be stapled."""
    shared = "        include /etc/nginx/shared-stapling.conf;\n"
    tree = DEAD_TREE.replace("    ssl_stapling on;\n    include", "    include").replace(
        "        ssl_certificate_key /c/nourl.key;\n    }", "        ssl_certificate_key /c/nourl.key;\n" + shared + "    }", 1).replace(
        "        ssl_certificate_key /c/good.key;\n", "        ssl_certificate_key /c/good.key;\n" + shared)
    host = dead_host(tree)
    host.files[ETC + "/shared-stapling.conf"] = "ssl_stapling on;\n"
    edits, dummy, outcomes = plan_stapling(host.load(), {}, resolver=[], not_applicable=DEAD, dead=DEAD)
    assert ETC + "/shared-stapling.conf" not in edits
    inherits = next(entry for entry in outcomes if entry["server_names"] == ["inherits.test"])
    assert inherits["reason"].endswith("stapling stays on: ssl_stapling at /etc/nginx/shared-stapling.conf:1 is shared with the site at "
                                       "/etc/nginx/nginx.conf:27, which keeps it")
