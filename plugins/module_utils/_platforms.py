# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What differs between distributions, in one place: where the CA bundle is, and how Apache is laid out.

The roles read these tables through the ca_bundles lookup and the apache_layout filter. They are
keyed by distribution family, and the Apache rows by the ``layout`` that server_info reports, not
picked by ``ansible_os_family`` from per-family vars files: the roles gather no facts (a run makes
one detection call per host and server), and the layout describes the configuration tree Apache
really reads, which is what the cache file and its links depend on, whatever the OS says.

The CA bundle has to be named before anything is known about the host, so the roles search the
bundle of every family; server_info skips the files that do not exist.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile

from ._detect import parse_defines, parse_envvars, parse_shell_variables

# Family -> the PEM bundle of the trusted CAs that its ca-certificates package builds.
# Sources: each distribution's ca-certificates package; Go's crypto/x509 root_linux.go and root_bsd.go list the same paths.
CA_BUNDLES = {
    # Debian and Ubuntu (root_linux.go: "Debian/Ubuntu/Gentoo etc."); Arch, Gentoo and Alpine's ca-certificates
    # also build their bundle at this path, so it serves them too.
    "debian": "/etc/ssl/certs/ca-certificates.crt",
    # RHEL, CentOS, Rocky, Alma, Fedora (a link into /etc/pki/ca-trust/extracted).
    "rhel": "/etc/pki/tls/certs/ca-bundle.crt",
    # openSUSE and SLES (update-ca-certificates links it into /var/lib/ca-certificates).
    "suse": "/etc/ssl/ca-bundle.pem",
    # Alpine's own path (root_linux.go: "Alpine Linux"), there even without the ca-certificates package.
    "alpine": "/etc/ssl/cert.pem",
    # FreeBSD (root_bsd.go: "FreeBSD"; the ca_root_nss package, and certctl since FreeBSD 12.2).
    "freebsd": "/usr/local/etc/ssl/cert.pem",
}

# The stapling cache at server scope, in a file of its own; 128000 bytes hold some hundred responses.
CACHE_FILE_NAME = "ocsp-stapling.conf"
_CACHE_SIZE = "(128000)"

# Layout (as server_info reports it) -> where the stapling cache file goes, relative to the layout's
# root (server_info's layout_root: the folder that holds the folders below); where Debian's a2enconf
# would link it (None: the folder is included as it is); the SSLStaplingCache value (its folder must
# exist when Apache starts); the a2enmod link that loads socache_shmcb (None: the role never loads it);
# the service that runs Apache; and where the service takes the -D flags it starts httpd with
# (``defines_file``, absolute or relative to the layout root, and its shell variable; None: nowhere the
# collection knows, the role variable apache_stapling_defines says).
APACHE_LAYOUTS = {
    "debian": {
        "cache_dir": "conf-available",
        "cache_link_dir": "conf-enabled",
        # envvars sets APACHE_RUN_DIR (/run/apache2); server_info passes it to every apache2 call.
        "cache_spec": "shmcb:${APACHE_RUN_DIR}/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": ("mods-enabled/socache_shmcb.load", "../mods-available/socache_shmcb.load"),
        "service": "apache2",
        # apache2ctl passes $APACHE_ARGUMENTS (set, commented out, in /etc/apache2/envvars) to every apache2 call.
        "defines_file": "envvars",
        "defines_variable": "APACHE_ARGUMENTS",
    },
    "rhel": {
        "cache_dir": "conf.d",
        "cache_link_dir": None,
        "cache_spec": "shmcb:/run/httpd/ocsp-stapling" + _CACHE_SIZE,
        # RHEL loads modules from conf.modules.d; a missing socache_shmcb makes httpd -t fail, and the run is undone.
        "shmcb_link": None,
        "service": "httpd",
        # httpd.service: EnvironmentFile=/etc/sysconfig/httpd, ExecStart=/usr/sbin/httpd $OPTIONS -DFOREGROUND.
        "defines_file": "/etc/sysconfig/httpd",
        "defines_variable": "OPTIONS",
    },
    # openSUSE / SLES: /etc/apache2 with conf.d, vhosts.d and sysconfig.d (its ServerRoot is /srv/www), and no run
    # folder of its own.
    "suse": {
        "cache_dir": "conf.d",
        "cache_link_dir": None,
        "cache_spec": "shmcb:/run/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": None,
        "service": "apache2",
        # Words such as SSL, each started as -D SSL (what a2enflag edits); vhosts.d/vhost-ssl.template is <IfDefine SSL>.
        "defines_file": "/etc/sysconfig/apache2",
        "defines_variable": "APACHE_SERVER_FLAGS",
    },
    # Gentoo: /etc/apache2 with modules.d and vhosts.d, both included by httpd.conf (ServerRoot /usr/lib64/apache2);
    # modules and the default TLS vhost are switched on by -D flags (<IfDefine SSL>, <IfDefine SSL_DEFAULT_VHOST>).
    # Sources: the apache ebuild's /etc/conf.d/apache2 (APACHE2_OPTS="-D DEFAULT_VHOST -D INFO -D SSL ..."), which
    # /etc/init.d/apache2 passes to every apache2 call; vhosts.d/00_default_ssl_vhost.conf.
    "gentoo": {
        "cache_dir": "modules.d",
        "cache_link_dir": None,
        "cache_spec": "shmcb:/run/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": None,
        "service": "apache2",
        "defines_file": "/etc/conf.d/apache2",
        "defines_variable": "APACHE2_OPTS",
    },
    # Alpine: /etc/apache2/httpd.conf with IncludeOptional /etc/apache2/conf.d/*.conf (each subpackage, apache2-ssl
    # among them, puts its LoadModule and configuration there); ServerRoot /var/www, whose run, logs and modules are
    # links to /run/apache2, /var/log/apache2 and /usr/lib/apache2. Source: aports main/apache2/APKBUILD.
    "alpine": {
        "cache_dir": "conf.d",
        "cache_link_dir": None,
        "cache_spec": "shmcb:/run/apache2/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": None,
        "service": "apache2",
        "defines_file": None,
        "defines_variable": None,
    },
    # FreeBSD (ports www/apache24): /usr/local/etc/apache24/httpd.conf (ServerRoot /usr/local) ends with
    # Include etc/apache24/Includes/*.conf; extra/ holds the optional parts; the rc.d service is apache24.
    "freebsd": {
        "cache_dir": "Includes",
        "cache_link_dir": None,
        "cache_spec": "shmcb:/var/run/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": None,
        "service": "apache24",
        "defines_file": None,
        "defines_variable": None,
    },
    # Arch: /etc/httpd is the ServerRoot, conf/httpd.conf includes conf/extra/*.conf files one by one (commented out by
    # default), so there is no folder to drop a file in: the user names the cache file. Run folder /run/httpd (the
    # package's tmpfiles.d), service httpd. Sources: Arch's apache PKGBUILD (backup= list, apache.tmpfiles.conf, httpd.service).
    "arch": {
        "cache_dir": None,
        "cache_link_dir": None,
        "cache_spec": "shmcb:/run/httpd/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": None,
        "service": "httpd",
        "defines_file": None,
        "defines_variable": None,
    },
    # A tree the collection does not know: the user names the cache file (apache_stapling_cache_path).
    # The value is the one the role has always used outside Debian; apache_stapling_cache_spec overrides it.
    "plain": {
        "cache_dir": None,
        "cache_link_dir": None,
        "cache_spec": "shmcb:/run/httpd/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": None,
        "service": "httpd",
        "defines_file": None,
        "defines_variable": None,
    },
}


class PlatformError(ValueError):
    """A layout or ServerRoot that the tables cannot describe."""


def apache_layout_name(root: str, isdir=os.path.isdir, server_root: str | None = None) -> str:
    """Which row of APACHE_LAYOUTS the Apache tree at ``root`` is, by the folders each family's package makes
    (``server_root``: Apache's ServerRoot, where Alpine's package puts its links; default ``root``)."""
    def has(*names, under=root) -> bool:
        return all(isdir(os.path.join(under, name)) for name in names)

    if has("conf-available", "mods-available"):
        return "debian"
    # SUSE's and Gentoo's trees have vhosts.d (and SUSE's conf.d) too, so they are told apart first.
    if has("conf.d", "vhosts.d", "sysconfig.d"):
        return "suse"
    if has("modules.d", "vhosts.d"):
        return "gentoo"
    if has("Includes", "extra"):
        return "freebsd"
    if has("conf.d") and not has("conf.modules.d") and has("run", "modules", under=server_root or root):
        return "alpine"
    if has("conf.d"):
        return "rhel"
    # Arch's ServerRoot holds conf/extra like a source build's, without the source build's bin/.
    if has("conf/extra") and not has("bin"):
        return "arch"
    return "plain"


def apache_layout_root(server_root: str, conf_path: str, isdir=os.path.isdir) -> tuple:
    """(layout, layout root) of an Apache tree: the first of the ServerRoot, the folder of the main
    configuration file and the one above it whose folders a known layout makes, else ("plain", ServerRoot).

    The folders are not always under the ServerRoot: SUSE's is /srv/www, Gentoo's /usr/lib64/apache2,
    Alpine's /var/www, FreeBSD's /usr/local, while their trees are in /etc/apache2 and /usr/local/etc/apache24.
    """
    conf_dir = posixpath.dirname(conf_path)
    for root in (server_root, conf_dir, posixpath.dirname(conf_dir)):
        layout = apache_layout_name(root, isdir, server_root)
        if layout != "plain":
            return layout, root
    return "plain", server_root


def start_defines(layout: str, root: str, reader) -> list:
    """The -D names the service of ``layout`` starts httpd with, from its defines file (``reader(path) -> text``;
    a file that cannot be read gives none: the service then passes none either)."""
    row = APACHE_LAYOUTS.get(layout) or APACHE_LAYOUTS["plain"]
    if not row["defines_file"]:
        return []
    try:
        text = reader(posixpath.join(root, row["defines_file"]))
    except (OSError, UnicodeDecodeError):
        return []
    value = parse_shell_variables(text).get(row["defines_variable"], "")
    return parse_defines(value, bare_words=layout == "suse")


def ca_bundles() -> list:
    """The CA bundle of every family, in the order of the table (Debian's first)."""
    return list(CA_BUNDLES.values())


def apache_layout(layout: str, root: str) -> dict:
    """Where the stapling cache and its links go in the Apache tree at ``root`` (server_info's layout_root)
    laid out as ``layout``, and which service runs Apache.

    Returns ``cache_file`` (absolute, or None when the layout has no place for it), ``cache_links``
    (link path -> target, the a2enconf link of the cache file), ``cache_spec`` (the SSLStaplingCache
    value), ``shmcb_links`` (link path -> target, what loads socache_shmcb when it is not loaded) and
    ``service`` (the name of the service that runs Apache).
    """
    try:
        row = APACHE_LAYOUTS[layout]
    except (KeyError, TypeError):
        raise PlatformError("unknown Apache layout %r: expected one of %s, as server_info reports it" % (
            layout, ", ".join(sorted(APACHE_LAYOUTS)))) from None
    if not isinstance(root, str) or not posixpath.isabs(root):
        raise PlatformError("the root of Apache's tree %r is not absolute: give the layout_root that server_info reports" % (root,))
    cache_file = None
    cache_links = {}
    if row["cache_dir"]:
        cache_file = posixpath.join(root, row["cache_dir"], CACHE_FILE_NAME)
        if row["cache_link_dir"]:
            # Relative, as a2enconf makes it, so that the tree can be moved or mounted elsewhere.
            cache_links[posixpath.join(root, row["cache_link_dir"], CACHE_FILE_NAME)] = posixpath.join(
                "..", row["cache_dir"], CACHE_FILE_NAME)
    shmcb_links = {}
    if row["shmcb_link"]:
        link, target = row["shmcb_link"]
        shmcb_links[posixpath.join(root, link)] = target
    return {"cache_file": cache_file, "cache_links": cache_links, "cache_spec": row["cache_spec"], "shmcb_links": shmcb_links,
            "service": row["service"]}


def apache_start(server_root: str, conf_path: str, env: dict, defines: list, reader) -> tuple:
    """(environment, -D names) the service starts Apache with, so that every call of the collection reads what Apache reads.

    Debian's configuration uses ${APACHE_RUN_DIR} and friends, which apache2ctl takes from envvars; the -D names
    decide <IfDefine> (Gentoo loads mod_ssl under -D SSL). ``env`` and ``defines`` (the user's) come on top.
    """
    start_env = {}
    envvars = os.path.join(server_root, "envvars")
    if os.path.isfile(envvars):
        start_env.update(parse_envvars(reader(envvars), server_root))
    start_env.update(env)
    layout, layout_root = apache_layout_root(server_root, conf_path)
    names = start_defines(layout, layout_root, reader)
    names += [name for name in defines if name not in names]
    return start_env, names


# The folders Debian's envvars names that apache2ctl creates before it runs apache2 (they live in /run, which a
# reboot or a fresh container empties): httpd refuses a DefaultRuntimeDir or a Mutex folder that does not exist,
# even for the read-only -M, -S and -t.
RUNTIME_VARIABLES = ("APACHE_RUN_DIR", "APACHE_LOCK_DIR")


@contextlib.contextmanager
def runtime_env(env: dict):
    """``env`` for the collection's own read-only apache2 calls (-M, -S, -t), with every runtime folder it names that does
    not exist replaced by a scratch folder, made (root-only) only then and removed afterwards: a look at the
    configuration then works where Apache is not running, and creates no system folder."""
    missing = [name for name in RUNTIME_VARIABLES if env.get(name) and not os.path.isdir(env[name])]
    if not missing:
        yield dict(env)
        return
    with tempfile.TemporaryDirectory(prefix="ocsp-stapling-") as scratch:
        yield dict(env, **dict((name, scratch) for name in missing))
