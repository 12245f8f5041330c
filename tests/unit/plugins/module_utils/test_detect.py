"""Unit tests of the version and build parsers, on output captured from real servers."""

from __future__ import annotations

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils._detect import (
    DetectError,
    meets_minimum,
    parse_apache_build,
    parse_apache_modules,
    parse_apache_version,
    parse_envvars,
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


DEBIAN_APACHE_V = """Server version: Apache/2.4.71 (Debian)
Server built:   2026-11-12T08:58:41
Server compiled with....
 -D HTTPD_ROOT="/etc/apache2"
 -D SUEXEC_BIN="/usr/lib/apache2/suexec"
 -D DEFAULT_PIDLOG="/run/apache2.pid"
 -D SERVER_CONFIG_FILE="apache2.conf"
"""

DEBIAN_ENVVARS = """unset HOME
if [ "${APACHE_CONFDIR##/etc/apache2-}" != "${APACHE_CONFDIR}" ] ; then
    SUFFIX="-${APACHE_CONFDIR##/etc/apache2-}"
else
    SUFFIX=
fi
export APACHE_RUN_USER=www-data
export APACHE_PID_FILE=/var/run/apache2$SUFFIX/apache2.pid
export APACHE_RUN_DIR=/var/run/apache2$SUFFIX
export APACHE_LOG_DIR=/var/log/apache2$SUFFIX
export LANG=C
export LANG
"""


@pytest.mark.parametrize("output, version", [
    ("Server version: Apache/2.4.71 (Debian)\nServer built: x\n", "2.4.71"),
    ("Server version: Apache/2.4.37 (Red Hat Enterprise Linux)\n", "2.4.37"),
    ("Server version: Apache/2.2.34 (Unix)\n", "2.2.34"),
])
def test_apache_version(output, version):
    assert parse_apache_version(output) == version


def test_apache_version_unreadable_output_is_quoted():
    with pytest.raises(DetectError, match="apache2 -v / httpd -v: 'Segmentation fault'"):
        parse_apache_version("Segmentation fault")


def test_apache_build_and_modules():
    assert parse_apache_build(DEBIAN_APACHE_V) == {"server_root": "/etc/apache2", "conf_path": "/etc/apache2/apache2.conf"}
    assert parse_apache_build('-D HTTPD_ROOT="/etc/httpd"\n -D SERVER_CONFIG_FILE="conf/httpd.conf"\n')["conf_path"] == "/etc/httpd/conf/httpd.conf"
    modules = parse_apache_modules("Loaded Modules:\n core_module (static)\n ssl_module (shared)\n socache_shmcb_module (shared)\n")
    assert modules == {"core_module", "ssl_module", "socache_shmcb_module"}


@pytest.mark.parametrize("confdir, run_dir", [("/etc/apache2", "/var/run/apache2"), ("/etc/apache2-second", "/var/run/apache2-second")])
def test_debian_envvars(confdir, run_dir):
    values = parse_envvars(DEBIAN_ENVVARS, confdir)
    assert values["APACHE_RUN_DIR"] == run_dir
    assert values["APACHE_PID_FILE"] == run_dir + "/apache2.pid"
    assert values["APACHE_RUN_USER"] == "www-data" and "LANG" in values
