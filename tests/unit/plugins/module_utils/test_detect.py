"""Unit tests of the version and build parsers, on output captured from real servers."""

from __future__ import annotations

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils._detect import (
    DetectError,
    meets_minimum,
    parse_nginx_build,
    parse_nginx_version,
    version_tuple,
)

DEBIAN_NGINX_V = """nginx version: nginx/1.22.1
built with OpenSSL 3.0.11 19 Sep 2023 (running with OpenSSL 3.0.19 27 Jan 2026)
TLS SNI support enabled
configure arguments: --with-cc-opt='-g -O2 -ffile-prefix-map=/build/nginx-AoTv4W/nginx-1.22.1=.' --prefix=/usr/share/nginx \
--conf-path=/etc/nginx/nginx.conf --http-log-path=/var/log/nginx/access.log --error-log-path=stderr --lock-path=/var/lock/nginx.lock \
--pid-path=/run/nginx.pid --modules-path=/usr/lib/nginx/modules --with-http_ssl_module --with-http_stub_status_module
"""


@pytest.mark.parametrize("output, version", [
    ("nginx version: nginx/1.22.1\n", "1.22.1"),
    ("nginx version: nginx/1.2.9 (Ubuntu)\n", "1.2.9"),
    ("nginx version: openresty/1.21.4.1\n", "1.21.4.1"),
    ("nginx version: Tengine/2.3.3 (nginx/1.18.0)\n", "1.18.0"),
])
def test_nginx_version(output, version):
    assert parse_nginx_version(output) == version


def test_nginx_version_unreadable_output_is_quoted():
    with pytest.raises(DetectError, match="cannot find a version in the output of nginx -v: 'command not found'"):
        parse_nginx_version("command not found\n")


def test_nginx_build_from_debian():
    assert parse_nginx_build(DEBIAN_NGINX_V) == {"conf_path": "/etc/nginx/nginx.conf", "prefix": "/usr/share/nginx", "ssl_module": True}


def test_nginx_build_from_source_defaults():
    build = parse_nginx_build("nginx version: nginx/1.25.3\nconfigure arguments: --prefix=/opt/nginx\n")
    assert build == {"conf_path": "/opt/nginx/conf/nginx.conf", "prefix": "/opt/nginx", "ssl_module": False}
    assert parse_nginx_build("")["conf_path"] == "/usr/local/nginx/conf/nginx.conf"


@pytest.mark.parametrize("server, version, supported", [
    ("nginx", "1.3.7", True), ("nginx", "1.3.6", False), ("nginx", "1.2.9", False), ("nginx", "1.22.1", True),
    ("nginx", "1.10", True), ("apache", "2.3.3", True), ("apache", "2.2.34", False), ("apache", "2.4.62-1~deb12u2", True),
])
def test_minimum_versions(server, version, supported):
    assert meets_minimum(server, version) is supported


def test_version_tuple_rejects_text():
    assert version_tuple("2.4.62-1~deb12u2") == (2, 4, 62)
    with pytest.raises(DetectError):
        version_tuple("unknown")
