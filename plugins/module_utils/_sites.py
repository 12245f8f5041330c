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
    inherited values included), else ``"off"``.
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

Runs on managed hosts: standard library only, Python 3.8 syntax, no Ansible imports. It reads the
``Site`` objects of ``_nginx`` and ``_apache`` by their attributes and imports neither.
"""

from __future__ import annotations

SERVERS = ("nginx", "apache")

# The ssl_verify_client values that ask the client for a certificate (`off` does not).
_NGINX_VERIFYING = ("on", "optional", "optional_no_ca")


def site_record(site, server: str, tls_sockets=frozenset()) -> dict:
    """The record of one TLS site (``_nginx.Site`` or ``_apache.Site``) of ``server``.

    ``tls_sockets`` matters for nginx only: the ``(address, port)`` pairs that are TLS anywhere in
    the configuration (the keys of ``_nginx.default_servers(config.sites())``). nginx ORs the ``ssl``
    flag of every ``listen`` on one socket, so a plain ``listen 443`` serves TLS when another server
    block says ``listen 443 ssl``; the site alone cannot tell.
    """
    if server == "nginx":
        common = _nginx_common(site, tls_sockets)
    elif server == "apache":
        common = _apache_common(site)
    else:
        raise ValueError("unknown server %r: expected one of %s" % (server, ", ".join(SERVERS)))
    record = {
        "server": server,
        "index": site.index,
        "path": site.path,
        "line": site.line,
        "server_names": list(site.server_names),
    }
    record.update(common)
    record.update(outcome=None, reason=None)
    return record


# --- nginx ---------------------------------------------------------------------------------------


def _nginx_common(site, tls_sockets) -> dict:
    return {
        "sockets": [
            {
                "address": listen.address,
                "port": listen.port,
                # `ssl on;` (the old way) makes every socket of the block TLS.
                "tls": listen.ssl or listen.quic or site.ssl_on or listen.socket in tls_sockets,
                "quic": listen.quic,
            }
            for listen in site.listens
        ],
        "ssl_certificate": list(site.ssl_certificate),
        "ssl_certificate_key": list(site.ssl_certificate_key),
        "chain_file": site.ssl_trusted_certificate,
        "stapling": "on" if site.ssl_stapling else "off",
        "verifies_clients": _nginx_verifies_clients(site.directive),
        "uses_variables": site.uses_variables,
        "details": {
            "listens": [
                {
                    "address": listen.address,
                    "port": listen.port,
                    "ssl": listen.ssl,
                    "default_server": listen.default_server,
                    "quic": listen.quic,
                    "raw": listen.raw,
                }
                for listen in site.listens
            ],
            "ssl_trusted_certificate": site.ssl_trusted_certificate,
            "ssl_stapling_verify": site.ssl_stapling_verify,
            "resolver": None if site.resolver is None else list(site.resolver),
        },
    }


def _nginx_directives(block):
    """The directives of one nginx context as nginx reads them: an `include` replaced by what it includes."""
    for directive in block or ():
        if directive.name == "include" and directive.block is None:
            yield from _nginx_directives(directive.included)
        else:
            yield directive


def _nginx_verifies_clients(server) -> bool:
    # ssl_verify_client is allowed in the http and server contexts only: the server block's own value,
    # else the one of its http block, is in effect (nginx refuses it twice in one context).
    scope = server
    while scope is not None:
        found = [directive for directive in _nginx_directives(scope.block) if directive.name == "ssl_verify_client" and directive.block is None]
        if found:
            args = found[-1].args
            # nginx reads enum values case-insensitively.
            return len(args) == 1 and args[0].lower() in _NGINX_VERIFYING
        if scope.name == "http":
            break
        scope = scope.parent
    return False


# --- Apache --------------------------------------------------------------------------------------


def _apache_common(site) -> dict:
    return {
        "sockets": [_apache_socket(address, site.tls) for address in site.addresses],
        "ssl_certificate": list(site.ssl_certificate_file),
        "ssl_certificate_key": list(site.ssl_certificate_key_file),
        "chain_file": site.ssl_certificate_chain_file,
        "stapling": "on" if site.ssl_use_stapling else "off",
        "verifies_clients": site.verifies_clients,
        # httpd expands ${NAME} when it reads the configuration; a certificate path is one file.
        "uses_variables": False,
        "details": {
            "addresses": list(site.addresses),
            "ports": list(site.ports),
            "ssl_ca_certificate_file": site.ssl_ca_certificate_file,
            "ssl_certificate_chain_file": site.ssl_certificate_chain_file,
        },
    }


def _apache_socket(address: str, tls: bool) -> dict:
    """The socket of a <VirtualHost> address: ``*:443``, ``[::1]:8443``, ``_default_:443``, ``192.0.2.1``.
    The port is None when none is written or it is ``*`` (any port)."""
    host, port = address, ""
    if address.startswith("["):
        close = address.find("]")
        if close >= 0:
            host, rest = address[:close + 1], address[close + 1:]
            port = rest[1:] if rest.startswith(":") else ""
    elif ":" in address:
        host, port = address.rsplit(":", 1)
    # SSLEngine is per virtual host: every address of a TLS <VirtualHost> serves TLS.
    return {"address": host, "port": int(port) if port.isdigit() else None, "tls": tls, "quic": False}
