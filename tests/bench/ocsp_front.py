"""Loopback HTTP front for `openssl ocsp`: run as a program by responder.OcspResponder.

`openssl ocsp -port N` (OpenSSL 3.0) can only listen on [::]:N, every interface of the machine, and it
reloads a changed index only after answering one more request from the old one. This front listens on
127.0.0.1 alone and runs `openssl ocsp -reqin - -respout -` once per request, so that OpenSSL still
decides every status and signs every response, and a revocation counts from the very next request.

Usage: python ocsp_front.py PORT openssl ocsp -index ... -CA ... -rsigner ... -rkey ... -nmin ...
"""

from __future__ import annotations

import argparse
import base64
import binascii
import subprocess
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# An OCSPResponse holding only responseStatus malformedRequest(1): what `openssl ocsp -port` sends
# for a request it cannot parse.
MALFORMED_REQUEST = bytes.fromhex("3003 0a01 01")
OPENSSL_TIMEOUT = 10.0


class OcspFront(ThreadingHTTPServer):
    """A threading HTTP server that knows the `openssl ocsp` command answering each request."""

    daemon_threads = True

    def __init__(self, port: int, command: list[str]) -> None:
        super().__init__(("127.0.0.1", port), OcspHandler)
        self.command = command


class OcspHandler(BaseHTTPRequestHandler):
    """OCSP over HTTP as RFC 6960 appendix A describes it: POST (Apache, openssl) and GET (nginx)."""

    server: OcspFront
    # HTTP/1.0 closes each connection after its answer, as `openssl ocsp -port` does.
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:  # the name http.server dispatches to
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(length))

    def do_GET(self) -> None:  # the name http.server dispatches to
        # GET {url}/{url-encoded base64 of the DER request}; the bench's OCSP URL has the path "/".
        try:
            request = base64.b64decode(urllib.parse.unquote(self.path.lstrip("/")), validate=True)
        except binascii.Error:
            request = b""
        self._answer(request)

    def _answer(self, request: bytes) -> None:
        result = subprocess.run(
            [*self.server.command, "-reqin", "-", "-respout", "-"], input=request, capture_output=True, timeout=OPENSSL_TIMEOUT, check=False
        )
        body = result.stdout
        if result.returncode != 0 or not body:
            self.log_error("openssl ocsp failed with status %d: %s", result.returncode, result.stderr.decode(errors="replace").strip())
            body = MALFORMED_REQUEST
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    with OcspFront(args.port, args.command) as front:
        print(f"listening on 127.0.0.1:{args.port} for: {' '.join(args.command)}", file=sys.stderr, flush=True)
        front.serve_forever()


if __name__ == "__main__":
    main()
