# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the audit: rows from what a run found, and the reports rendered from rows.

``audit_rows`` judges one host's sites (``_audit.site_rows``), ``audit_fleet`` gathers every host's rows,
and each other filter renders the same rows for one audience: ``audit_json`` (machines),
``audit_table`` (people at a console), ``audit_junit`` (CI), ``audit_openmetrics`` (node_exporter's
textfile collector) and ``audit_html`` (one self-contained page). The renderers judge nothing.
"""

from __future__ import annotations

import datetime
import html
import json
from collections import Counter
from collections.abc import Mapping
from xml.etree import ElementTree

from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.module_utils import _audit
from ansible_collections.ocsp.stapling.plugins.module_utils._verify import site_targets

# --- Rows --------------------------------------------------------------------------------------


def _now(now=None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    try:
        return _audit.parse_time(str(now))
    except ValueError:
        raise AnsibleFilterError("ocsp.stapling audit filters: now must be a UTC time such as 2026-05-01T12:00:00Z, not %r" % (now,)) from None


def audit_rows(infos, host, address=None, preflights=None, results=None, error=None, staple_warning_seconds=1800, certificate_warning_days=30,
               now=None):
    if error:
        return [_audit.not_audited_row(str(host), str(error))]
    if isinstance(infos, Mapping):
        infos = [infos]
    if not isinstance(infos, list) or not all(isinstance(info, Mapping) and isinstance(info.get("sites"), list) for info in infos):
        raise AnsibleFilterError("ocsp.stapling.audit_rows expects the results of ocsp.stapling.server_info (a list of them, or one)")
    if not address:
        raise AnsibleFilterError("ocsp.stapling.audit_rows: give the address the sites were verified at (the verify targets' host)")
    try:
        thresholds = _audit.Thresholds(staple_seconds=int(staple_warning_seconds), certificate_days=int(certificate_warning_days))
    except (TypeError, ValueError):
        raise AnsibleFilterError("ocsp.stapling.audit_rows: staple_warning_seconds and certificate_warning_days must be whole numbers") from None
    verified = {(result["host"], result["port"], result["server_name"]): result for result in results or []}
    moment = _now(now)
    rows = []
    for info in infos:
        for site in info["sites"]:
            # The same targets as verify_site_targets makes for the whole host, one site at a time, to find each site's results.
            try:
                targets = site_targets([site], str(address), None, info.get("certificates"))
            except (KeyError, TypeError, AttributeError) as exc:
                raise AnsibleFilterError("ocsp.stapling.audit_rows: a site is not a server_info site record: %s" % exc) from None
            certificates = site.get("ssl_certificate") or []
            preflight = (preflights or {}).get(certificates[0]) if certificates else None
            checks = [(target, verified.get((target["host"], target["port"], target["server_name"]))) for target in targets]
            rows.extend(_audit.site_rows(str(host), info, site, preflight, checks, moment, thresholds))
    return rows


def audit_fleet(hosts, rows):
    """Every host's rows, most urgent first; a host without rows gets one row saying it was not audited."""
    if not isinstance(hosts, list) or not isinstance(rows, list) or len(hosts) != len(rows):
        raise AnsibleFilterError("ocsp.stapling.audit_fleet expects the list of hosts and, in the same order, each host's rows (or null)")
    fleet = []
    for host, host_rows in zip(hosts, rows):
        if host_rows is None:
            fleet.append(_audit.not_audited_row(str(host), "the host was unreachable, or failed before the audit could read it: see the run's output"))
        else:
            fleet.extend(host_rows)
    return _audit.sort_rows(fleet)


def _rows(rows, name: str) -> list:
    if not isinstance(rows, list) or not all(isinstance(row, Mapping) and "status" in row for row in rows):
        raise AnsibleFilterError("ocsp.stapling.%s expects the rows of ocsp.stapling.audit_rows or audit_fleet" % name)
    return rows


def _duration(seconds) -> str:
    return "-" if seconds is None else _audit.duration(seconds)


# --- JSON and table ----------------------------------------------------------------------------


def audit_json(rows, now=None):
    rows = _rows(rows, "audit_json")
    report = {
        "generated_at": _now(now).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "summary": _audit.summarise(rows),
        "statuses": dict(_audit.MEANINGS),
        "rows": rows,
    }
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


TABLE_COLUMNS = ("HOST", "SERVER", "SITE", "SOCKET", "STAPLING", "SERVED", "STAPLE", "CERT", "STATUS", "REASON")


def audit_table(rows):
    rows = _rows(rows, "audit_table")
    lines = [TABLE_COLUMNS]
    for row in rows:
        lines.append((
            row["host"], row["server"] or "-", row["site"], row["socket"] or "-", row["stapling"], row["served"],
            _duration(row["staple_seconds_left"]), _duration(row["certificate_seconds_left"]), row["status"],
            "; ".join([row["reason"] or ""] + list(row["warnings"] or [])),
        ))
    widths = [max(len(str(line[column])) for line in lines) for column in range(len(TABLE_COLUMNS) - 1)]
    text = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)) + "  " + str(line[-1]) for line in lines]
    summary = _audit.summarise(rows)
    text.append("%d sites: %s" % (summary["total"], ", ".join("%d %s" % (count, status) for status, count in summary["statuses"].items() if count)))
    return text


# --- JUnit XML ---------------------------------------------------------------------------------


def audit_junit(rows, name="ocsp.stapling audit"):
    """One test case per row, grouped by host; critical and failing rows fail, unaudited ones are errors, not applicable skipped."""
    rows = _rows(rows, "audit_junit")
    suites = ElementTree.Element("testsuites", name=str(name))
    by_host = {}
    for row in rows:
        by_host.setdefault(row["host"], []).append(row)
    totals = Counter()
    for host, host_rows in by_host.items():
        suite = ElementTree.SubElement(suites, "testsuite", name=str(host))
        counts = Counter()
        for row in host_rows:
            case = ElementTree.SubElement(suite, "testcase", classname="%s.%s" % (host, row["server"] or "host"),
                                          name="%s %s" % (row["site"], row["socket"] or ""))
            case.set("name", case.get("name").strip())
            message = "%s: %s" % (row["status"], row["reason"] or "")
            if row["status"] in _audit.FAILURES:
                ElementTree.SubElement(case, "failure", message=message, type=row["status"]).text = "action: %s" % row["action"]
                counts["failures"] += 1
            elif row["status"] == _audit.NOT_AUDITED:
                ElementTree.SubElement(case, "error", message=message, type=row["status"]).text = "action: %s" % row["action"]
                counts["errors"] += 1
            elif row["status"] == _audit.NOT_APPLICABLE:
                ElementTree.SubElement(case, "skipped", message=message)
                counts["skipped"] += 1
            ElementTree.SubElement(case, "system-out").text = "\n".join(
                ["status: %s" % row["status"], "served: %s" % row["served"], "reason: %s" % row["reason"], "action: %s" % row["action"]]
                + ["warning: %s" % warning for warning in row["warnings"] or []])
        counts["tests"] = len(host_rows)
        for key in ("tests", "failures", "errors", "skipped"):
            suite.set(key, str(counts[key]))
        totals.update(counts)
    for key in ("tests", "failures", "errors", "skipped"):
        suites.set(key, str(totals[key]))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"


# --- OpenMetrics / Prometheus text -------------------------------------------------------------

METRIC_PREFIX = "ocsp_stapling_"
# name, help, value of a row (None: no sample for that row)
GAUGES = (
    ("staple_ok", "1 when the site staples a good, fresh OCSP response, else 0.", lambda row: int(row["served"] == _audit.GOOD)),
    ("staple_seconds_to_next_update", "Seconds until the stapled response's nextUpdate (negative when stale).",
     lambda row: row["staple_seconds_left"]),
    ("certificate_seconds_to_expiry", "Seconds until the served certificate expires (negative when expired).",
     lambda row: row["certificate_seconds_left"]),
    ("applicable", "1 when the certificate can be stapled (it names an OCSP responder), else 0.", lambda row: int(bool(row["applicable"]))),
    ("must_staple", "1 when the certificate demands OCSP Must-Staple, else 0.", lambda row: int(bool(row["must_staple"]))),
)


def _label_value(value) -> str:
    return str("" if value is None else value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs) -> str:
    return "{" + ",".join('%s="%s"' % (key, _label_value(value)) for key, value in pairs) + "}"


def audit_openmetrics(rows, now=None):
    """Gauges per site, labelled host, server, site and port; valid as OpenMetrics and as Prometheus text (0.0.4)."""
    rows = _rows(rows, "audit_openmetrics")
    # A series must be unique: two sites that share host, server, name and port (say two default servers without a
    # name) are told apart by their file and line.
    keys = Counter((row["host"], row["server"], row["site"], row["port"]) for row in rows)
    series = []
    for row in rows:
        site = row["site"]
        if keys[(row["host"], row["server"], site, row["port"])] > 1:
            site = "%s@%s:%s" % (site, row["path"], row["line"])
        series.append((row, [("host", row["host"]), ("server", row["server"]), ("site", site), ("port", row["port"])]))
    lines = []
    for name, help_text, value in GAUGES:
        lines += ["# HELP %s%s %s" % (METRIC_PREFIX, name, help_text), "# TYPE %s%s gauge" % (METRIC_PREFIX, name)]
        for row, labels in series:
            sample = value(row)
            if sample is not None:
                lines.append("%s%s%s %d" % (METRIC_PREFIX, name, _labels(labels), sample))
    lines += ["# HELP %ssite_status The audit status of the site (label status), always 1." % METRIC_PREFIX,
              "# TYPE %ssite_status gauge" % METRIC_PREFIX]
    lines += ["%ssite_status%s 1" % (METRIC_PREFIX, _labels(labels + [("status", row["status"])])) for row, labels in series]
    lines += ["# HELP %saudit_timestamp_seconds When the audit ran (Unix time), to alert on a report that is not refreshed." % METRIC_PREFIX,
              "# TYPE %saudit_timestamp_seconds gauge" % METRIC_PREFIX,
              "%saudit_timestamp_seconds %d" % (METRIC_PREFIX, int(_now(now).timestamp())), "# EOF"]
    return "\n".join(lines) + "\n"


# --- HTML --------------------------------------------------------------------------------------

COLOURS = {
    _audit.OK: "#1a7f37", _audit.WARNING: "#b7791f", _audit.CRITICAL: "#b42318", _audit.FAILING: "#d4380d",
    _audit.DEAD: "#7a3e9d", _audit.NOT_STAPLING: "#2f6fb0", _audit.NOT_APPLICABLE: "#6b7280", _audit.NOT_AUDITED: "#374151",
}
HTML_COLUMNS = (  # header, row key, kind of sort
    ("Host", "host", "text"), ("Server", "server", "text"), ("Site", "site", "text"), ("Socket", "socket", "text"),
    ("Status", "status", "rank"), ("Stapling", "stapling", "text"), ("Served", "served", "text"),
    ("Staple left", "staple_seconds_left", "number"), ("Certificate left", "certificate_seconds_left", "number"),
    ("Must-Staple", "must_staple", "text"), ("Reason", "reason", "text"), ("Action", "action", "text"),
    ("OCSP URL", "ocsp_url", "text"), ("Certificate", "subject", "text"), ("Serial", "serial", "text"),
)

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111827;background:#f9fafb}
h1{font-size:22px;margin:0 0 4px}
.meta{color:#4b5563;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:16px}
.card{border-radius:6px;padding:8px 12px;color:#fff;min-width:96px;cursor:pointer}
.card b{display:block;font-size:22px}
.controls{margin:12px 0;display:flex;gap:8px;align-items:center}
table{border-collapse:collapse;width:100%;background:#fff}
.scroll{overflow-x:auto}
th,td{border:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top;font-size:13px}
td.text-reason{min-width:34em}
td.text-action{min-width:20em}
td.text-host,td.text-site,td.text-socket{white-space:nowrap}
th{background:#f3f4f6;cursor:pointer;white-space:nowrap;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.status{color:#fff;font-weight:600;white-space:nowrap}
td.warn{color:#b7791f}
.charts{display:flex;flex-wrap:wrap;gap:24px;margin:16px 0}
.chart{background:#fff;border:1px solid #e5e7eb;padding:8px}
"""

SCRIPT = """
(function () {
  var table = document.getElementById("sites");
  var body = table.tBodies[0];
  var search = document.getElementById("search");
  var status = document.getElementById("status-filter");
  var shown = document.getElementById("shown");
  function value(row, index, kind) {
    var cell = row.cells[index];
    var raw = cell.getAttribute("data-value");
    if (kind === "number" || kind === "rank") { return raw === "" ? Infinity : Number(raw); }
    return cell.textContent.toLowerCase();
  }
  function sortBy(index, descending) {
    var header = table.tHead.rows[0].cells[index];
    var kind = header.getAttribute("data-kind");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, index, kind), y = value(b, index, kind);
      var order = x < y ? -1 : (x > y ? 1 : 0);
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    table.setAttribute("data-sorted-by", header.getAttribute("data-key") + (descending ? " descending" : " ascending"));
  }
  function applyFilter() {
    var words = search.value.toLowerCase();
    var wanted = status.value;
    var count = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var visible = (!wanted || row.getAttribute("data-status") === wanted) && (!words || row.textContent.toLowerCase().indexOf(words) >= 0);
      row.hidden = !visible;
      if (visible) { count += 1; }
    });
    shown.textContent = String(count);
    table.setAttribute("data-shown", String(count));
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell, index) {
    cell.addEventListener("click", function () { sortBy(index, cell.getAttribute("aria-sort") === "ascending"); });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".card"), function (card) {
    card.addEventListener("click", function () { status.value = card.getAttribute("data-status"); applyFilter(); });
  });
  search.addEventListener("input", applyFilter);
  status.addEventListener("change", applyFilter);
  // A link can carry a view: #status=critical&q=shop&sort=host&desc
  var params = new URLSearchParams(window.location.hash.slice(1));
  if (params.get("status") !== null) { status.value = params.get("status"); }
  if (params.get("q") !== null) { search.value = params.get("q"); }
  if (params.get("sort")) {
    var key = params.get("sort");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell, index) {
      if (cell.getAttribute("data-key") === key) { sortBy(index, params.has("desc")); }
    });
  }
  applyFilter();
  document.body.setAttribute("data-audit-ready", "yes");
}());
"""


def _cell(row: dict, key: str, kind: str, rank: dict) -> str:
    value = row.get(key)
    if kind == "rank":
        return '<td class="status" style="background:%s" data-value="%d">%s</td>' % (
            COLOURS.get(value, "#374151"), rank.get(value, len(rank)), html.escape(str(value)))
    if kind == "number":
        return '<td data-value="%s">%s</td>' % ("" if value is None else int(value), html.escape(_duration(value)))
    if key == "must_staple":
        value = "yes" if value else "no"
    if key == "reason" and row.get("warnings"):
        warnings = "".join('<div class="warn">%s</div>' % html.escape(warning) for warning in row["warnings"])
        return '<td class="text-reason">%s%s</td>' % (html.escape(str(value or "")), warnings)
    return '<td class="text-%s">%s</td>' % (key, html.escape("-" if value is None else str(value)))


def _bar_chart(title: str, rows: list, key: str, unit: float, unit_name: str, element_id: str) -> str:
    """A horizontal bar per row that has a value, scaled to the largest; negative values (stale, expired) drawn at zero in red."""
    points = [(row, row[key] / unit) for row in rows if row.get(key) is not None]
    width, label_width, bar_height = 560, 220, 16
    height = 30 + bar_height * max(len(points), 1) + 20
    largest = max([value for _row, value in points] + [1.0])
    parts = ['<svg id="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="%s">' % (
        element_id, width, height, html.escape(title)), '<title>%s</title>' % html.escape(title),
        '<text x="0" y="16" font-size="13" font-weight="600">%s</text>' % html.escape(title)]
    if not points:
        parts.append('<text x="0" y="40" font-size="12" fill="#6b7280">no site has a value</text>')
    for number, (row, value) in enumerate(points):
        y = 26 + number * bar_height
        length = max(0.0, value) / largest * (width - label_width - 70)
        colour = COLOURS[_audit.CRITICAL] if value < 0 else COLOURS.get(row["status"], "#374151")
        label = "%s %s" % (row["host"], row["site"])
        parts.append('<text x="0" y="%d" font-size="11">%s</text>' % (y + 11, html.escape(label[:34])))
        parts.append('<rect class="bar" x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %.1f %s</title></rect>' % (
            label_width, y + 2, max(length, 1.0), bar_height - 4, colour, html.escape(label), value, unit_name))
        parts.append('<text x="%.1f" y="%d" font-size="11">%.1f %s</text>' % (label_width + max(length, 1.0) + 4, y + 11, value, unit_name))
    parts.append("</svg>")
    return "".join(parts)


def audit_html(rows, title="OCSP stapling audit", now=None):
    rows = _rows(rows, "audit_html")
    summary = _audit.summarise(rows)
    rank = {status: number for number, status in enumerate(_audit.STATUSES)}
    generated = _now(now).strftime("%Y-%m-%d %H:%M:%S UTC")
    cards = "".join(
        '<div class="card" data-status="%s" style="background:%s" title="%s"><b>%d</b>%s</div>' % (
            html.escape(status), COLOURS[status], html.escape(_audit.MEANINGS[status]), count, html.escape(status))
        for status, count in summary["statuses"].items())
    options = '<option value="">every status</option>' + "".join(
        '<option value="%s">%s</option>' % (html.escape(status), html.escape(status)) for status in _audit.STATUSES)
    header = "".join('<th data-key="%s" data-kind="%s">%s</th>' % (key, kind, html.escape(name)) for name, key, kind in HTML_COLUMNS)
    body = "".join(
        '<tr data-status="%s">%s</tr>' % (html.escape(row["status"]), "".join(_cell(row, key, kind, rank) for _name, key, kind in HTML_COLUMNS))
        for row in rows)
    hosts = len({row["host"] for row in rows})
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>%s</title><style>%s</style></head><body>" % (html.escape(title), STYLE),
        "<h1>%s</h1>" % html.escape(title),
        '<div class="meta">%d sites on %d hosts, generated %s; %d warnings</div>' % (summary["total"], hosts, generated, summary["warnings"]),
        '<div class="cards" id="summary">%s</div>' % cards,
        '<div class="charts">%s%s</div>' % (
            _bar_chart("Staple freshness (hours to nextUpdate)", rows, "staple_seconds_left", 3600.0, "h", "chart-staples"),
            _bar_chart("Certificate expiry (days left)", rows, "certificate_seconds_left", 86400.0, "d", "chart-certificates")),
        '<div class="controls"><label>Filter <input id="search" type="search" placeholder="host, site, reason..."></label>',
        '<label>Status <select id="status-filter">%s</select></label>' % options,
        '<span><span id="shown">%d</span> of %d shown</span></div>' % (len(rows), len(rows)),
        '<div class="scroll"><table id="sites"><thead><tr>%s</tr></thead><tbody>%s</tbody></table></div>' % (header, body),
        "<script>%s</script></body></html>\n" % SCRIPT,
    ])


class FilterModule:
    def filters(self):
        return {
            "audit_rows": audit_rows,
            "audit_fleet": audit_fleet,
            "audit_json": audit_json,
            "audit_table": audit_table,
            "audit_junit": audit_junit,
            "audit_openmetrics": audit_openmetrics,
            "audit_html": audit_html,
        }
