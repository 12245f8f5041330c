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

import os
import posixpath

# Family -> the PEM bundle of the trusted CAs that its ca-certificates package builds.
# Sources: each distribution's ca-certificates package; Go's crypto/x509 root_linux.go lists the same paths.
CA_BUNDLES = {
    # Debian and Ubuntu; Arch and Alpine also provide their bundle at this path, so it serves them too.
    "debian": "/etc/ssl/certs/ca-certificates.crt",
    # RHEL, CentOS, Rocky, Alma, Fedora (a link into /etc/pki/ca-trust/extracted).
    "rhel": "/etc/pki/tls/certs/ca-bundle.crt",
    # openSUSE and SLES (update-ca-certificates links it into /var/lib/ca-certificates).
    "suse": "/etc/ssl/ca-bundle.pem",
}

# The stapling cache at server scope, in a file of its own; 128000 bytes hold some hundred responses.
CACHE_FILE_NAME = "ocsp-stapling.conf"
_CACHE_SIZE = "(128000)"

# Layout (as server_info reports it) -> where the stapling cache file goes, relative to the
# ServerRoot; where Debian's a2enconf would link it (None: the folder is included as it is); the
# SSLStaplingCache value; and the a2enmod link that loads socache_shmcb (None: the role never loads it).
APACHE_LAYOUTS = {
    "debian": {
        "cache_dir": "conf-available",
        "cache_link_dir": "conf-enabled",
        # envvars sets APACHE_RUN_DIR (/run/apache2); server_info passes it to every apache2 call.
        "cache_spec": "shmcb:${APACHE_RUN_DIR}/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": ("mods-enabled/socache_shmcb.load", "../mods-available/socache_shmcb.load"),
    },
    "rhel": {
        "cache_dir": "conf.d",
        "cache_link_dir": None,
        "cache_spec": "shmcb:/run/httpd/ocsp-stapling" + _CACHE_SIZE,
        # RHEL loads modules from conf.modules.d; a missing socache_shmcb makes httpd -t fail, and the run is undone.
        "shmcb_link": None,
    },
    # openSUSE / SLES: /etc/apache2 with conf.d, vhosts.d and sysconfig.d, and no run folder of its own.
    "suse": {
        "cache_dir": "conf.d",
        "cache_link_dir": None,
        "cache_spec": "shmcb:/run/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": None,
    },
    # A tree the collection does not know: the user names the cache file (apache_stapling_cache_path).
    # The value is the one the role has always used outside Debian; apache_stapling_cache_spec overrides it.
    "plain": {
        "cache_dir": None,
        "cache_link_dir": None,
        "cache_spec": "shmcb:/run/httpd/ocsp-stapling" + _CACHE_SIZE,
        "shmcb_link": None,
    },
}


class PlatformError(ValueError):
    """A layout or ServerRoot that the tables cannot describe."""


def apache_layout_name(server_root: str, isdir=os.path.isdir) -> str:
    """Which row of APACHE_LAYOUTS the Apache tree at ``server_root`` is, by the folders each family's package makes."""
    def has(*names) -> bool:
        return all(isdir(os.path.join(server_root, name)) for name in names)

    if has("conf-available", "mods-available"):
        return "debian"
    # SUSE's tree has conf.d too, so it is told apart first, by the folders only it has.
    if has("conf.d", "vhosts.d", "sysconfig.d"):
        return "suse"
    if has("conf.d"):
        return "rhel"
    return "plain"


def ca_bundles() -> list:
    """The CA bundle of every family, in the order of the table (Debian's first)."""
    return list(CA_BUNDLES.values())


def apache_layout(layout: str, server_root: str) -> dict:
    """Where the stapling cache and its links go in the Apache tree at ``server_root`` laid out as ``layout``.

    Returns ``cache_file`` (absolute, or None when the layout has no place for it), ``cache_links``
    (link path -> target, the a2enconf link of the cache file), ``cache_spec`` (the SSLStaplingCache
    value) and ``shmcb_links`` (link path -> target, what loads socache_shmcb when it is not loaded).
    """
    try:
        row = APACHE_LAYOUTS[layout]
    except (KeyError, TypeError):
        raise PlatformError("unknown Apache layout %r: expected one of %s, as server_info reports it" % (
            layout, ", ".join(sorted(APACHE_LAYOUTS)))) from None
    if not isinstance(server_root, str) or not posixpath.isabs(server_root):
        raise PlatformError("Apache's ServerRoot %r is not absolute: give the server_root that server_info reports" % (server_root,))
    cache_file = None
    cache_links = {}
    if row["cache_dir"]:
        cache_file = posixpath.join(server_root, row["cache_dir"], CACHE_FILE_NAME)
        if row["cache_link_dir"]:
            # Relative, as a2enconf makes it, so that the tree can be moved or mounted elsewhere.
            cache_links[posixpath.join(server_root, row["cache_link_dir"], CACHE_FILE_NAME)] = posixpath.join(
                "..", row["cache_dir"], CACHE_FILE_NAME)
    shmcb_links = {}
    if row["shmcb_link"]:
        link, target = row["shmcb_link"]
        shmcb_links[posixpath.join(server_root, link)] = target
    return {"cache_file": cache_file, "cache_links": cache_links, "cache_spec": row["cache_spec"], "shmcb_links": shmcb_links}
