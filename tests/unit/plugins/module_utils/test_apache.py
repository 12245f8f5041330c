"""Unit tests of the Apache httpd parser, site model and stapling editor.

The corpus under fixtures/apache/ holds whole trees (Debian /etc/apache2, RHEL /etc/httpd, one
with nothing left to do), read through a fake host: the tests never touch the real file system
beyond the fixtures, and symlinks and CRLF files exist only in the fake host (sanity forbids
both in git).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import pathlib
import posixpath
import time

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils._apache import (
    ApacheConfig,
    ApacheConfigError,
    cache_text,
    plan_stapling,
)
from ansible_collections.ocsp.stapling.plugins.module_utils._platforms import apache_layout, apache_layout_root, start_defines
from ansible_collections.ocsp.stapling.plugins.module_utils._sites import site_record

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "apache"


def stapling_edits(config, chains, *, cache_path, cache_spec, **options):
    """The edits of the one plan the module runs (plan_stapling), for the tests that look at the texts only."""
    return plan_stapling(config, chains, cache_path=cache_path, cache_spec=cache_spec, **options)[0]


def edit_summary(config, chains, *, cache_path, cache_spec, **options):
    """The per-site summary of the one plan the module runs (plan_stapling)."""
    return plan_stapling(config, chains, cache_path=cache_path, cache_spec=cache_spec, **options)[1]


DEBIAN = "/etc/apache2"
RHEL = "/etc/httpd"
DONE = "/srv/httpd"

DEBIAN_LINKS = {
    DEBIAN + "/sites-enabled/000-default.conf": "../sites-available/000-default.conf",
    DEBIAN + "/sites-enabled/default-ssl.conf": "../sites-available/default-ssl.conf",
    DEBIAN + "/sites-enabled/example.com.conf": DEBIAN + "/sites-available/example.com.conf",
    DEBIAN + "/sites-enabled/legacy.conf": "../sites-available/legacy.conf",
}
DEBIAN_CRLF = (DEBIAN + "/sites-available/legacy.conf",)
# What /etc/apache2/envvars exports, as server_info passes it.
DEBIAN_ENV = {
    "APACHE_RUN_USER": "www-data",
    "APACHE_RUN_GROUP": "www-data",
    "APACHE_PID_FILE": "/var/run/apache2/apache2.pid",
    "APACHE_RUN_DIR": "/var/run/apache2",
    "APACHE_LOCK_DIR": "/var/lock/apache2",
    "APACHE_LOG_DIR": "/var/log/apache2",
}
DEBIAN_MODULES = {"core_module", "so_module", "ssl_module", "socache_shmcb_module", "setenvif_module", "mime_module"}
RHEL_MODULES = {"core_module", "ssl_module", "socache_shmcb_module", "dir_module", "log_config_module", "mime_module"}

CACHE_DEBIAN = DEBIAN + "/conf-available/ocsp-stapling.conf"
CACHE_RHEL = RHEL + "/conf.d/ocsp-stapling.conf"
SPEC = "shmcb:${APACHE_RUN_DIR}/ocsp-stapling(128000)"

# Certificate -> chain, for every certificate of the corpus that has a responder to ask.
CHAINS = {
    "/etc/ssl/certs/ssl-cert-snakeoil.pem": "/etc/ssl/certs/snakeoil-chain.pem",
    "/etc/letsencrypt/live/example.com/fullchain.pem": "/etc/letsencrypt/live/example.com/chain.pem",
    "/etc/ssl/api/api.crt": "/etc/ssl/api/chain.pem",
    "/etc/ssl/legacy/legacy.crt": "/etc/ssl/legacy/chain.pem",
    "/etc/pki/tls/certs/localhost.crt": "/etc/pki/tls/certs/localhost-chain.pem",
    "/etc/pki/tls/certs/app.example.com.crt": "/etc/pki/tls/certs/app.example.com.chain.pem",
    "/etc/pki/tls/certs/partners.crt": "/etc/pki/tls/certs/partners.chain.pem",
    "/etc/ssl/done.crt": "/etc/ssl/done-chain.pem",
}


class FakeHost:
    """A host's files in a dict, with the reader, globber and realpath the module would pass."""

    def __init__(self, files: dict | None = None, links: dict | None = None) -> None:
        self.files = dict(files or {})
        self.links = dict(links or {})

    @classmethod
    def tree(cls, name: str, mount: str, links: dict | None = None, crlf: tuple = ()) -> FakeHost:
        files = {}
        root = FIXTURES / name
        for path in sorted(root.rglob("*")):
            if path.is_file():
                target = mount + "/" + path.relative_to(root).as_posix()
                text = path.read_bytes().decode("utf-8", "surrogateescape")
                files[target] = text.replace("\n", "\r\n") if target in crlf else text
        return cls(files, links)

    def read(self, path: str) -> str:
        if path not in self.files:
            if any(name.startswith(path.rstrip("/") + "/") for name in self.files):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return self.files[path]

    def glob(self, pattern: str) -> list:
        directory, name = posixpath.split(pattern)
        entries = set(self.links)
        for path in self.files:
            # Files and the directories they imply.
            while path != "/":
                entries.add(path)
                path = posixpath.dirname(path)
        return sorted(
            path
            for path in entries
            if posixpath.dirname(path) == directory and not posixpath.basename(path).startswith(".")
            and fnmatch.fnmatchcase(posixpath.basename(path), name)
        )

    def realpath(self, path: str) -> str:
        while path in self.links:
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), self.links[path]))
        return path

    def load(self, main: str, **kwargs) -> ApacheConfig:
        return ApacheConfig.load(main, reader=self.read, globber=self.glob, realpath=self.realpath, **kwargs)

    def apply(self, edits: dict) -> None:
        for path, text in edits.items():
            if text is None:
                del self.files[path]
            else:
                self.files[path] = text


def debian() -> FakeHost:
    return FakeHost.tree("debian", DEBIAN, DEBIAN_LINKS, DEBIAN_CRLF)


def rhel() -> FakeHost:
    return FakeHost.tree("rhel", RHEL)


def done() -> FakeHost:
    return FakeHost.tree("done", DONE)


# name -> (host factory, load arguments, cache path)
TREES = {
    "debian": (debian, dict(main=DEBIAN + "/apache2.conf", server_root=DEBIAN, env=DEBIAN_ENV, modules=DEBIAN_MODULES), CACHE_DEBIAN),
    "rhel": (rhel, dict(main=RHEL + "/conf/httpd.conf", modules=RHEL_MODULES), CACHE_RHEL),
    "done": (done, dict(main=DONE + "/httpd.conf"), DONE + "/conf.d/ocsp-stapling.conf"),
}


def load_tree(name: str, host: FakeHost | None = None) -> tuple:
    factory, kwargs, cache = TREES[name]
    host = host or factory()
    return host, host.load(**kwargs), cache


def plan(config: ApacheConfig, cache: str, chains: dict | None = None, state: str = "present") -> tuple:
    """(edits, summary) of the one plan the module runs."""
    return plan_stapling(config, CHAINS if chains is None else chains, cache_path=cache, cache_spec=SPEC, state=state)[:2]


def one_file(text: str, path: str = "/etc/httpd/httpd.conf", **kwargs) -> ApacheConfig:
    return FakeHost({path: text}).load(path, **kwargs)


def expected(relative: str, crlf: bool = False) -> str:
    text = (FIXTURES / "expected" / relative).read_bytes().decode("utf-8", "surrogateescape")
    return text.replace("\n", "\r\n") if crlf else text


def vhost(body: str, head: str = "<VirtualHost *:443>") -> str:
    return "%s\n%s</VirtualHost>\n" % (head, body)


SITE = (
    "    ServerName a.example\n"
    "    SSLEngine on\n"
    "    SSLCertificateFile /etc/ssl/a.crt\n"
    "    SSLCertificateKeyFile /etc/ssl/a.key\n"
)
A_CHAINS = {"/etc/ssl/a.crt": "/etc/ssl/a-chain.pem"}


# --- Parser ----------------------------------------------------------------------------------------


def test_positions_cover_the_exact_text():
    text = "# c\nServerName  \"a b\"  \n<VirtualHost *:443 >\n    SSLEngine on\n</VirtualHost>\nLogFormat 'x \\' y' z\n"
    config = one_file(text)
    directives = config.main.directives
    server_name, section, log_format = directives
    assert (server_name.name, server_name.args, server_name.raw_args) == ("ServerName", ["a b"], '"a b"')
    assert text[server_name.start:server_name.end] == 'ServerName  "a b"  \n'
    assert text[server_name.args_start:server_name.args_end] == '"a b"'
    assert (section.name, section.args, section.raw_args, section.line) == ("<VirtualHost", ["*:443"], "*:443", 3)
    assert text[section.close_start:section.close_end] == "</VirtualHost>\n"
    assert section.block[0].parent is section and section.block[0].line == 4
    assert log_format.args == ["x ' y", "z"]
    assert config.main.comments == [1]


def test_continuation_lines_make_one_directive():
    text = "SSLCipherSuite A:\\\n    B\nCustomLog x \\\n  \"%t %h\"\nServerName n\n"
    config = one_file(text)
    cipher, log, name = config.main.directives
    assert cipher.args == ["A:", "B"] and cipher.line == 1 and cipher.end == text.index("CustomLog")
    assert log.args == ["x", "%t %h"] and log.raw_args == 'x \\\n  "%t %h"'
    assert name.line == 5


def test_only_a_single_backslash_right_before_the_newline_continues():
    config = one_file("Alias /a C:\\\\\nServerName x \\ \nServerAdmin y\n")
    assert [(d.name, d.args) for d in config.main.directives] == [
        ("Alias", ["/a", "C:\\\\"]), ("ServerName", ["x", "\\"]), ("ServerAdmin", ["y"])]


def test_quotes_and_escapes_like_ap_getword_conf():
    config = one_file("Header set X \"a \\\"b\\\" c\" 'it\\'s' plain\\n\n")
    assert config.main.directives[0].args == ["set", "X", 'a "b" c', "it's", "plain\\n"]


def test_hash_is_a_comment_only_at_the_start_of_a_line():
    config = one_file("  # comment\nHeader set X a#b\n\t#another\n")
    assert [(d.name, d.args) for d in config.main.directives] == [("Header", ["set", "X", "a#b"])]
    assert config.main.comments == [1, 3]


def test_names_and_sections_are_case_insensitive():
    config = one_file(vhost("  sslengine On\n  SSLCERTIFICATEFILE /etc/ssl/a.crt\n  sslusestapling ON\n", "<virtualHOST *:443>")[:-15]
                      + "</VIRTUALHOST>\n")
    site, = config.tls_sites()
    assert site.certificates == ["/etc/ssl/a.crt"] and site.stapling
    assert config.main.directives[0].name == "<virtualHOST"


@pytest.mark.parametrize("text, line, message", [
    pytest.param("<VirtualHost *:443>\n  SSLEngine on\n", 1, "<VirtualHost> was not closed", id="unclosed"),
    pytest.param("<VirtualHost *:443>\n<Directory /x>\n</VirtualHost>\n", 3, "expected </Directory> but saw </VirtualHost>", id="mismatched"),
    pytest.param("ServerName a\n</Directory>\n", 2, "</Directory> without matching <Directory> section", id="stray-close"),
    pytest.param("\n<VirtualHost *:443\n</VirtualHost>\n", 2, "<VirtualHost> directive missing closing '>'", id="no-gt"),
    pytest.param("ServerName \"a\n", 1, "unterminated quoted string", id="quote"),
    pytest.param("Define\n", 1, "Define takes one or two arguments", id="define"),
])
def test_syntax_errors_name_file_and_line(text, line, message):
    with pytest.raises(ApacheConfigError) as caught:
        one_file(text)
    assert (caught.value.path, caught.value.line) == ("/etc/httpd/httpd.conf", line)
    assert message in caught.value.message
    assert str(caught.value).startswith("/etc/httpd/httpd.conf:%d: " % line) and "; " in str(caught.value)


def test_error_in_an_included_file_names_that_file():
    host = FakeHost({"/a/httpd.conf": "ServerName a\nInclude sites/*.conf\n", "/a/sites/x.conf": "\n\n<Location />\n"})
    with pytest.raises(ApacheConfigError) as caught:
        host.load("/a/httpd.conf")
    assert (caught.value.path, caught.value.line) == ("/a/sites/x.conf", 3)


def test_missing_plain_include_is_an_error_like_apache():
    host = FakeHost({"/a/httpd.conf": "ServerName a\n\nInclude conf/missing.conf\n"})
    with pytest.raises(ApacheConfigError) as caught:
        host.load("/a/httpd.conf")
    assert (caught.value.path, caught.value.line) == ("/a/httpd.conf", 3)
    assert "/a/conf/missing.conf" in caught.value.message


def test_optional_include_and_globs_matching_nothing_are_fine():
    config = FakeHost({"/a/httpd.conf": "IncludeOptional missing.conf\nInclude none/*.conf\nIncludeOptional none/*.conf\n"}).load("/a/httpd.conf")
    assert list(config.files) == ["/a/httpd.conf"]


@pytest.mark.parametrize("directive, fails", [("IncludeOptional", False), ("Include", True)])
def test_broken_symlink_matched_by_a_glob(directive, fails):
    host = FakeHost({"/a/httpd.conf": "%s sites-enabled/*.conf\n" % directive, "/a/sites-available/ok.conf": vhost(SITE)},
                    {"/a/sites-enabled/gone.conf": "../sites-available/gone.conf", "/a/sites-enabled/ok.conf": "../sites-available/ok.conf"})
    if fails:
        with pytest.raises(ApacheConfigError) as caught:
            host.load("/a/httpd.conf")
        assert (caught.value.path, caught.value.line) == ("/a/httpd.conf", 1)
    else:
        assert [site.path for site in host.load("/a/httpd.conf").sites()] == ["/a/sites-available/ok.conf"]


def test_section_arguments_end_at_the_last_gt():
    config = one_file("<VirtualHost *:443> trailing\n</VirtualHost>\n")
    assert config.sites()[0].addresses == ["*:443"]


def test_unreadable_main_file():
    with pytest.raises(ApacheConfigError) as caught:
        FakeHost().load("/a/httpd.conf")
    assert caught.value.line is None and str(caught.value).startswith("/a/httpd.conf: cannot read")


def test_include_cycle_is_an_error():
    host = FakeHost({"/a/httpd.conf": "Include a.conf\n", "/a/a.conf": "Include httpd.conf\n"})
    with pytest.raises(ApacheConfigError) as caught:
        host.load("/a/httpd.conf")
    assert "include cycle" in caught.value.message and caught.value.path == "/a/a.conf"


def test_directory_include_reads_every_file_in_it():
    host = FakeHost({
        "/a/httpd.conf": "Include /a/vhosts\n",
        "/a/vhosts/1.conf": vhost(SITE),
        "/a/vhosts/sub/2.conf": vhost(SITE.replace("a.example", "b.example")),
    })
    config = host.load("/a/httpd.conf")
    assert [site.server_name for site in config.sites()] == ["a.example", "b.example"]


# --- Loader: variables, conditions, server root ---------------------------------------------------


def test_variables_from_define_and_env():
    config = one_file(
        "Define CERTS /etc/ssl/certs\nDefine EMPTY\n"
        + vhost("  SSLEngine on\n  SSLCertificateFile ${CERTS}/a.crt\n  SSLCertificateKeyFile ${APACHE_KEYS}/a.key\n"
                "  SSLCACertificateFile ${UNDEFINED}/x.pem\n"),
        env={"APACHE_KEYS": "/etc/ssl/private", "CERTS": "/not/used"})
    site, = config.tls_sites()
    assert site.certificates == ["/etc/ssl/certs/a.crt"]
    assert site.keys == ["/etc/ssl/private/a.key"]
    # Apache keeps an undefined variable as written (and warns).
    assert site.ssl_ca_certificate_file == "/etc/httpd/${UNDEFINED}/x.pem"


def test_define_applies_from_where_it_is_read():
    config = one_file("ServerName ${X}\nDefine X late\nServerAdmin ${X}\nUndefine X\nServerAlias ${X}\n")
    assert [d.args for d in config.main.directives if d.name != "Define" and d.name != "Undefine"] == [["${X}"], ["late"], ["${X}"]]


@pytest.mark.parametrize("condition, modules, holds", [
    ("mod_ssl.c", {"ssl_module"}, True),
    ("ssl_module", {"ssl_module"}, True),
    ("mod_ssl.c", {"mod_ssl.c"}, True),
    ("!mod_ssl.c", {"ssl_module"}, False),
    ("mod_ssl.c", {"core_module"}, False),
    ("!ssl_module", {"core_module"}, True),
    ("mod_ssl.c", None, True),
    ("!mod_ssl.c", None, False),
])
def test_ifmodule(condition, modules, holds):
    config = one_file("<IfModule %s>\n%s</IfModule>\n" % (condition, vhost(SITE)), modules=modules)
    assert len(config.tls_sites()) == (1 if holds else 0)


@pytest.mark.parametrize("condition, defines, holds", [
    ("SSL", {"SSL"}, True),
    ("SSL", set(), False),
    ("!SSL", set(), True),
    ("!SSL", {"SSL"}, False),
    ("LATE", set(), True),
])
def test_ifdefine(condition, defines, holds):
    config = one_file("Define LATE\n<IfDefine %s>\n%s</IfDefine>\n" % (condition, vhost(SITE)), defines=defines)
    assert len(config.sites()) == (1 if holds else 0)


def test_false_condition_hides_includes_and_defines():
    host = FakeHost({
        "/a/httpd.conf": "<IfModule mod_nope.c>\n  Include /a/missing.conf\n  Define X y\n</IfModule>\nServerName ${X}\n",
    })
    config = host.load("/a/httpd.conf", modules={"ssl_module"})
    assert config.server_directives("servername")[0].args == ["${X}"]


def test_server_root_directive_and_relative_paths():
    host = FakeHost({
        "/etc/x/conf/httpd.conf": 'ServerRoot "/etc/x"\nInclude conf.d/*.conf\n',
        "/etc/x/conf.d/a.conf": vhost("  SSLEngine on\n  SSLCertificateFile certs/a.crt\n  SSLCertificateKeyFile /k/a.key\n"),
    })
    config = host.load("/etc/x/conf/httpd.conf")
    assert config.server_root == "/etc/x"
    assert config.tls_sites()[0].certificates == ["/etc/x/certs/a.crt"]


# --- Model -----------------------------------------------------------------------------------------


def test_every_corpus_file_is_loaded_with_its_exact_text():
    host, config, dummy = load_tree("debian")
    assert sorted(config.files) == sorted(path for path in host.files if "/sites-available/" not in path or
                                          any(host.realpath(link) == path for link in DEBIAN_LINKS))
    for path, config_file in config.files.items():
        assert config_file.text == host.files[path]
        assert config_file.newline == ("\r\n" if path in DEBIAN_CRLF else "\n")


def test_debian_sites():
    dummy, config, dummy = load_tree("debian")
    sites = config.sites()
    assert [(site.server_names, site.addresses, site.ports, site.tls) for site in sites] == [
        ([], ["*:80"], [80], False),
        ([], ["_default_:443"], [443], True),
        (["example.com", "www.example.com"], ["*:80"], [80], False),
        (["example.com", "www.example.com"], ["*:443", "[2001:db8::1]:443"], [443, 443], True),
        (["api.example.com"], ["*:443"], [443], True),
        (["legacy.example.com"], ["*:8443"], [8443], True),
    ]
    # The symlinked site is read at its target.
    assert sites[1].path == DEBIAN + "/sites-available/default-ssl.conf" and sites[1].line == 2
    assert [site.index for site in config.tls_sites()] == [1, 3, 4, 5]


def test_site_record():
    dummy, config, dummy = load_tree("debian")
    example = config.sites()[3]
    # What server_info returns for it: the one site record, Apache's own facts under details.
    assert site_record(example, "apache") == {
        "server": "apache",
        "path": DEBIAN + "/sites-available/example.com.conf",
        "line": 10,
        "index": 3,
        "server_names": ["example.com", "www.example.com"],
        "sockets": [{"address": "*", "port": 443, "tls": True, "quic": False}, {"address": "[2001:db8::1]", "port": 443, "tls": True, "quic": False}],
        "ssl_certificate": ["/etc/letsencrypt/live/example.com/fullchain.pem"],
        "ssl_certificate_key": ["/etc/letsencrypt/live/example.com/privkey.pem"],
        "chain_file": None,
        "stapling": "off",
        "stapling_responder": None,
        "verifies_clients": False,
        "uses_variables": False,
        "outcome": None,
        "reason": None,
        "details": {"addresses": ["*:443", "[2001:db8::1]:443"], "ports": [443, 443], "ssl_certificate_chain_file": None,
                    "ssl_ca_certificate_file": None, "macro": None},
    }
    api = config.sites()[4]
    assert api.verifies_clients and api.ssl_ca_certificate_file == "/etc/ssl/clients/ca.pem"


def test_rhel_sites_and_server_directives():
    dummy, config, dummy = load_tree("rhel")
    assert config.server_root == RHEL
    assert [(site.server_name, site.tls, site.verifies_clients) for site in config.sites()] == [
        ("app.example.com", True, False), ("partners.example.com", True, True), ("app.example.com", False, False), (None, True, False)]
    assert config.sites()[3].path == RHEL + "/conf.d/ssl.conf"
    partners = config.sites()[1]
    assert partners.chain_file == "/etc/pki/tls/certs/partners.chain.pem"
    assert partners.ssl_ca_certificate_file == "/etc/httpd/conf/partners-ca.pem"
    assert [d.args for d in config.server_directives("SSLStaplingCache")] == [["shmcb:/run/httpd/ssl_stapling(32768)"]]
    assert [d.args[0] for d in config.server_directives("loadmodule")][-1] == "ssl_module"
    assert [d.args for d in config.server_directives("Listen")] == [["80"], ["443", "https"]]


def test_server_level_values_are_inherited_and_vhost_wins():
    config = one_file("SSLEngine on\nSSLUseStapling on\nSSLCertificateFile /s.crt\n"
                      + vhost("  ServerName a\n") + vhost("  ServerName b\n  SSLEngine off\n  SSLUseStapling off\n"))
    first, second = config.sites()
    assert (first.tls, first.stapling, first.certificates) == (True, True, ["/s.crt"])
    assert (second.tls, second.stapling) == (False, False)
    assert config.tls_sites() == [first]


def test_vhost_without_ssl_engine_on_port_80_is_not_tls():
    config = one_file(vhost("  ServerName a\n  SSLCertificateFile /a.crt\n", "<VirtualHost *:80>"))
    assert config.sites()[0].tls is False and config.tls_sites() == []


@pytest.mark.parametrize("where, mode, verifies", [
    ("vhost", "require", True), ("vhost", "optional_no_ca", True), ("vhost", "none", False),
    ("location", "optional", True), ("server", "require", True), ("server-directory", "require", True),
])
def test_verifies_clients(where, mode, verifies):
    line = "SSLVerifyClient %s\n" % mode
    body = SITE + (line if where == "vhost" else "") + ("<Location /x>\n%s</Location>\n" % line if where == "location" else "")
    head = (line if where == "server" else "") + ("<Directory /x>\n%s</Directory>\n" % line if where == "server-directory" else "")
    assert one_file(head + vhost(body)).sites()[0].verifies_clients is verifies


# --- Editor: corpus ---------------------------------------------------------------------------------


def test_present_on_the_debian_tree():
    dummy, config, cache = load_tree("debian")
    edits, summary = plan(config, cache)
    assert sorted(edits) == sorted([cache] + [DEBIAN + "/sites-available/" + name for name in ("default-ssl.conf", "example.com.conf", "legacy.conf")])
    assert edits[cache] == cache_text(SPEC)
    for name in ("default-ssl.conf", "example.com.conf"):
        assert edits[DEBIAN + "/sites-available/" + name] == expected("debian/sites-available/" + name)
    assert edits[DEBIAN + "/sites-available/legacy.conf"] == expected("debian/sites-available/legacy.conf", crlf=True)
    by_name = {tuple(entry["server_names"]): entry for entry in summary}
    assert by_name[("legacy.example.com",)]["changes"] == [
        "add SSLUseStapling on", "set SSLStaplingResponderTimeout 5 (was 10)", "add SSLStaplingReturnResponderErrors off",
        "set SSLCACertificateFile /etc/ssl/legacy/chain.pem (was /etc/ssl/legacy/old-chain.pem)"]
    assert {"path": cache, "line": 3, "index": None, "server_names": [], "changes": ["add SSLStaplingCache " + SPEC]} in summary


def test_present_on_the_rhel_tree():
    dummy, config, cache = load_tree("rhel")
    edits, summary = plan(config, cache)
    assert sorted(edits) == [RHEL + "/conf.d/apps.conf", RHEL + "/conf.d/ssl.conf"]
    for name in ("apps.conf", "ssl.conf"):
        assert edits[RHEL + "/conf.d/" + name] == expected("rhel/conf.d/" + name)
    changes = [change for entry in summary if entry["index"] is None for change in entry["changes"]]
    assert changes == ["SSLStaplingCache inside <VirtualHost> is a syntax error in Apache (server scope only); not touched",
                       "keep SSLStaplingCache shmcb:/run/httpd/ssl_stapling(32768)"]


def test_client_certificate_vhost_keeps_its_ca_file():
    dummy, config, cache = load_tree("rhel")
    edits, summary = plan(config, cache)
    partners = next(entry for entry in summary if entry["server_names"] == ["partners.example.com"])
    assert partners["changes"][0] == ("keep the CA set (the site verifies client certificates): Apache finds the issuer in "
                                      "SSLCertificateChainFile /etc/pki/tls/certs/partners.chain.pem")
    assert not any("SSLCACertificateFile" in change for change in partners["changes"])
    assert "SSLCACertificateFile conf/partners-ca.pem\n" in edits[RHEL + "/conf.d/apps.conf"]
    dummy, config, cache = load_tree("debian")
    api = next(entry for entry in plan(config, cache)[1] if entry["server_names"] == ["api.example.com"])
    assert "the existing SSLCACertificateFile /etc/ssl/clients/ca.pem" in api["changes"][0]


def test_nothing_to_do_gives_no_edits():
    dummy, config, cache = load_tree("done")
    edits, summary = plan(config, cache)
    assert edits == {}
    assert summary == [{"path": DONE + "/httpd.conf", "line": 5, "index": None, "server_names": [],
                        "changes": ["keep SSLStaplingCache shmcb:/run/httpd/ocsp(128000)"]}]


@pytest.mark.parametrize("tree", sorted(TREES))
def test_present_twice_changes_nothing_the_second_time(tree):
    host, config, cache = load_tree(tree)
    host.apply(plan(config, cache)[0])
    dummy, config, cache = load_tree(tree, host)
    assert plan(config, cache)[0] == {}


@pytest.mark.parametrize("tree", sorted(TREES))
def test_present_then_absent_gives_back_every_file_byte_for_byte(tree):
    host, config, cache = load_tree(tree)
    original = dict(host.files)
    host.apply(plan(config, cache)[0])
    if tree == "debian":
        # The caller enables the new global file (a2enconf); the module only writes it.
        host.links[DEBIAN + "/conf-enabled/ocsp-stapling.conf"] = "../conf-available/ocsp-stapling.conf"
    dummy, config, cache = load_tree(tree, host)
    edits = plan(config, cache, state="absent")[0]
    if tree == "debian":
        assert edits[cache] is None
    host.apply(edits)
    assert host.files == original


@pytest.mark.parametrize("tree", sorted(TREES))
def test_absent_keeping_the_cache_restores_every_other_file(tree):
    """keep_cache: the roles leave the server-wide SSLStaplingCache, since a graceful restart to Apache's default cache exits."""
    host, config, cache = load_tree(tree)
    original = dict(host.files)
    host.apply(plan(config, cache)[0])
    if tree == "debian":
        host.links[DEBIAN + "/conf-enabled/ocsp-stapling.conf"] = "../conf-available/ocsp-stapling.conf"
    stapled_cache = host.files.get(cache)
    dummy, config, cache = load_tree(tree, host)
    edits = plan_stapling(config, CHAINS, cache_path=cache, cache_spec=SPEC, state="absent", keep_cache=True)[0]
    assert cache not in edits
    host.apply(edits)
    if stapled_cache is not None and cache not in original:
        assert host.files.pop(cache) == stapled_cache
    assert host.files == original


def test_absent_summary_and_cache_file_not_enabled():
    host, config, cache = load_tree("debian")
    host.apply(plan(config, cache)[0])
    # Not enabled: not part of the configuration, but read from its path to be removed.
    dummy, config, cache = load_tree("debian", host)
    assert cache not in config.files
    edits, summary = plan(config, cache, state="absent")
    assert edits[cache] is None
    legacy = next(entry for entry in summary if entry["server_names"] == ["legacy.example.com"])
    assert legacy["changes"] == ["restore SSLStaplingResponderTimeout 10", "restore SSLCACertificateFile /etc/ssl/legacy/old-chain.pem",
                                 "remove SSLUseStapling on", "remove SSLStaplingReturnResponderErrors off"]


def test_new_chain_updates_our_line_and_keeps_the_original_value():
    host, config, cache = load_tree("debian")
    host.apply(plan(config, cache)[0])
    original = debian().files
    chains = dict(CHAINS)
    chains["/etc/ssl/legacy/legacy.crt"] = "/etc/ssl/legacy/new-chain.pem"
    chains["/etc/letsencrypt/live/example.com/fullchain.pem"] = "/etc/ssl/le/chain.pem"
    dummy, config, cache = load_tree("debian", host)
    edits = plan(config, cache, chains)[0]
    assert sorted(edits) == [DEBIAN + "/sites-available/example.com.conf", DEBIAN + "/sites-available/legacy.conf"]
    assert "# ocsp.stapling: was /etc/ssl/legacy/old-chain.pem\r\n\tSSLCACertificateFile /etc/ssl/legacy/new-chain.pem\r\n" in edits[
        DEBIAN + "/sites-available/legacy.conf"]
    host.apply(edits)
    host.links[DEBIAN + "/conf-enabled/ocsp-stapling.conf"] = "../conf-available/ocsp-stapling.conf"
    dummy, config, cache = load_tree("debian", host)
    host.apply(plan(config, cache, state="absent")[0])
    assert host.files == original


# --- Editor: cases ----------------------------------------------------------------------------------


def test_present_exact_output_for_a_minimal_vhost():
    config = one_file("Listen 443\n" + vhost(SITE + "    DocumentRoot /srv/a\n"))
    edits, dummy = plan(config, "/etc/httpd/conf.d/ocsp.conf", A_CHAINS)
    assert edits["/etc/httpd/httpd.conf"] == (
        "Listen 443\n"
        "<VirtualHost *:443>\n"
        "    ServerName a.example\n"
        "    SSLEngine on\n"
        "    SSLCertificateFile /etc/ssl/a.crt\n"
        "    SSLCertificateKeyFile /etc/ssl/a.key\n"
        "    # ocsp.stapling\n"
        "    SSLUseStapling on\n"
        "    # ocsp.stapling\n"
        "    SSLStaplingResponderTimeout 5\n"
        "    # ocsp.stapling\n"
        "    SSLStaplingReturnResponderErrors off\n"
        "    # ocsp.stapling\n"
        "    SSLCACertificateFile /etc/ssl/a-chain.pem\n"
        "    DocumentRoot /srv/a\n"
        "</VirtualHost>\n"
    )
    assert edits["/etc/httpd/conf.d/ocsp.conf"] == (
        "# Managed by ocsp.stapling\n<IfModule mod_ssl.c>\n    SSLStaplingCache shmcb:${APACHE_RUN_DIR}/ocsp-stapling(128000)\n</IfModule>\n")


def test_present_changes_in_place_with_the_marker_above():
    config = one_file("<VirtualHost *:443>\n" + SITE + "\tsslUseStapling  Off  \n    SSLCACertificateFile \"/etc/ssl/old chain.pem\"\n</VirtualHost>\n"
                      "SSLStaplingCache shmcb:/run/ocsp(128000)\n")
    edits, summary = plan(config, "/x.conf", {"/etc/ssl/a.crt": "/etc/ssl/new chain.pem"})
    assert edits == {"/etc/httpd/httpd.conf": (
        "<VirtualHost *:443>\n" + SITE
        + "\t# ocsp.stapling: was Off\n\tsslUseStapling  on  \n"
        + "    # ocsp.stapling: was \"/etc/ssl/old chain.pem\"\n    SSLCACertificateFile \"/etc/ssl/new chain.pem\"\n"
        + "    # ocsp.stapling\n    SSLStaplingResponderTimeout 5\n    # ocsp.stapling\n    SSLStaplingReturnResponderErrors off\n"
        + "</VirtualHost>\nSSLStaplingCache shmcb:/run/ocsp(128000)\n")}
    assert summary[0]["changes"] == ["set sslUseStapling on (was Off)", "add SSLStaplingResponderTimeout 5", "add SSLStaplingReturnResponderErrors off",
                                     "set SSLCACertificateFile /etc/ssl/new chain.pem (was /etc/ssl/old chain.pem)"]


def test_values_already_right_in_any_case_are_kept():
    config = one_file(vhost(SITE + "    SSLUSESTAPLING ON\n    sslstaplingrespondertimeout 5\n    SSLStaplingReturnResponderErrors OFF\n"
                            "    SSLCACertificateFile /etc/ssl/./a-chain.pem\n") + "SSLStaplingCache shmcb:/x(1)\n")
    assert plan(config, "/x.conf", A_CHAINS)[0] == {}


def test_server_scope_value_counts_for_the_vhost():
    config = one_file("SSLUseStapling on\nSSLStaplingResponderTimeout 5\nSSLStaplingCache shmcb:/x(1)\n" + vhost(SITE))
    edits = plan(config, "/x.conf", A_CHAINS)[0]
    text = edits["/etc/httpd/httpd.conf"]
    assert "SSLUseStapling on\n" not in text.split("<VirtualHost")[1] and "SSLStaplingReturnResponderErrors off" in text


def test_sites_not_selected_are_not_touched():
    config = one_file(vhost(SITE) + "SSLStaplingCache shmcb:/x(1)\n")
    assert plan(config, "/x.conf", {"/etc/ssl/other.crt": "/c.pem"})[0] == {}


def test_insertion_point_without_ssl_directives_in_the_vhost():
    config = one_file("SSLEngine on\nSSLCertificateFile /etc/ssl/a.crt\nSSLStaplingCache shmcb:/x(1)\n"
                      "<VirtualHost *:443>\n\tServerName a\n\tDocumentRoot /srv\n\t<Directory /srv>\n\t\tRequire all granted\n\t</Directory>\n</VirtualHost>\n"
                      "<VirtualHost *:443>\n</VirtualHost>\n")
    edits = plan(config, "/x.conf", A_CHAINS, )[0]["/etc/httpd/httpd.conf"]
    assert "\tServerName a\n\t# ocsp.stapling\n\tSSLUseStapling on\n" in edits
    assert "<VirtualHost *:443>\n    # ocsp.stapling\n    SSLUseStapling on\n" in edits


def test_crlf_file_gets_crlf_lines():
    config = one_file(vhost(SITE).replace("\n", "\r\n"), path="/w/httpd.conf")
    text = plan(config, "/x.conf", A_CHAINS)[0]["/w/httpd.conf"]
    assert "\r\n    # ocsp.stapling\r\n    SSLUseStapling on\r\n" in text and "\n" not in text.replace("\r\n", "")


def test_variable_value_is_not_changed():
    config = one_file("Define OLD /etc/ssl/old.pem\n" + vhost(SITE + "    SSLCACertificateFile ${OLD}\n"))
    with pytest.raises(ApacheConfigError) as caught:
        plan(config, "/x.conf", A_CHAINS)
    assert caught.value.line == 7 and "variable" in caught.value.message


def test_value_on_a_continuation_line_is_not_changed():
    config = one_file(vhost(SITE + "    SSLUseStapling \\\n        off\n"))
    with pytest.raises(ApacheConfigError) as caught:
        plan(config, "/x.conf", A_CHAINS)
    assert caught.value.line == 6 and "one line" in caught.value.message


def test_directive_in_a_shared_include_is_edited_once():
    host = FakeHost({
        "/a/httpd.conf": "SSLStaplingCache shmcb:/x(1)\n" + vhost(SITE + "  Include /a/common.conf\n")
        + vhost(SITE.replace("a.example", "b.example") + "  Include /a/common.conf\n"),
        "/a/common.conf": "SSLUseStapling off\n",
    })
    edits = plan(host.load("/a/httpd.conf"), "/x.conf", A_CHAINS)[0]
    assert edits["/a/common.conf"] == "# ocsp.stapling: was off\nSSLUseStapling on\n"
    assert edits["/a/httpd.conf"].count("SSLStaplingResponderTimeout") == 2


def test_existing_cache_file_of_ours_with_another_spec_is_left_when_in_effect():
    host = FakeHost({"/a/httpd.conf": "Include /a/conf.d/*.conf\n" + vhost(SITE),
                     "/a/conf.d/ocsp.conf": cache_text("shmcb:/old(1)")})
    edits, summary = plan(host.load("/a/httpd.conf"), "/a/conf.d/ocsp.conf", A_CHAINS)
    assert "/a/conf.d/ocsp.conf" not in edits
    assert ["keep SSLStaplingCache shmcb:/old(1)"] in [entry["changes"] for entry in summary]


def test_cache_inside_a_false_condition_does_not_count():
    config = one_file("<IfModule mod_nope.c>\nSSLStaplingCache shmcb:/x(1)\n</IfModule>\n" + vhost(SITE), modules={"ssl_module"})
    edits = plan(config, "/c.conf", A_CHAINS)[0]
    assert edits["/c.conf"] == cache_text(SPEC)


def test_foreign_file_at_the_cache_path_is_refused():
    host = FakeHost({"/a/httpd.conf": vhost(SITE), "/a/ocsp.conf": "# mine\n"})
    with pytest.raises(ApacheConfigError) as caught:
        plan(host.load("/a/httpd.conf"), "/a/ocsp.conf", A_CHAINS)
    assert caught.value.path == "/a/ocsp.conf"


def test_absent_keeps_a_cache_file_that_is_not_only_ours():
    host = FakeHost({"/a/httpd.conf": "Include /a/ocsp.conf\n", "/a/ocsp.conf": cache_text(SPEC) + "ServerTokens Prod\n"})
    assert plan(host.load("/a/httpd.conf"), "/a/ocsp.conf", state="absent")[0] == {}


def test_ifmodule_wrapped_site_is_gone_without_mod_ssl():
    host = debian()
    config = host.load(DEBIAN + "/apache2.conf", server_root=DEBIAN, env=DEBIAN_ENV, modules={"core_module"})
    assert DEBIAN + "/sites-available/default-ssl.conf" in config.files
    assert [site.addresses for site in config.sites()] == [["*:80"], ["*:80"], ["*:443", "[2001:db8::1]:443"], ["*:443"], ["*:8443"]]
    assert config.server_directives("Listen")[-1].args == ["80"]


def test_thin_wrappers_agree_with_plan_stapling():
    dummy, config, cache = load_tree("rhel")
    edits, summary = plan(config, cache)
    assert stapling_edits(config, CHAINS, cache_path=cache, cache_spec=SPEC) == edits
    assert edit_summary(config, CHAINS, cache_path=cache, cache_spec=SPEC) == summary


def test_absent_without_markers_changes_nothing():
    for tree in TREES:
        dummy, config, cache = load_tree(tree)
        assert plan(config, cache, state="absent")[0] == {}


def test_absent_refuses_a_marker_above_something_else():
    config = one_file("# ocsp.stapling\nServerName a\n")
    with pytest.raises(ApacheConfigError) as caught:
        plan(config, "/x.conf", state="absent")
    assert caught.value.line == 1


def test_absent_refuses_a_damaged_marker():
    config = one_file("# ocsp.stapling: was \"unclosed\nSSLUseStapling on\n")
    with pytest.raises(ApacheConfigError) as caught:
        plan(config, "/x.conf", state="absent")
    assert caught.value.line == 1 and "damaged" in caught.value.message


def test_summary_of_an_absent_marker_outside_any_vhost():
    config = one_file("# ocsp.stapling\nSSLUseStapling on\n")
    edits, summary = plan(config, "/x.conf", state="absent")
    assert edits == {"/etc/httpd/httpd.conf": ""}
    assert summary == [{"path": "/etc/httpd/httpd.conf", "line": 2, "index": None, "server_names": [], "changes": ["remove SSLUseStapling on"]}]


def test_an_edit_that_would_change_other_directives_is_refused(monkeypatch):
    from ansible_collections.ocsp.stapling.plugins.module_utils import _apache  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(_apache, "_quote", lambda value: value + " extra")
    with pytest.raises(ApacheConfigError) as caught:
        plan(one_file(vhost(SITE + "    SSLUseStapling off\n")), "/x.conf", A_CHAINS)
    assert "change more than" in caught.value.message


def test_unknown_state():
    with pytest.raises(ValueError):
        plan(one_file(""), "/x.conf", state="maybe")


# --- Scale -----------------------------------------------------------------------------------------


def test_parse_2000_vhosts_in_200_files():
    files = {"/a/httpd.conf": "ServerRoot /a\nListen 443\nSSLStaplingCache shmcb:/run/ocsp(128000)\nIncludeOptional sites/*.conf\n"}
    site = (
        "# site {n}\n"
        "<VirtualHost *:443>\n"
        "    ServerName s{n}.example.com\n"
        "    ServerAlias www.s{n}.example.com\n"
        "    SSLEngine on\n"
        "    SSLCertificateFile /etc/ssl/s{n}.crt\n"
        "    SSLCertificateKeyFile /etc/ssl/s{n}.key\n"
        "    <Location />\n"
        "        ProxyPass http://127.0.0.1:{port}/\n"
        "    </Location>\n"
        "</VirtualHost>\n"
    )
    for number in range(200):
        files["/a/sites/%03d.conf" % number] = "".join(site.format(n=number * 10 + index, port=8000 + index) for index in range(10))
    host = FakeHost(files)
    started = time.perf_counter()
    config = host.load("/a/httpd.conf")
    parsed = time.perf_counter()
    sites = config.tls_sites()
    modelled = time.perf_counter()
    edits = plan(config, "/x.conf", {s.certificates[0]: "/etc/ssl/chain.pem" for s in sites})[0]
    edited = time.perf_counter()
    print("\napache: 2000 vhosts in 200 files (%d KiB): parse %.3fs, sites %.3fs, edits for all %.3fs" % (
        sum(len(text) for text in files.values()) // 1024, parsed - started, modelled - parsed, edited - modelled))
    assert len(sites) == 2000 and len(config.files) == 201 and len(edits) == 200


# --- mod_macro ---------------------------------------------------------------------------------------

MACROS = (
    "<Macro TLSSite $name @root>\n"
    "  # a comment of the macro, dropped as httpd drops it\n"
    "  <VirtualHost *:443>\n"
    "    ServerName $name\n"
    "    ServerAlias www.$name ${name}.test $namey\n"
    "    DocumentRoot @root\n"
    "    SSLEngine on\n"
    "    SSLCertificateFile /etc/ssl/$name.crt\n"
    "    SSLCertificateKeyFile /etc/ssl/$name.key\n"
    "  </VirtualHost>\n"
    "</Macro>\n"
)


def test_a_use_of_a_macro_makes_the_sites_httpd_makes():
    config = one_file(MACROS + "Use TLSSite a.example \"/srv/a b\"\nuse tlssite b.example /srv/b\n")
    first, second = config.tls_sites()
    # Plain text replacement, as mod_macro: `$name` inside `$namey` too, `${name}` (a Define) not.
    assert first.server_names == ["a.example", "www.a.example", "${name}.test", "a.exampley"]
    assert first.certificates == ["/etc/ssl/a.example.crt"] and second.certificates == ["/etc/ssl/b.example.crt"]
    # An @ parameter is written in quotes: the value with a space stays one word.
    assert [d.args for d in first.directive.block if d.key == "documentroot"] == [["/srv/a b"]]
    # The site is found at its Use line; its text is the macro's.
    assert (first.path, first.line, second.line) == ("/etc/httpd/httpd.conf", 12, 13)
    assert first.macro.record() == {"name": "tlssite", "path": "/etc/httpd/httpd.conf", "line": 12,
                                    "definition_path": "/etc/httpd/httpd.conf", "definition_line": 1}
    assert first.directive.path == 'macro \'tlssite\' (defined on line 1 of "/etc/httpd/httpd.conf") used on line 12 of "/etc/httpd/httpd.conf"'
    assert site_record(first, "apache")["details"]["macro"]["line"] == 12
    assert [site.index for site in config.sites()] == [0, 1]


@pytest.mark.parametrize("modules, count", [(None, 2), ({"macro_module", "ssl_module"}, 2), ({"mod_macro.c"}, 2), ({"ssl_module"}, 0)])
def test_macros_are_expanded_only_where_mod_macro_is_loaded(modules, count):
    config = one_file(MACROS + "Use TLSSite a.example /srv/a\nUse TLSSite b.example /srv/b\n", modules=modules)
    assert len(config.sites()) == count


def test_substitution_takes_the_leftmost_then_the_longest_name():
    config = one_file("<Macro M $a $ab %x>\nServerAdmin $ab-$a-%x-$a$ab\n</Macro>\nUse M one two \"th ree\"\n")
    assert config.server_directives("ServerAdmin")[0].args == ["two-one-th", "ree-onetwo"]


def test_a_macro_body_is_read_only_where_it_is_used():
    config = one_file("<Macro M $v>\nDefine INSIDE $v\n</Macro>\nServerName ${INSIDE}\nUse M set\nServerAlias ${INSIDE}\n")
    assert config.server_directives("ServerName")[0].args == ["${INSIDE}"]
    assert config.server_directives("ServerAlias")[0].args == ["set"]


def test_a_use_inside_a_macro_and_inside_a_vhost():
    config = one_file(
        "<Macro Cert $n>\n  SSLEngine on\n  SSLCertificateFile /etc/ssl/$n.crt\n</Macro>\n"
        "<Macro Site $n>\n<VirtualHost *:443>\n  ServerName $n\n  Use Cert $n\n</VirtualHost>\n</Macro>\n"
        "Use Site nested.example\n"
        "<VirtualHost *:443>\n  ServerName plain.example\n  Use Cert plain.example\n</VirtualHost>\n")
    nested, plain = config.tls_sites()
    assert nested.certificates == ["/etc/ssl/nested.example.crt"] and plain.certificates == ["/etc/ssl/plain.example.crt"]
    # The outermost Use is the line a person finds; the vhost written in the file is no macro's.
    assert (nested.macro.name, nested.line) == ("site", 11) and plain.macro is None and plain.line == 12


@pytest.mark.parametrize("text, message", [
    ("Use Missing a\n", "macro 'missing' undefined"),
    ("<Macro M $a>\nServerName $a\n</Macro>\nUndefMacro M\nUse M x\n", "macro 'm' undefined"),
    ("UndefMacro M\n", "cannot remove undefined macro 'M'"),
    ("<Macro M $a>\nServerName $a\n</Macro>\nUse M\n", "used with 0 arguments instead of 1"),
    ("<Macro M $a>\nUse M $a\n</Macro>\nUse M x\n", "recursive use of macro 'm' is invalid"),
    ("<Macro M $a $a>\nServerName $a\n</Macro>\n", "argument name conflict in macro 'M'"),
    ("Use\n", "no macro name specified with Use"),
])
def test_macro_errors_are_httpd_s(text, message):
    with pytest.raises(ApacheConfigError, match=message):
        one_file(text)


def test_a_site_made_by_a_macro_is_left_alone_with_what_to_do():
    text = MACROS + "Use TLSSite a.example /srv/a\n" + vhost(SITE)
    config = one_file(text)
    chains = {"/etc/ssl/a.example.crt": "/etc/ssl/a.example-chain.pem", "/etc/ssl/a.crt": "/etc/ssl/a-chain.pem"}
    edits, summary, outcomes = plan_stapling(config, chains, cache_path="/etc/httpd/conf.d/ocsp.conf", cache_spec=SPEC)
    # The file is edited only in the vhost written out in it: the macro's text is the same.
    new = edits["/etc/httpd/httpd.conf"]
    assert new.startswith(MACROS + "Use TLSSite a.example /srv/a\n<VirtualHost *:443>\n") and new.count("SSLUseStapling on") == 1
    refused = outcomes[0]
    assert (refused["path"], refused["line"], refused["server_names"][0], refused["outcome"]) == (
        "/etc/httpd/httpd.conf", 12, "a.example", "not handled")
    assert refused["reason"].startswith("this VirtualHost is the text of macro 'tlssite' (defined at /etc/httpd/httpd.conf:1), used at "
                                        "/etc/httpd/httpd.conf:12") and "SSLCACertificateFile /etc/ssl/a.example-chain.pem" in refused["reason"]
    assert outcomes[1]["outcome"] == "stapled" and summary[0]["changes"][0] == "add SSLUseStapling on"


def test_a_value_set_by_a_macro_inside_a_written_vhost_is_not_changed():
    macro = "<Macro NoStaple>\n  SSLUseStapling off\n</Macro>\n"
    config = one_file(macro + vhost(SITE + "    Use NoStaple\n"))
    edits, dummy, outcomes = plan_stapling(config, A_CHAINS, cache_path="/etc/httpd/conf.d/ocsp.conf", cache_spec=SPEC)
    assert "/etc/httpd/httpd.conf" not in edits
    assert outcomes[0]["outcome"] == "not handled" and [outcomes[0]["reason"]] == [
        "SSLUseStapling off in this VirtualHost comes from macro 'nostaple' (defined at /etc/httpd/httpd.conf:1), used at "
        "/etc/httpd/httpd.conf:9, shared by every Use of it; the collection never edits a macro. Set it in the macro by hand, or write "
        "SSLUseStapling on in this VirtualHost after the Use line"]


def test_a_written_vhost_whose_certificate_comes_from_a_macro_is_stapled_in_its_own_lines():
    macro = "<Macro Cert $n>\n  SSLEngine on\n  SSLCertificateFile /etc/ssl/$n.crt\n  SSLUseStapling on\n</Macro>\n"
    host = FakeHost({"/etc/httpd/httpd.conf": macro + vhost("    ServerName a\n    Use Cert a\n")})
    config = host.load("/etc/httpd/httpd.conf")
    edits, dummy = plan(config, "/etc/httpd/conf.d/ocsp.conf", A_CHAINS)
    new = edits["/etc/httpd/httpd.conf"]
    # SSLUseStapling on is in effect already (from the macro); the other lines go into the vhost, after its ServerName.
    assert new.startswith(macro) and "SSLUseStapling" not in new[len(macro):]
    assert "    ServerName a\n    # ocsp.stapling\n    SSLStaplingResponderTimeout 5\n" in new
    host.apply(edits)
    edits, dummy = plan(host.load("/etc/httpd/httpd.conf"), "/etc/httpd/conf.d/ocsp.conf", A_CHAINS, state="absent")
    assert edits["/etc/httpd/httpd.conf"] == macro + vhost("    ServerName a\n    Use Cert a\n")


# --- Distribution layouts ------------------------------------------------------------------------------
# Trees shaped like each distribution's default (main file, the folders it includes, the TLS vhost its
# package ships, where the -D flags come from), with one site of ours added where a person would add it.

def _vhost(name: str, port: str = "443", indent: str = "    ") -> str:
    return ("<VirtualHost _default_:%s>\n%sServerName %s\n%sSSLEngine on\n%sSSLCertificateFile /etc/ssl/%s.crt\n"
            "%sSSLCertificateKeyFile /etc/ssl/%s.key\n</VirtualHost>\n" % (port, indent, name, indent, indent, name, indent, name))


LAYOUT_TREES = {
    # openSUSE: /etc/apache2/httpd.conf includes vhosts.d/*.conf; the ServerRoot is /srv/www; APACHE_SERVER_FLAGS="SSL".
    "suse": ("/srv/www", "/etc/apache2/httpd.conf", {
        "/etc/apache2/httpd.conf": "Include /etc/apache2/sysconfig.d/loadmodule.conf\nInclude /etc/apache2/listen.conf\n"
                                   "IncludeOptional /etc/apache2/conf.d/*.conf\nIncludeOptional /etc/apache2/vhosts.d/*.conf\n",
        "/etc/apache2/sysconfig.d/loadmodule.conf": "LoadModule ssl_module /usr/lib64/apache2-prefork/mod_ssl.so\n",
        "/etc/apache2/listen.conf": "Listen 80\n<IfDefine SSL>\n<IfModule mod_ssl.c>\nListen 443\n</IfModule>\n</IfDefine>\n",
        "/etc/apache2/conf.d/.keep": "",
        "/etc/apache2/vhosts.d/vhost-ssl.conf": "<IfDefine SSL>\n<IfDefine !NOSSL>\n" + _vhost("suse.example") + "</IfDefine>\n</IfDefine>\n",
        "/etc/sysconfig/apache2": 'APACHE_MODULES="ssl"\nAPACHE_SERVER_FLAGS="SSL"\n',
        "/srv/www/htdocs/index.html": "",
    }, ["suse.example"]),
    # Gentoo: modules.d and vhosts.d, ServerRoot /usr/lib64/apache2, APACHE2_OPTS in /etc/conf.d/apache2.
    "gentoo": ("/usr/lib64/apache2", "/etc/apache2/httpd.conf", {
        "/etc/apache2/httpd.conf": 'ServerRoot "/usr/lib64/apache2"\nInclude /etc/apache2/modules.d/*.conf\n'
                                   "Include /etc/apache2/vhosts.d/*.conf\n",
        "/etc/apache2/modules.d/40_mod_ssl.conf": "<IfDefine SSL>\nLoadModule ssl_module modules/mod_ssl.so\n</IfDefine>\n",
        "/etc/apache2/vhosts.d/00_default_ssl_vhost.conf": (
            "<IfDefine SSL>\n<IfDefine SSL_DEFAULT_VHOST>\n<IfModule ssl_module>\n" + _vhost("localhost", indent="\t")
            + "</IfModule>\n</IfDefine>\n</IfDefine>\n"),
        "/etc/apache2/vhosts.d/shop.conf": _vhost("gentoo.example"),
        "/etc/conf.d/apache2": 'APACHE2_OPTS="-D DEFAULT_VHOST -D INFO -D SSL -D SSL_DEFAULT_VHOST -D LANGUAGE"\n',
        "/usr/lib64/apache2/modules/mod_ssl.so": "",
    }, ["localhost", "gentoo.example"]),
    # Alpine: /etc/apache2/httpd.conf with IncludeOptional /etc/apache2/conf.d/*.conf (apache2-ssl's ssl.conf there);
    # ServerRoot /var/www with the run, logs and modules links.
    "alpine": ("/var/www", "/etc/apache2/httpd.conf", {
        "/etc/apache2/httpd.conf": "ServerRoot /var/www\nLoadModule mpm_prefork_module modules/mod_mpm_prefork.so\n"
                                   "IncludeOptional /etc/apache2/conf.d/*.conf\n",
        "/etc/apache2/conf.d/ssl.conf": "LoadModule ssl_module modules/mod_ssl.so\nListen 443\n" + _vhost("www.example.com"),
        "/etc/apache2/conf.d/site.conf": _vhost("alpine.example"),
        "/var/www/run/.keep": "", "/var/www/modules/mod_ssl.so": "", "/var/www/logs/.keep": "",
    }, ["alpine.example", "www.example.com"]),
    # FreeBSD: /usr/local/etc/apache24/httpd.conf, ServerRoot /usr/local, Include etc/apache24/Includes/*.conf.
    "freebsd": ("/usr/local", "/usr/local/etc/apache24/httpd.conf", {
        "/usr/local/etc/apache24/httpd.conf": 'ServerRoot "/usr/local"\nLoadModule ssl_module libexec/apache24/mod_ssl.so\n'
                                              "Include etc/apache24/extra/httpd-ssl.conf\nInclude etc/apache24/Includes/*.conf\n",
        "/usr/local/etc/apache24/extra/httpd-ssl.conf": "Listen 443\n" + _vhost("www.example.com"),
        "/usr/local/etc/apache24/Includes/site.conf": _vhost("freebsd.example"),
    }, ["www.example.com", "freebsd.example"]),
    # Arch: ServerRoot /etc/httpd, conf/httpd.conf including conf/extra/httpd-ssl.conf (once uncommented).
    "arch": ("/etc/httpd", "/etc/httpd/conf/httpd.conf", {
        "/etc/httpd/conf/httpd.conf": 'ServerRoot "/etc/httpd"\nLoadModule ssl_module modules/mod_ssl.so\n'
                                      "Include conf/extra/httpd-ssl.conf\n",
        "/etc/httpd/conf/extra/httpd-ssl.conf": "Listen 443\n" + _vhost("www.example.com"),
        "/etc/httpd/modules/mod_ssl.so": "", "/etc/httpd/run/.keep": "",
    }, ["www.example.com"]),
}


@pytest.mark.parametrize("layout", sorted(LAYOUT_TREES))
def test_every_tls_site_of_each_distribution_s_layout_is_seen(layout):
    server_root, conf_path, files, names = LAYOUT_TREES[layout]
    host = FakeHost(files)

    def isdir(path):
        return any(name.startswith(path.rstrip("/") + "/") for name in files)
    found, root = apache_layout_root(server_root, conf_path, isdir=isdir)
    assert found == layout
    defines = start_defines(layout, root, host.read)
    config = host.load(conf_path, server_root=server_root, defines=defines)
    assert [site.server_name for site in config.tls_sites()] == names
    # Without the service's defines, what SUSE and Gentoo gate behind -D SSL is not there (as in Apache).
    if defines:
        assert len(host.load(conf_path, server_root=server_root).tls_sites()) < len(names)
    cache = apache_layout(layout, root)["cache_file"]
    if cache:
        # The cache file lands in a folder the configuration includes as a whole: the plan writes it, and Apache reads it.
        edits, dummy, dummy = plan_stapling(config, {"/etc/ssl/%s.crt" % names[-1]: "/etc/ssl/chain.pem"}, cache_path=cache, cache_spec=SPEC)
        host.apply(edits)
        reloaded = host.load(conf_path, server_root=server_root, defines=defines)
        assert [d.args for d in reloaded.server_directives("SSLStaplingCache")] == [[SPEC]]
        assert reloaded.tls_sites()[-1].stapling


# Dead configuration: stapling on for certificates that can never be stapled (remove_dead).

DEAD = {"/etc/ssl/nourl.crt": "the certificate carries no OCSP URL"}
DEAD_SITE = SITE.replace("/etc/ssl/a.crt", "/etc/ssl/nourl.crt").replace("a.example", "nourl.example")


def test_apache_dead_configuration_is_turned_off_and_taken_back():
    text = "SSLUseStapling on\n" + vhost(DEAD_SITE) + vhost(DEAD_SITE.replace("nourl.example", "own.example") + "    SSLUseStapling On\n") + (
        vhost(DEAD_SITE.replace("nourl.example", "forced.example") + "    SSLStaplingForceURL http://ocsp.internal/\n")) + vhost(SITE)
    host = FakeHost({"/etc/httpd/httpd.conf": text})
    cache = "/etc/httpd/conf.d/ocsp.conf"
    edits, summary, outcomes = plan_stapling(host.load("/etc/httpd/httpd.conf"), A_CHAINS, cache_path=cache, cache_spec=SPEC,
                                             not_applicable=DEAD, dead=DEAD)
    new = edits["/etc/httpd/httpd.conf"]
    assert new.startswith("SSLUseStapling on\n<VirtualHost *:443>\n" + DEAD_SITE + "    # ocsp.stapling\n    SSLUseStapling off\n</VirtualHost>\n")
    assert "    # ocsp.stapling: was On\n    SSLUseStapling off\n" in new
    reasons = {entry["server_names"][0]: entry["reason"] for entry in outcomes}
    assert reasons["nourl.example"].endswith("stapling turned off, since it could never work (dead configuration)")
    assert reasons["own.example"].endswith("(dead configuration)")
    assert reasons["forced.example"].endswith("stapling stays on: the configuration names the OCSP responder http://ocsp.internal/ for it")
    host.files.update(edits)
    again = plan_stapling(host.load("/etc/httpd/httpd.conf"), A_CHAINS, cache_path=cache, cache_spec=SPEC, not_applicable=DEAD, dead=DEAD)[0]
    assert again == {}
    host.files.update(plan_stapling(host.load("/etc/httpd/httpd.conf"), {}, cache_path=cache, cache_spec=SPEC, state="absent")[0])
    assert host.files["/etc/httpd/httpd.conf"] == text


def test_apache_dead_configuration_in_a_macro_stays_with_the_reason():
    macro = "<Macro Dead $n>\n  <VirtualHost *:443>\n    ServerName $n\n    SSLEngine on\n    SSLCertificateFile /etc/ssl/nourl.crt\n" \
            "    SSLUseStapling on\n  </VirtualHost>\n</Macro>\nUse Dead x.example\n"
    edits, dummy, outcomes = plan_stapling(one_file(macro), {}, cache_path="/etc/httpd/conf.d/ocsp.conf", cache_spec=SPEC,
                                           not_applicable=DEAD, dead=DEAD)
    assert edits == {}
    assert "stapling stays on: this VirtualHost is the text of macro 'dead'" in outcomes[0]["reason"]
