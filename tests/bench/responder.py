"""A real OCSP responder (`openssl ocsp` over the PKI's index) on a loopback port."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from .pki import Pki
from .ports import LOOPBACK, free_port
from .processes import ChildProcess

# Lifetime of each response (thisUpdate to nextUpdate): long enough that no test sees one go stale.
VALIDITY_MINUTES = 60
SIGNERS = ("delegated", "issuer")
# Never through a proxy from the environment: bench traffic stays on loopback.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class OcspResponder:
    """Answers OCSP requests for the certificates of one Pki, signed by its delegated responder or by the issuer.

    Every request reads the index afresh, so Pki.revoke() shows in the very next response.
    """

    def __init__(self, pki: Pki, folder: Path, *, port: int | None = None, signer: str = "delegated") -> None:
        if signer not in SIGNERS:
            raise ValueError(f"unknown signer {signer!r}: use one of {', '.join(SIGNERS)}")
        self.pki = pki
        self.folder = folder.resolve()
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}/"
        self.signer = signer
        self.log_path = self.folder / "responder.log"
        if signer == "delegated":
            signer_cert, signer_key = pki.responder_cert_path, pki.responder_key_path
        else:
            signer_cert, signer_key = pki.intermediate_cert_path, pki.intermediate_key_path
        command = [
            "openssl", "ocsp", "-index", str(pki.index_path), "-CA", str(pki.intermediate_cert_path),
            "-rsigner", str(signer_cert), "-rkey", str(signer_key), "-nmin", str(VALIDITY_MINUTES),
        ]
        # -I: the front needs nothing but the standard library, so keep the caller's PYTHONPATH and site out.
        self._argv = [sys.executable, "-I", str(Path(__file__).with_name("ocsp_front.py")), str(self.port), *command]
        self._process = ChildProcess(f"OCSP responder on port {self.port}", self.log_path, [])

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def running(self) -> bool:
        return self._process.running()

    def start(self) -> None:
        """Start the responder and wait until it answers a real OCSP request."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._process.start(self._argv, self.port, ready=self._answers)

    def stop(self) -> None:
        self._process.stop()

    def restart(self) -> None:
        """Stop and start again on the same port (and so at the URL the certificates carry)."""
        self.stop()
        self.start()

    def query(self, cert: x509.Certificate, timeout: float = 5.0) -> ocsp.OCSPResponse:
        """Ask the responder about cert (issued by the PKI's intermediate) over HTTP POST."""
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, self.pki.intermediate_cert, hashes.SHA1()).build()
        http_request = urllib.request.Request(
            self.url, data=request.public_bytes(serialization.Encoding.DER), headers={"Content-Type": "application/ocsp-request"}
        )
        with _DIRECT.open(http_request, timeout=timeout) as answer:
            return ocsp.load_der_ocsp_response(answer.read())

    def _answers(self) -> bool:
        # The responder's own certificate is in the index, so it always has an answer for it.
        try:
            return self.query(self.pki.responder_cert, timeout=2.0).response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        except OSError:
            return False
