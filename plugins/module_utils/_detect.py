# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which web server a host runs, which version, and where its configuration lives.

Parsers of the servers' own version output, kept apart from running them so that they can be
tested on captured output. Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import re

# The first releases with OCSP stapling (nginx 1.3.7, Apache httpd 2.3.3).
MINIMUM_VERSIONS = {"nginx": "1.3.7", "apache": "2.3.3"}

# Where distributions and source builds put the binary, after the PATH.
NGINX_BINARIES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx", "/opt/nginx/sbin/nginx")
# Compiled-in default of a source build, when `nginx -V` names no --conf-path.
NGINX_DEFAULT_CONF = "/usr/local/nginx/conf/nginx.conf"


class DetectError(Exception):
    """The server's output could not be understood; the message quotes it."""


def version_tuple(version: str) -> tuple:
    """'1.22.1' -> (1, 22, 1); digits only, so that '2.4.62-1~deb12u2' compares as 2.4.62."""
    numbers = re.match(r"\d+(?:\.\d+)*", version)
    if not numbers:
        raise DetectError("%r is not a version number" % version)
    return tuple(int(part) for part in numbers.group(0).split("."))


def meets_minimum(server: str, version: str) -> bool:
    return version_tuple(version) >= version_tuple(MINIMUM_VERSIONS[server])


def parse_nginx_version(output: str) -> str:
    """The nginx version from `nginx -v` (which prints to stderr).

    Forks name themselves (openresty/1.21.4.1, Tengine/2.3.3 (nginx/1.18.0)); the nginx core version
    is the one that decides stapling support, so it wins when both are printed.
    """
    core = re.search(r"\bnginx/(\d+(?:\.\d+)+)", output)
    if core:
        return core.group(1)
    fork = re.search(r"version:\s*[\w.-]+/(\d+(?:\.\d+)+)", output)
    if fork:
        return fork.group(1)
    raise DetectError("cannot find a version in the output of nginx -v: %r" % output.strip()[:200])


def parse_nginx_build(output: str) -> dict:
    """Paths and features from `nginx -V`: conf_path, prefix, and whether the SSL module is built in."""
    arguments = output.partition("configure arguments:")[2]
    conf = re.search(r"--conf-path=(\S+)", arguments)
    prefix = re.search(r"--prefix=(\S+)", arguments)
    return {
        "conf_path": conf.group(1) if conf else (prefix.group(1).rstrip("/") + "/conf/nginx.conf" if prefix else NGINX_DEFAULT_CONF),
        "prefix": prefix.group(1) if prefix else None,
        "ssl_module": "--with-http_ssl_module" in arguments or "built with OpenSSL" in output,
    }


# Debian and SUSE name the binary apache2, the RHEL family httpd.
APACHE_BINARIES = ("apache2", "httpd")
APACHE_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/apache2/bin", "/opt/apache2/bin")


def parse_apache_version(output: str) -> str:
    """The version from `apache2 -v` / `httpd -v`: 'Server version: Apache/2.4.62 (Debian)'."""
    found = re.search(r"Server version:\s*Apache/(\d+(?:\.\d+)+)", output)
    if not found:
        raise DetectError("cannot find a version in the output of apache2 -v / httpd -v: %r" % output.strip()[:200])
    return found.group(1)


def parse_apache_build(output: str) -> dict:
    """ServerRoot and main configuration file from `-V` ('-D HTTPD_ROOT=...', '-D SERVER_CONFIG_FILE=...')."""
    root = re.search(r'-D HTTPD_ROOT="([^"]*)"', output)
    conf = re.search(r'-D SERVER_CONFIG_FILE="([^"]*)"', output)
    server_root = root.group(1) if root else None
    conf_path = conf.group(1) if conf else None
    if conf_path and server_root and not conf_path.startswith("/"):
        conf_path = server_root.rstrip("/") + "/" + conf_path
    return {"server_root": server_root, "conf_path": conf_path}


def parse_apache_modules(output: str) -> set:
    """Loaded module names from `apachectl -M` (' ssl_module (shared)')."""
    return set(re.findall(r"^\s*(\w+_module)\s+\((?:static|shared)\)", output, re.MULTILINE))


def parse_envvars(text: str, confdir: str = "/etc/apache2") -> dict:
    """The variables Debian's /etc/apache2/envvars exports, for ${VAR} in the configuration.

    The file is shell; only its plain `export NAME=value` lines matter for paths, with $SUFFIX
    worked out as the file itself does (a second instance /etc/apache2-foo gets '-foo').
    """
    suffix = ""
    if confdir.startswith("/etc/apache2-"):
        suffix = "-" + confdir[len("/etc/apache2-"):]
    values = {}
    for line in text.splitlines():
        found = re.match(r"\s*export\s+([A-Za-z_]\w*)=(.*)$", line)
        if not found:
            continue
        value = found.group(2).strip().strip("'\"")
        value = re.sub(r"\$\{?SUFFIX\}?", suffix, value)
        values[found.group(1)] = re.sub(r"\$\{?([A-Za-z_]\w*)\}?", lambda match: values.get(match.group(1), ""), value)
    return values


def parse_shell_variables(text: str) -> dict:
    """The plain assignments of a shell file such as /etc/sysconfig/httpd or /etc/conf.d/apache2
    (``NAME=value``, ``export NAME="value"``, ``NAME='value'``; the last one wins), without running it.
    Comment lines and anything that is not a plain assignment are skipped."""
    values = {}
    for line in text.splitlines():
        found = re.match(r"\s*(?:export\s+)?([A-Za-z_]\w*)=(\"[^\"]*\"|'[^']*'|[^\s#]*)", line)
        if found:
            value = found.group(2)
            values[found.group(1)] = value[1:-1] if value[:1] in "\"'" else value
    return values


def parse_defines(arguments: str, bare_words: bool = False) -> list:
    """The names that httpd arguments define: ``-D NAME`` and ``-DNAME`` (other arguments skipped); with
    ``bare_words`` (SUSE's APACHE_SERVER_FLAGS) every other word is a name too. In order, each once."""
    names = []
    words = arguments.split()
    index = 0
    while index < len(words):
        word = words[index]
        name = None
        if word == "-D" and index + 1 < len(words):
            index += 1
            name = words[index]
        elif word.startswith("-D") and len(word) > 2:
            name = word[2:]
        elif bare_words and not word.startswith("-"):
            name = word
        if name and name not in names:
            names.append(name)
        index += 1
    return names
