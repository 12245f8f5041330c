# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit's judgement: one row per TLS site and port, from what the run already knows of it.

Three sources meet here, each read as the collection returns it and never asked again:

- the site record of ``server_info`` (``_sites.site_record``): what the configuration says, stapling
  ``on`` or ``off`` included;
- the preflight verdict of the site's certificate (``_chain.preflight``, made on the controller):
  whether the certificate can be stapled at all, and why not;
- the result of ``verify`` for the site's target: what the site really serves.

A row carries every fact a person or a machine needs to act (see ``ROW_KEYS``), one ``status`` from
``STATUSES``, the ``reason`` in words and the next ``action``. The reports (JSON, table, JUnit,
OpenMetrics, HTML) are renderings of these rows and judge nothing themselves.

Plain Python, no Ansible imports, no cryptography: times arrive as ISO 8601 text.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

# From the most to the least urgent; the reports sort and count in this order.
OK = "ok"
WARNING = "warning"
CRITICAL = "critical"
FAILING = "failing"
DEAD = "dead configuration"
NOT_STAPLING = "not stapling"
NOT_APPLICABLE = "not applicable"
NOT_AUDITED = "not audited"
STATUSES = (CRITICAL, FAILING, DEAD, NOT_AUDITED, NOT_STAPLING, WARNING, NOT_APPLICABLE, OK)
# What CI must show as a failure: a site broken for its clients now, or one whose stapling cannot work.
FAILURES = (CRITICAL, FAILING)

MEANINGS = {
    OK: "staples a good, fresh OCSP response",
    WARNING: "staples a good response now, but an outage is near (staple about to expire, certificate expiring)",
    CRITICAL: "clients refuse the site or its certificate is revoked (Must-Staple and no good staple; revoked)",
    FAILING: "stapling is configured and the site does not staple a good, fresh response",
    DEAD: "stapling is configured for a certificate that can never be stapled",
    NOT_STAPLING: "the certificate could be stapled, and the site does not staple",
    NOT_APPLICABLE: "the certificate cannot be stapled (no OCSP URL, self-signed, expired, issuer unknown) and stapling is off",
    NOT_AUDITED: "the site or its host could not be checked",
}

# The stapling the configuration sets, as ``stapling``: on, off (written so), absent (not written: the
# servers' default is off), unknown (the host could not be read).
ABSENT = "absent"
UNKNOWN = "unknown"

# What the site serves, as ``served``: good, revoked, unknown, nothing, stale, wrong certificate,
# invalid staple, a response status other than successful (tryLater, ...), unreachable, not checked.
GOOD = "good"
NOTHING = "nothing"
NOT_CHECKED = "not checked"
UNREACHABLE = "unreachable"
WRONG_CERTIFICATE = "wrong certificate"

ROW_KEYS = (
    "host", "server", "version", "site", "server_names", "path", "line", "socket", "port", "target",
    "certificate_path", "subject", "serial", "not_after", "certificate_seconds_left",
    "ocsp_url", "must_staple", "applicable", "stapling", "served", "staple_next_update", "staple_seconds_left",
    "status", "reason", "action", "warnings", "verify",
)


@dataclass(frozen=True)
class Thresholds:
    """How near an outage must be for a warning."""

    # nginx refreshes a staple 5 minutes before its nextUpdate at the latest, and every hour anyway: a staple this
    # close to its end means the server failed to refresh it.
    staple_seconds: int = 1800
    certificate_days: int = 30


def parse_time(text: str | None) -> datetime.datetime | None:
    """An aware datetime from the ISO 8601 UTC text the collection returns (``2026-05-01T12:00:00Z``)."""
    if not text:
        return None
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def served_state(result: dict | None) -> str:
    """What the site serves, in one word or two, from its verify result."""
    if result is None:
        return NOT_CHECKED
    if result.get("certificate") is None:
        return UNREACHABLE
    if result.get("certificate_matches") is False:
        return WRONG_CERTIFICATE
    if result.get("ok"):
        return GOOD
    if not result.get("stapled"):
        return NOTHING
    if result.get("response_status") not in (None, "successful"):
        return result["response_status"]
    if result.get("cert_status") in ("revoked", "unknown"):
        return result["cert_status"]
    if result.get("signature_valid") and result.get("names_certificate") and not result.get("fresh"):
        return "stale"
    return "invalid staple"


def _revoked(result: dict | None) -> bool:
    """Revoked by the staple, or by the responder's own answer when the server staples nothing (nginx never staples revoked)."""
    if not result:
        return False
    responder = result.get("responder") or {}
    return result.get("cert_status") == "revoked" or responder.get("cert_status") == "revoked"


def _responder_answers_controller(result: dict | None) -> bool:
    """The responder answered the controller with a status while the server stapled nothing: the server's way to it is broken."""
    responder = (result or {}).get("responder") or {}
    return not (result or {}).get("stapled") and bool(responder.get("reachable")) and responder.get("cert_status") in ("good", "revoked", "unknown")


def duration(seconds: int) -> str:
    sign, seconds = ("-" if seconds < 0 else ""), abs(int(seconds))
    if seconds >= 86400:
        return "%s%dd%02dh" % (sign, seconds // 86400, seconds % 86400 // 3600)
    if seconds >= 3600:
        return "%s%dh%02dm" % (sign, seconds // 3600, seconds % 3600 // 60)
    return "%s%dm%02ds" % (sign, seconds // 60, seconds % 60)


def _label(site: dict) -> str:
    names = [name for name in site.get("server_names") or [] if name and name != "_"]
    return names[0] if names else "(default server)"


def _socket(site: dict, port) -> str:
    addresses = [entry["address"] for entry in site.get("sockets") or [] if entry.get("port") == port and entry.get("tls")]
    return "%s:%s" % (addresses[0] if addresses else "*", port) if port is not None else "-"


def site_rows(host: str, info: dict, site: dict, preflight: dict | None, checks: list, now: datetime.datetime,
              thresholds: Thresholds = Thresholds()) -> list:
    """The rows of one site: one per (target, verify result) in ``checks``, or one unchecked row when it has none.

    ``info`` is the server_info result the site comes from (server, version), ``preflight`` the verdict on the
    site's first certificate file (None when there is none: a path with variables, or no certificate).
    """
    if not checks:
        return [_row(host, info, site, preflight, None, None, now, thresholds)]
    return [_row(host, info, site, preflight, target, result, now, thresholds) for target, result in checks]


def _row(host, info, site, preflight, target, result, now, thresholds) -> dict:
    served_cert = (result or {}).get("certificate") or {}
    preflight = preflight or {}
    certificates = site.get("ssl_certificate") or []
    not_after = served_cert.get("not_after") or preflight.get("not_after")
    expiry = parse_time(not_after)
    urls = served_cert.get("ocsp_urls") if served_cert else preflight.get("ocsp_urls")
    next_update = (result or {}).get("next_update") if (result or {}).get("stapled") else None
    staple_left = (result or {}).get("seconds_to_expiry") if next_update else None
    port = target.get("port") if target else None
    row = {
        "host": host,
        "server": info.get("server") or site.get("server"),
        "version": info.get("version"),
        "site": _label(site),
        "server_names": list(site.get("server_names") or []),
        "path": site.get("path"),
        "line": site.get("line"),
        "socket": _socket(site, port),
        "port": port,
        "target": None if not target else "%s:%s (%s)" % (target["host"], target["port"], target["server_name"]),
        "certificate_path": certificates[0] if certificates else None,
        "subject": served_cert.get("subject") or preflight.get("subject"),
        "serial": served_cert.get("serial") or preflight.get("serial"),
        "not_after": not_after,
        "certificate_seconds_left": None if expiry is None else int((expiry - now).total_seconds()),
        "ocsp_url": urls[0] if urls else "none",
        "must_staple": bool((result or {}).get("must_staple") if served_cert else preflight.get("must_staple")),
        # Stapling can work: the certificate names a responder, and the preflight found nothing else against it.
        "applicable": bool(urls) and (bool(preflight.get("eligible")) if preflight else True),
        # on / off (written so) / absent (never written: the server's default, off).
        "stapling": site.get("stapling") or ABSENT,
        "served": served_state(result),
        "staple_next_update": next_update,
        "staple_seconds_left": staple_left,
        "warnings": [],
        "verify": result,
    }
    row["status"], row["reason"], row["action"] = _judge(row, site, preflight, result)
    if row["status"] != NOT_AUDITED:
        row["warnings"] = _warnings(row, thresholds)
    if row["status"] == OK and row["warnings"]:
        row["status"], row["action"] = WARNING, _warning_action(row)
    return {key: row[key] for key in ROW_KEYS}


def _judge(row: dict, site: dict, preflight: dict, result: dict | None) -> tuple:
    """(status, reason, action) of one row; the first rule that holds wins, the most urgent first."""
    served, stapling = row["served"], row["stapling"]
    why = (result or {}).get("reason") or ""
    cannot = preflight.get("reason") if preflight and not preflight.get("eligible") else None
    if not row["applicable"] and not cannot:
        cannot = "the certificate carries no OCSP responder URL, so it cannot be stapled"
    if served == GOOD:
        return OK, why, "nothing"
    if served == UNREACHABLE:
        return NOT_AUDITED, "the site did not answer a TLS handshake: %s" % why, "check that the server listens on %s" % row["socket"]
    if _revoked(result):
        return CRITICAL, why, "replace the certificate now, and find out why it was revoked"
    if served == WRONG_CERTIFICATE:
        return FAILING, why, ("give the site a server name its clients use, or check which site answers on %s: "
                              "another site's certificate is served for it" % row["socket"])
    if row["must_staple"]:
        fix = ("turn stapling on now (ocsp.stapling.enable)" if stapling != "on" else
               "make stapling work now (see the reason)") if row["applicable"] else "replace the certificate with one that can be stapled"
        return CRITICAL, "the certificate demands OCSP Must-Staple and the site serves %s, so Firefox refuses it: %s" % (
            _served_words(served), why or cannot), fix
    if served == NOT_CHECKED and stapling == "on":
        return NOT_AUDITED, "the site has no TCP port to check (a unix socket, a QUIC listener or Apache's *)", "check it by hand"
    if stapling == "on" and cannot:
        if (site.get("details") or {}).get("stapling_by_default"):
            # HTTP.sys: on by its default or a host-wide registry value; nothing of the site's own to remove.
            return NOT_APPLICABLE, cannot, "nothing; renew with a certificate that carries an OCSP URL if stapling is required"
        if (preflight or {}).get("can_never_staple") or row["ocsp_url"] == "none":
            action = ("turn it off with the enable role and %s_stapling_dead_configuration=remove (it can never work), or renew with a "
                      "certificate that carries an OCSP URL" % ("apache" if row["server"] == "apache" else "nginx"))
        else:
            action = "fix what the reason says, and stapling works again"
        return DEAD, "stapling is on, but %s" % cannot, action
    if stapling == "on":
        return FAILING, why, _failing_action(served, result)
    if cannot:
        return NOT_APPLICABLE, cannot, "nothing; renew with a certificate that carries an OCSP URL if stapling is required"
    eligible = (preflight.get("reason") or "").replace("can be stapled: ", "", 1) or "it carries an OCSP URL"
    if stapling == "off":
        return NOT_STAPLING, "stapling is turned off in the configuration (%s), and the certificate can be stapled: %s" % (
            _where(site), eligible), "find out why it was turned off, then turn it on with the ocsp.stapling.enable role"
    return NOT_STAPLING, "stapling is not configured (off by default), and the certificate can be stapled: %s" % eligible, (
        "turn stapling on with the ocsp.stapling.enable role")


def _where(site: dict) -> str:
    """Where a site is written, for people: the file and line of its block (HTTP.sys: the binding)."""
    if site.get("path"):
        return "%s, the site at line %s" % (site.get("path"), site.get("line"))
    return (site.get("details") or {}).get("where") or "the site's block"


def _served_words(served: str) -> str:
    return "no staple" if served in (NOTHING, NOT_CHECKED) else "a %s staple" % served


def _failing_action(served: str, result: dict | None) -> str:
    if _responder_answers_controller(result):
        return ("let the server reach its OCSP responder (the controller reaches it): check the server's resolver, firewall "
                "and proxy, and its error log")
    if served == NOTHING:
        return "read the server's error log for OCSP errors; check that its responder answers"
    if served == "stale":
        return "the server keeps serving an expired staple: check that it can reach its responder, then reload it"
    return "see the reason; the responder or the server's chain file is at fault"


def _warnings(row: dict, thresholds: Thresholds) -> list:
    warnings = []
    left = row["staple_seconds_left"]
    if left is not None and row["served"] == GOOD and left < thresholds.staple_seconds:
        warnings.append("the staple's nextUpdate %s is in %s, less than %s: the server is not refreshing it" % (
            row["staple_next_update"], duration(left), duration(thresholds.staple_seconds)))
    days = thresholds.certificate_days
    cert_left = row["certificate_seconds_left"]
    if cert_left is not None and 0 <= cert_left < days * 86400:
        warnings.append("the certificate expires on %s, in %s, less than %d days: renew it" % (row["not_after"], duration(cert_left), days))
    return warnings


def _warning_action(row: dict) -> str:
    if row["certificate_seconds_left"] is not None and any("certificate expires" in warning for warning in row["warnings"]):
        return "renew the certificate"
    return "check that the server can reach its OCSP responder and refreshes its staple"


def not_audited_row(host: str, reason: str, server: str | None = None) -> dict:
    """The one row of a host that could not be audited (unreachable, server_info failed, a Windows host)."""
    row = dict.fromkeys(ROW_KEYS)
    row.update(host=host, server=server, site="(host)", server_names=[], ocsp_url="none", must_staple=False, applicable=False,
               stapling=UNKNOWN, served=NOT_CHECKED, status=NOT_AUDITED, reason=reason, action="fix what the reason says and run the audit again",
               warnings=[])
    return row


def sort_rows(rows: list) -> list:
    """The most urgent first, then by host, site and port."""
    rank = {status: number for number, status in enumerate(STATUSES)}
    return sorted(rows, key=lambda row: (rank.get(row["status"], len(STATUSES)), row["host"] or "", row["site"] or "", row["port"] or 0))


def summarise(rows: list) -> dict:
    """Counts per status (every status, zeros included), the total and the number of warnings."""
    counts = {status: 0 for status in STATUSES}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {"total": len(rows), "statuses": counts, "warnings": sum(len(row.get("warnings") or []) for row in rows),
            "failures": sum(counts[status] for status in FAILURES)}
