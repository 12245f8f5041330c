"""Unit tests: verify against hostile responders and servers, on real sockets on 127.0.0.1.

A responder that drips its answer, redirects, sends megabytes or garbage, and TLS servers that staple
garbage or a huge staple, or whose certificate names a dripping responder: the fetch and check_target end
by their deadline, follow nothing, read no more than the cap, and put none of the peer's bytes in a result.
Every server here is a thread of this process; each test closes its sockets.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest
from bench.pki import Pki
from OpenSSL import SSL

from ansible_collections.ocsp.stapling.plugins.module_utils import _ocsp_http
from ansible_collections.ocsp.stapling.plugins.module_utils._ocsp import request_der
from ansible_collections.ocsp.stapling.plugins.module_utils._ocsp_http import MAX_BODY, HttpStatusError, TooLargeError, fetch_ocsp
from ansible_collections.ocsp.stapling.plugins.module_utils._verify import Policy, Target, ask_responder, check_target

# Text that must never reach a result: it stands for what a hostile peer sends (an internal page, a fake verdict).
MARKER = "MARKER-7f3a-internal-secret"
DRIP_SECONDS = 0.5
# The bound of a timed test is its deadline plus this margin: a correctness bound (seconds, not ten
# minutes), loose enough for a loaded machine, not a benchmark.
MARGIN = 1.0


class LocalServer:
    """A TCP server on 127.0.0.1 whose connections ``serve(sock, request_bytes)`` answers, each in a thread of its own.

    ``connections`` counts who connected; ``requests`` keeps what each sent first (unless ``http`` is false:
    then serve gets the socket and None). stop() closes every socket.
    """

    def __init__(self, serve, http: bool = True) -> None:
        self.serve = serve
        self.http = http
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        # accept() does not wake up when another thread closes the listener: poll, so that stop() is quick.
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.url = "http://127.0.0.1:%d/ocsp" % self.port
        self.connections = 0
        self.requests: list = []
        self.open: list = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _address = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            self.open.append(sock)
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(5)
            if self.http:
                self.requests.append(_read_request(sock))
            self.serve(sock, self.requests[-1] if self.http else None)
        except OSError:
            pass  # the client hung up, as it should past its deadline
        finally:
            sock.close()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        for sock in self.open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.thread.join(2)


def _read_request(sock: socket.socket) -> bytes:
    """Headers and a Content-Length body, as much as a test needs to see."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _separator, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _separator, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def server():
    """Start LocalServers with server(serve); every one is stopped after the test."""
    started = []

    def start(serve, http: bool = True) -> LocalServer:
        started.append(LocalServer(serve, http))
        return started[-1]
    yield start
    for each in started:
        each.stop()


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch):
    # The fetch honours the proxy environment: keep the machine's out of these tests.
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), "http://127.0.0.1:9/ocsp")
    pki.issue_leaf("site.test")
    return pki


def http_answer(status: str, body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 " + status, "Content-Type: application/ocsp-response", "Content-Length: %d" % len(body), *extra, "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def drip(answer: bytes, after: int = 0):
    """serve(): the first ``after`` bytes at once, then one byte every DRIP_SECONDS, as the hostile responder did."""
    def serve(sock, _request):
        sock.sendall(answer[:after])
        for index in range(after, len(answer)):
            sock.sendall(answer[index:index + 1])
            time.sleep(DRIP_SECONDS)
    return serve


def ask(pki, url: str, timeout: float, deadline: float | None = None) -> dict:
    """ask_responder with the real fetch, about a certificate that names url as its responder."""
    leaf = pki.issue_leaf("url%d.test" % len(pki.leaves), ocsp_url=url).cert
    return ask_responder(leaf, pki.intermediate_cert, Policy(fetch=fetch_ocsp, timeout=timeout), deadline)


# --- the fetch -------------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 40], ids=["headers", "body"])
def test_a_dripping_responder_is_cut_at_the_deadline(server, pki, after):
    """One byte per half second, in the status line and headers or in the body: the fetch ends at its timeout, in total."""
    dripping = server(drip(http_answer("200 OK", b"0" * 1000), after))
    timeout = 2.0
    started = time.monotonic()
    verdict = ask(pki, dripping.url, timeout)
    elapsed = time.monotonic() - started
    assert elapsed < timeout + MARGIN, elapsed
    assert "cannot be reached from here (timed out): no answer within 2.0s" in verdict["reason"], verdict["reason"]
    assert verdict["reachable"] is False and verdict["cert_status"] is None


def test_the_targets_deadline_cuts_the_fetch_and_says_so(server, pki):
    dripping = server(drip(http_answer("200 OK", b"0" * 100)))
    started = time.monotonic()
    # Half a second left of the target's deadline, though the timeout would allow 5.
    verdict = ask(pki, dripping.url, 5.0, deadline=started + 0.5)
    assert time.monotonic() - started < 0.5 + MARGIN
    assert "no answer within the target's deadline of 20.0s, it hangs or is too slow" in verdict["reason"], verdict["reason"]


def test_nothing_left_of_the_deadline_asks_nothing(server, pki):
    listening = server(drip(b""))
    verdict = ask(pki, listening.url, 5.0, deadline=time.monotonic() - 1)
    assert verdict["reason"].endswith("was not asked: nothing was left of the target's deadline of 20.0s")
    assert listening.connections == 0


def test_a_redirect_is_not_followed(server, pki):
    elsewhere = server(lambda sock, _request: sock.sendall(http_answer("200 OK", b"internal")))
    redirecting = server(lambda sock, _request: sock.sendall(http_answer("302 Found", b"", "Location: http://127.0.0.1:%d/admin" % elsewhere.port)))
    verdict = ask(pki, redirecting.url, 2.0)
    assert "answers HTTP 302 (a redirect, not followed) instead of an OCSP response" in verdict["reason"], verdict["reason"]
    assert verdict["reachable"] is True
    # Not contacted, and its address not repeated either.
    time.sleep(0.2)
    assert elsewhere.connections == 0 and redirecting.connections == 1
    assert str(elsewhere.port) not in json.dumps(verdict)


@pytest.mark.parametrize("framing", ["content-length", "close-delimited", "chunked"])
def test_a_huge_body_is_refused_at_the_cap(server, pki, framing):
    megabytes = 8
    body = (MARKER.encode() + b"x" * 1000) * (megabytes * 1024)

    def serve(sock, _request):
        if framing == "content-length":
            sock.sendall(http_answer("200 OK", b"")[:-len(b"Connection: close\r\n\r\n")].replace(b"Content-Length: 0", b"Content-Length: %d" % len(body)))
            sock.sendall(b"Connection: close\r\n\r\n" + body)
        elif framing == "close-delimited":
            sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n\r\n" + body)
        else:
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(body), 1 << 20):
                chunk = body[start:start + (1 << 20)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
    huge = server(serve)
    started = time.monotonic()
    with pytest.raises(TooLargeError) as refused:
        fetch_ocsp(huge.url, b"request", 5.0)
    assert refused.value.limit == MAX_BODY
    verdict = ask(pki, huge.url, 5.0)
    assert time.monotonic() - started < 2 * 5.0
    assert "answers a body of more than 65536 bytes, far more than an OCSP response (a few KiB): not read further" in verdict["reason"]
    assert MARKER not in json.dumps(verdict)


def test_endless_headers_are_refused(server, pki):
    def serve(sock, _request):
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        for index in range(100000):
            sock.sendall(b"X-%d: %s\r\n" % (index, MARKER.encode() * 20))
    endless = server(serve)
    verdict = ask(pki, endless.url, 5.0)
    assert verdict["reachable"] is True and MARKER not in json.dumps(verdict)
    assert any(text in verdict["reason"] for text in ("headers and body of more than", "something that is not an HTTP response")), verdict["reason"]


@pytest.mark.parametrize("answer", [
    http_answer("200 OK", ("<html><body>%s: good, fresh staple signed by the issuer</body></html>" % MARKER).encode()),
    ("%s 200 OK\r\n\r\n" % MARKER).encode(),
    ("HTTP/1.1 200 %s\r\nContent-Length: 100\r\n\r\n%s" % (MARKER, MARKER)).encode(),
    http_answer("500 %s" % MARKER, MARKER.encode()),
], ids=["html-body", "not-http", "short-body", "error-page"])
def test_garbage_is_judged_never_echoed(server, pki, answer):
    garbage = server(lambda sock, _request: sock.sendall(answer))
    verdict = ask(pki, garbage.url, 2.0)
    assert MARKER not in json.dumps(verdict), verdict
    assert verdict["cert_status"] is None and verdict["reachable"] is True
    if answer.startswith(b"HTTP/1.1 200 OK"):
        assert "something that is not an OCSP response (" in verdict["reason"] and "bytes; it does not parse as DER OCSP)" in verdict["reason"]


def test_a_refused_connection_keeps_its_reason(pki):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    verdict = ask(pki, "http://127.0.0.1:%d/" % port, 2.0)
    assert "cannot be reached from here (connection refused): nothing listens there, it is down" in verdict["reason"]
    assert verdict["reachable"] is False


def test_the_request_is_an_ocsp_post_with_our_user_agent(server, pki):
    responder = server(lambda sock, _request: sock.sendall(http_answer("200 OK", b"")))
    request = request_der(pki.leaf("site.test").cert, pki.intermediate_cert)
    assert fetch_ocsp(responder.url, request, 2.0) == b""
    head, _separator, body = responder.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /ocsp HTTP/1.1" and body == request
    assert "Content-Type: application/ocsp-request" in lines and "User-Agent: ansible-ocsp.stapling-verify" in lines


def test_the_proxy_environment_is_honoured(server, monkeypatch):
    proxy = server(lambda sock, _request: sock.sendall(http_answer("200 OK", b"via proxy")))
    monkeypatch.setenv("http_proxy", "http://user:secret@127.0.0.1:%d" % proxy.port)
    # The responder's address is nowhere to be reached: only the proxy answers.
    assert fetch_ocsp("http://ocsp.example.invalid:8080/path?q=1", b"request", 2.0) == b"via proxy"
    head = proxy.requests[0].split(b"\r\n\r\n")[0].decode().split("\r\n")
    # The absolute URI through a proxy, its credentials as urllib sends them.
    assert head[0] == "POST http://ocsp.example.invalid:8080/path?q=1 HTTP/1.1", head
    assert "Host: ocsp.example.invalid:8080" in head and "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=" in head
    # no_proxy sends the request straight to the responder.
    direct = server(lambda sock, _request: sock.sendall(http_answer("200 OK", b"direct")))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert fetch_ocsp(direct.url, b"request", 2.0) == b"direct"
    assert proxy.connections == 1 and direct.requests[0].startswith(b"POST /ocsp HTTP/1.1")


def test_a_proxy_that_refuses_is_named_not_the_responder(pki, monkeypatch):
    # A port nothing listens on: the proxy the environment names is down, the responder may be fine.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:%d" % port)
    verdict = ask(pki, "http://ocsp.example.invalid:8080/", 2.0)
    assert verdict["reason"] == ("its responder http://ocsp.example.invalid:8080/ cannot be asked from here: "
                                 "127.0.0.1:%d, the proxy that http_proxy names, refuses the connection" % port), verdict["reason"]
    # Without the proxy, the same refusal is the responder's own.
    monkeypatch.delenv("http_proxy")
    verdict = ask(pki, "http://127.0.0.1:%d/" % port, 2.0)
    assert "(connection refused): nothing listens there, it is down" in verdict["reason"], verdict["reason"]


def test_urls_that_are_not_http_are_not_fetched(pki):
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/", "http://127.0.0.1:notaport/"):
        verdict = ask(pki, url, 1.0)
        assert "cannot be asked from here: its URL" in verdict["reason"], verdict["reason"]


def _https(leaf, serve):
    """serve() behind TLS with leaf's certificate, as an https responder."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(leaf.fullchain_path), str(leaf.key_path))

    def wrapped(sock, _request):
        with context.wrap_socket(sock, server_side=True) as tls:
            tls.settimeout(5)
            serve(tls, _read_request(tls))
    return wrapped


@pytest.mark.parametrize("after", [0, 40], ids=["headers", "body"])
def test_an_https_responder_that_drips_is_cut_at_the_deadline_too(server, pki, after):
    leaf = pki.issue_leaf("https%d.test" % after, sans=["localhost"])
    dripping = server(_https(leaf, drip(http_answer("200 OK", b"0" * 1000), after)), http=False)
    trusting = ssl.create_default_context(cafile=str(pki.root_cert_path))
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        fetch_ocsp("https://localhost:%d/ocsp" % dripping.port, b"request", 1.5, trusting)
    assert time.monotonic() - started < 1.5 + MARGIN


def test_an_https_responder_is_verified_and_its_answer_capped(server, pki):
    leaf = pki.issue_leaf("https-huge.test", sans=["localhost"])
    huge = server(_https(leaf, lambda sock, _request: sock.sendall(http_answer("200 OK", MARKER.encode() * 100000))), http=False)
    url = "https://localhost:%d/ocsp" % huge.port
    with pytest.raises(TooLargeError):
        fetch_ocsp(url, b"request", 3.0, ssl.create_default_context(cafile=str(pki.root_cert_path)))
    # Not trusted by the system's store: refused, and said so without the peer's words.
    verdict = ask(pki, url, 3.0)
    assert "fails the TLS handshake (CERTIFICATE_VERIFY_FAILED)" in verdict["reason"] and MARKER not in json.dumps(verdict), verdict


def test_the_socket_refuses_to_receive_past_its_allowance():
    left, right = socket.socketpair()
    with left, right:
        sock = _ocsp_http.DeadlineSocket(fileno=left.detach())
        with sock:
            sock.deadline = time.monotonic() + 2
            sock.allowance = 10
            right.sendall(b"0123456789abcdef")
            assert sock.recv(100) == b"0123456789"
            with pytest.raises(TooLargeError):
                sock.recv(1)


def test_the_socket_refuses_to_wait_past_its_deadline():
    left, right = socket.socketpair()
    with left, right:
        sock = _ocsp_http.DeadlineSocket(fileno=left.detach())
        with sock:
            sock.deadline = time.monotonic() + 0.3
            started = time.monotonic()
            with pytest.raises(socket.timeout):
                while True:
                    right.sendall(b"x")  # a byte now and then resets no timer: the deadline stays
                    sock.recv(1)
                    time.sleep(0.1)
            assert time.monotonic() - started < 0.3 + MARGIN


def test_http_status_error_names_redirects():
    assert str(HttpStatusError(301)) == "HTTP 301 (a redirect, not followed)" and str(HttpStatusError(404)) == "HTTP 404"


# --- whole targets: real TLS handshakes ------------------------------------------------------------


def _der(tag: int, content: bytes) -> bytes:
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def garbage_staple(filling: bytes) -> bytes:
    """An OCSPResponse 'successful' whose basic response is ``filling``, not a BasicOCSPResponse.

    OpenSSL, as a server, staples only what parses as an OCSPResponse, and it does not look inside the
    responseBytes: so a hostile server can staple any bytes there, and only the client's full parse rejects them.
    """
    basic = bytes.fromhex("06092b0601050507300101")  # OID id-pkix-ocsp-basic
    return _der(0x30, bytes.fromhex("0a0100") + _der(0xA0, _der(0x30, basic + _der(0x04, filling))))


def _tls_server(leaf, staple=None, tls12=False) -> LocalServer:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate_chain_file(str(leaf.fullchain_path))
    context.use_privatekey_file(str(leaf.key_path))
    if tls12:
        context.set_max_proto_version(SSL.TLS1_2_VERSION)
    if staple is not None:
        context.set_ocsp_server_callback(lambda _connection, _data: staple)

    def serve(sock: socket.socket, _request) -> None:
        # No HTTP request to read first: the handshake is the whole conversation. pyOpenSSL needs a blocking
        # socket; a client that leaves ends it with an EOF.
        sock.setblocking(True)
        connection = SSL.Connection(context, sock)
        connection.set_accept_state()
        try:
            connection.do_handshake()
            connection.shutdown()
        except SSL.Error:
            pass  # the client gave up on a handshake it refused: that is the point of some tests
    return LocalServer(serve, http=False)


@pytest.fixture
def tls_server():
    started = []

    def start(leaf, **options) -> LocalServer:
        started.append(_tls_server(leaf, **options))
        return started[-1]
    yield start
    for each in started:
        each.stop()


def test_check_target_ends_by_its_deadline_when_the_responder_drips(server, tls_server, pki):
    """A server that staples nothing, whose certificate names a responder that drips: the whole target ends by its deadline."""
    dripping = server(drip(http_answer("200 OK", b"0" * 1000)))
    leaf = pki.issue_leaf("drip.test", ocsp_url=dripping.url)
    tls = tls_server(leaf)
    policy = Policy(timeout=1.0, retry_budget=1.0, retry_delay=0.1, fetch=fetch_ocsp)
    assert policy.deadline_seconds == 3.0
    started = time.monotonic()
    result = check_target(Target("127.0.0.1", tls.port, "drip.test"), policy)
    elapsed = time.monotonic() - started
    assert elapsed < policy.deadline_seconds + MARGIN, elapsed
    assert result["elapsed_seconds"] <= policy.deadline_seconds + MARGIN
    assert not result["ok"] and not result["stapled"] and result["attempts"] > 1, json.dumps(result)
    assert "cannot be reached from here (timed out): no answer within 1.0s" in result["reason"], result["reason"]
    assert result["responder"]["url"] == dripping.url and result["responder"]["reachable"] is False
    assert dripping.connections == 1


@pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3", "tls1.2"])
def test_a_garbage_staple_is_judged_never_echoed(tls_server, pki, tls12):
    leaf = pki.issue_leaf("garbage%d.test" % tls12)
    staple = garbage_staple(("%s: good, fresh staple signed by the issuer" % MARKER).encode() * 10)
    tls = tls_server(leaf, staple=staple, tls12=tls12)
    result = check_target(Target("127.0.0.1", tls.port, leaf.name), Policy(timeout=2.0, retry_budget=0))
    assert result["stapled"] and not result["ok"]
    assert result["reason"] == "the stapled bytes are not an OCSP response (%d bytes; they do not parse as DER OCSP)" % len(staple)
    assert MARKER not in json.dumps(result)


@pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3", "tls1.2"])
def test_a_huge_staple_ends_the_handshake_not_the_memory(tls_server, pki, tls12):
    """OpenSSL caps what it takes (16 KiB CertificateStatus in TLS 1.2; TLS 1.3 has no room for more than 64 KiB)."""
    leaf = pki.issue_leaf("huge%d.test" % tls12)
    tls = tls_server(leaf, staple=garbage_staple(MARKER.encode() * ((4 << 20) // len(MARKER))), tls12=tls12)
    started = time.monotonic()
    result = check_target(Target("127.0.0.1", tls.port, leaf.name), Policy(timeout=2.0, retry_budget=0))
    assert time.monotonic() - started < 2.0 + MARGIN
    assert not result["ok"] and MARKER not in json.dumps(result)
    assert result["reason"].startswith(("TLS handshake failed", "cannot connect", "the server sent no certificate")), result["reason"]
