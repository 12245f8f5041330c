"""Unit tests of the one site record (``_sites.site_record``), on configurations parsed by the real
nginx and Apache readers: every server gives the same keys, and what only one has is under ``details``."""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils._apache import ApacheConfig
from ansible_collections.ocsp.stapling.plugins.module_utils._nginx import NginxConfig
from ansible_collections.ocsp.stapling.plugins.module_utils._sites import site_record
from ansible_collections.ocsp.stapling.plugins.module_utils._verify import site_targets

KEYS = {"server", "index", "path", "line", "server_names", "sockets", "ssl_certificate", "ssl_certificate_key", "chain_file", "stapling",
        "stapling_responder", "verifies_clients", "uses_variables", "outcome", "reason", "details"}
SOCKET_KEYS = {"address", "port", "tls", "quic"}


class Files:
    """A host's configuration in a dict: the reader, globber and realpath the modules would pass."""

    def __init__(self, files: dict) -> None:
        self.files = files

    def read(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return self.files[path]

    def glob(self, pattern: str) -> list:
        directory, name = posixpath.split(pattern)
        return sorted(path for path in self.files if posixpath.dirname(path) == directory and fnmatch.fnmatchcase(posixpath.basename(path), name))

    @staticmethod
    def realpath(path: str) -> str:
        return path


def nginx_records(files: dict) -> list:
    """server_info's nginx sites, as it builds them."""
    host = Files(files)
    config = NginxConfig.load("/etc/nginx/nginx.conf", reader=host.read, globber=host.glob, realpath=host.realpath)
    return [site_record(site, "nginx") for site in config.tls_sites()]


def apache_records(files: dict) -> list:
    """server_info's Apache sites, as it builds them."""
    host = Files(files)
    config = ApacheConfig.load("/etc/apache2/apache2.conf", reader=host.read, globber=host.glob, realpath=host.realpath, server_root="/etc/apache2",
                               modules={"ssl_module", "socache_shmcb_module"})
    return [site_record(site, "apache") for site in config.tls_sites()]


def http(servers: str, before: str = "") -> dict:
    return {
        "/etc/nginx/nginx.conf": "events {}\nhttp {\n%s    include /etc/nginx/sites-enabled/*;\n}\n" % before,
        "/etc/nginx/sites-enabled/default": servers,
    }


NGINX_SITES = """\
server {
    listen 80;
    server_name plain.example.com;
}
server {
    listen 443 ssl default_server;
    listen [::]:443 ssl;
    listen 443 quic reuseport;
    server_name www.example.com example.com;
    ssl_certificate /etc/ssl/www/fullchain.pem;
    ssl_certificate_key /etc/ssl/www/privkey.pem;
    ssl_trusted_certificate /etc/ssl/www/chain.pem;
    ssl_stapling on;
    ssl_stapling_verify on;
}
server {
    listen 8443 ssl;
    server_name ~^(?<tenant>.+)\\.example\\.net$;
    ssl_certificate /etc/ssl/tenants/$ssl_server_name.crt;
    ssl_certificate_key /etc/ssl/tenants/$ssl_server_name.key;
    ssl_verify_client optional;
    ssl_client_certificate /etc/ssl/clients.pem;
}
"""

APACHE_CONF = """\
Listen 443
Include sites-enabled/*.conf
"""

APACHE_SITE = """\
<VirtualHost *:443 [::1]:8443>
    ServerName shop.example.com
    ServerAlias www.shop.example.com
    SSLEngine on
    SSLCertificateFile /etc/ssl/shop/cert.pem
    SSLCertificateKeyFile /etc/ssl/shop/key.pem
    SSLCertificateChainFile /etc/ssl/shop/chain.pem
    SSLUseStapling on
</VirtualHost>
<VirtualHost _default_:443>
    SSLEngine on
    SSLCertificateFile ssl/default.pem
    SSLCACertificateFile /etc/ssl/clients.pem
    SSLVerifyClient require
</VirtualHost>
"""


def apache(sites: str = APACHE_SITE) -> dict:
    return {"/etc/apache2/apache2.conf": APACHE_CONF, "/etc/apache2/sites-enabled/sites.conf": sites}


def test_nginx_and_apache_sites_have_the_same_keys():
    records = nginx_records(http(NGINX_SITES)) + apache_records(apache())
    assert [record["server"] for record in records] == ["nginx", "nginx", "apache", "apache"]
    for record in records:
        assert set(record) == KEYS
        assert all(set(socket) == SOCKET_KEYS for socket in record["sockets"])
        assert record["outcome"] is None and record["reason"] is None
        assert record["stapling"] in ("on", "off", "absent")
    assert set(records[0]["details"]) == {"listens", "ssl_trusted_certificate", "ssl_stapling_verify", "resolver"}
    assert set(records[2]["details"]) == {"addresses", "ports", "ssl_ca_certificate_file", "ssl_certificate_chain_file", "macro"}


def test_nginx_site_record():
    www, tenants = nginx_records(http(NGINX_SITES))
    assert www == {
        "server": "nginx",
        "index": 1,
        "path": "/etc/nginx/sites-enabled/default",
        "line": 5,
        "server_names": ["www.example.com", "example.com"],
        "sockets": [
            {"address": "*", "port": 443, "tls": True, "quic": False},
            {"address": "[::]", "port": 443, "tls": True, "quic": False},
            {"address": "*", "port": 443, "tls": True, "quic": True},
        ],
        "ssl_certificate": ["/etc/ssl/www/fullchain.pem"],
        "ssl_certificate_key": ["/etc/ssl/www/privkey.pem"],
        "chain_file": "/etc/ssl/www/chain.pem",
        "stapling": "on",
        "stapling_responder": None,
        "verifies_clients": False,
        "uses_variables": False,
        "outcome": None,
        "reason": None,
        "details": {
            "listens": [
                {"address": "*", "port": 443, "ssl": True, "default_server": True, "quic": False, "raw": "443 ssl default_server"},
                {"address": "[::]", "port": 443, "ssl": True, "default_server": False, "quic": False, "raw": "[::]:443 ssl"},
                {"address": "*", "port": 443, "ssl": False, "default_server": False, "quic": True, "raw": "443 quic reuseport"},
            ],
            "ssl_trusted_certificate": "/etc/ssl/www/chain.pem",
            "ssl_stapling_verify": True,
            "resolver": None,
        },
    }
    # Certificate paths with variables name no single file: kept as written, and said so.
    assert tenants["ssl_certificate"] == ["/etc/ssl/tenants/$ssl_server_name.crt"]
    assert tenants["uses_variables"] is True
    assert tenants["verifies_clients"] is True
    assert tenants["stapling"] == "absent" and tenants["chain_file"] is None


@pytest.mark.parametrize("written, stapling", [
    pytest.param("", "absent", id="not-written"),
    pytest.param("ssl_stapling off;", "off", id="off-in-the-server"),
    pytest.param("ssl_stapling OFF;", "off", id="off-any-case"),
    pytest.param("ssl_stapling on;", "on", id="on"),
])
def test_nginx_stapling_is_on_off_or_absent(written, stapling):
    """An auditor tells a site someone turned stapling off in apart from one nobody configured."""
    sites = "server {\n    listen 443 ssl;\n    ssl_certificate /c.pem;\n    ssl_certificate_key /k.pem;\n    %s\n}\n" % written
    (record,) = nginx_records(http(sites))
    assert record["stapling"] == stapling


def test_nginx_stapling_off_inherited_from_http_is_off():
    sites = "ssl_stapling off;\nserver {\n    listen 443 ssl;\n    ssl_certificate /c.pem;\n    ssl_certificate_key /k.pem;\n}\n"
    (record,) = nginx_records(http(sites))
    assert record["stapling"] == "off"


@pytest.mark.parametrize("written, stapling", [
    pytest.param("", "absent", id="not-written"),
    pytest.param("SSLUseStapling Off", "off", id="off"),
    pytest.param("SSLUseStapling on", "on", id="on"),
])
def test_apache_stapling_is_on_off_or_absent(written, stapling):
    sites = "<VirtualHost *:443>\n    SSLEngine on\n    SSLCertificateFile /c.pem\n    %s\n</VirtualHost>\n" % written
    (record,) = apache_records(apache(sites))
    assert record["stapling"] == stapling


@pytest.mark.parametrize("where, value, verifies", [
    pytest.param("server", "on", True, id="mtls-on"),
    pytest.param("server", "optional_no_ca", True, id="optional-no-ca"),
    pytest.param("server", "OFF", False, id="off"),
    pytest.param("http", "on", True, id="inherited-from-http"),
    pytest.param("include", "on", True, id="through-an-include"),
    pytest.param("none", "", False, id="not-set"),
])
def test_nginx_verifies_clients_from_the_directive_in_effect(where, value, verifies):
    line = "    ssl_verify_client %s;\n" % value
    server = "server {\n    listen 443 ssl;\n    ssl_certificate /etc/ssl/a.pem;\n%s}\n"
    files = http(server % (line if where == "server" else ""), before=line if where == "http" else "")
    if where == "include":
        files["/etc/nginx/sites-enabled/default"] = server % "    include /etc/nginx/mtls.conf;\n"
        files["/etc/nginx/mtls.conf"] = line
    (record,) = nginx_records(files)
    assert record["verifies_clients"] is verifies


def test_nginx_server_block_value_wins_over_http():
    files = http("server {\n    listen 443 ssl;\n    ssl_certificate /etc/ssl/a.pem;\n    ssl_verify_client off;\n}\n",
                 before="    ssl_verify_client on;\n")
    (record,) = nginx_records(files)
    assert record["verifies_clients"] is False


def test_nginx_sockets_that_are_tls_through_another_server_block_or_ssl_on():
    """nginx ORs `ssl` over every listen of one socket, and `ssl on;` makes all of a block's sockets TLS."""
    servers = ("server {\n    listen 443 ssl;\n    server_name a.example.com;\n    ssl_certificate /etc/ssl/a.pem;\n}\n"
               "server {\n    listen 443;\n    listen 80;\n    server_name b.example.com;\n    ssl_certificate /etc/ssl/b.pem;\n}\n"
               "server {\n    listen 8443;\n    ssl on;\n    server_name c.example.com;\n    ssl_certificate /etc/ssl/c.pem;\n}\n")
    a, b, c = nginx_records(http(servers))
    assert a["sockets"] == [{"address": "*", "port": 443, "tls": True, "quic": False}]
    assert b["sockets"] == [{"address": "*", "port": 443, "tls": True, "quic": False}, {"address": "*", "port": 80, "tls": False, "quic": False}]
    assert c["sockets"] == [{"address": "*", "port": 8443, "tls": True, "quic": False}]
    # The verify targets follow: the TLS TCP sockets of every site, whichever made them TLS.
    assert site_targets([a, b, c], "192.0.2.1") == [
        {"host": "192.0.2.1", "port": 443, "server_name": "a.example.com"},
        {"host": "192.0.2.1", "port": 443, "server_name": "b.example.com"},
        {"host": "192.0.2.1", "port": 8443, "server_name": "c.example.com"},
    ]


def test_apache_site_record():
    shop, default = apache_records(apache())
    assert shop == {
        "server": "apache",
        "index": 0,
        "path": "/etc/apache2/sites-enabled/sites.conf",
        "line": 1,
        "server_names": ["shop.example.com", "www.shop.example.com"],
        "sockets": [
            {"address": "*", "port": 443, "tls": True, "quic": False},
            {"address": "[::1]", "port": 8443, "tls": True, "quic": False},
        ],
        "ssl_certificate": ["/etc/ssl/shop/cert.pem"],
        "ssl_certificate_key": ["/etc/ssl/shop/key.pem"],
        "chain_file": "/etc/ssl/shop/chain.pem",
        "stapling": "on",
        "stapling_responder": None,
        "verifies_clients": False,
        "uses_variables": False,
        "outcome": None,
        "reason": None,
        "details": {
            "addresses": ["*:443", "[::1]:8443"],
            "ports": [443, 8443],
            "ssl_ca_certificate_file": None,
            "ssl_certificate_chain_file": "/etc/ssl/shop/chain.pem",
            "macro": None,
        },
    }
    # A relative certificate path is resolved against ServerRoot; SSLVerifyClient require is mTLS.
    assert default["sockets"] == [{"address": "_default_", "port": 443, "tls": True, "quic": False}]
    assert default["ssl_certificate"] == ["/etc/apache2/ssl/default.pem"]
    assert default["verifies_clients"] is True and default["stapling"] == "absent" and default["server_names"] == []
    assert default["details"]["ssl_ca_certificate_file"] == "/etc/ssl/clients.pem"


def test_apache_addresses_without_a_port():
    (record,) = apache_records(apache("<VirtualHost 192.0.2.7 *:*>\n    SSLEngine on\n    SSLCertificateFile /etc/ssl/a.pem\n</VirtualHost>\n"))
    assert record["sockets"] == [{"address": "192.0.2.7", "port": None, "tls": True, "quic": False},
                                 {"address": "*", "port": None, "tls": True, "quic": False}]
    assert site_targets([record], "192.0.2.7") == []


def test_verify_targets_read_the_same_keys_of_both_servers():
    """One TCP target per TLS port and site: QUIC (UDP) sockets and plain ones give none."""
    records = nginx_records(http(NGINX_SITES)) + apache_records(apache())
    assert site_targets(records, "192.0.2.1") == [
        {"host": "192.0.2.1", "port": 443, "server_name": "www.example.com"},
        {"host": "192.0.2.1", "port": 8443, "server_name": "192.0.2.1"},
        {"host": "192.0.2.1", "port": 443, "server_name": "shop.example.com"},
        {"host": "192.0.2.1", "port": 8443, "server_name": "shop.example.com"},
        {"host": "192.0.2.1", "port": 443, "server_name": "192.0.2.1"},
    ]


def test_an_unknown_server_is_refused():
    host = Files(http(NGINX_SITES))
    site = NginxConfig.load("/etc/nginx/nginx.conf", reader=host.read, globber=host.glob, realpath=host.realpath).tls_sites()[0]
    with pytest.raises(ValueError, match="unknown server 'iis': expected one of nginx, apache"):
        site_record(site, "iis")
