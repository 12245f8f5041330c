"""Unit tests of the audit's judgement (_audit): each status from made-up site records, preflight verdicts and verify results."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils import _audit

NOW = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
URL = "http://ocsp.example.test/"
INFO = {"server": "nginx", "version": "1.22.1"}
TARGET = {"host": "192.0.2.10", "port": 443, "server_name": "www.example.test"}


def site(stapling="on", names=("www.example.test",), port=443) -> dict:
    return {"server": "nginx", "index": 0, "path": "/etc/nginx/sites-enabled/www", "line": 3, "server_names": list(names),
            "sockets": [{"address": "*", "port": port, "tls": True, "quic": False}], "ssl_certificate": ["/etc/ssl/www.pem"],
            "ssl_certificate_key": ["/etc/ssl/www.key"], "chain_file": None, "stapling": stapling, "verifies_clients": False,
            "uses_variables": False, "outcome": None, "reason": None, "details": {}}


def preflight(urls=(URL,), eligible=True, must_staple=False, reason=None, not_after="2026-12-01T00:00:00Z") -> dict:
    return {"certificate": "/etc/ssl/www.pem", "subject": "CN=www.example.test", "serial": "1A2B", "not_after": not_after,
            "ocsp_urls": list(urls), "must_staple": must_staple, "eligible": eligible, "status": "eligible" if eligible else "not_applicable",
            "reason": reason or ("can be stapled: OCSP responder %s, chain 'CA'" % URL if eligible else "the certificate carries no OCSP responder URL")}


def result(ok=False, stapled=False, urls=(URL,), must_staple=False, **fields) -> dict:
    served = {"subject": "CN=www.example.test", "issuer": "CN=CA", "serial": "1A2B", "sha256": "AB", "not_after": "2026-12-01T00:00:00Z",
              "ocsp_urls": list(urls)}
    base = {"host": TARGET["host"], "port": 443, "server_name": TARGET["server_name"], "ok": ok, "stapled": stapled,
            "response_status": "successful" if stapled else None, "cert_status": "good" if ok else None, "next_update": None,
            "seconds_to_expiry": None, "names_certificate": ok, "signature_valid": ok, "fresh": ok, "must_staple": must_staple,
            "certificate_matches": True, "applicable": bool(urls), "responder": None, "certificate": served,
            "reason": "good, fresh staple" if ok else "no OCSP response stapled"}
    if ok:
        base.update(next_update="2026-06-02T12:00:00Z", seconds_to_expiry=86400)
    base.update(fields)
    return base


def row(site_record, verdict, verify, thresholds=_audit.Thresholds()) -> dict:
    checks = [(TARGET, verify)] if verify is not None else []
    [only] = _audit.site_rows("web1", INFO, site_record, verdict, checks, NOW, thresholds)
    return only


def test_a_good_staple_is_ok_with_every_field():
    judged = row(site(), preflight(), result(ok=True, stapled=True))
    assert judged["status"] == _audit.OK and judged["served"] == "good" and judged["action"] == "nothing"
    assert tuple(judged) == _audit.ROW_KEYS
    assert judged["host"] == "web1" and judged["server"] == "nginx" and judged["version"] == "1.22.1"
    assert judged["site"] == "www.example.test" and judged["socket"] == "*:443" and judged["port"] == 443
    assert judged["target"] == "192.0.2.10:443 (www.example.test)"
    assert judged["ocsp_url"] == URL and judged["subject"] == "CN=www.example.test" and judged["serial"] == "1A2B"
    assert judged["staple_seconds_left"] == 86400 and judged["staple_next_update"] == "2026-06-02T12:00:00Z"
    assert judged["certificate_seconds_left"] == int((datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc) - NOW).total_seconds())
    assert judged["warnings"] == [] and judged["applicable"] is True and judged["must_staple"] is False


def test_a_staple_near_its_next_update_and_a_certificate_near_expiry_are_warnings():
    near = result(ok=True, stapled=True, seconds_to_expiry=600)
    near["certificate"]["not_after"] = "2026-06-11T12:00:00Z"
    judged = row(site(), preflight(), near)
    assert judged["status"] == _audit.WARNING
    assert len(judged["warnings"]) == 2
    assert "not refreshing" in judged["warnings"][0] and "renew it" in judged["warnings"][1]
    assert judged["action"] == "renew the certificate"
    relaxed = row(site(), preflight(), near, _audit.Thresholds(staple_seconds=60, certificate_days=5))
    assert relaxed["status"] == _audit.OK and relaxed["warnings"] == []


def test_must_staple_without_a_staple_is_critical_even_with_stapling_off():
    judged = row(site(stapling="off"), preflight(must_staple=True), result(must_staple=True))
    assert judged["status"] == _audit.CRITICAL and judged["must_staple"] is True
    assert "Must-Staple" in judged["reason"] and "no staple" in judged["reason"]
    assert judged["action"] == "turn stapling on now (ocsp.stapling.enable)"


@pytest.mark.parametrize("verify", [
    result(stapled=True, cert_status="revoked", reason="the certificate is revoked"),
    result(responder={"url": URL, "reachable": True, "cert_status": "revoked", "reason": "revoked"}, reason="its responder says revoked"),
], ids=["stapled", "told-by-the-responder"])
def test_a_revoked_certificate_is_critical(verify):
    judged = row(site(), preflight(), verify)
    assert judged["status"] == _audit.CRITICAL and "replace the certificate" in judged["action"]


def test_stapling_on_for_a_certificate_without_ocsp_url_is_dead_configuration():
    judged = row(site(), preflight(urls=(), eligible=False), result(urls=()))
    assert judged["status"] == _audit.DEAD and judged["ocsp_url"] == "none" and judged["applicable"] is False
    assert judged["reason"].startswith("stapling is on, but the certificate carries no OCSP responder URL")
    assert judged["action"].startswith("turn it off with the enable role and nginx_stapling_dead_configuration=remove")


def test_dead_configuration_that_a_fix_revives_asks_for_the_fix_not_the_removal():
    expired = dict(preflight(eligible=False, reason="the certificate expired on 2026-01-01T00:00:00Z: renew it first"), can_never_staple=False)
    judged = row(site(), expired, result())
    assert judged["status"] == _audit.DEAD and judged["action"] == "fix what the reason says, and stapling works again"


def test_stapling_on_for_a_certificate_the_preflight_refuses_is_dead_configuration_with_its_reason():
    refused = dict(preflight(eligible=False, reason="the certificate is self-signed, so no CA answers OCSP for it"), can_never_staple=True)
    judged = row(site(), refused, result())
    assert judged["status"] == _audit.DEAD and "self-signed" in judged["reason"]
    assert "_stapling_dead_configuration=remove" in judged["action"]


def test_no_ocsp_url_and_stapling_off_is_not_applicable():
    judged = row(site(stapling="off"), preflight(urls=(), eligible=False), result(urls=()))
    assert judged["status"] == _audit.NOT_APPLICABLE and judged["action"].startswith("nothing")


def test_a_certificate_that_could_be_stapled_without_stapling_is_not_stapling():
    judged = row(site(stapling="absent"), preflight(), result())
    assert judged["status"] == _audit.NOT_STAPLING
    assert judged["reason"] == "stapling is not configured (off by default), and the certificate can be stapled: OCSP responder %s, chain 'CA'" % URL
    assert judged["stapling"] == "absent" and "ocsp.stapling.enable" in judged["action"]


def test_stapling_turned_off_on_purpose_says_where_and_asks_why():
    judged = row(site(stapling="off"), preflight(), result())
    assert judged["status"] == _audit.NOT_STAPLING and judged["stapling"] == "off"
    assert judged["reason"].startswith("stapling is turned off in the configuration (/etc/nginx/sites-enabled/www, the site at line 3)")
    assert judged["action"].startswith("find out why it was turned off")


@pytest.mark.parametrize("verify, served", [
    (result(), "nothing"),
    (result(stapled=True, signature_valid=True, names_certificate=True, cert_status="good", fresh=False), "stale"),
    (result(stapled=True, response_status="tryLater"), "tryLater"),
    (result(stapled=True, cert_status="unknown", signature_valid=True, names_certificate=True), "unknown"),
    (result(stapled=True, signature_valid=False, names_certificate=True), "invalid staple"),
], ids=["nothing", "stale", "trylater", "unknown", "bad-signature"])
def test_stapling_configured_without_a_good_staple_is_failing(verify, served):
    judged = row(site(), preflight(), verify)
    assert judged["status"] == _audit.FAILING and judged["served"] == served


def test_a_server_that_cannot_reach_the_responder_the_controller_reaches_is_told_so():
    verify = result(responder={"url": URL, "reachable": True, "cert_status": "good", "reason": "answers good"})
    judged = row(site(), preflight(), verify)
    assert judged["status"] == _audit.FAILING and judged["action"].startswith("let the server reach its OCSP responder")


def test_another_sites_certificate_is_failing_whatever_the_stapling():
    verify = result(certificate_matches=False, reason="the server answered with another site's certificate (CN=other)")
    for stapling in ("on", "off"):
        judged = row(site(stapling=stapling), preflight(), verify)
        assert judged["status"] == _audit.FAILING and judged["served"] == "wrong certificate"


def test_a_site_that_does_not_answer_is_not_audited():
    judged = row(site(), preflight(), result(certificate=None, reason="connection refused"))
    assert judged["status"] == _audit.NOT_AUDITED and judged["served"] == "unreachable" and "connection refused" in judged["reason"]


def test_a_site_without_a_tcp_port_is_judged_by_its_configuration():
    unix = site(stapling="off", port=None)
    assert row(unix, preflight(), None)["status"] == _audit.NOT_STAPLING
    assert row(unix, preflight(urls=(), eligible=False), None)["status"] == _audit.NOT_APPLICABLE
    unchecked = row(site(port=None), preflight(), None)
    assert unchecked["status"] == _audit.NOT_AUDITED and unchecked["served"] == "not checked" and unchecked["socket"] == "-"


def test_a_site_without_a_name_or_a_preflight_still_gets_a_row():
    judged = row(site(names=("_",), stapling="off"), None, result())
    assert judged["site"] == "(default server)" and judged["status"] == _audit.NOT_STAPLING and judged["subject"] == "CN=www.example.test"


def test_a_site_with_two_ports_has_two_rows():
    checks = [(TARGET, result(ok=True, stapled=True)), (dict(TARGET, port=8443), result(port=8443))]
    rows = _audit.site_rows("web1", INFO, site(), preflight(), checks, NOW)
    assert [(one["port"], one["status"]) for one in rows] == [(443, _audit.OK), (8443, _audit.FAILING)]


def test_rows_sort_most_urgent_first_and_the_summary_counts_every_status():
    rows = [row(site(stapling="off"), preflight(), result()), row(site(), preflight(), result(ok=True, stapled=True)),
            _audit.not_audited_row("web2", "unreachable"), row(site(), preflight(must_staple=True), result(must_staple=True))]
    ordered = _audit.sort_rows(rows)
    assert [one["status"] for one in ordered] == [_audit.CRITICAL, _audit.NOT_AUDITED, _audit.NOT_STAPLING, _audit.OK]
    summary = _audit.summarise(rows)
    assert summary["total"] == 4 and summary["failures"] == 1 and list(summary["statuses"]) == list(_audit.STATUSES)
    assert summary["statuses"][_audit.FAILING] == 0 and summary["statuses"][_audit.OK] == 1


def test_every_status_has_a_meaning_and_a_not_audited_row_has_every_key():
    assert set(_audit.MEANINGS) == set(_audit.STATUSES)
    lone = _audit.not_audited_row("web2", "no supported web server found")
    assert tuple(sorted(lone)) == tuple(sorted(_audit.ROW_KEYS)) and lone["status"] == _audit.NOT_AUDITED


@pytest.mark.parametrize("seconds, text", [(42, "0m42s"), (3700, "1h01m"), (90000, "1d01h"), (-120, "-2m00s")])
def test_durations_read_well(seconds, text):
    assert _audit.duration(seconds) == text


def test_times_parse_as_utc():
    assert _audit.parse_time("2026-06-01T12:00:00Z") == NOW and _audit.parse_time(None) is None
