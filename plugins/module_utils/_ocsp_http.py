# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCSP over HTTP (RFC 6960 appendix A) for a responder that may be hostile, and sockets bound by a deadline.

The responder's URL comes from the certificate a server presented, which nobody has verified, so
the peer may be anyone's. Hence, unlike a general HTTP client:

- one total deadline for the whole exchange (name lookup, connect, request, status line, headers,
  body): every socket call gets only the time left, so a responder that sends one byte per second
  cannot hold the caller past it;
- redirects are never followed (http.client does not follow them), so a hostile responder cannot
  make the controller fetch another, perhaps internal, URL;
- the body is capped: a real OCSP response is a few KiB, so more than MAX_BODY bytes is refused
  without reading further, and the status line and headers share a small allowance;
- errors carry texts of our own, never bytes the peer sent.

The proxy environment (http_proxy, https_proxy, no_proxy) is honoured as urllib does it.
No Ansible imports: the engine and its unit tests use it as plain Python.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request

USER_AGENT = "ansible-ocsp.stapling-verify"
# Real OCSP responses are one to a few KiB (a signature and maybe the responder's certificate).
MAX_BODY = 64 * 1024
# Status line and headers: a real responder sends a few hundred bytes of them.
MAX_HEAD = 16 * 1024
# What the buffered reader may fetch beyond what http.client asked for.
_READ_AHEAD = 8 * 1024


class FetchError(Exception):
    """A fetch that brought no OCSP response. The message is ours: it never holds bytes the peer sent.

    ``reachable`` says whether something answered at the responder's address.
    """

    reachable = False

    def __init__(self, message: str, reachable: bool | None = None) -> None:
        super().__init__(message)
        if reachable is not None:
            self.reachable = reachable


class HttpStatusError(FetchError):
    """The responder answered with an HTTP status other than 2xx; ``code`` is that status."""

    reachable = True

    def __init__(self, code: int) -> None:
        self.code = code
        if 300 <= code < 400:
            # The Location is not followed, nor repeated: it is the peer's text and may name an internal address.
            text = "HTTP %d (a redirect, not followed)" % code
        else:
            text = "HTTP %d" % code
        super().__init__(text)


class TooLargeError(FetchError):
    """The responder sent more than a response may hold; nothing more was read."""

    reachable = True

    def __init__(self, limit: int, what: str = "a body of") -> None:
        self.limit = limit
        super().__init__("%s more than %d bytes, far more than an OCSP response (a few KiB): not read further" % (what, limit))


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    return left


def resolve(host: str, port: int, deadline: float) -> list:
    """getaddrinfo, given up at the deadline.

    The C resolver cannot be interrupted and follows its own timeouts (resolv.conf), so it runs in a
    daemon thread that is left to finish on its own when the deadline comes first.
    """
    outcome: dict = {}

    def lookup() -> None:
        try:
            outcome["addresses"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=lookup, name="resolve", daemon=True)
    worker.start()
    worker.join(_time_left(deadline))
    if worker.is_alive():
        raise socket.timeout("name lookup timed out")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["addresses"]


def connect(host: str, port: int, deadline: float, factory=socket.socket) -> socket.socket:
    """A TCP connection to host:port made before the deadline, trying each address as create_connection does."""
    last_error: OSError | None = None
    for family, kind, proto, _name, address in resolve(host, port, deadline):
        sock = factory(family, kind, proto)
        try:
            sock.settimeout(_time_left(deadline))
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
            if isinstance(exc, socket.timeout):
                break  # the deadline is spent: no time for the next address
    raise last_error or OSError("no address for %s" % host)


class _Limits:
    """What a deadline socket may still spend: time until ``deadline`` and ``allowance`` bytes received.

    Mixed in before the socket class, so that every send and receive of either socket goes through it.
    """

    deadline = 0.0
    allowance = MAX_HEAD + MAX_BODY + _READ_AHEAD

    def _arm(self) -> None:
        # settimeout before every call: the time left shrinks, so no call can wait past the deadline.
        self.settimeout(_time_left(self.deadline))  # pylint: disable=no-member

    def _room(self, nbytes: int) -> int:
        if self.allowance <= 0:
            raise TooLargeError(MAX_HEAD + MAX_BODY, "headers and body of")
        return min(nbytes or self.allowance, self.allowance)

    def _spent(self, count: int) -> int:
        self.allowance -= count
        return count

    # http.client reads through makefile(), that is recv_into; recv for completeness. Both bound and count.
    def recv(self, bufsize=1024, flags=0):
        self._arm()
        data = super().recv(self._room(bufsize), flags)  # pylint: disable=no-member
        self._spent(len(data))
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._arm()
        return self._spent(super().recv_into(buffer, self._room(nbytes or memoryview(buffer).nbytes), flags))  # pylint: disable=no-member

    def send(self, data, flags=0):
        self._arm()
        return super().send(data, flags)  # pylint: disable=no-member

    def sendall(self, data, flags=0):
        # The timeout of sendall is the total for all of the data (Python 3.5+).
        self._arm()
        return super().sendall(data, flags)  # pylint: disable=no-member


class DeadlineSocket(_Limits, socket.socket):
    """A plain socket whose every send and receive ends by the deadline and which receives a bounded number of bytes."""


class DeadlineSSLSocket(_Limits, ssl.SSLSocket):
    """The TLS counterpart of DeadlineSocket, for https responders."""

    def do_handshake(self, block=False):
        # The handshake of the ssl module runs against one deadline given by the socket timeout.
        self._arm()
        return super().do_handshake(block)

    def write(self, data):
        self._arm()
        return super().write(data)


class _Connection(http.client.HTTPConnection):
    """An HTTP/1.1 connection made of a DeadlineSocket (TLS on top for https), through a CONNECT tunnel if one is set."""

    def __init__(self, host: str, port: int, deadline: float, tls: ssl.SSLContext | None = None, server_name: str | None = None) -> None:
        super().__init__(host, port)
        self.deadline = deadline
        self.tls = tls
        self.server_name = server_name

    def connect(self) -> None:
        sock = connect(self.host, self.port, self.deadline, DeadlineSocket)
        sock.deadline = self.deadline
        self.sock = sock
        if self._tunnel_host:
            self._tunnel()
        if self.tls is not None:
            wrapped = self.tls.wrap_socket(self.sock, server_hostname=self.server_name, do_handshake_on_connect=False)
            wrapped.deadline = self.deadline
            wrapped.do_handshake()
            self.sock = wrapped


def _proxy_for(scheme: str, host: str) -> tuple | None:
    """(host, port, Proxy-Authorization or None) of the proxy the environment names for this URL, as urllib chooses it."""
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    parts = urllib.parse.urlsplit(proxy)
    if not parts.hostname:
        return None
    authorization = None
    if parts.username is not None:
        secret = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        authorization = "Basic " + base64.b64encode(secret.encode("utf-8")).decode("ascii")
    return parts.hostname, parts.port or 80, authorization


def fetch_ocsp(url: str, request: bytes, timeout: float, tls: ssl.SSLContext | None = None) -> bytes:
    """POST a DER OCSP request to url and return the DER body of a 2xx answer, all within ``timeout`` seconds in total.

    ``tls`` is the context for an https URL (default: the system's trust store, names verified); it gets the
    deadline socket class set on it.

    Raises socket.timeout when the time is spent, OSError when the responder cannot be reached,
    HttpStatusError for another status (a redirect included: it is not followed), TooLargeError past
    the cap, and FetchError for anything else that is not an HTTP answer.
    """
    deadline = time.monotonic() + timeout
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchError("its URL does not parse") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("its URL is not an http or https URL")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    netloc_host = "[%s]" % host if ":" in host else host
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    headers = {"Content-Type": "application/ocsp-request", "User-Agent": USER_AGENT, "Connection": "close"}
    if parts.scheme == "https":
        tls = tls or ssl.create_default_context()
        tls.sslsocket_class = DeadlineSSLSocket
    else:
        tls = None
    proxy = _proxy_for(parts.scheme, netloc_host)
    if proxy is None:
        connection = _Connection(host, port, deadline, tls, host)
        target = path
    else:
        connection = _Connection(proxy[0], proxy[1], deadline, tls, host)
        if tls is not None:
            # https through a proxy: a CONNECT tunnel, then TLS with the responder itself.
            connection.set_tunnel(netloc_host, port, headers={"Proxy-Authorization": proxy[2]} if proxy[2] else None)
            target = path
        else:
            # http through a proxy: the absolute URI in the request line, as RFC 9112 section 3.2.2 asks.
            target = "http://%s:%d%s" % (netloc_host, port, path)
            if proxy[2]:
                headers["Proxy-Authorization"] = proxy[2]
    try:
        connection.request("POST", target, body=request, headers=headers)
        answer = connection.getresponse()
        if not 200 <= answer.status < 300:
            raise HttpStatusError(answer.status)
        length = answer.getheader("Content-Length")
        if length and length.strip().isdigit() and int(length) > MAX_BODY:
            raise TooLargeError(MAX_BODY)
        body = answer.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise TooLargeError(MAX_BODY)
        return body
    except ConnectionRefusedError:
        if proxy is None:
            raise
        # The refusal came from the proxy, not the responder: say which, or the operator looks at the wrong machine.
        raise FetchError("%s:%d, the proxy that %s_proxy names, refuses the connection" % (proxy[0], proxy[1], parts.scheme)) from None
    except http.client.RemoteDisconnected:
        raise FetchError("closes the connection without an answer", reachable=True) from None
    except http.client.IncompleteRead:
        raise FetchError("breaks off its answer before the end", reachable=True) from None
    except http.client.HTTPException:
        # BadStatusLine, LineTooLong, UnknownProtocol...: their texts quote what the peer sent.
        raise FetchError("answers something that is not an HTTP response", reachable=True) from None
    except ssl.SSLError as exc:
        # The reason of an SSL error is OpenSSL's name for the fault, never the peer's bytes.
        raise FetchError("fails the TLS handshake (%s)" % (exc.reason or type(exc).__name__), reachable=True) from None
    finally:
        connection.close()
