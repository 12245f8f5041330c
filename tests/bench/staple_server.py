"""A TLS server on 127.0.0.1 that staples exactly the bytes a test gives it, for the tests of ocsp.stapling.verify.

nginx and Apache staple only what their responder answered, and a server on the OpenSSL that pyOpenSSL bundles
(4.x) drops a staple it cannot parse. `openssl s_server -status_file` parses the file too and refuses to
send bytes that are not DER OCSP. This server is the system's libssl (libssl.so.3) driven through ctypes: its
status callback hands OpenSSL the file's bytes with SSL_set_tlsext_status_ocsp_resp, which sends them as
given, in TLS 1.2 (CertificateStatus) and TLS 1.3 (the leaf's status_request extension) alike.

    server = StapleServer(leaf.fullchain_path, leaf.key_path, folder)
    server.start()
    server.staple(der)          # every handshake from now on staples these bytes; b"" staples nothing
    ...
    server.stop()               # by its process id

The staple file is read for every handshake, so a test switches staples without a restart.

Usage as a program: python staple_server.py PORT CERT_CHAIN KEY STAPLE_FILE
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import sys
import threading
from pathlib import Path

LIBSSL = "libssl.so.3"
LIBCRYPTO = "libcrypto.so.3"
# From openssl/ssl.h and tls1.h (OpenSSL 3): what the macros SSL_CTX_set_tlsext_status_cb and
# SSL_set_tlsext_status_ocsp_resp expand to.
SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB = 63
SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP = 71
SSL_TLSEXT_ERR_OK = 0
SSL_TLSEXT_ERR_NOACK = 3
SSL_FILETYPE_PEM = 1
STATUS_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# A client that connects and says nothing (the bench's readiness probe) must not hold a thread for long.
HANDSHAKE_SECONDS = 10


def _libraries() -> tuple:
    ssl, crypto = ctypes.CDLL(LIBSSL), ctypes.CDLL(LIBCRYPTO)
    ssl.TLS_server_method.restype = ctypes.c_void_p
    ssl.SSL_CTX_new.restype = ctypes.c_void_p
    ssl.SSL_CTX_new.argtypes = [ctypes.c_void_p]
    ssl.SSL_CTX_use_certificate_chain_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    ssl.SSL_CTX_use_PrivateKey_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    ssl.SSL_CTX_callback_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, STATUS_CALLBACK]
    ssl.SSL_CTX_callback_ctrl.restype = ctypes.c_long
    ssl.SSL_new.restype = ctypes.c_void_p
    ssl.SSL_new.argtypes = [ctypes.c_void_p]
    ssl.SSL_set_fd.argtypes = [ctypes.c_void_p, ctypes.c_int]
    ssl.SSL_accept.argtypes = [ctypes.c_void_p]
    ssl.SSL_shutdown.argtypes = [ctypes.c_void_p]
    ssl.SSL_free.argtypes = [ctypes.c_void_p]
    ssl.SSL_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    ssl.SSL_ctrl.restype = ctypes.c_long
    crypto.CRYPTO_malloc.restype = ctypes.c_void_p
    crypto.CRYPTO_malloc.argtypes = [ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int]
    return ssl, crypto


def serve(port: int, chain: str, key: str, staple_file: str) -> None:
    ssl, crypto = _libraries()
    context = ssl.SSL_CTX_new(ssl.TLS_server_method())
    if not context or ssl.SSL_CTX_use_certificate_chain_file(context, chain.encode()) != 1 \
            or ssl.SSL_CTX_use_PrivateKey_file(context, key.encode(), SSL_FILETYPE_PEM) != 1:
        sys.exit("cannot load %s and %s into %s" % (chain, key, LIBSSL))

    def status(connection, _arg) -> int:
        data = Path(staple_file).read_bytes()
        if not data:
            return SSL_TLSEXT_ERR_NOACK
        # OpenSSL takes the buffer over and frees it with OPENSSL_free: it must come from OPENSSL_malloc.
        buffer = crypto.CRYPTO_malloc(len(data), b"staple_server", 0)
        ctypes.memmove(buffer, data, len(data))
        ssl.SSL_ctrl(connection, SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP, len(data), buffer)
        return SSL_TLSEXT_ERR_OK

    callback = STATUS_CALLBACK(status)  # kept referenced for the life of the server
    ssl.SSL_CTX_callback_ctrl(context, SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB, callback)

    def handle(sock: socket.socket) -> None:
        with sock:
            # A kernel timeout, not sock.settimeout(): that would make the descriptor non-blocking under OpenSSL's feet.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", HANDSHAKE_SECONDS, 0))
            connection = ssl.SSL_new(context)
            ssl.SSL_set_fd(connection, sock.fileno())
            if ssl.SSL_accept(connection) == 1:
                ssl.SSL_shutdown(connection)
            ssl.SSL_free(connection)

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    while True:
        sock, _address = listener.accept()
        threading.Thread(target=handle, args=(sock,), daemon=True).start()


class StapleServer:
    """The program above as a bench process: started on a free loopback port, stopped by its pid."""

    def __init__(self, chain_path: Path, key_path: Path, folder: Path) -> None:
        # Imported here so that the program above needs nothing of the bench package.
        from .ports import free_port
        from .processes import ChildProcess

        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.staple_path = self.folder / "staple.der"
        self.staple_path.write_bytes(b"")
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        self._argv = [sys.executable, *safe_path, str(Path(__file__).resolve()), str(self.port), str(chain_path), str(key_path), str(self.staple_path)]
        self._process = ChildProcess(f"stapling TLS server on port {self.port}", self.folder / "server.log", [])

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self) -> None:
        self._process.start(self._argv, self.port)

    def stop(self) -> None:
        self._process.stop()

    def staple(self, data: bytes) -> None:
        """Staple ``data`` on every handshake from now on (b"": staple nothing); replaced by rename, never read half written."""
        partial = self.staple_path.with_suffix(".part")
        partial.write_bytes(data)
        os.replace(partial, self.staple_path)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
