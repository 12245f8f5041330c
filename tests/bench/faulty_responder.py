"""A fault-injecting OCSP responder for the bench, on 127.0.0.1 only, in front of the real one.

The real responder (`openssl ocsp`, responder.py) can only answer correctly. To see what nginx, Apache
and ocsp.stapling.verify do when a responder misbehaves, certificates name this front as their OCSP
URL instead. For every request it reads its control file and either forwards the request to the real
responder or answers with a fault. A fault applies to one certificate (by serial) or to every
request, and a test switches it at run time with set_fault(), without restarting anything: each
request reads the control file afresh.

    front = FaultyResponder(bench.pki, bench.responder.url, folder)
    front.start()
    leaf = bench.issue("slow.test", ocsp_url=front.url)
    front.set_fault("slow", leaf)

Faults (FAULTS):
    forward       no fault: the real responder's answer, byte for byte
    down          nothing listens on the front's port (the process is stopped; whole front only)
    slow          accept the request and answer only after `slow_seconds` (longer than every timeout)
    http-500      HTTP 500 with a text body
    not-ocsp      HTTP 200 with an HTML page
    try-later     the OCSP response status tryLater (no certificate status)
    unauthorized  the OCSP response status unauthorized
    rogue-signer  a good, fresh response signed by a self-signed key no CA issued
    expired       a good response signed by the real delegated responder, nextUpdate an hour ago
    other-serial  a good, fresh, correctly signed response about another serial
    drip          the real answer, headers and body, one byte every `drip_seconds` (a hostile or broken
                  responder: a per-read timeout never fires, only a total deadline ends it)
    redirect      HTTP 302 to `redirect_to` (set with redirect_to(); a hostile responder pointing its client
                  at another, perhaps internal, URL)
A revoked certificate needs no fault: revoke it in the PKI and forward.

The front runs as a program in a process of its own (ChildProcess), so that it is stopped by its pid
and "down" is really nothing listening, not a socket some forked process still holds.

Usage as a program: python faulty_responder.py PORT CONTROL UPSTREAM SIGNER_CERT SIGNER_KEY ROGUE_CERT ROGUE_KEY
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FAULTS = (
    "forward", "down", "slow", "http-500", "not-ocsp", "try-later", "unauthorized", "rogue-signer", "expired", "other-serial", "drip", "redirect",
)
# Longer than every timeout on the way: nginx's fixed 60 s for a responder (no directive changes it),
# Apache's SSLStaplingResponderTimeout and verify's timeout. A hung request costs no test time: its
# thread dies with the front.
SLOW_SECONDS = 90.0
ROGUE_NAME = "Rogue OCSP Signer"
UPSTREAM_TIMEOUT = 10.0
# One byte per half second: the real answer (about 1.5 KiB with headers) takes over ten minutes.
DRIP_SECONDS = 0.5
NOT_OCSP_BODY = b"<html><body><h1>Welcome to nginx!</h1></body></html>\n"
# Never through a proxy from the environment: bench traffic stays on loopback.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def serial_key(serial: int) -> str:
    """How the control file names a certificate: its serial in upper-case hex."""
    return f"{serial:X}"


# --- the program ---------------------------------------------------------------------------------


class FaultyFront(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 with what the handler needs to forward or to forge."""

    daemon_threads = True

    def __init__(self, port: int, control: Path, upstream: str, signer: tuple, rogue: tuple) -> None:
        super().__init__(("127.0.0.1", port), FaultyHandler)
        self.control = control
        self.upstream = upstream
        self.signer_cert, self.signer_key = signer
        self.rogue_cert, self.rogue_key = rogue
        self.log_lock = threading.Lock()

    def settings(self) -> dict:
        # Read per request: that is what makes a fault switchable while the front runs.
        try:
            return json.loads(self.control.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}


class FaultyHandler(BaseHTTPRequestHandler):
    """OCSP over HTTP (RFC 6960 appendix A): POST from Apache and openssl, GET from nginx."""

    server: FaultyFront
    # One answer per connection, as `openssl ocsp -port` and the real front do.
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:  # the name http.server dispatches to
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(length))

    def do_GET(self) -> None:  # the name http.server dispatches to
        try:
            request = base64.b64decode(urllib.parse.unquote(self.path.lstrip("/")), validate=True)
        except binascii.Error:
            request = b""
        self._answer(request)

    def _answer(self, der: bytes) -> None:
        try:
            request = ocsp.load_der_ocsp_request(der)
        except ValueError:
            request = None
        settings = self.server.settings()
        serial = serial_key(request.serial_number) if request is not None else "-"
        fault = settings.get("serials", {}).get(serial, settings.get("default", "forward"))
        # One line per request in the console log: tests read it to see which fault a server met.
        with self.server.log_lock:
            print(f"{time.time():.3f} {self.command} serial={serial} fault={fault} from={self.client_address[0]}", file=sys.stderr, flush=True)
        if fault == "slow":
            time.sleep(float(settings.get("slow_seconds", SLOW_SECONDS)))
            fault = "forward"
        if fault == "redirect":
            location = str(settings.get("redirect_to") or self.server.upstream)
            self._send(302, b"", "text/plain", [("Location", location)])
        elif fault == "http-500":
            self._send(500, b"Internal Server Error\n", "text/plain")
        elif fault == "not-ocsp":
            self._send(200, NOT_OCSP_BODY, "text/html")
        elif fault == "try-later":
            self._send_ocsp(ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER))
        elif fault == "unauthorized":
            self._send_ocsp(ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED))
        elif fault in ("rogue-signer", "expired", "other-serial") and request is not None:
            self._send_ocsp(self._forge(request, fault))
        else:
            self._forward(der, float(settings.get("drip_seconds", DRIP_SECONDS)) if fault == "drip" else 0.0)

    def _forge(self, request: ocsp.OCSPRequest, fault: str) -> ocsp.OCSPResponse:
        """A successful response that `openssl ocsp` would never sign: built here with cryptography."""
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        this_update, next_update = now - dt.timedelta(minutes=1), now + dt.timedelta(hours=1)
        serial = request.serial_number
        signer_cert, signer_key = self.server.signer_cert, self.server.signer_key
        if fault == "expired":
            # Signed by the real delegated responder, about the right certificate: only the times are wrong.
            this_update, next_update = now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)
        elif fault == "other-serial":
            # A serial the CA never issued; the CertID's issuer hashes stay right, so only the serial is wrong.
            serial = request.serial_number + 1
        elif fault == "rogue-signer":
            signer_cert, signer_key = self.server.rogue_cert, self.server.rogue_key
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash,
                issuer_key_hash=request.issuer_key_hash,
                serial_number=serial,
                algorithm=request.hash_algorithm,
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=this_update,
                next_update=next_update,
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
            # Send the signer along, as the real responder does: a client then has every certificate it
            # needs to judge the signature, and can only reject it for what it is.
            .certificates([signer_cert])
        )
        return builder.sign(signer_key, hashes.SHA256())

    def _forward(self, der: bytes, drip: float = 0.0) -> None:
        request = urllib.request.Request(self.server.upstream, data=der, headers={"Content-Type": "application/ocsp-request"})
        try:
            with _DIRECT.open(request, timeout=UPSTREAM_TIMEOUT) as answer:
                body = answer.read()
        except OSError as error:
            self.log_error("upstream %s failed: %s", self.server.upstream, error)
            self._send(502, b"upstream failed\n", "text/plain")
            return
        self._send(200, body, "application/ocsp-response", drip=drip)

    def _send_ocsp(self, response: ocsp.OCSPResponse) -> None:
        self._send(200, response.public_bytes(serialization.Encoding.DER), "application/ocsp-response")

    def _send(self, status: int, body: bytes, content_type: str, headers: list | None = None, drip: float = 0.0) -> None:
        try:
            if drip:
                # Built by hand, then written a byte at a time: the status line and headers drip too.
                head = [f"HTTP/1.0 {status} {self.responses.get(status, ('',))[0]}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
                answer = ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body
                for index in range(len(answer)):
                    self.wfile.write(answer[index:index + 1])
                    self.wfile.flush()
                    time.sleep(drip)
                return
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers or []:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # The client gave up first (a slow answer past its timeout): nothing left to tell it.


def _load_pair(cert_path: str, key_path: str) -> tuple:
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    return cert, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    for name in ("control", "upstream", "signer_cert", "signer_key", "rogue_cert", "rogue_key"):
        parser.add_argument(name)
    args = parser.parse_args()
    signer = _load_pair(args.signer_cert, args.signer_key)
    rogue = _load_pair(args.rogue_cert, args.rogue_key)
    with FaultyFront(args.port, Path(args.control), args.upstream, signer, rogue) as front:
        print(f"listening on 127.0.0.1:{args.port}, forwarding to {args.upstream}", file=sys.stderr, flush=True)
        front.serve_forever()


# --- the class the tests use ---------------------------------------------------------------------


def rogue_signer(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate with the OCSP Signing usage: a responder key that no CA of the bench issued."""
    cert_path, key_path = folder / "rogue.pem", folder / "rogue.key"
    if cert_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ROGUE_NAME)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class FaultyResponder:
    """The front as a bench process: start, stop (by pid), and switch faults at run time.

    The caller stops it: Bench.stop() does not know it.
    """

    def __init__(self, pki, upstream_url: str, folder: Path, *, port: int | None = None) -> None:
        # Imported here so that the program above needs nothing of the bench package.
        from .ports import free_port
        from .processes import ChildProcess

        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.control_path = self.folder / "faults.json"
        self.log_path = self.folder / "front.log"
        self._settings: dict = {"default": "forward", "serials": {}, "slow_seconds": SLOW_SECONDS}
        self._write()
        rogue_cert, rogue_key = rogue_signer(self.folder)
        # -P (Python 3.11+): keep this folder, where the bench's modules live, off the program's import path.
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        self._argv = [
            sys.executable, *safe_path, str(Path(__file__).resolve()), str(self.port), str(self.control_path), upstream_url,
            str(pki.responder_cert_path), str(pki.responder_key_path), str(rogue_cert), str(rogue_key),
        ]
        self._process = ChildProcess(f"faulty OCSP front on port {self.port}", self.log_path, [])

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def running(self) -> bool:
        return self._process.running()

    def start(self) -> None:
        self._process.start(self._argv, self.port)

    def stop(self) -> None:
        self._process.stop()

    def set_fault(self, fault: str, leaf=None) -> None:
        """Answer requests about leaf (every request when None) with fault from the next request on.

        "down" stops the whole front and any other fault of the whole front starts it again: nothing can
        refuse the connections of one certificate only, since the request comes after the connection.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: use one of {', '.join(FAULTS)}")
        if fault == "down":
            if leaf is not None:
                raise ValueError("'down' is a fault of the whole front, not of one certificate")
            self.stop()
            return
        if leaf is None:
            self._settings["default"] = fault
        else:
            self._settings["serials"][serial_key(leaf.serial)] = fault
        self._write()
        if leaf is None and not self.running():
            self.start()

    def redirect_to(self, url: str) -> None:
        """Where the "redirect" fault sends its clients, from the next request on."""
        self._settings["redirect_to"] = url
        self._write()

    def requests(self, leaf=None) -> list[str]:
        """The faults met by requests so far (about leaf only, when given), in order, from the log."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        wanted = f"serial={serial_key(leaf.serial)} " if leaf is not None else " serial="
        return [line.split(" fault=")[1].split()[0] for line in lines if wanted in line and " fault=" in line]

    def _write(self) -> None:
        # Replace in one step: the front reads the file at any moment and must never see half of it.
        partial = self.control_path.with_name(self.control_path.name + ".new")
        partial.write_text(json.dumps(self._settings), encoding="utf-8")
        os.replace(partial, self.control_path)


if __name__ == "__main__":
    main()
