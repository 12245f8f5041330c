"""Test bench: a PKI with a real OCSP responder, and real nginx and Apache servers, all on loopback.

    with Bench(tmp_path) as bench:
        server = bench.nginx(bench.default_sites())
        server.start()
        handshake_until(server.port, "good.test", lambda h: h.stapled)

Everything lives in the bench folder, every port is picked at run time, and leaving the `with`
block stops every process the bench started. For a responder that fails on purpose (down, slow, HTTP 500,
tryLater, a forged response...), see bench.faulty_responder.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .client import Handshake, handshake, handshake_until
from .pki import REVOCATION_REASONS, KeyType, Leaf, Pki
from .ports import LOOPBACK, free_port
from .processes import BenchError
from .responder import OcspResponder
from .servers import ApacheServer, NginxServer, Site

__all__ = [
    "LOOPBACK",
    "REVOCATION_REASONS",
    "ApacheServer",
    "Bench",
    "BenchError",
    "Handshake",
    "Leaf",
    "NginxServer",
    "OcspResponder",
    "Pki",
    "Site",
    "free_port",
    "handshake",
    "handshake_until",
]

ServerT = TypeVar("ServerT", NginxServer, ApacheServer)


class Bench:
    """A PKI, its OCSP responder, and the web servers made from it; a context manager."""

    def __init__(self, folder: Path, *, key_type: KeyType = "ec") -> None:
        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        # The OCSP URL goes into every certificate, so the responder's port is fixed before the PKI exists.
        port = free_port()
        self.pki = Pki.create(self.folder / "pki", f"http://{LOOPBACK}:{port}/", key_type=key_type)
        self.responder = OcspResponder(self.pki, self.folder / "responder", port=port)
        self.servers: list[NginxServer | ApacheServer] = []

    def __enter__(self) -> Bench:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the OCSP responder; web servers are started one by one by their owners."""
        self.responder.start()

    def stop(self) -> None:
        """Stop every server made by this bench and the responder, even when some of them fail to stop."""
        failures = []
        for process in [*reversed(self.servers), self.responder]:
            try:
                process.stop()
            except (BenchError, OSError) as error:
                failures.append(f"{type(process).__name__}: {error}")
        if failures:
            raise BenchError("could not stop everything:\n" + "\n".join(failures))

    def issue(self, name: str, **kwargs: Any) -> Leaf:
        """Issue a leaf certificate: see Pki.issue_leaf."""
        return self.pki.issue_leaf(name, **kwargs)

    def revoke(self, name: str, reason: str | None = "keyCompromise") -> None:
        """Revoke the leaf issued as name; the responder answers "revoked" from its next request on.

        Web servers keep a cached "good" response until they reload or it expires. After that, Apache
        staples the "revoked" response while nginx staples nothing: it only ever staples "good".
        """
        self.pki.revoke(self.pki.leaf(name), reason)

    def nginx(self, sites: list[Site], **kwargs: Any) -> NginxServer:
        """A new nginx in folder/nginx-<n>/ with its config written, not started; stopped with the bench."""
        server = NginxServer(self.folder / f"nginx-{self._count(NginxServer) + 1}", sites, **kwargs)
        return self._register(server)

    def apache(self, sites: list[Site], **kwargs: Any) -> ApacheServer:
        """A new Apache in folder/apache-<n>/ with its config written, not started; stopped with the bench."""
        server = ApacheServer(self.folder / f"apache-{self._count(ApacheServer) + 1}", sites, **kwargs)
        return self._register(server)

    def default_sites(self) -> list[Site]:
        """The standard sites of tests and demo, issuing their leaves on first use.

        good.test (the default site), nostaple.test (stapling off), mustaple.test (OCSP Must-Staple),
        nourl.test (no OCSP URL, stapling asked for anyway), expired.test (expired a day ago) and
        revoked.test (valid until a test calls revoke("revoked.test")). Each call returns new Site
        objects that share the leaves, so that nginx and Apache can serve the same certificates.
        """
        yesterday = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
        issue: dict[str, dict[str, Any]] = {
            "good.test": {},
            "nostaple.test": {},
            "mustaple.test": {"must_staple": True},
            "nourl.test": {"ocsp_url": None},
            "expired.test": {"not_after": yesterday},
            "revoked.test": {},
        }
        issued = {leaf.name for leaf in self.pki.leaves}
        for name, options in issue.items():
            if name not in issued:
                self.pki.issue_leaf(name, **options)
        return [
            Site(name, self.pki.leaf(name), stapling=name != "nostaple.test", default=name == "good.test")
            for name in issue
        ]

    def _count(self, kind: type) -> int:
        return sum(isinstance(server, kind) for server in self.servers)

    def _register(self, server: ServerT) -> ServerT:
        server.write_config()
        self.servers.append(server)
        return server
