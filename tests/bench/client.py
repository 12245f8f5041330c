"""The reference TLS client of the bench: `openssl s_client -status`, and what it says about the staple."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from .ports import LOOPBACK

HANDSHAKE_TIMEOUT = 15.0


@dataclass
class Handshake:
    """What `openssl s_client -status` printed for one handshake."""

    output: str

    @property
    def stapled(self) -> bool:
        """True when the server sent any OCSP response; s_client prints its status only then."""
        return self.response_status is not None

    @property
    def response_status(self) -> str | None:
        """"successful", "tryLater", ... or None when no staple was sent."""
        return self._field(r"OCSP Response Status: (\w+)")

    @property
    def cert_status(self) -> str | None:
        """"good", "revoked" or "unknown" from the stapled response, None without one."""
        return self._field(r"Cert Status: (\w+)")

    @property
    def subject(self) -> str | None:
        """The subject of the served certificate, e.g. "CN = good.test"."""
        return self._field(r"^subject=(.*)$")

    def _field(self, pattern: str) -> str | None:
        match = re.search(pattern, self.output, re.MULTILINE)
        return match.group(1).strip() if match else None


def handshake(port: int, server_name: str, timeout: float = HANDSHAKE_TIMEOUT) -> Handshake:
    """One TLS handshake with 127.0.0.1:port, SNI server_name, asking for the certificate status."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"{LOOPBACK}:{port}", "-servername", server_name, "-status"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False,
    )
    return Handshake(result.stdout + result.stderr)


def handshake_until(port: int, server_name: str, done: Callable[[Handshake], bool], attempts: int = 10, delay: float = 0.2) -> Handshake:
    """Repeat handshakes until done(handshake) holds or attempts run out; return the last one.

    nginx staples nothing until a worker has fetched a response, which a handshake only starts, and every
    worker has its own cache: a first answer without staple says nothing yet.
    """
    result = handshake(port, server_name)
    attempts_left = attempts - 1
    while attempts_left > 0 and not done(result):
        time.sleep(delay)
        result = handshake(port, server_name)
        attempts_left -= 1
    return result
