# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check many TLS endpoints for a good, fresh stapled OCSP response, concurrently.

This is the engine behind the ``verify`` module: target parsing, the retry budget
for cold caches, the deadline of each target, the thread pool and the summary. No Ansible imports.
"""

from __future__ import annotations

import datetime
import socket
import time
from http.client import HTTPException
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ._ocsp import (
    RESPONSE,
    UTC,
    StapleEvaluation,
    evaluate_staple,
    find_issuer,
    format_duration,
    iso_time,
    load_pem_certificates,
    ocsp_urls,
    request_der,
    short_name,
    utc_attr,
)
from ._ocsp_http import FetchError, HttpStatusError
from ._tls import handshake, make_context


class VerifyError(Exception):
    """Input that cannot be checked at all; the message says what to fix."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int = 443
    server_name: str | None = None

    @property
    def label(self) -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        if self.server_name and self.server_name != self.host:
            return "%s:%d (%s)" % (host, self.port, self.server_name)
        return "%s:%d" % (host, self.port)


@dataclass
class Policy:
    """How hard to try before calling an endpoint broken."""

    timeout: float = 5.0
    retry_budget: float = 10.0
    retry_delay: float = 0.25
    max_retry_delay: float = 2.0
    clock_skew: float = 300.0
    extra_issuers: tuple = ()
    # fetch(url, der_request, seconds) -> der_response, where seconds bound the whole exchange. When set,
    # a target that staples nothing gets its certificate's responder asked directly, to say why. The
    # module passes _ocsp_http.fetch_ocsp; tests pass fakes.
    fetch: Callable | None = None

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise VerifyError("timeout must be a positive number of seconds, got %s" % self.timeout)
        for name in ("retry_budget", "retry_delay", "clock_skew"):
            if getattr(self, name) < 0:
                raise VerifyError("%s must not be negative, got %s" % (name, getattr(self, name)))

    @property
    def deadline_seconds(self) -> float:
        """The most one target may take: the retry budget, one handshake begun just before it ends, and the diagnosis.

        Every handshake and the responder's fetch get at most min(timeout, time left), so that neither a slow
        server nor a responder dripping its answer byte by byte can hold a target longer.
        """
        return self.retry_budget + 2 * self.timeout


def parse_targets(entries, default_port: int = 443) -> list:
    """Turn the user's list of dicts into Targets, naming the entry that is wrong."""
    targets = []
    for index, entry in enumerate(entries or []):
        where = "targets[%d]" % index
        if isinstance(entry, str):
            entry = _split_host_port(entry, default_port, where)
        if not isinstance(entry, dict):
            raise VerifyError("%s must be a mapping with host, port and server_name, got %r" % (where, entry))
        unknown = set(entry) - {"host", "port", "server_name"}
        if unknown:
            raise VerifyError("%s has unknown keys %s: use host, port and server_name" % (where, ", ".join(sorted(unknown))))
        host = entry.get("host")
        if not host or not isinstance(host, str):
            raise VerifyError("%s has no host: give the address or name to connect to" % where)
        port = entry.get("port")
        port = default_port if port in (None, "") else port
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise VerifyError("%s port %r is not a number" % (where, port)) from None
        if not 0 < port < 65536:
            raise VerifyError("%s port %d is out of range 1-65535" % (where, port))
        server_name = entry.get("server_name") or host
        targets.append(Target(host=host.strip("[]"), port=port, server_name=str(server_name)))
    return targets


def _split_host_port(text: str, default_port: int, where: str) -> dict:
    """Accept 'host', 'host:port' and '[v6]:port' shorthands."""
    if text.startswith("["):
        host, rest = text[1:].split("]", 1) if "]" in text else (text[1:], "")
        port = rest[1:] if rest.startswith(":") else default_port
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, default_port
    if not host:
        raise VerifyError("%s %r has no host" % (where, text))
    return {"host": host, "port": port}


def load_extra_issuers(path: str | None) -> tuple:
    """Certificates from a PEM bundle, to find issuers that servers do not send."""
    if not path:
        return ()
    try:
        with open(path, "rb") as handle:
            certificates = load_pem_certificates(handle.read())
    except (OSError, ValueError) as exc:
        raise VerifyError("ca_file %s cannot be read as PEM certificates: %s" % (path, exc)) from None
    return tuple(certificates)


def _certificate_facts(cert) -> dict:
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": "%X" % cert.serial_number,
        "not_after": iso_time(utc_attr(cert, "not_valid_after")),
        "ocsp_urls": ocsp_urls(cert),
    }


def ask_responder(cert, issuer, policy: Policy, deadline: float | None = None) -> dict:
    """Query the certificate's OCSP responder from here, to explain a missing staple.

    ``deadline`` (time.monotonic()) is the target's: the fetch gets min(timeout, time left to it).
    """
    urls = ocsp_urls(cert)
    if not urls:
        return {"url": None, "reachable": False, "cert_status": None,
                "reason": "the certificate has no OCSP responder URL, so no server can staple it: drop stapling for this site or reissue"}
    url = urls[0]
    if issuer is None:
        return {"url": url, "reachable": False, "cert_status": None, "reason": "cannot ask %s without the issuer certificate" % url}
    allowed = policy.timeout if deadline is None else min(policy.timeout, deadline - time.monotonic())
    if allowed <= 0:
        return {"url": url, "reachable": None, "cert_status": None,
                "reason": "its responder %s was not asked: nothing was left of the target's deadline of %.1fs" % (url, policy.deadline_seconds)}
    # Cut short by the target's deadline: a timeout then says so, rather than blaming a timeout the user did not set.
    cut = policy.deadline_seconds if allowed < policy.timeout else None
    try:
        body = policy.fetch(url, request_der(cert, issuer), allowed)
    except (FetchError, HTTPException, OSError, ValueError) as exc:
        reachable = getattr(exc, "reachable", None)
        if reachable is None:
            reachable = bool(getattr(exc, "code", None))
        return {"url": url, "reachable": reachable, "cert_status": None, "reason": _fetch_failure(url, exc, allowed, cut)}
    evaluation = evaluate_staple(body, cert, issuer, datetime.datetime.now(UTC), datetime.timedelta(seconds=policy.clock_skew), what=RESPONSE)
    if evaluation.ok:
        reason = "its responder %s answers good from here, so the server is not fetching or not serving it: check its error log" % url
    else:
        reason = "its responder %s answers: %s" % (url, evaluation.reason)
    return {"url": url, "reachable": True, "cert_status": evaluation.cert_status, "reason": reason}


def _fetch_failure(url: str, exc: Exception, timeout: float, deadline: float | None = None) -> str:
    """Why asking the responder failed, told apart: an HTTP error status, nothing listening, no answer in time.

    Only texts of our own and the system's error names go into the reason: never what the peer sent.
    ``deadline`` is the target's deadline in seconds when it, not the timeout, cut the fetch short.
    """
    if isinstance(exc, HttpStatusError):
        return "its responder %s answers %s instead of an OCSP response" % (url, exc)
    # The status of an HTTP error from another fetcher (urllib's HTTPError); its message is the peer's and is left out.
    if isinstance(getattr(exc, "code", None), int):
        return "its responder %s answers HTTP %d instead of an OCSP response" % (url, exc.code)
    # urllib wraps connection errors in URLError(reason=<the socket error>); a read timeout comes bare.
    cause = getattr(exc, "reason", None) or exc
    if isinstance(cause, ConnectionRefusedError):
        return "its responder %s cannot be reached from here (connection refused): nothing listens there, it is down" % url
    if isinstance(cause, socket.timeout) or (isinstance(cause, OSError) and "timed out" in str(cause)):
        within = "the target's deadline of %.1fs" % deadline if deadline else "%.1fs" % timeout
        return "its responder %s cannot be reached from here (timed out): no answer within %s, it hangs or is too slow" % (url, within)
    if isinstance(cause, FetchError):
        if cause.reachable:
            return "its responder %s %s" % (url, _answers(cause))
        return "its responder %s cannot be asked from here: %s" % (url, cause)
    return "its responder %s cannot be reached from here (%s): check that the server can reach it" % (url, _error_name(cause))


def _answers(exc: FetchError) -> str:
    text = str(exc)
    # "closes the connection...", "breaks off..." read on their own; a size or a protocol fault is what it answers.
    return text if text.split(" ", 1)[0] in ("closes", "breaks", "fails") else "answers " + text


def _error_name(exc) -> str:
    """The system's name for a socket error ('[Errno 113] No route to host'), else the exception's type: no text of the peer."""
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return "[Errno %s] %s" % (exc.errno, exc.strerror)
    if isinstance(exc, FetchError):
        return str(exc)
    return type(exc).__name__


def _readable(cert) -> bool:
    """Whether everything this module reads of a served certificate parses (a hostile server may send duplicate extensions)."""
    try:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        utc_attr(cert, "not_valid_after")
        ocsp_urls(cert)
    except ValueError:
        return False
    return True


def check_target(target: Target, policy: Policy, context=None) -> dict:
    """Handshake until a good staple arrives, a definite failure is seen or the budget is spent, all by the target's deadline."""
    context = context or make_context()
    started = time.monotonic()
    deadline = started + policy.deadline_seconds
    delay = policy.retry_delay
    attempts = 0
    issuer = None
    while True:
        attempts += 1
        allowed = min(policy.timeout, deadline - time.monotonic())
        shake = handshake(context, target.host, target.port, target.server_name, allowed)
        if shake.timed_out and allowed < policy.timeout:
            shake.error = "no TLS handshake within the target's deadline of %.1fs" % policy.deadline_seconds
        if shake.chain and not _readable(shake.chain[0]):
            shake.chain, shake.error = [], "the served certificate does not parse as X.509 (malformed names or extensions)"
        if shake.error or not shake.chain:
            evaluation = StapleEvaluation(reason=shake.error or "the server sent no certificate")
            break
        leaf = shake.chain[0]
        issuer = find_issuer(leaf, [cert for cert in shake.chain[1:] if _readable(cert)] + list(policy.extra_issuers))
        evaluation = evaluate_staple(
            shake.staple, leaf, issuer, datetime.datetime.now(UTC), datetime.timedelta(seconds=policy.clock_skew))
        remaining = policy.retry_budget - (time.monotonic() - started)
        # Without an OCSP URL no server can ever fetch a response: waiting for one would only spend the budget.
        if evaluation.ok or not evaluation.retryable or remaining <= 0 or not ocsp_urls(leaf):
            break
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, policy.max_retry_delay)

    shaking = time.monotonic() - started
    result = {"host": target.host, "port": target.port, "server_name": target.server_name}
    result.update(evaluation.as_dict())
    # Not applicable: the served certificate names no OCSP responder, so stapling cannot work for this site
    # (the same verdict as the preflight's); None when no certificate was seen.
    result["applicable"] = bool(ocsp_urls(shake.chain[0])) if shake.chain else None
    if result["applicable"] is False and not evaluation.stapled:
        result["reason"] = "not applicable: " + result["reason"]
    if evaluation.retryable and attempts > 1:
        # After a reason that ends in a clause of its own (a stapled tryLater), a bare "after" would attach to that clause.
        result["reason"] += ("; still so" if evaluation.stapled else "") + " after %d handshakes over %.1fs" % (attempts, shaking)
    result["responder"] = None
    # Ask the responder when nothing was stapled, and when the staple carries no certificate status:
    # Apache staples a tryLater of its own when its responder is down, hangs or answers garbage,
    # which only the responder's own answer tells apart.
    no_status = evaluation.stapled and evaluation.response_status not in (None, "successful")
    if policy.fetch and shake.chain and (not evaluation.stapled or no_status):
        result["responder"] = ask_responder(shake.chain[0], issuer, policy, deadline)
        result["reason"] += "; " + result["responder"]["reason"]
    elapsed = time.monotonic() - started
    result.update({
        "attempts": attempts,
        "handshake_seconds": round(shake.seconds, 4),
        "elapsed_seconds": round(elapsed, 3),
        "tls_version": shake.tls_version,
        "certificate": _certificate_facts(shake.chain[0]) if shake.chain else None,
        "issuer_found": bool(shake.chain) and issuer is not None,
    })
    if shake.chain and issuer is not None:
        result["certificate"]["issuer_subject"] = short_name(issuer.subject)
    return result


def summarise(results: list) -> dict:
    failed = [result for result in results if not result["ok"]]
    return {
        "total": len(results),
        "ok": len(results) - len(failed),
        "failed": len(failed),
        "not_stapled": sum(1 for result in results if not result["stapled"]),
        "not_applicable": sum(1 for result in results if result.get("applicable") is False),
        "revoked": sum(1 for result in results if result["cert_status"] == "revoked"),
        "must_staple_broken": sum(1 for result in failed if result["must_staple"]),
        "failed_targets": [_label(result) for result in failed],
    }


def failure_message(results: list, shown: int = 10) -> str:
    """One message naming the failing targets and why, for a failed task."""
    failures = [result for result in results if not result["ok"]]
    lines = ["%s: %s" % (_label(result), result["reason"]) for result in failures[:shown]]
    if len(failures) > shown:
        lines.append("and %d more" % (len(failures) - shown))
    return "%d of %d targets do not staple a good, fresh OCSP response: %s" % (len(failures), len(results), "; ".join(lines))


def _label(result: dict) -> str:
    return Target(result["host"], result["port"], result["server_name"]).label


def check_targets(targets: list, policy: Policy, concurrency: int = 16) -> list:
    """Check every target, ``concurrency`` at a time; results keep the order of ``targets``."""
    if concurrency < 1:
        raise VerifyError("concurrency must be at least 1, got %s" % concurrency)
    if not targets:
        return []
    context = make_context()
    workers = max(1, min(concurrency, len(targets)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda target: check_target(target, policy, context), targets))


def targets_for(endpoints, address: str, port: int = 443) -> list:
    """Targets for one inventory host: ``endpoints`` lists SNI names or {server_name, port} mappings."""
    targets = []
    for index, endpoint in enumerate(endpoints or []):
        if isinstance(endpoint, str):
            endpoint = {"server_name": endpoint}
        if not isinstance(endpoint, dict) or not endpoint.get("server_name"):
            raise VerifyError("endpoint %d of %s must be a server name or a mapping with server_name (and port), got %r" % (
                index, address, endpoint))
        targets.append({"host": address, "port": int(endpoint.get("port") or port), "server_name": endpoint["server_name"]})
    return targets


def format_table(results: list) -> list:
    """A fixed-width table of results, one line per target, for people reading a run."""
    header = ("TARGET", "RESULT", "STATUS", "EXPIRES IN", "TRIES", "MUST-STAPLE", "REASON")
    rows = [header]
    for result in results:
        expiry = result.get("seconds_to_expiry")
        rows.append((
            _label(result),
            "ok" if result["ok"] else ("n/a" if result.get("applicable") is False else "FAIL"),
            result.get("cert_status") or ("no staple" if not result.get("stapled") else "-"),
            "-" if expiry is None else format_duration(expiry),
            str(result.get("attempts", "-")),
            "yes" if result.get("must_staple") else "no",
            result["reason"],
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]
    summary = summarise(results)
    lines.append("%d of %d targets staple a good, fresh OCSP response" % (summary["ok"], summary["total"]))
    return lines


def site_targets(sites: list, address: str, certificates=None) -> list:
    """verify targets for server_info sites: one per site and TLS port, named by its first usable server name.

    ``certificates`` limits the result to the sites serving one of these certificate paths (the ones
    stapling was turned on for). Wildcard and regex names cannot be sent as SNI; a site that has no
    other name is checked without a name, which reaches the default server of the socket.
    """
    wanted = set(certificates) if certificates is not None else None
    targets, seen = [], set()
    for site in sites:
        if wanted is not None and not wanted.intersection(site["ssl_certificate"]):
            continue
        names = [name for name in site["server_names"] if name and name != "_" and "*" not in name and not name.startswith("~")]
        # A QUIC socket is UDP, which a TLS handshake over TCP cannot reach; a socket without a port
        # (a unix socket, Apache's `*`) gives nothing to connect to.
        ports = [entry["port"] for entry in site["sockets"] if entry["tls"] and not entry["quic"] and entry["port"] is not None]
        for port in ports:
            key = (port, names[0] if names else None)
            if key in seen:
                continue
            seen.add(key)
            targets.append({"host": address, "port": port, "server_name": names[0] if names else address})
    return targets


def results_for(results: list, targets: list) -> list:
    """The results of ``targets`` (matched on host, port and server name), in the order of ``results``."""
    wanted = {target.label for target in parse_targets(targets)}
    return [result for result in results if _label(result) in wanted]
