# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check many TLS endpoints for a good, fresh stapled OCSP response, concurrently.

This is the engine behind the ``verify`` module: target parsing, the retry budget
for cold caches, the deadline of each target, the thread pool and the summary. No Ansible imports.
The module's options (ARGUMENT_SPEC) and its whole answer (``answer``) are here too, because the
module runs in two ways: on the host it is delegated to, or inside the controller's Ansible worker
(plugins/action/verify.py), and both must take the same options and give the same answer.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import time
from http.client import HTTPException
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ._crypto import hashes, x509
from ._ocsp import (
    DEFAULT_MAX_AGE,
    RESPONSE,
    UTC,
    StapleEvaluation,
    evaluate_staple,
    find_issuer,
    format_duration,
    has_must_staple,
    iso_time,
    load_pem_certificates,
    ocsp_urls,
    request_der,
    short_name,
    utc_attr,
)
from ._ocsp_http import FetchError, HttpStatusError, fetch_ocsp
from ._tls import handshake, make_context


class VerifyError(Exception):
    """Input that cannot be checked at all; the message says what to fix."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int = 443
    server_name: str | None = None
    # SHA-256 fingerprints (upper-case hex, no separators) of the certificates the site is configured with;
    # empty: the served certificate must match server_name instead.
    expected_certificates: tuple = ()

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
    # Seconds after its thisUpdate that a response without nextUpdate stays fresh.
    max_age: float = DEFAULT_MAX_AGE.total_seconds()
    extra_issuers: tuple = ()
    # fetch(url, der_request, seconds) -> der_response, where seconds bound the whole exchange. When set,
    # a target that staples nothing gets its certificate's responder asked directly, to say why. The
    # module passes _ocsp_http.fetch_ocsp; tests pass fakes.
    fetch: Callable | None = None

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise VerifyError("timeout must be a positive number of seconds, got %s" % self.timeout)
        for name in ("retry_budget", "retry_delay", "clock_skew", "max_age"):
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
        unknown = set(entry) - {"host", "port", "server_name", "expected_certificates"}
        if unknown:
            raise VerifyError("%s has unknown keys %s: use host, port, server_name and expected_certificates" % (where, ", ".join(sorted(unknown))))
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
        if entry.get("server_name"):
            server_name = sni_name(str(entry["server_name"]), "%s server_name" % where)
        else:
            server_name = sni_name(host, "%s host (the server name when none is given)" % where)
        expected = fingerprints(entry.get("expected_certificates"), "%s expected_certificates" % where)
        targets.append(Target(host=host.strip("[]"), port=port, server_name=server_name, expected_certificates=expected))
    return targets


# A host name as SNI carries it (RFC 6066 section 3): labels of letters, digits, hyphens (and underscores, which
# real names hold), or Unicode labels that IDNA encodes.
_LABEL = re.compile(r"^[^\s/:@?#\[\]*]+$")


def host_name(text: str) -> str:
    """The host part of a name that may carry a scheme, a port or a path: 'https://www.example.com:443/' -> 'www.example.com'.

    Apache writes ServerName as [scheme://]name[:port]; IPv6 addresses come in brackets.
    """
    text = text.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def sni_name(text: str, where: str) -> str:
    """``text`` as the SNI name to send, refused with what to write instead when it carries more than a host name.

    A scheme or a port in the name is refused, not dropped: which port the user meant is not ours to guess,
    and the port goes in ``port``. A trailing dot is dropped (SNI carries none) and an IP address is kept
    (it is not sent as SNI).
    """
    name = text.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return name
    cleaned = host_name(name)
    if cleaned != name.rstrip("."):
        raise VerifyError("%s %r is not a host name: SNI carries the name alone, without a scheme, port or path; "
                          "write %r and give the port in port" % (where, text, cleaned))
    if not cleaned or any(not label or not _LABEL.match(label) for label in cleaned.split(".")):
        raise VerifyError("%s %r is not a host name that can be sent as SNI" % (where, text))
    return cleaned


def fingerprint(cert) -> str:
    """The certificate's SHA-256 fingerprint, upper-case hex without separators."""
    return cert.fingerprint(hashes.SHA256()).hex().upper()


def fingerprints(values, where: str) -> tuple:
    """Expected certificates, each a SHA-256 fingerprint (hex, colons or spaces allowed) or a PEM certificate, as fingerprints."""
    if values in (None, "", []):
        return ()
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise VerifyError("%s must be a list of SHA-256 fingerprints or PEM certificates, got %r" % (where, values))
    found = []
    for index, value in enumerate(values):
        text = str(value).strip()
        if "-----BEGIN" in text:
            try:
                certificates = x509.load_pem_x509_certificates(text.encode("ascii", "replace"))
            except ValueError:
                raise VerifyError("%s[%d] is not a PEM certificate" % (where, index)) from None
            found.append(fingerprint(certificates[0]))
            continue
        digits = re.sub(r"[\s:]", "", text).upper()
        if not re.fullmatch(r"[0-9A-F]{64}", digits):
            raise VerifyError("%s[%d] %r is neither a SHA-256 fingerprint (64 hex digits, colons allowed) nor a PEM certificate" % (
                where, index, text[:100]))
        found.append(digits)
    return tuple(dict.fromkeys(found))


def _dns_names(cert) -> list:
    """The DNS names a certificate is for: its subjectAltName DNS entries, or its CN when it has none (RFC 6125 6.4.4)."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if names:
        return [str(name) for name in names]
    return [str(attribute.value) for attribute in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]


def _a_label(name: str) -> str:
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return name.lower()


def name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 section 6.4: equal ignoring case, or a wildcard that is the whole left-most label and stands for exactly one label.

    A wildcard is not honoured inside a label (f*o.example.com), nor above two labels (*.com), as careful clients do.
    """
    pattern, name = _a_label(pattern.rstrip(".")), _a_label(name.rstrip("."))
    if pattern == name:
        return True
    labels = pattern.split(".")
    if labels[0] != "*" or len(labels) < 3 or "*" in ".".join(labels[1:]):
        return False
    head, _dot, rest = name.partition(".")
    return bool(head) and rest == ".".join(labels[1:])


def wrong_certificate(target: Target, cert) -> str | None:
    """Why the served certificate is not the one this target must get; '' when it is; None when nothing can be said.

    With expected_certificates the served leaf must be one of them; without, it must be issued for the SNI name.
    A target named by an IP address alone sends no SNI and has no name to match: None.
    """
    served = fingerprint(cert)
    if target.expected_certificates:
        if served in target.expected_certificates:
            return ""
        return "the server answered with another site's certificate (%r, SHA-256 %s, is not the certificate the site is configured with: %s)" % (
            short_name(cert.subject), _short_fingerprint(served), ", ".join(_short_fingerprint(value) for value in target.expected_certificates))
    name = target.server_name
    try:
        ipaddress.ip_address(name or "")
    except ValueError:
        pass
    else:
        return None
    if not name:
        return None
    names = _dns_names(cert)
    if any(name_matches(pattern, name) for pattern in names):
        return ""
    return "the server answered with another site's certificate (%r, for %s, does not cover the SNI name %r)" % (
        short_name(cert.subject), ", ".join(names[:5]) + (", ..." if len(names) > 5 else "") if names else "no DNS name", name)


def _short_fingerprint(value: str) -> str:
    """The first 8 bytes of a fingerprint, as `openssl x509 -fingerprint -sha256` begins it."""
    return ":".join(value[index:index + 2] for index in range(0, 16, 2)) + "..."


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
        "sha256": fingerprint(cert),
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
    evaluation = evaluate_staple(body, cert, issuer, datetime.datetime.now(UTC), datetime.timedelta(seconds=policy.clock_skew), what=RESPONSE,
                                 max_age=datetime.timedelta(seconds=policy.max_age))
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
    matches = None
    while True:
        attempts += 1
        allowed = min(policy.timeout, deadline - time.monotonic())
        shake = handshake(context, target.host, target.port, target.server_name, allowed)
        refused = shake.staple_refused
        if refused:
            # The TLS library refused the staple before anyone could read it: a handshake without the status
            # request still shows which certificate the server serves.
            refusal = shake.error[len("TLS handshake failed: "):]
            shake = handshake(context, target.host, target.port, target.server_name, min(policy.timeout, deadline - time.monotonic()), ask_status=False)
        if shake.timed_out and allowed < policy.timeout:
            shake.error = "no TLS handshake within the target's deadline of %.1fs" % policy.deadline_seconds
        if shake.chain and not _readable(shake.chain[0]):
            shake.chain, shake.error = [], "the served certificate does not parse as X.509 (malformed names or extensions)"
        if refused:
            evaluation = StapleEvaluation(
                stapled=True, reason="the server staples something that is not an OCSP response (the TLS library refused it: %s)" % refusal)
            if shake.chain:
                evaluation.must_staple = has_must_staple(shake.chain[0])
                matches = _judge_certificate(target, shake.chain[0], evaluation)
            break
        if shake.error or not shake.chain:
            evaluation = StapleEvaluation(reason=shake.error or "the server sent no certificate")
            break
        leaf = shake.chain[0]
        issuer = find_issuer(leaf, [cert for cert in shake.chain[1:] if _readable(cert)] + list(policy.extra_issuers))
        evaluation = evaluate_staple(
            shake.staple, leaf, issuer, datetime.datetime.now(UTC), datetime.timedelta(seconds=policy.clock_skew),
            max_age=datetime.timedelta(seconds=policy.max_age))
        matches = _judge_certificate(target, leaf, evaluation)
        if matches is False:
            # Another site's certificate stays another site's certificate, however often one asks.
            break
        remaining = policy.retry_budget - (time.monotonic() - started)
        # Without an OCSP URL no server can ever fetch a response: waiting for one would only spend the budget.
        if evaluation.ok or not evaluation.retryable or remaining <= 0 or not ocsp_urls(leaf):
            break
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, policy.max_retry_delay)

    shaking = time.monotonic() - started
    result = {"host": target.host, "port": target.port, "server_name": target.server_name}
    result.update(evaluation.as_dict())
    result["certificate_matches"] = matches
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
    if policy.fetch and shake.chain and matches is not False and (not evaluation.stapled or no_status):
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


def _judge_certificate(target: Target, leaf, evaluation: StapleEvaluation) -> bool | None:
    """Whether the served leaf is the one the target must get; a mismatch fails the evaluation with its reason."""
    why = wrong_certificate(target, leaf)
    if why is None:
        return None
    if why:
        evaluation.ok = False
        evaluation.retryable = False
        evaluation.reason = why
        return False
    return True


def _unjudged(target: Target, exc: Exception) -> dict:
    """The result of a target whose check ended in an error nobody foresaw: a verdict for it alone, the other targets go on."""
    result = {"host": target.host, "port": target.port, "server_name": target.server_name}
    result.update(StapleEvaluation(reason="verify could not judge this target: %s; please report it" % type(exc).__name__).as_dict())
    result.update({"certificate_matches": None, "applicable": None, "responder": None, "attempts": 0, "handshake_seconds": 0.0,
                   "elapsed_seconds": 0.0, "tls_version": None, "certificate": None, "issuer_found": False})
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


# The options of ocsp.stapling.verify in AnsibleModule's terms (its DOCUMENTATION says what each means).
ARGUMENT_SPEC = dict(
    targets=dict(type="list", elements="raw"),
    host=dict(type="str"),
    port=dict(type="int", default=443),
    server_name=dict(type="str"),
    expected_certificates=dict(type="list", elements="str"),
    concurrency=dict(type="int", default=16),
    timeout=dict(type="float", default=5),
    retry_budget=dict(type="float", default=10),
    retry_delay=dict(type="float", default=0.25),
    clock_skew=dict(type="int", default=300),
    max_age=dict(type="int", default=86400),
    ca_file=dict(type="path"),
    diagnose=dict(type="bool", default=True),
    report_only=dict(type="bool", default=False),
)
MUTUALLY_EXCLUSIVE = [("targets", "host"), ("targets", "expected_certificates")]
REQUIRED_ONE_OF = [("targets", "host")]


def answer(params: dict) -> dict:
    """The module's answer for validated ``params``: changed, targets, summary, and failed with msg when a
    target failed (unless report_only). Bad targets or options raise VerifyError."""
    if params["targets"] is not None:
        targets = parse_targets(params["targets"])
    else:
        targets = parse_targets([{"host": params["host"], "port": params["port"], "server_name": params["server_name"],
                                  "expected_certificates": params["expected_certificates"]}])
    policy = Policy(
        timeout=params["timeout"],
        retry_budget=params["retry_budget"],
        retry_delay=params["retry_delay"],
        clock_skew=params["clock_skew"],
        max_age=params["max_age"],
        extra_issuers=load_extra_issuers(params["ca_file"]),
        fetch=fetch_ocsp if params["diagnose"] else None,
    )
    results = check_targets(targets, policy, params["concurrency"])
    summary = summarise(results)
    outcome = dict(changed=False, targets=results, summary=summary)
    if summary["failed"] and not params["report_only"]:
        outcome.update(failed=True, msg=failure_message(results))
    return outcome


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

    def guarded(target: Target) -> dict:
        # Whatever one peer sends must not take the other targets' results with it.
        try:
            return check_target(target, policy, context)
        except Exception as exc:
            return _unjudged(target, exc)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(guarded, targets))


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


def site_targets(sites: list, address: str, certificates=None, site_certificates=None) -> list:
    """verify targets for server_info sites: one per site and TLS port, named by its first usable server name.

    ``certificates`` limits the result to the sites serving one of these certificate paths (the ones
    stapling was turned on for). Names are sent as SNI without the scheme and port that Apache's
    ServerName may carry ('www.example.com:443'). Wildcard and regex names cannot be sent as SNI; a site
    that has no other name is checked without a name, which reaches the default server of the socket.
    ``site_certificates`` is server_info's ``certificates`` result (path -> its certificate blocks): each
    target then carries the fingerprints of the leaf certificates its site is configured with (the first
    block of each file, the one the server serves), and the served certificate must be one of them.
    """
    wanted = set(certificates) if certificates is not None else None
    targets, seen = [], set()
    for site in sites:
        if wanted is not None and not wanted.intersection(site["ssl_certificate"]):
            continue
        names = [host_name(name) for name in site["server_names"] if name and name != "_" and "*" not in name and not name.startswith("~")]
        names = [name for name in names if name]
        expected = _configured_leaves(site["ssl_certificate"], site_certificates)
        # A QUIC socket is UDP, which a TLS handshake over TCP cannot reach; a socket without a port
        # (a unix socket, Apache's `*`) gives nothing to connect to.
        ports = [entry["port"] for entry in site["sockets"] if entry["tls"] and not entry["quic"] and entry["port"] is not None]
        for port in ports:
            key = (port, names[0] if names else None)
            if key in seen:
                continue
            seen.add(key)
            target = {"host": address, "port": port, "server_name": names[0] if names else address}
            if expected:
                target["expected_certificates"] = expected
            targets.append(target)
    return targets


def _configured_leaves(paths: list, site_certificates) -> list:
    """SHA-256 fingerprints of the first certificate of each file (the leaf a server serves from it), from server_info's blocks."""
    found = []
    for path in paths:
        entry = (site_certificates or {}).get(path) or {}
        blocks = entry.get("blocks") or []
        if not blocks:
            continue  # a file server_info could not use (its error is the preflight's to report)
        try:
            leaf = x509.load_pem_x509_certificate(str(blocks[0][1]).encode("ascii"))
        except (ValueError, UnicodeError):
            continue
        value = fingerprint(leaf)
        if value not in found:
            found.append(value)
    return found


def results_for(results: list, targets: list) -> list:
    """The results of ``targets`` (matched on host, port and server name), in the order of ``results``."""
    wanted = {target.label for target in parse_targets(targets)}
    return [result for result in results if _label(result) in wanted]
