"""Bad input for both editors: one table per editor, one row per case, run on real files.

Each row is a small configuration tree written under a temporary folder (real files, symlinks,
FIFOs and directories, so that the default reader, globber and realpath are the ones at work) and
one expected outcome:

- ``edit``: the editor changes the files; the result is re-parsed and must staple the expected
  sites, a second run must change nothing, ``state=absent`` must give back every original byte, and
  for rows marked ``server_test`` the real ``nginx -t`` / ``apache2 -t`` must accept the input and
  the result; the row's message fragments must be in the summary of changes;
- ``none``: no site to edit, no configuration file changed (Apache still ensures its SSLStaplingCache
  file, as every run does; ``state=absent`` must then give every byte back);
- ``error``: the run fails with a message that names the file (and the line, when the case is about
  one) and says what to do, and every file is byte-identical afterwards.

The tests run as root, so a mode-000 file would still be readable and a read-only folder still
writable: unreadable files are emulated by a reader that raises EACCES (what open() raises for
anyone else) or are a FIFO or a directory, which root cannot read as a file either; a file the
writer cannot replace is emulated by a writer that raises EROFS for it (the integration test
tests/integration/test_bad_input_servers.py uses a real immutable file instead).

The module's flow is reproduced: load, plan, apply through the transaction (chain files aside),
with a server test that passes, so that a write failure exercises the real rollback.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bench.layouts import snapshot

from ansible_collections.ocsp.stapling.plugins.module_utils import _apache, _nginx
from ansible_collections.ocsp.stapling.plugins.module_utils._configtext import ConfigError, printable, read_text
from ansible_collections.ocsp.stapling.plugins.module_utils._lifecycle import EditFailed, Transaction, run_edit
from ansible_collections.ocsp.stapling.plugins.module_utils._module_glue import json_safe, move_or_oserror, safe_results
from ansible_collections.ocsp.stapling.plugins.module_utils._txn import ChangeRefused, TransactionError, apply_and_test, atomic_write, staging_writer

PORT = 18443  # never bound: the server tests only parse


class Special:
    """A tree entry that is not a file with bytes."""

    def __init__(self, kind: str, target: str = "") -> None:
        self.kind = kind
        self.target = target


DIRECTORY = Special("directory")
FIFO = Special("fifo")
# A folder the editor's base tree has, left out.
ABSENT = Special("absent")


def link(target: str) -> Special:
    return Special("link", target)


@dataclass(frozen=True)
class Case:
    files: dict
    outcome: str
    fragments: tuple = ()
    # (file relative to the tree, line or None) that an error must name.
    where: tuple | None = None
    # Sites (first server name) that must staple after an edit.
    stapled: tuple = ()
    # Relative paths the reader fails on with this errno (unreadable-file emulation).
    unreadable: dict = field(default_factory=dict)
    # Relative paths the writer cannot replace (read-only emulation).
    read_only: tuple = ()
    server_test: bool = False


def case(case_id: str, files: dict, outcome: str, *fragments: str, **kwargs) -> pytest.param:
    return pytest.param(Case(files, outcome, fragments, **kwargs), id=case_id)


# --- nginx -----------------------------------------------------------------------------------------

NGINX_MAIN = """pid {root}/run/nginx.pid;
error_log {root}/logs/error.log;
events {{
{events}}}
http {{
{http}    include {root}/sites/*.conf;
}}
"""


def nginx_main(http: str = "", events: str = "") -> bytes:
    return NGINX_MAIN.format(root="{root}", http=http, events=events).encode()


def as_bytes(value) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def nginx_site(name: str = "a", body: str | bytes = "", head: str = "") -> bytes:
    return (
        b"%sserver {\n"
        b"    listen 127.0.0.1:%d ssl;\n"
        b"    server_name %s.test;\n"
        b"    ssl_certificate {root}/ssl/%s.crt;\n"
        b"    ssl_certificate_key {root}/ssl/%s.key;\n"
        b"%s}\n" % (as_bytes(head), PORT, as_bytes(name), as_bytes(name), as_bytes(name), as_bytes(body))
    )


def chained(editor: str, count: int) -> dict:
    """sites/a.conf including inc/1.inc, which includes inc/2.inc, ... ``count`` levels down."""
    include = "include {root}/inc/%d.inc;\n" if editor == "nginx" else "Include inc/%d.inc\n"
    files = {"inc/%d.inc" % number: (include % (number + 1)).encode() for number in range(1, count)}
    files["inc/%d.inc" % count] = b"# the end\n"
    files["sites/a.conf"] = (include % 1).encode()
    return files


SITE_A = nginx_site()
MAIN = nginx_main()
MB = 1024 * 1024

NGINX_CASES = [
    # Structure
    case("unclosed-server-brace", {"nginx.conf": MAIN, "sites/a.conf": SITE_A[:-2]}, "error",
         'the "server" block opened here is not closed', 'add the missing "}"', where=("sites/a.conf", 1)),
    case("stray-closing-brace", {"nginx.conf": MAIN, "sites/a.conf": SITE_A + b"}\n"}, "error", 'unexpected "}"', where=("sites/a.conf", 7)),
    case("unclosed-http-in-main", {"nginx.conf": MAIN[:-2], "sites/a.conf": SITE_A}, "error", 'the "http" block opened here is not closed',
         where=("nginx.conf", 5)),
    case("brace-inside-directive", {"nginx.conf": MAIN, "sites/a.conf": SITE_A.replace(b"a.key;\n", b"a.key }\n")}, "error",
         'unexpected "}"', 'end the directive "ssl_certificate_key" with ";"', where=("sites/a.conf", 5)),
    case("unterminated-double-quote", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body='    add_header X-A "oops;\n')}, "error",
         "unterminated quoted string", 'close the string with a matching "', where=("sites/a.conf", 6)),
    case("unterminated-single-quote", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body="    return 200 'oops;\n")}, "error",
         "unterminated quoted string", where=("sites/a.conf", 6)),
    case("missing-semicolon-at-eof", {"nginx.conf": MAIN, "sites/a.conf": SITE_A + b"gzip on"}, "error", 'expecting ";" or "}"',
         where=("sites/a.conf", 7)),
    case("backslash-at-eof", {"nginx.conf": MAIN, "sites/a.conf": SITE_A + b"gzip \\"}, "error", 'after "\\"', where=("sites/a.conf", 7)),
    # The site is left alone ("not handled", with what to do: see test_nginx.py), the rest of the run goes on.
    case("server-on-one-line", {"nginx.conf": MAIN, "sites/a.conf": SITE_A.replace(b"\n    ", b" ").replace(b";\n}", b"; }")}, "none"),
    # Includes
    case("include-glob-matching-nothing", {"nginx.conf": nginx_main(http="    include {root}/conf.d/*.conf;\n"), "sites/a.conf": SITE_A},
         "edit", stapled=("a.test",), server_test=True),
    case("include-of-a-directory", {"nginx.conf": nginx_main(http="    include {root}/snippets;\n"), "snippets": DIRECTORY,
                                    "sites/a.conf": SITE_A}, "error", "(Is a directory)", "include the files in it with a glob",
         where=("nginx.conf", 6)),
    case("include-cycle", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body="    include {root}/inc/b.inc;\n"),
                           "inc/b.inc": b"# b\ninclude {root}/inc/c.inc;\n", "inc/c.inc": b"\ninclude {root}/inc/b.inc;\n"}, "error",
         "include cycle: {root}/inc/b.inc -> {root}/inc/c.inc -> {root}/inc/b.inc", "remove the include that closes the cycle",
         where=("inc/c.inc", 2)),
    case("include-glob-matching-itself", {"nginx.conf": MAIN, "sites/a.conf": SITE_A + b"include {root}/sites/*.conf;\n"}, "error",
         "include cycle", where=("sites/a.conf", 7)),
    case("unreadable-file-eacces", {"nginx.conf": MAIN, "sites/a.conf": SITE_A, "sites/b.conf": nginx_site("b")}, "error",
         "(Permission denied)", "make it readable", where=("nginx.conf", 6), unreadable={"sites/b.conf": errno.EACCES}),
    case("unreadable-file-fifo", {"nginx.conf": MAIN, "sites/a.conf": SITE_A, "sites/b.conf": FIFO}, "error",
         "not a regular file but a FIFO", "replace it with a regular file", where=("nginx.conf", 6)),
    case("main-file-is-a-fifo", {"nginx.conf": FIFO}, "error", "cannot read the configuration", "a FIFO", where=("nginx.conf", None)),
    case("dangling-symlink-by-glob", {"nginx.conf": MAIN, "sites/a.conf": SITE_A, "sites/b.conf": link("../available/b.conf")}, "error",
         "(No such file or directory)", "is a symlink to {root}/available/b.conf, which does not exist", where=("nginx.conf", 6)),
    case("dangling-symlink-plain-include", {"nginx.conf": nginx_main(http="    include {root}/extra.conf;\n"), "extra.conf": link("gone.conf"),
                                            "sites/a.conf": SITE_A}, "error", "remove the link or restore its target", where=("nginx.conf", 6)),
    case("symlinked-site-edited-at-target", {"nginx.conf": MAIN, "available/a.conf": SITE_A, "sites/a.conf": link("../available/a.conf")},
         "edit", stapled=("a.test",), server_test=True),
    # Bytes
    case("latin1-comments", {"nginx.conf": MAIN, "sites/a.conf": b"# caf\xe9 \xab{\xbb, na\xefve\n" + nginx_site(body="    # \xe9t\xe9 }\n")},
         "edit", stapled=("a.test",), server_test=True),
    case("latin1-in-a-value", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body='    add_header X-Caf\xe9 "d\xe9j\xe0 vu";\n'.encode("latin-1"))},
         "edit", stapled=("a.test",), server_test=True),
    case("utf8-bom-in-site", {"nginx.conf": MAIN, "sites/a.conf": b"\xef\xbb\xbf" + SITE_A}, "error", "byte order mark",
         "save the file as UTF-8 without BOM", where=("sites/a.conf", 1)),
    case("utf8-bom-in-main", {"nginx.conf": b"\xef\xbb\xbf" + MAIN, "sites/a.conf": SITE_A}, "error", "byte order mark", where=("nginx.conf", 1)),
    case("nul-bytes", {"nginx.conf": MAIN, "sites/a.conf": b"# nul \x00 here\n" + nginx_site(body='    add_header X-Nul "a\x00b";\n'.encode())},
         "edit", stapled=("a.test",), server_test=True),
    case("utf8-server-name", {"nginx.conf": MAIN, "sites/a.conf": SITE_A.replace(b"a.test;", "a.test b\u00fccher.test;".encode())},
         "edit", stapled=("a.test",)),
    case("long-comment-1mb", {"nginx.conf": MAIN, "sites/a.conf": b"# " + b"x" * MB + b"\n" + SITE_A}, "error", "too long parameter",
         "nginx reads at most 4096 bytes", "shorten it", where=("sites/a.conf", 1)),
    case("long-value-1mb", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body='    add_header X-Long "%s";\n' % ("x" * MB))}, "error",
         "too long parameter", where=("sites/a.conf", 6)),
    case("value-of-4096-bytes-is-fine", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body='    add_header X-L "%s";\n' % ("x" * 4094))},
         "edit", stapled=("a.test",), server_test=True),
    case("comment-1mb-at-end-of-file", {"nginx.conf": MAIN, "sites/a.conf": SITE_A + b"#" + b"y" * MB}, "error", "too long parameter",
         where=("sites/a.conf", 7)),
    case("empty-site-file", {"nginx.conf": MAIN, "sites/a.conf": SITE_A, "sites/empty.conf": b""}, "edit", stapled=("a.test",),
         server_test=True),
    case("only-comments", {"nginx.conf": MAIN, "sites/a.conf": b"# server {\n#     ssl_certificate /x;\n# }\n"}, "none"),
    case("empty-main-file", {"nginx.conf": b""}, "none"),
    # Context and duplicates
    case("ssl-stapling-in-events", {"nginx.conf": nginx_main(events="    ssl_stapling on;\n"), "sites/a.conf": SITE_A}, "error",
         '"ssl_stapling" directive is not allowed here (in a "events" block)', "move it into the server block", where=("nginx.conf", 4)),
    case("ssl-stapling-in-location", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body="    location / {\n        ssl_stapling off;\n    }\n")},
         "error", 'not allowed here (in a "location" block)', where=("sites/a.conf", 7)),
    case("ssl-trusted-certificate-in-main-context", {"nginx.conf": b"ssl_trusted_certificate /x.pem;\n" + MAIN, "sites/a.conf": SITE_A},
         "error", "not allowed here (in the main context)", where=("nginx.conf", 1)),
    case("duplicate-ssl-stapling", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body="    ssl_stapling on;\n    ssl_stapling off;\n")},
         "error", '"ssl_stapling" directive is duplicate', "first at {root}/sites/a.conf:6", "remove one of them", where=("sites/a.conf", 7)),
    case("duplicate-through-an-include", {"nginx.conf": MAIN, "inc/tls.inc": b"ssl_stapling_verify off;\n",
                                          "sites/a.conf": nginx_site(body="    include {root}/inc/tls.inc;\n    ssl_stapling_verify on;\n")},
         "error", "duplicate", where=("sites/a.conf", 7)),
    case("server-without-certificate", {"nginx.conf": MAIN, "sites/a.conf": SITE_A,
                                        "sites/b.conf": b"server {\n    listen 127.0.0.1:8443 ssl;\n    server_name b.test;\n}\n"},
         "edit", stapled=("a.test",)),
    case("certificate-path-with-variables", {"nginx.conf": MAIN, "sites/a.conf": SITE_A.replace(b"{root}/ssl/a.crt", b"/etc/ssl/$ssl_server_name.crt")},
         "none"),
    # Layout of the text
    case("crlf-line-endings", {"nginx.conf": MAIN, "sites/a.conf": SITE_A.replace(b"\n", b"\r\n")}, "edit", stapled=("a.test",),
         server_test=True),
    case("mixed-line-endings", {"nginx.conf": MAIN, "sites/a.conf": SITE_A.replace(b";\n", b";\r\n", 2)}, "edit", stapled=("a.test",),
         server_test=True),
    case("cr-only-line-endings", {"nginx.conf": MAIN, "sites/a.conf": SITE_A.replace(b"\n", b"\r")}, "none"),
    case("tabs", {"nginx.conf": MAIN, "sites/a.conf": SITE_A.replace(b"    ", b"\t")}, "edit", stapled=("a.test",), server_test=True),
    case("comments-with-braces-and-quotes", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(
        head="# server { listen 80; } \"unclosed\n", body="    # } ' \" {\n    location / { # {\n        return 200; # }\n    }\n")},
        "edit", stapled=("a.test",), server_test=True),
    case("hash-inside-quotes", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body='    add_header X-H "a # b; {c}";\n')}, "edit",
         stapled=("a.test",), server_test=True),
    case("escaped-quotes", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body='    add_header X-Q "say \\"hi\\"; \\\\";\n')}, "edit",
         stapled=("a.test",), server_test=True),
    case("no-final-newline", {"nginx.conf": MAIN, "sites/a.conf": SITE_A[:-1]}, "edit", stapled=("a.test",), server_test=True),
    case("stapling-off-in-place", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body="    ssl_stapling off; # by hand\n")}, "edit",
         "set ssl_stapling on (was off)", stapled=("a.test",), server_test=True),
    case("ssl-stapling-in-if", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body="    if ($host = b) {\n        ssl_stapling on;\n    }\n")},
         "error", 'not allowed here (in a "if" block)', where=("sites/a.conf", 7)),
    case("ssl-stapling-in-stream-server", {"nginx.conf": MAIN + b"stream {\n    server {\n        listen 127.0.0.1:9999;\n        ssl_stapling on;\n"
                                           b"    }\n}\n", "sites/a.conf": SITE_A},
         "error", 'not allowed here (in a "server" block)', where=("nginx.conf", 11)),
    case("ssl-trusted-certificate-in-stream-is-fine", {"nginx.conf": MAIN + b"stream {\n    ssl_trusted_certificate /x.pem;\n    server {\n"
                                                       b"        ssl_trusted_certificate /y.pem;\n    }\n}\n",
                                                       "sites/a.conf": SITE_A}, "edit", stapled=("a.test",)),
    case("variables-in-values", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body='    return 200 "${host}$request_uri {x}";\n')}, "edit",
         stapled=("a.test",), server_test=True),
    # Depth
    case("blocks-nested-1200-deep", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body="    location /x {\n" * 1200 + "}\n" * 1200)}, "error",
         "blocks nested 101 deep", "at most 100", "move the inner blocks out", where=("sites/a.conf", 104)),
    case("blocks-nested-90-deep", {"nginx.conf": MAIN, "sites/a.conf": nginx_site(body="    location /x {\n" * 90 + "}\n" * 90)}, "edit",
         stapled=("a.test",), server_test=True),
    case("includes-chained-40-deep", dict(chained("nginx", 40), **{"nginx.conf": MAIN}), "error", "includes nested more than 32 deep",
         "include the files from fewer levels", where=("inc/30.inc", 1)),
    # Writes
    case("read-only-site-file", {"nginx.conf": MAIN, "sites/a.conf": SITE_A}, "error", "could not change {root}/sites/a.conf",
         "(Read-only file system)", "everything was put back", where=("sites/a.conf", None), read_only=("sites/a.conf",)),
    case("read-only-second-file", {"nginx.conf": MAIN, "sites/a.conf": SITE_A, "sites/b.conf": nginx_site("b")}, "error",
         "could not change {root}/sites/b.conf", "everything was put back", where=("sites/b.conf", None), read_only=("sites/b.conf",)),
]


# --- Apache ----------------------------------------------------------------------------------------

APACHE_MAIN = """ServerRoot "{root}"
ServerName localhost
PidFile {root}/run/httpd.pid
ErrorLog {root}/logs/error.log
DefaultRuntimeDir {root}/run
Mutex file:{root}/run default
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
Listen 127.0.0.1:%d
%sIncludeOptional conf.d/*.conf
IncludeOptional sites/*.conf
""" % (PORT, "%s")


def apache_main(extra: str = "") -> bytes:
    return (APACHE_MAIN % extra).encode()


def vhost(name: str = "a", body: str | bytes = "", head: str = "") -> bytes:
    return (
        b"%s<VirtualHost 127.0.0.1:%d>\n"
        b"    ServerName %s.test\n"
        b"    SSLEngine on\n"
        b"    SSLCertificateFile {root}/ssl/%s.crt\n"
        b"    SSLCertificateKeyFile {root}/ssl/%s.key\n"
        b"%s</VirtualHost>\n" % (as_bytes(head), PORT, as_bytes(name), as_bytes(name), as_bytes(name), as_bytes(body))
    )


VHOST_A = vhost()
AMAIN = apache_main()

APACHE_CASES = [
    # Structure
    case("unclosed-virtualhost", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A[:-15]}, "error", "<VirtualHost> was not closed",
         "add </VirtualHost>", where=("sites/a.conf", 1)),
    case("stray-closing-virtualhost", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A + b"</VirtualHost>\n"}, "error",
         "</VirtualHost> without matching <VirtualHost> section", "remove it or add the section it closes", where=("sites/a.conf", 7)),
    case("mismatched-closing-section", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body="    <Directory /x>\n")}, "error",
         "expected </Directory> but saw </VirtualHost>", "close the <Directory section opened at line 6 first", where=("sites/a.conf", 7)),
    case("section-without-closing-gt", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A.replace(b":%d>" % PORT, b":%d" % PORT)}, "error",
         "missing closing '>'", "end the line with '>'", where=("sites/a.conf", 1)),
    case("unterminated-double-quote", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body='    ErrorDocument 404 "oops\n')}, "error",
         "unterminated quoted string", "close it with a matching \"", where=("sites/a.conf", 6)),
    case("unterminated-single-quote", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body="    Header set X 'oops\n")}, "error",
         "unterminated quoted string", where=("sites/a.conf", 6)),
    case("ifmodule-with-two-arguments", {"httpd.conf": AMAIN, "sites/a.conf": b"<IfModule a b>\n" + VHOST_A + b"</IfModule>\n"}, "error",
         "takes one argument", where=("sites/a.conf", 1)),
    # Includes
    case("includeoptional-glob-matching-nothing", {"httpd.conf": apache_main("IncludeOptional none.d/*.conf\n"), "sites/a.conf": VHOST_A},
         "edit", stapled=("a.test",), server_test=True),
    case("include-of-a-directory", {"httpd.conf": apache_main("Include vhosts\n"), "vhosts/b.conf": vhost("b"), "sites/a.conf": VHOST_A},
         "edit", stapled=("a.test", "b.test"), server_test=True),
    case("include-cycle", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A + b"Include inc/b.inc\n", "inc/b.inc": b"# b\nInclude sites/a.conf\n"},
         "error", "include cycle: {root}/sites/a.conf -> {root}/inc/b.inc -> {root}/sites/a.conf", where=("inc/b.inc", 2)),
    case("unreadable-file-eacces", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A, "sites/b.conf": vhost("b")}, "error",
         "could not open configuration file {root}/sites/b.conf: Permission denied", "make it readable", where=("httpd.conf", 13),
         unreadable={"sites/b.conf": errno.EACCES}),
    case("unreadable-file-fifo", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A, "sites/b.conf": FIFO}, "error", "a FIFO",
         "replace it with a regular file", where=("httpd.conf", 13)),
    case("dangling-symlink-plain-include", {"httpd.conf": apache_main("Include extra.conf\n"), "extra.conf": link("gone.conf"),
                                            "sites/a.conf": VHOST_A}, "error", "No such file or directory",
         "is a symlink to {root}/gone.conf, which does not exist", where=("httpd.conf", 12)),
    case("dangling-symlink-by-includeoptional-glob", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A, "sites/b.conf": link("../gone.conf")},
         "edit", stapled=("a.test",)),
    # Bytes
    case("latin1-comments", {"httpd.conf": AMAIN, "sites/a.conf": b"# caf\xe9 <VirtualHost> \xab\n" + vhost(body="    # \xe9t\xe9 '\n")},
         "edit", stapled=("a.test",), server_test=True),
    case("latin1-in-a-value", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body='    Header set X-Caf\xe9 "d\xe9j\xe0"\n'.encode("latin-1"))},
         "edit", stapled=("a.test",)),
    case("utf8-bom", {"httpd.conf": AMAIN, "sites/a.conf": b"\xef\xbb\xbf" + VHOST_A}, "error", "byte order mark", "without BOM",
         where=("sites/a.conf", 1)),
    case("nul-bytes", {"httpd.conf": AMAIN, "sites/a.conf": b"# nul \x00\n" + vhost(body="    ServerAlias b\x00.test\n")}, "edit",
         stapled=("a.test",), server_test=True),
    case("long-comment-1mb", {"httpd.conf": AMAIN, "sites/a.conf": b"# " + b"x" * MB + b"\n" + VHOST_A}, "edit", stapled=("a.test",),
         server_test=True),
    case("long-value-1mb", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body='    ServerAlias %s.test\n' % ("x" * MB))}, "edit",
         stapled=("a.test",)),
    case("empty-site-file", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A, "sites/empty.conf": b""}, "edit", stapled=("a.test",),
         server_test=True),
    case("only-comments", {"httpd.conf": AMAIN, "sites/a.conf": b"# <VirtualHost *:443>\n#   SSLEngine on\n# </VirtualHost>\n"}, "none"),
    # Context and duplicates
    case("sslusestapling-in-directory", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body="    <Directory />\n        SSLUseStapling off\n"
                                                                                    "    </Directory>\n")}, "error",
         "SSLUseStapling not allowed in <Directory> context", "move it to the <VirtualHost>", where=("sites/a.conf", 7)),
    case("sslcacertificatefile-in-location", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body="    <Location />\n        SSLCACertificateFile /x\n"
                                                                                         "    </Location>\n")}, "error",
         "not allowed in <Location> context", where=("sites/a.conf", 7)),
    case("sslusestapling-off-at-server-scope", {"httpd.conf": apache_main("SSLUseStapling off\n"), "sites/a.conf": VHOST_A}, "edit",
         stapled=("a.test",), server_test=True),
    case("sslusestapling-on-at-server-scope", {"httpd.conf": apache_main("SSLUseStapling on\n"), "sites/a.conf": VHOST_A}, "edit",
         stapled=("a.test",), server_test=True),
    case("sslusestapling-on-and-off-in-one-vhost", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body="    SSLUseStapling on\n    SSLUseStapling off\n")},
         "edit", "set SSLUseStapling on (was off)", stapled=("a.test",), server_test=True),
    # httpd refuses it there, before and after the edit: the summary says so, the module's server test fails and restores.
    case("sslstaplingcache-inside-vhost", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body="    SSLStaplingCache shmcb:/x(1)\n")}, "edit",
         "SSLStaplingCache inside <VirtualHost> is a syntax error in Apache (server scope only); not touched", stapled=("a.test",)),
    case("vhost-without-certificate", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A,
                                       "sites/b.conf": b"<VirtualHost *:8443>\n    ServerName b.test\n    SSLEngine on\n</VirtualHost>\n"},
         "edit", stapled=("a.test",)),
    case("empty-vhost", {"httpd.conf": AMAIN, "sites/a.conf": b"<VirtualHost *:443>\n</VirtualHost>\n"}, "none"),
    case("undefined-variable-in-certificate", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A.replace(b"{root}/ssl/a.crt", b"${NOPE}/a.crt")},
         "none"),
    case("undefined-variable-in-managed-directive", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body="    SSLUseStapling ${STAPLING}\n")},
         "error", "uses a variable", "set the value by hand", where=("sites/a.conf", 6)),
    case("define-with-three-arguments", {"httpd.conf": apache_main("Define A b c\n"), "sites/a.conf": VHOST_A}, "error",
         "Define takes one or two arguments", where=("httpd.conf", 12)),
    # Layout of the text
    case("crlf-line-endings", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A.replace(b"\n", b"\r\n")}, "edit", stapled=("a.test",),
         server_test=True),
    case("mixed-line-endings", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A.replace(b"\n", b"\r\n", 3)}, "edit", stapled=("a.test",),
         server_test=True),
    case("tabs", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A.replace(b"    ", b"\t")}, "edit", stapled=("a.test",), server_test=True),
    case("comments-with-sections-and-quotes", {"httpd.conf": AMAIN, "sites/a.conf": vhost(
        head="# </VirtualHost> \"unclosed\n", body="    # <Directory> ' \"\n    ErrorDocument 404 \"a # b\"\n")},
        "edit", stapled=("a.test",), server_test=True),
    case("escaped-quotes", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body='    ErrorDocument 404 "say \\"hi\\""\n')}, "edit",
         stapled=("a.test",), server_test=True),
    case("continuation-lines", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A.replace(b"SSLCertificateKeyFile ", b"SSLCertificateKeyFile \\\n        ")},
         "edit", stapled=("a.test",), server_test=True),
    case("continued-managed-directive", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body="    SSLUseStapling \\\n        off\n")}, "error",
         "cannot be recorded on one line", "put the directive and its value on one line", where=("sites/a.conf", 6)),
    case("no-final-newline", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A[:-1]}, "edit", stapled=("a.test",), server_test=True),
    case("sslusestapling-in-if", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body='    <If "%{HTTPS} == \'on\'">\n        SSLUseStapling on\n'
                                                                             '    </If>\n')}, "error", "not allowed in <If> context",
         where=("sites/a.conf", 7)),
    case("sslusestapling-in-a-macro-is-fine", {"httpd.conf": AMAIN, "sites/a.conf": b"<Macro Staple $on>\n    SSLUseStapling $on\n</Macro>\n"
                                               + VHOST_A}, "edit", stapled=("a.test",)),
    case("includeoptional-missing-plain-file", {"httpd.conf": apache_main("IncludeOptional missing.conf\n"), "sites/a.conf": VHOST_A}, "edit",
         stapled=("a.test",), server_test=True),
    # Depth
    case("sections-nested-1200-deep", {"httpd.conf": AMAIN, "sites/a.conf": vhost(body="<Location /x>\n" * 1200 + "</Location>\n" * 1200)},
         "error", "blocks nested 101 deep", "move the inner blocks out", where=("sites/a.conf", 105)),
    case("sections-nested-90-deep", {"httpd.conf": AMAIN, "sites/a.conf": b"<IfModule ssl_module>\n" * 90 + VHOST_A + b"</IfModule>\n" * 90},
         "edit", stapled=("a.test",), server_test=True),
    case("includes-chained-40-deep", dict(chained("apache", 40), **{"httpd.conf": AMAIN}), "error", "includes nested more than 32 deep",
         where=("inc/30.inc", 1)),
    # Writes
    case("read-only-site-file", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A}, "error", "could not change {root}/sites/a.conf",
         "everything was put back", where=("sites/a.conf", None), read_only=("sites/a.conf",)),
    case("read-only-cache-folder", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A, "conf.d/keep.conf": b"# kept\n"}, "error",
         "could not change {root}/conf.d/ocsp-stapling.conf", "everything was put back", where=("conf.d/ocsp-stapling.conf", None),
         read_only=("conf.d/ocsp-stapling.conf",)),
    case("cache-folder-missing", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A, "conf.d": ABSENT}, "error",
         "could not change {root}/conf.d/ocsp-stapling.conf (No such file or directory)", "everything was put back",
         where=("conf.d/ocsp-stapling.conf", None)),
    case("cache-path-is-a-directory", {"httpd.conf": AMAIN, "sites/a.conf": VHOST_A, "conf.d/ocsp-stapling.conf": DIRECTORY}, "error",
         "{root}/conf.d/ocsp-stapling.conf", where=("conf.d/ocsp-stapling.conf", None)),
]


# --- Harness ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Path:
    """One self-signed certificate and key, for the server tests (which load them)."""
    folder = tmp_path_factory.mktemp("certificate")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=a.test", "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True)
    return folder


def build(root: Path, files: dict, certificate: Path, folders: tuple = ()) -> None:
    for sub in ("ssl", "logs", "run", "temp") + folders:
        if files.get(sub) is not ABSENT:
            (root / sub).mkdir(parents=True, exist_ok=True)
    for name in ("a", "b"):
        shutil.copyfile(certificate / "cert.pem", root / "ssl" / (name + ".crt"))
        shutil.copyfile(certificate / "key.pem", root / "ssl" / (name + ".key"))
        shutil.copyfile(certificate / "cert.pem", root / "ssl" / (name + "-chain.pem"))
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is ABSENT:
            continue
        if content is DIRECTORY:
            path.mkdir(exist_ok=True)
        elif content is FIFO:
            os.mkfifo(path)
        elif isinstance(content, Special):
            path.symlink_to(content.target)
        else:
            path.write_bytes(content.replace(b"{root}", str(root).encode()))


def chains(root: Path) -> dict:
    return {str(root / "ssl" / (name + ".crt")): str(root / "ssl" / (name + "-chain.pem")) for name in ("a", "b")}


class Editor:
    """The production dialect of a server (what the module runs), and the test's oracles: what the
    real server test is, and what "stapling" means for a site."""

    name = ""
    main = ""
    # Folders of the base tree.
    folders = ()

    def ensured(self, root: Path) -> set:
        """Files the editor writes whether or not a site is edited."""
        return set()

    def dialect(self, root: Path, reader=read_text):
        """The dialect the module would build for this tree."""
        raise NotImplementedError

    def load(self, root: Path, reader):
        return self.dialect(root, reader).load()

    def plan(self, root: Path, config, state: str) -> tuple:
        return self.dialect(root).plan(config, chains(root), state)

    def stapled(self, root: Path, config) -> set:
        raise NotImplementedError

    def server_test(self, root: Path) -> subprocess.CompletedProcess:
        raise NotImplementedError


class NginxEditor(Editor):
    name = "nginx"
    main = "nginx.conf"

    def dialect(self, root, reader=read_text):
        return _nginx.NginxDialect(str(root / self.main), resolver=["127.0.0.1"], reader=reader)

    def stapled(self, root, config):
        wanted = chains(root)
        return {site.server_names[0] for site in config.tls_sites()
                if site.stapling and site.ssl_stapling_verify and site.chain_file in wanted.values() and site.resolver}

    def server_test(self, root):
        return subprocess.run(["nginx", "-t", "-q", "-p", str(root / "temp") + "/", "-e", str(root / "logs" / "error.log"),
                               "-c", str(root / self.main)], capture_output=True, text=True, check=False)


class ApacheEditor(Editor):
    name = "apache"
    main = "httpd.conf"
    folders = ("conf.d",)

    def ensured(self, root):
        # The server-scope SSLStaplingCache, ensured by every run (the role calls only when a site is eligible).
        return {str(root / "conf.d" / "ocsp-stapling.conf")}

    def dialect(self, root, reader=read_text):
        return _apache.ApacheDialect(str(root / self.main), cache_path=str(root / "conf.d" / "ocsp-stapling.conf"),
                                     cache_spec="shmcb:%s/run/ocsp(128000)" % root, server_root=str(root), reader=reader)

    def stapled(self, root, config):
        wanted = chains(root)
        cache = bool(config.server_directives("SSLStaplingCache"))
        return {site.server_name for site in config.tls_sites()
                if cache and site.stapling and site.ssl_ca_certificate_file in wanted.values()}

    def server_test(self, root):
        return subprocess.run(["apache2", "-t", "-d", str(root), "-f", str(root / self.main)], capture_output=True, text=True, check=False)


EDITORS = {"nginx": NginxEditor(), "apache": ApacheEditor()}


def run(editor: Editor, root: Path, state: str = "present", unreadable: dict | None = None, read_only: tuple = ()) -> tuple:
    """One run of the modules' own lifecycle (_lifecycle.run_edit): lock, load, plan, one transaction, test (passes here).
    Returns (files changed, sites summary); raises ConfigError or TransactionError as the module would report them."""
    failing_reads = {str(root / relative): code for relative, code in (unreadable or {}).items()}
    failing_writes = {str(root / relative) for relative in read_only}

    def reader(path: str) -> str:
        if path in failing_reads:
            code = failing_reads[path]
            raise OSError(code, os.strerror(code), path)
        return read_text(path)

    def writer(path: str, data: bytes) -> None:
        # Only the change fails: putting the original bytes back works, as on a file made read-only
        # by another process between the read and the write.
        if path in failing_writes and (not os.path.lexists(path) or Path(path).read_bytes() != data):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        atomic_write(path, data)

    # The lock and the journal beside the tree, never in it: the snapshots compare the tree alone.
    transaction = Transaction(lock_path=str(root.parent / "lock"), lock_timeout=5, backup_dir=None, test=lambda: (True, ""),
                              test_name="server test", writer=writer)
    try:
        result = run_edit(editor.dialect(root, reader), state, chains(root), {}, transaction)
    except EditFailed as exc:
        raise exc.error from None
    return result["files"], result["sites"]


def check_case(editor: Editor, item: Case, root: Path, certificate: Path) -> None:
    build(root, item.files, certificate, editor.folders)
    fragments = [fragment.replace("{root}", str(root)) for fragment in item.fragments]
    before = snapshot(root)
    if item.outcome == "error":
        with pytest.raises((ConfigError, TransactionError)) as caught:
            run(editor, root, unreadable=item.unreadable, read_only=item.read_only)
        error = caught.value
        message = str(error)
        for fragment in fragments:
            assert fragment in message, message
        relative, line = item.where
        path = str(root / relative)
        if isinstance(error, ConfigError):
            assert (error.path, error.line) == (path, line), message
            prefix = path if line is None else "%s:%d" % (path, line)
            assert message.startswith(prefix + ": ") and error.hint and message.endswith("; " + error.hint), message
        else:
            assert isinstance(error, ChangeRefused) and path in message, message
        assert snapshot(root) == before
        return
    if item.server_test:
        # The input is one the server accepts: what the editor makes of it must be too.
        result = editor.server_test(root)
        assert result.returncode == 0, "before the edit: " + result.stdout + result.stderr
    edits, summary = run(editor, root)
    if item.outcome == "none":
        assert set(edits) <= editor.ensured(root), edits
        run(editor, root, state="absent")
        assert snapshot(root) == before
        return
    assert edits and summary
    changes = [change for entry in summary for change in entry["changes"]]
    for fragment in fragments:
        assert any(fragment in change for change in changes), changes
    after = editor.load(root, read_text)
    assert editor.stapled(root, after) >= set(item.stapled), summary
    assert editor.plan(root, after, "present")[0] == {}, "a second run would change something"
    if item.server_test:
        result = editor.server_test(root)
        assert result.returncode == 0, "after the edit: " + result.stdout + result.stderr
    run(editor, root, state="absent")
    assert snapshot(root) == before, "state=absent did not give every byte back"


@pytest.mark.parametrize("item", NGINX_CASES)
def test_nginx_bad_input(item, tmp_path, certificate):
    check_case(EDITORS["nginx"], item, tmp_path / "tree", certificate)


@pytest.mark.parametrize("item", APACHE_CASES)
def test_apache_bad_input(item, tmp_path, certificate):
    check_case(EDITORS["apache"], item, tmp_path / "tree", certificate)


def test_the_corpus_is_big_enough():
    assert len(NGINX_CASES) >= 30 and len(APACHE_CASES) >= 30 and len(NGINX_CASES) + len(APACHE_CASES) >= 60
    ids = [param.id for param in NGINX_CASES + APACHE_CASES]
    assert len(set(param.id for param in NGINX_CASES)) == len(NGINX_CASES) and len(set(param.id for param in APACHE_CASES)) == len(APACHE_CASES)
    assert {param.values[0].outcome for param in NGINX_CASES + APACHE_CASES} == {"edit", "none", "error"} and ids


# --- A 50 MB file ----------------------------------------------------------------------------------

# A long, dense file as a fleet has them: Content-Security-Policy headers of 2 KiB, comment banners,
# a location per chunk; one TLS site to edit at its top. Run in a child process, so that its peak
# memory is the parse's own.
BIG_FILE = textwrap.dedent('''
    import json, sys, time

    def memory(field):
        # VmHWM is this process's own peak (ru_maxrss would include pytest's, the parent before exec).
        with open("/proc/self/status") as status:
            return int([line.split()[1] for line in status if line.startswith(field + ":")][0]) * 1024
    sys.path.insert(0, sys.argv[1])
    from ansible_collections.ocsp.stapling.plugins.module_utils import _apache, _nginx
    editor, path, size = sys.argv[2], sys.argv[3], int(sys.argv[4])
    policy = "default-src 'self'; " + "; ".join("img-src https://cdn%d.example.com" % n for n in range(80))
    banner = "# " + "=" * 1400 + "\\n"
    if editor == "nginx":
        head = "events {}\\nhttp {\\nserver {\\n    listen 443 ssl;\\n    server_name a.test;\\n    ssl_certificate /ssl/a.crt;\\n"
        chunk = banner + "    location /p%d {\\n        add_header Content-Security-Policy \\"" + policy + "\\";\\n        return 200 'ok';\\n    }\\n"
        tail = "}\\n}\\n"
    else:
        head = "<VirtualHost *:443>\\n    ServerName a.test\\n    SSLEngine on\\n    SSLCertificateFile /ssl/a.crt\\n"
        chunk = banner + "    <Location /p%d>\\n        Header set Content-Security-Policy \\"" + policy + "\\"\\n    </Location>\\n"
        tail = "</VirtualHost>\\n"
    with open(path, "w") as stream:
        stream.write(head)
        written, count = len(head), 0
        while written < size:
            piece = chunk % count
            stream.write(piece)
            written += len(piece)
            count += 1
        stream.write(tail)
    start_rss = memory("VmRSS")
    started = time.perf_counter()
    if editor == "nginx":
        config = _nginx.NginxConfig.load(path)
        edits = _nginx.plan_stapling(config, {"/ssl/a.crt": "/ssl/chain.pem"})[0]
    else:
        config = _apache.ApacheConfig.load(path)
        edits = _apache.plan_stapling(config, {"/ssl/a.crt": "/ssl/chain.pem"}, cache_path=path + ".cache", cache_spec="shmcb:/x(1)")[0]
    seconds = time.perf_counter() - started
    grown = memory("VmHWM") - start_rss
    print(json.dumps({"seconds": seconds, "grown": grown, "size": written, "edited": path in edits, "blocks": count}))
''')


def parse_big_file(editor: str, folder: Path, size: int) -> dict:
    # The folder that holds ansible_collections/, as pytest-ansible laid it out.
    collections = Path(_nginx.__file__).parents[5]
    path = folder / ("%s-%d.conf" % (editor, size))
    result = subprocess.run([sys.executable, "-c", BIG_FILE, str(collections), editor, str(path), str(size)], capture_output=True, text=True,
                            check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    path.unlink()
    return json.loads(result.stdout)


@pytest.mark.parametrize("editor", ["nginx", "apache"])
def test_50_mb_file_parses_in_linear_time_and_bounded_memory(editor, tmp_path):
    small = parse_big_file(editor, tmp_path, 5 * MB)
    big = parse_big_file(editor, tmp_path, 50 * MB)
    print("\n%s: 5 MiB in %.2fs (+%d MiB), 50 MiB in %.2fs (+%d MiB)" % (
        editor, small["seconds"], small["grown"] // MB, big["seconds"], big["grown"] // MB))
    assert small["edited"] and big["edited"] and big["blocks"] > 10000
    # Ten times the bytes: about ten times the time (twice that for a noisy machine), not a hundred.
    assert big["seconds"] < 20 * small["seconds"] + 1
    # The text is held a few times over (as read, as edited, as proven by the re-parse) plus the
    # directives: a few times the file, never a multiple that grows with it.
    assert big["grown"] < 8 * big["size"]


# --- What the modules hand back ----------------------------------------------------------------------


def test_module_results_carry_only_valid_utf8():
    # read_text keeps a Latin-1 byte as a lone surrogate; ansible-core refuses such a result, after the change was made.
    result = json_safe({"msg": "caf\udce9", "diff": [{"before": "a\udce9\r\n", "after": "b"}], "count": 1, "names": ("x\udcab",)})
    assert json.dumps(result, ensure_ascii=False).encode("utf-8")
    assert result == {"msg": "caf\\xe9", "diff": [{"before": "a\\xe9\r\n", "after": "b"}], "count": 1, "names": ["x\\xab"]}
    assert printable("plain \u00e9t\u00e9") == "plain \u00e9t\u00e9"


def test_config_errors_print_odd_bytes_escaped():
    error = ConfigError("/x/caf\udce9.conf", 3, 'unexpected "\udce9"', "remove it")
    assert str(error) == '/x/caf\\xe9.conf:3: unexpected "\\xe9"; remove it'


def test_safe_results_wraps_exit_and_fail():
    class Module:
        def __init__(self):
            self.calls = []

        def exit_json(self, **result):
            self.calls.append(("exit", result))

        def fail_json(self, msg, **result):
            self.calls.append(("fail", dict(result, msg=msg)))

    module = Module()
    safe_results(module)
    module.exit_json(changed=True, diff=[{"before": "\udce9"}])
    module.fail_json(msg="bad \udce9", test_output="\udcff")
    assert module.calls == [("exit", {"changed": True, "diff": [{"before": "\\xe9"}]}), ("fail", {"msg": "bad \\xe9", "test_output": "\\xff"})]


def test_a_file_that_cannot_be_replaced_rolls_everything_back(tmp_path, journal):
    """AnsibleModule.atomic_move raises a bare Exception (its cause the OSError) when the final rename
    fails, e.g. on an immutable file; it must end as a rollback with a message, not a traceback."""
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    first.write_bytes(b"a\n")
    second.write_bytes(b"b\n")

    def move(staged: str, path: str) -> None:
        if path == str(second):
            try:
                raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)
            except OSError as exc:
                raise Exception("Unable to make %r into to %r, failed final rename" % (staged, path)) from exc
        os.replace(staged, path)

    def apply(transaction) -> None:
        transaction.write(str(first), b"changed a\n")
        transaction.write(str(second), b"changed b\n")

    with pytest.raises(ChangeRefused) as caught:
        apply_and_test(apply, lambda: (True, ""), "test", journal, writer=staging_writer(move_or_oserror(move)))
    message = str(caught.value)
    assert message.startswith("could not change %s (Operation not permitted: it cannot be replaced; make it writable" % second), message
    assert "chattr -i" in message and message.endswith("everything was put back")
    assert (first.read_bytes(), second.read_bytes()) == (b"a\n", b"b\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.conf", "b.conf"]  # no staged file left behind


@pytest.mark.parametrize("editor", ["nginx", "apache"])
def test_added_lines_take_the_ending_of_the_line_they_follow(editor, tmp_path, certificate):
    """A mostly-CRLF file whose first line ends in LF (a header added by hand): the added lines are CRLF,
    as the lines around them, not LF as the first line would say."""
    root = tmp_path / "tree"
    if editor == "nginx":
        site = b"# header\n" + nginx_site(body="    ssl_stapling off;\n").replace(b"\n", b"\r\n")
        files = {"nginx.conf": MAIN, "sites/a.conf": site}
    else:
        site = b"# header\n" + vhost(body="    SSLUseStapling off\n").replace(b"\n", b"\r\n")
        files = {"httpd.conf": AMAIN, "sites/a.conf": site}
    build(root, files, certificate, EDITORS[editor].folders)
    edits, dummy = run(EDITORS[editor], root)
    edited = (root / "sites" / "a.conf").read_bytes()
    assert str(root / "sites" / "a.conf") in edits and len(edited.split(b"\n")) > len(site.split(b"\n"))
    assert edited.startswith(b"# header\n") and b"\n" not in edited[len(b"# header\n"):].replace(b"\r\n", b"")
