# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One site record for every server.

``server_info`` lists the TLS sites of nginx and of Apache in this one shape, so that what reads
them (the verify targets, the certificate reading, the roles, and the outcome each site gets) never
asks which server it came from. What only one server has lives apart, under ``details``.

Keys of a site record (every key is always present):

``server``
    ``"nginx"`` or ``"apache"``.
``index``
    Position of the site among all sites of the configuration (TLS or not).
``path``, ``line``
    File (symlinks resolved) and line of the nginx ``server`` block or Apache ``<VirtualHost>``.
``server_names``
    The names the site answers to: nginx's ``server_name`` values; Apache's ``ServerName``, then its
    ``ServerAlias`` values.
``sockets``
    Where the site accepts connections: one ``{address, port, tls, quic}`` per nginx ``listen`` or
    Apache ``<VirtualHost>`` address. ``address`` is the host part as written (``*``, ``[::]``,
    ``192.0.2.1``, ``_default_``, ``unix:/path``); ``port`` is null where none is given (a unix socket,
    Apache's ``*``); ``tls`` says whether the socket serves TLS; ``quic`` marks an nginx HTTP/3 (UDP)
    socket, TLS too but not reachable with a TCP handshake.
``ssl_certificate``
    Certificate paths in effect, absolute (an nginx path with variables is kept as written).
``ssl_certificate_key``
    Key paths in effect, absolute. The keys are named, never read.
``chain_file``
    The chain file the site already names, or null: nginx's ``ssl_trusted_certificate``, Apache's
    ``SSLCertificateChainFile``.
``stapling``
    ``"on"`` when stapling is in effect for the site (nginx ``ssl_stapling``, Apache ``SSLUseStapling``,
    inherited values included); ``"off"`` when the directive in effect is written and says off;
    ``"absent"`` when no scope writes it (both servers then do not staple).
``stapling_responder``
    The OCSP responder URL the configuration names in place of the certificate's (nginx
    ``ssl_stapling_responder``, Apache ``SSLStaplingForceURL``), or null.
``verifies_clients``
    Whether the site asks for client certificates (nginx ``ssl_verify_client`` on / optional /
    optional_no_ca; Apache ``SSLVerifyClient`` require / optional / optional_no_ca anywhere in the
    virtual host or the server): such a site's trust set is never changed.
``uses_variables``
    Whether a certificate path holds variables (nginx ``$name``): it names no single file, so it
    cannot be read or judged beforehand. Always false for Apache, which expands ``${NAME}`` on reading.
``outcome``, ``reason``
    What happened to the site and why; null until a step judges it.
``details``
    What only this server has. nginx: ``listens`` (every ``listen`` with ``address``, ``port``,
    ``ssl``, ``default_server``, ``quic`` and ``raw``, its arguments as written),
    ``ssl_trusted_certificate``, ``ssl_stapling_verify`` (bool) and ``resolver`` (addresses in
    scope, or null). Apache: ``addresses`` (of the ``<VirtualHost>``, as written), ``ports``,
    ``ssl_ca_certificate_file`` and ``ssl_certificate_chain_file``.

Runs on managed hosts: standard library only, Python 3.8 syntax, no Ansible imports. Every dialect's
``Site`` is a ``_dialect.Site`` (``certificates``, ``keys``, ``chain_file``, ``stapling``,
``verifies_clients``, ``uses_variables``, ``sockets()``, ``details()``), so that this file never asks
which server a site belongs to. Windows records (server ``http.sys``, one per HTTP.sys binding) have the
same keys and are built by ``_windows.audit_info``.
"""

from __future__ import annotations

SERVERS = ("nginx", "apache")


def site_record(site, server: str) -> dict:
    """The record of one TLS site (a dialect's ``Site``) of ``server``."""
    if server not in SERVERS:
        raise ValueError("unknown server %r: expected one of %s" % (server, ", ".join(SERVERS)))
    return {
        "server": server,
        "index": site.index,
        "path": site.path,
        "line": site.line,
        "server_names": list(site.server_names),
        "sockets": site.sockets(),
        "ssl_certificate": list(site.certificates),
        "ssl_certificate_key": list(site.keys),
        "chain_file": site.chain_file,
        "stapling_responder": site.stapling_responder,
        "stapling": "on" if site.stapling else "off" if site.stapling_written else "absent",
        "verifies_clients": site.verifies_clients,
        "uses_variables": site.uses_variables,
        "outcome": None,
        "reason": None,
        "details": site.details(),
    }
