"""Unit tests of the audit filters: rows from server_info, preflight and verify results, and each report rendered from rows."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest
from ansible.errors import AnsibleFilterError
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as prometheus_families

from ansible_collections.ocsp.stapling.plugins.filter import audit
from ansible_collections.ocsp.stapling.plugins.module_utils import _audit

NOW = "2026-06-01T12:00:00Z"
URL = "http://ocsp.example.test/"


def site(name, port=443, stapling="on", certificate="/etc/ssl/www.pem") -> dict:
    return {"server": "nginx", "index": 0, "path": "/etc/nginx/sites-enabled/%s" % name, "line": 1, "server_names": [name],
            "sockets": [{"address": "*", "port": port, "tls": True, "quic": False}], "ssl_certificate": [certificate],
            "ssl_certificate_key": [], "chain_file": None, "stapling": stapling, "verifies_clients": False, "uses_variables": False,
            "outcome": None, "reason": None, "details": {}}


def verified(name, port=443, ok=True, **fields) -> dict:
    base = {"host": "192.0.2.10", "port": port, "server_name": name, "ok": ok, "stapled": ok, "response_status": "successful" if ok else None,
            "cert_status": "good" if ok else None, "next_update": "2026-06-02T12:00:00Z" if ok else None, "seconds_to_expiry": 86400 if ok else None,
            "names_certificate": ok, "signature_valid": ok, "fresh": ok, "must_staple": False, "certificate_matches": True, "applicable": True,
            "responder": None, "reason": "good" if ok else "no OCSP response stapled",
            "certificate": {"subject": "CN=%s" % name, "serial": "01", "not_after": "2026-12-01T00:00:00Z", "ocsp_urls": [URL]}}
    base.update(fields)
    return base


ELIGIBLE = {"eligible": True, "ocsp_urls": [URL], "reason": "can be stapled: OCSP responder %s" % URL, "must_staple": False}
INFO = {"server": "nginx", "version": "1.22.1", "certificates": {},
        "sites": [site("good.test"), site("off.test", stapling="off"), site("two.test", port=8443)]}


@pytest.fixture
def rows() -> list:
    host_rows = audit.audit_rows([INFO], "web1", "192.0.2.10", {"/etc/ssl/www.pem": ELIGIBLE},
                                 [verified("good.test"), verified("off.test", ok=False), verified("two.test", port=8443)], now=NOW)
    return audit.audit_fleet(["web1", "web2"], [host_rows, None])


def test_filters_are_registered():
    assert set(audit.FilterModule().filters()) == {"audit_rows", "audit_fleet", "audit_json", "audit_table", "audit_junit",
                                                   "audit_openmetrics", "audit_html"}


def test_rows_match_each_site_to_its_own_verify_result(rows):
    judged = {(row["host"], row["site"]): (row["status"], row["port"]) for row in rows}
    assert judged == {("web1", "good.test"): ("ok", 443), ("web1", "off.test"): ("not stapling", 443), ("web1", "two.test"): ("ok", 8443),
                      ("web2", "(host)"): ("not audited", None)}
    assert rows[0]["status"] == "not audited"  # most urgent first


def test_rows_of_a_site_without_a_result_say_so():
    [row] = audit.audit_rows({"server": "nginx", "sites": [site("good.test")]}, "web1", "192.0.2.10", {}, [], now=NOW)
    assert row["served"] == "not checked" and row["status"] == "not audited"


def test_an_error_gives_the_one_not_audited_row():
    [row] = audit.audit_rows([], "web3", error="no supported web server found")
    assert row["status"] == "not audited" and row["reason"] == "no supported web server found"


@pytest.mark.parametrize("call, message", [
    (lambda: audit.audit_rows("nonsense", "web1", "192.0.2.10"), "results of ocsp.stapling.server_info"),
    (lambda: audit.audit_rows([INFO], "web1"), "give the address"),
    (lambda: audit.audit_rows([INFO], "web1", "192.0.2.10", staple_warning_seconds="soon"), "whole numbers"),
    (lambda: audit.audit_rows([INFO], "web1", "192.0.2.10", now="yesterday"), "UTC time"),
    (lambda: audit.audit_rows([{"sites": [{"server_names": []}]}], "web1", "192.0.2.10"), "not a server_info site record"),
    (lambda: audit.audit_fleet(["web1"], []), "same order"),
    (lambda: audit.audit_table([{"host": "web1"}]), "rows of ocsp.stapling.audit_rows"),
], ids=["infos", "address", "thresholds", "now", "site", "fleet", "rows"])
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call()


def test_json_has_every_field_of_every_row(rows):
    report = json.loads(audit.audit_json(rows, now=NOW))
    assert report["generated_at"] == NOW and report["summary"]["total"] == 4
    assert report["summary"]["statuses"]["ok"] == 2 and set(report["statuses"]) == set(_audit.STATUSES)
    assert all(tuple(row) == _audit.ROW_KEYS for row in report["rows"])


def test_table_has_a_header_a_line_per_row_and_the_counts(rows):
    lines = audit.audit_table(rows)
    assert lines[0].split()[:3] == ["HOST", "SERVER", "SITE"] and len(lines) == len(rows) + 2
    assert lines[-1] == "4 sites: 1 not audited, 1 not stapling, 2 ok"


def test_junit_parses_with_one_test_case_per_row_and_escapes_what_it_is_given(rows):
    rows[1] = dict(rows[1], status="failing", reason='a <bad> & "odd" reason\n on two lines')
    root = ElementTree.fromstring(audit.audit_junit(rows).encode("utf-8"))
    assert root.tag == "testsuites" and root.get("tests") == "4" and root.get("failures") == "1" and root.get("errors") == "1"
    suites = {suite.get("name"): suite for suite in root}
    assert set(suites) == {"web1", "web2"} and suites["web1"].get("tests") == "3"
    [failure] = root.iter("failure")
    assert failure.get("type") == "failing" and failure.get("message").startswith('failing: a <bad> & "odd" reason')
    cases = list(root.iter("testcase"))
    assert len(cases) == 4 and all(case.find("system-out") is not None for case in cases)
    assert {case.get("classname") for case in cases} == {"web1.nginx", "web2.host"}


def test_openmetrics_parse_with_prometheus_parsers_and_escape_labels(rows):
    rows.append(dict(rows[-1], site='we"ird\\site\nname', host="web9"))
    # Two unnamed default servers on one port must not make two series with the same labels.
    rows.append(dict(rows[-2], path="/etc/nginx/a", line=3))
    rows.append(dict(rows[-3], path="/etc/nginx/b", line=7))
    text = audit.audit_openmetrics(rows, now=NOW)
    assert text.endswith("# EOF\n")
    for parse in (prometheus_families, openmetrics_families):
        families = {family.name: family for family in parse(text)}
        assert set(families) >= {"ocsp_stapling_staple_ok", "ocsp_stapling_staple_seconds_to_next_update",
                                 "ocsp_stapling_certificate_seconds_to_expiry", "ocsp_stapling_applicable", "ocsp_stapling_must_staple",
                                 "ocsp_stapling_site_status", "ocsp_stapling_audit_timestamp_seconds"}
        assert all(family.type == "gauge" for family in families.values())
        samples = families["ocsp_stapling_staple_ok"].samples
        assert len(samples) == len(rows)
        assert len({tuple(sorted(sample.labels.items())) for sample in samples}) == len(rows)
        assert 'we"ird\\site\nname' in {sample.labels["site"] for sample in samples}
        assert {sample.labels["port"] for sample in samples} >= {"443", "8443", ""}
        assert families["ocsp_stapling_audit_timestamp_seconds"].samples[0].value == 1780315200


def test_html_is_self_contained_and_escapes_what_it_is_given(rows):
    rows[0] = dict(rows[0], reason="<script>alert(1)</script>", site="<b>x</b>")
    page = audit.audit_html(rows, title="Fleet <prod>", now=NOW)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "Fleet &lt;prod&gt;" in page
    # No external asset: nothing is loaded from anywhere.
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)
    assert page.count('<tr data-status="') == len(rows) and page.count("<svg ") == 2
    assert 'data-status="ok"' in page and "2026-06-01 12:00:00 UTC" in page


def test_html_charts_draw_a_bar_per_value():
    good = audit.audit_rows([INFO], "web1", "192.0.2.10", {"/etc/ssl/www.pem": ELIGIBLE},
                            [verified("good.test"), verified("off.test", ok=False), verified("two.test", port=8443)], now=NOW)
    page = audit.audit_html(good, now=NOW)
    staples, certificates = page.split('id="chart-staples"')[1].split('id="chart-certificates"')
    assert staples.count('class="bar"') == 2 and certificates.count('class="bar"') == 3
    empty = audit.audit_html([], now=NOW)
    assert empty.count("no site has a value") == 2
