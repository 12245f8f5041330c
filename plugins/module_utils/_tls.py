# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One TLS handshake that asks for the certificate status (RFC 6066 status_request).

The standard library's ssl module cannot ask for a staple, so this uses pyOpenSSL.
No certificate trust is checked here: the point is what the server staples, and the
staple itself is judged by ``_ocsp.evaluate_staple``.

The whole handshake, name lookup and connect included, ends by one deadline, ``timeout`` seconds
after it starts: a server that sends its handshake a byte at a time cannot stretch it. OpenSSL bounds
what it accepts: a CertificateStatus message (TLS 1.2) of at most 16 KiB and a certificate list
(where TLS 1.3 carries the staple) of at most 100 KiB, so a huge staple ends the handshake with an
error instead of filling the memory.

Some TLS libraries (the OpenSSL that pyOpenSSL bundles from 4.0 on) parse the staple themselves, before the
status callback sees it, and end the handshake when it is not DER OCSP. Such an end is told apart
(``staple_refused``): it means that the server staples something that is not an OCSP response, which is the
verdict, not a failed connection.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time
from dataclasses import dataclass, field

from ._crypto import SSL
from ._ocsp_http import connect


@dataclass
class Handshake:
    """What one handshake returned; ``error`` is set when there was no session."""

    staple: bytes | None = None
    chain: list = field(default_factory=list)
    tls_version: str | None = None
    seconds: float = 0.0
    error: str | None = None
    # The error is that the deadline came first (the caller may word it for its own, longer deadline).
    timed_out: bool = False
    # The TLS library ended the handshake because the staple does not parse as an OCSP response.
    staple_refused: bool = False


# What OpenSSL reports when it refuses a stapled response itself: SSL_R_TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE,
# SSL_R_INVALID_STATUS_RESPONSE.
_STAPLE_REFUSED = ("bad certificate status response", "invalid status response")


def _remember_staple(connection, staple: bytes, _data) -> bool:
    connection.get_app_data()["staple"] = bytes(staple) if staple else None
    # True whatever was stapled, so the handshake goes on and the caller judges the bytes: a callback that
    # refused would turn a bad staple into a failed handshake, which tells the operator less.
    return True


def make_context():
    """One client context shared by every handshake of a run (OpenSSL contexts are thread safe)."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)
    context.set_ocsp_client_callback(_remember_staple)
    return context


def _wait(sock: socket.socket, for_write: bool, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout()
    poller = select.poll()
    poller.register(sock, select.POLLOUT if for_write else select.POLLIN)
    if not poller.poll(remaining * 1000):
        raise socket.timeout()


def _sni(server_name: str | None) -> bytes | None:
    if not server_name:
        return None
    try:
        ipaddress.ip_address(server_name)
    except ValueError:
        return server_name.encode("idna")
    return None  # RFC 6066 forbids IP literals in SNI


def _peer_chain(connection) -> list:
    try:
        return connection.get_peer_cert_chain(as_cryptography=True) or []
    except TypeError:  # pyOpenSSL before 24.3
        return [cert.to_cryptography() for cert in connection.get_peer_cert_chain() or []]


def handshake(context, host: str, port: int, server_name: str | None, timeout: float, ask_status: bool = True) -> Handshake:
    """Connect, send SNI and a status request, and return the staple and the served chain.

    ``ask_status`` false leaves the status request out: the served chain of a server whose staple the
    TLS library refuses can still be seen that way.
    """
    started = time.monotonic()
    deadline = started + timeout
    result = Handshake()
    sock = None
    try:
        sock = connect(host, port, deadline)
        sock.setblocking(False)
        connection = SSL.Connection(context, sock)
        connection.set_app_data({"staple": None})
        name = _sni(server_name)
        if name:
            connection.set_tlsext_host_name(name)
        if ask_status:
            connection.request_ocsp()
        connection.set_connect_state()
        while True:
            try:
                connection.do_handshake()
                break
            except SSL.WantReadError:
                _wait(sock, False, deadline)
            except SSL.WantWriteError:
                _wait(sock, True, deadline)
        result.seconds = time.monotonic() - started
        result.staple = connection.get_app_data()["staple"]
        result.chain = _peer_chain(connection)
        result.tls_version = connection.get_protocol_version_name()
        try:
            connection.shutdown()
        except SSL.Error:
            pass  # a half-closed session does not change what was stapled
    except socket.timeout:
        result.error = "no TLS handshake within %.1fs" % timeout
        result.timed_out = True
    except socket.gaierror as exc:
        result.error = "cannot resolve %s: %s" % (host, exc.strerror or exc)
    except OSError as exc:
        result.error = "cannot connect: %s" % (exc.strerror or exc)
    except SSL.Error as exc:
        text = _ssl_error_text(exc)
        result.error = "TLS handshake failed: %s" % text
        result.staple_refused = ask_status and any(marker in text for marker in _STAPLE_REFUSED)
    finally:
        if sock is not None:
            sock.close()
    if result.error:
        result.seconds = time.monotonic() - started
    return result


def _ssl_error_text(exc) -> str:
    details = []
    for entry in exc.args[0] if exc.args and isinstance(exc.args[0], list) else []:
        details.append(entry[-1] if isinstance(entry, tuple) else str(entry))
    return ", ".join(details) or str(exc) or type(exc).__name__
