"""Unit tests of the audit on Windows: HTTP.sys bindings as site records, judged like every other site, on the controller.

Windows cannot run here, so the inputs are what a Windows host gives the audit: ``netsh http show sslcert`` in the
shape of the published captures (fixtures/windows/audit_server2022.txt, its header says what it models) and the
result of the audit's read-only PowerShell as win_powershell returns it (fixtures/windows/audit_read_server2022.json:
the certificates by thumbprint with their DER, the CA and Root stores, EnableOcspStaplingForSni, the IIS https
bindings). The bindings are parsed by the windows role's parser, and the rows made by the audit's own filters.
The audit's PowerShell and task file are checked statically at the end.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import pathlib
import re

import pytest
import yaml

from ansible_collections.ocsp.stapling.plugins.filter.audit import audit_rows
from ansible_collections.ocsp.stapling.plugins.filter.preflight import preflight
from ansible_collections.ocsp.stapling.plugins.filter.verify import verify_site_targets
from ansible_collections.ocsp.stapling.plugins.module_utils import _audit, _windows
from ansible_collections.ocsp.stapling.plugins.module_utils._windows import WindowsParseError, audit_info, parse_sslcert, refused_rows, version_gate

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "windows"
ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "audit"
GATE_2022 = version_gate({"ansible_distribution": "Microsoft Windows Server 2022 Standard", "ansible_distribution_version": "10.0.20348.0",
                          "ansible_os_product_type": "server"})
NOW = "2026-06-01T12:00:00Z"
ADDRESS = "192.0.2.7"


def netsh(name: str = "audit_server2022.txt") -> list:
    text = "".join(line for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines(keepends=True) if not line.startswith("# "))
    return parse_sslcert(text)


def read() -> dict:
    """The script's $Ansible.Result, as win_powershell returns it under ``result``."""
    return json.loads((FIXTURES / "audit_read_server2022.json").read_text(encoding="utf-8"))["result"]


@pytest.fixture(name="info")
def fixture_info() -> dict:
    return audit_info(GATE_2022, netsh(), read())


def by_endpoint(info: dict) -> dict:
    return {site["details"]["endpoint"]: site for site in info["sites"]}


# --- bindings as site records --------------------------------------------------------------------------


def test_every_binding_is_a_site_record_or_refused_never_dropped(info):
    endpoints = [binding["endpoint"] for binding in netsh()]
    assert len(endpoints) == 9
    assert sorted(list(by_endpoint(info)) + [refused["endpoint"] for refused in info["refused"]]) == sorted(endpoints)
    assert info["server"] == "http.sys" and info["version"] == "10.0.20348" and info["name"] == "Windows Server 2022"


def test_site_records_have_the_keys_of_every_other_server(info):
    keys = {"server", "index", "path", "line", "server_names", "sockets", "ssl_certificate", "ssl_certificate_key", "chain_file", "stapling",
            "verifies_clients", "uses_variables", "outcome", "reason", "details"}
    for site in info["sites"]:
        assert set(site) == keys
        assert site["server"] == "http.sys" and site["path"] is None and site["uses_variables"] is False


def test_names_sockets_and_certificates_of_each_binding(info):
    sites = by_endpoint(info)
    www = "Cert:\\LocalMachine\\My\\74AF35597EA4385B1648B19BAB4CFA16A83771EF"
    # An IP:port binding answers for the host headers of the IIS sites behind it (not SNI, not CCS).
    assert sites["0.0.0.0:443"]["server_names"] == ["shop.example.com"]
    assert sites["0.0.0.0:443"]["details"]["iis_sites"] == ["Default Web Site", "Shop"]
    assert sites["0.0.0.0:443"]["sockets"] == [{"address": "0.0.0.0", "port": 443, "tls": True, "quic": False}]
    assert sites["0.0.0.0:443"]["ssl_certificate"] == [www]
    # IIS's "*" is HTTP.sys's 0.0.0.0 and [::].
    assert sites["[::]:443"]["sockets"][0]["address"] == "[::]" and sites["[::]:443"]["server_names"] == ["shop.example.com"]
    # A hostname:port binding is its name, on every address; its certificate is in the store netsh names.
    assert sites["www.example.com:443"]["server_names"] == ["www.example.com"]
    assert sites["www.example.com:443"]["sockets"][0]["address"] == "*"
    assert sites["www.example.com:443"]["ssl_certificate"] == ["Cert:\\LocalMachine\\WebHosting\\74AF35597EA4385B1648B19BAB4CFA16A83771EF"]
    assert sites["www.example.com:443"]["details"]["iis_sites"] == ["Bob's shop"]
    # No store named: the machine's personal store. Negotiate Client Certificate: Enabled asks clients for certificates.
    assert sites["0.0.0.0:9443"]["ssl_certificate"] == ["Cert:\\LocalMachine\\My\\43CE803F32F1DD14675ECEAD260CCE8BC123679B"]
    assert sites["0.0.0.0:9443"]["verifies_clients"] is True and sites["0.0.0.0:9443"]["server_names"] == []
    # A CCS binding is the host names IIS gives it; its certificates are files on the CCS share, not read.
    assert sites["443"]["server_names"] == ["ccs.example.com"] and sites["443"]["ssl_certificate"] == []


def test_stapling_is_the_flag_then_what_http_sys_does_by_default(info):
    sites = by_endpoint(info)
    assert sites["0.0.0.0:443"]["stapling"] == "on"  # IP:port: on by default
    assert sites["www.example.com:443"]["stapling"] == "off"  # Disable OCSP Stapling : Set
    assert "'Disable OCSP Stapling : Set'" in sites["www.example.com:443"]["details"]["stapling_reason"]
    assert sites["api.example.com:8443"]["stapling"] == "on"  # SNI with EnableOcspStaplingForSni = 1
    assert sites["443"]["stapling"] == "on"


@pytest.mark.parametrize("value, expected", [(None, "absent"), (0, "off"), (2, "off"), ("1", "on")])
def test_sni_and_ccs_bindings_follow_the_registry_value(value, expected):
    host = dict(read(), sni_stapling=value)
    sites = by_endpoint(audit_info(GATE_2022, netsh(), host))
    assert sites["api.example.com:8443"]["stapling"] == expected and sites["443"]["stapling"] == expected
    assert sites["0.0.0.0:443"]["stapling"] == "on"  # IP:port bindings do not read it
    assert "EnableOcspStaplingForSni" in sites["api.example.com:8443"]["details"]["stapling_reason"]


def test_before_server_2019_no_flag_line_means_on():
    bindings = netsh("server2016.txt")
    gate = version_gate({"ansible_distribution": "Microsoft Windows Server 2016", "ansible_distribution_version": "10.0.14393.0",
                         "ansible_os_product_type": "server"})
    info = audit_info(gate, bindings, {"certificates": [], "authorities": [], "sni_stapling": None, "iis": None})
    # The 2016 fixture's certificates are not in the (empty) store: every binding is refused, with why.
    assert info["sites"] == [] and len(info["refused"]) == len(bindings)
    assert all("is not in Cert:\\LocalMachine\\" in refused["reason"] for refused in info["refused"])


def test_only_the_issuers_of_the_bound_certificates_leave_the_stores(info):
    assert [bundle["source"] for bundle in info["bundles"]] == ["Cert:\\LocalMachine\\CA", "Cert:\\LocalMachine\\Root"]
    assert [len(bundle["blocks"]) for bundle in info["bundles"]] == [1, 1]  # the Unrelated Root CA stays out
    verdicts = {path: preflight(entry, candidates=info["bundles"]) for path, entry in info["certificates"].items()}
    assert set(verdicts) == {"Cert:\\LocalMachine\\My\\74AF35597EA4385B1648B19BAB4CFA16A83771EF",
                             "Cert:\\LocalMachine\\WebHosting\\74AF35597EA4385B1648B19BAB4CFA16A83771EF",
                             "Cert:\\LocalMachine\\My\\FCC700672B6B779C08BCA62198B6DC2CE93CDC74",
                             "Cert:\\LocalMachine\\My\\43CE803F32F1DD14675ECEAD260CCE8BC123679B"}
    assert verdicts["Cert:\\LocalMachine\\My\\FCC700672B6B779C08BCA62198B6DC2CE93CDC74"]["eligible"] is True
    assert verdicts["Cert:\\LocalMachine\\My\\FCC700672B6B779C08BCA62198B6DC2CE93CDC74"]["must_staple"] is True
    assert "'Fixture Intermediate CA' -> 'Fixture Root CA'" in verdicts["Cert:\\LocalMachine\\My\\74AF35597EA4385B1648B19BAB4CFA16A83771EF"]["reason"]
    assert verdicts["Cert:\\LocalMachine\\My\\43CE803F32F1DD14675ECEAD260CCE8BC123679B"]["eligible"] is False


def test_verify_targets_carry_the_binding_names_and_the_right_certificate(info):
    targets = verify_site_targets(info["sites"], ADDRESS, None, info["certificates"])
    by_key = {(target["port"], target["server_name"]): target for target in targets}
    # 0.0.0.0:443 and [::]:443 are one target; the IP-only binding sends the address, which is never sent as SNI.
    assert set(by_key) == {(443, "shop.example.com"), (443, "www.example.com"), (8443, "api.example.com"), (9443, ADDRESS),
                           (443, "ccs.example.com")}
    der = base64.b64decode(next(item["der"] for item in read()["certificates"] if item["thumbprint"].startswith("74AF")))
    assert by_key[(443, "shop.example.com")]["expected_certificates"] == [hashlib.sha256(der).hexdigest().upper()]
    assert "expected_certificates" not in by_key[(443, "ccs.example.com")]  # nothing known to hold the served one against
    assert all(target["host"] == ADDRESS for target in targets)


# --- bindings that cannot be judged --------------------------------------------------------------------


def test_bindings_that_cannot_be_judged_are_refused_with_why(info):
    refused = {item["endpoint"]: item for item in info["refused"]}
    assert set(refused) == {"old.example.com:443", "moved.example.com:443", "8444"}
    assert "00112233445566778899AABBCCDDEEFF00112233 that the binding names is not in Cert:\\LocalMachine\\My:" in refused["old.example.com:443"]["reason"]
    assert "not in Cert:\\LocalMachine\\WebHosting (it is in Cert:\\LocalMachine\\My)" in refused["moved.example.com:443"]["reason"]
    assert "host names IIS does not list" in refused["8444"]["reason"]


def test_refused_bindings_are_not_audited_rows_with_every_key(info):
    rows = {row["socket"]: row for row in refused_rows("win1", info)}
    assert set(rows) == {"*:443", "*:8444"} and len(refused_rows("win1", info)) == 3
    for row in refused_rows("win1", info):
        assert tuple(row) == _audit.ROW_KEYS
        assert row["status"] == _audit.NOT_AUDITED and row["server"] == "http.sys" and row["version"] == "10.0.20348"
        assert row["reason"] and "HTTP.sys binding" in row["action"]
    assert {row["site"] for row in refused_rows("win1", info)} == {"old.example.com", "moved.example.com", "(default server)"}


def test_a_binding_without_a_certificate_and_an_unreadable_store():
    bindings = netsh()
    bindings[3] = dict(bindings[3], certificate_hash=None)
    host = dict(read(), unreadable_stores=[{"store": "WEBHOSTING", "error": "Access is denied."}])
    host["certificates"] = [item for item in host["certificates"] if item["store"] != "WebHosting"]
    info = audit_info(GATE_2022, bindings, host)
    refused = {item["endpoint"]: item["reason"] for item in info["refused"]}
    assert refused["api.example.com:8443"].startswith("the binding names no certificate")
    assert refused["www.example.com:443"] == ("the store Cert:\\LocalMachine\\WebHosting that holds its certificate could not be read "
                                              "(Access is denied.): run the audit as an administrator of the host")


def test_der_that_is_not_the_thumbprint_or_not_base64_is_the_preflight_error():
    host = read()
    certificates = host["certificates"]
    api = next(item for item in certificates if item["thumbprint"].startswith("FCC7"))
    legacy = next(item for item in certificates if item["thumbprint"].startswith("43CE"))
    api["der"], legacy["der"] = legacy["der"], "not base64!"
    info = audit_info(GATE_2022, netsh(), host)
    assert "does not hash to the thumbprint FCC700672B6B779C08BCA62198B6DC2CE93CDC74" in \
        info["certificates"]["Cert:\\LocalMachine\\My\\FCC700672B6B779C08BCA62198B6DC2CE93CDC74"]["error"]
    assert "der is not base64" in info["certificates"]["Cert:\\LocalMachine\\My\\43CE803F32F1DD14675ECEAD260CCE8BC123679B"]["error"]
    verdict = preflight(info["certificates"]["Cert:\\LocalMachine\\My\\FCC700672B6B779C08BCA62198B6DC2CE93CDC74"], candidates=info["bundles"])
    assert verdict["eligible"] is False and "does not hash" in verdict["reason"]


def test_an_unsupported_windows_and_reads_of_the_wrong_shape_are_refused():
    old = version_gate({"ansible_distribution": "Windows Server 2003", "ansible_distribution_version": "5.2.3790.0", "ansible_os_product_type": "server"})
    with pytest.raises(WindowsParseError, match="upgrade to Windows Server 2008"):
        audit_info(old, netsh(), read())
    for bad, message in [(None, "got NoneType"), ({"certificates": []}, "no certificates and authorities"),
                         (dict(read(), sni_stapling=True), "not the DWORD"), (dict(read(), iis="text"), "iis must be"),
                         (dict(read(), certificates=[{"thumbprint": "AB"}]), "has no store name"),
                         (dict(read(), unreadable_stores=["My"]), "unreadable_stores")]:
        with pytest.raises(WindowsParseError, match=message):
            audit_info(GATE_2022, netsh(), bad)
    with pytest.raises(WindowsParseError, match="windows_gate"):
        audit_info({}, netsh(), read())
    with pytest.raises(WindowsParseError, match="windows_audit_sites"):
        refused_rows("win1", {"sites": []})


# --- judged like every other site ----------------------------------------------------------------------


def served(target: dict, leaf_der: bytes, stapled: bool, must_staple: bool = False, matches: bool = True) -> dict:
    """A verify result for a target, in the shape ocsp.stapling.verify returns."""
    certificate = {"subject": "CN=x", "issuer": "CN=Fixture Intermediate CA", "serial": "01", "sha256": hashlib.sha256(leaf_der).hexdigest().upper(),
                   "not_after": "2126-01-01T00:00:00Z", "ocsp_urls": ["http://ocsp.example.com/"]}
    return {"host": target["host"], "port": target["port"], "server_name": target["server_name"], "ok": stapled, "stapled": stapled,
            "response_status": "successful" if stapled else None, "cert_status": "good" if stapled else None,
            "next_update": "2026-06-02T12:00:00Z" if stapled else None, "seconds_to_expiry": 86400 if stapled else None,
            "names_certificate": stapled, "signature_valid": stapled, "fresh": stapled, "must_staple": must_staple,
            "certificate_matches": matches, "applicable": True, "responder": None, "certificate": certificate,
            "reason": "good, fresh staple" if stapled else "no OCSP response stapled"}


def test_rows_are_judged_by_the_audit_like_nginx_and_apache_sites(info):
    verdicts = {path: preflight(entry, candidates=info["bundles"]) for path, entry in info["certificates"].items()}
    targets = {(target["port"], target["server_name"]): target for target in verify_site_targets(info["sites"], ADDRESS, None, info["certificates"])}
    ders = {item["thumbprint"][:4]: base64.b64decode(item["der"]) for item in read()["certificates"]}
    no_url = served(targets[(9443, ADDRESS)], ders["43CE"], False)
    no_url["certificate"]["ocsp_urls"] = []
    results = [
        served(targets[(443, "shop.example.com")], ders["74AF"], True),
        served(targets[(443, "www.example.com")], ders["74AF"], False),  # the flag is Set: nothing stapled
        served(targets[(8443, "api.example.com")], ders["FCC7"], False, must_staple=True),
        no_url,
        served(targets[(443, "ccs.example.com")], ders["74AF"], False),
    ]
    rows = audit_rows([info], "win1", ADDRESS, verdicts, results, now=NOW) + refused_rows("win1", info)
    status = {(row["site"], row["socket"]): row["status"] for row in rows}
    # A certificate without an OCSP URL on a binding that staples by HTTP.sys's default: nothing of the binding's own
    # turns stapling on, so nothing is "dead configuration" to remove; _audit judges that from stapling_by_default.
    legacy = next(row for row in rows if row["socket"] == "0.0.0.0:9443")
    assert legacy["stapling"] == "on" and legacy["applicable"] is False and legacy["ocsp_url"] == "none"
    assert by_endpoint(info)["0.0.0.0:9443"]["details"]["stapling_by_default"] is True
    assert status == {
        ("(default server)", "0.0.0.0:9443"): "not applicable",
        ("shop.example.com", "0.0.0.0:443"): "ok",
        ("shop.example.com", "[::]:443"): "ok",
        ("www.example.com", "*:443"): "not stapling",
        ("api.example.com", "*:8443"): "critical",
        ("ccs.example.com", "*:443"): "failing",
        ("old.example.com", "*:443"): "not audited",
        ("moved.example.com", "*:443"): "not audited",
        ("(default server)", "*:8444"): "not audited",
    }
    www = next(row for row in rows if row["site"] == "www.example.com" and row["status"] == "not stapling")
    assert www["stapling"] == "off" and www["server"] == "http.sys" and www["version"] == "10.0.20348"
    assert www["certificate_path"] == "Cert:\\LocalMachine\\WebHosting\\74AF35597EA4385B1648B19BAB4CFA16A83771EF"
    assert www["target"] == "%s:443 (www.example.com)" % ADDRESS
    assert all(tuple(row) == _audit.ROW_KEYS for row in rows)


def test_a_binding_serving_another_certificate_is_failing(info):
    verdicts = {path: preflight(entry, candidates=info["bundles"]) for path, entry in info["certificates"].items()}
    [target] = [target for target in verify_site_targets(info["sites"], ADDRESS, None, info["certificates"]) if target["port"] == 8443]
    other = base64.b64decode(read()["certificates"][0]["der"])
    result = dict(served(target, other, True), ok=False, certificate_matches=False,
                  reason="the certificate served is not one the site is configured with")
    rows = [row for row in audit_rows([info], "win1", ADDRESS, verdicts, [result], now=NOW) if row["port"] == 8443]
    assert [(row["served"], row["status"]) for row in rows] == [("wrong certificate", "failing")]


# --- the audit's task file and its PowerShell, statically --------------------------------------------------


def _tasks() -> list:
    tasks = []
    for task in yaml.safe_load((ROLE / "tasks" / "windows.yml").read_text(encoding="utf-8")):
        for part in ("block", "rescue"):
            tasks.extend(task.get(part, []))
        if "block" not in task:
            tasks.append(task)
    return tasks


def _host_tasks() -> list:
    return [task for task in _tasks() if any(key.startswith("ansible.windows.") for key in task)]


def test_the_host_only_reads_and_check_mode_reads_the_same():
    host = _host_tasks()
    assert [next(key for key in task if key.startswith("ansible.windows.")) for task in host] == [
        "ansible.windows.win_command", "ansible.windows.win_powershell"]
    for task in host:
        assert task["check_mode"] is False and task["changed_when"] is False, task["name"]
    assert host[0]["ansible.windows.win_command"] == "netsh http show sslcert"
    text = (ROLE / "tasks" / "windows.yml").read_text(encoding="utf-8")
    # Nothing that writes: no registry, IIS, certificate or netsh change, no service touched.
    for verb in ("win_regedit", "Set-", "New-", "Remove-", "Add-", "Import-Certificate", "Export-", "netsh http add", "netsh http update",
                 "netsh http delete", "Restart-", "Stop-", "Start-", ".Build(", "Out-File", "> "):
        assert verb not in text, verb


def test_the_script_takes_the_thumbprints_as_a_parameter_and_says_it_changes_nothing():
    (task,) = [task for task in _host_tasks() if "ansible.windows.win_powershell" in task]
    module = task["ansible.windows.win_powershell"]
    script = module["script"]
    assert "{{" not in script and "{%" not in script
    assert script.startswith("param([string[]]$Thumbprints)") and "$Ansible.Changed = $false" in script
    assert set(module["parameters"]) == {"Thumbprints"} and "certificate_hash" in module["parameters"]["Thumbprints"]
    # Nested lists of mappings need more than win_powershell's default depth of 2.
    assert module["depth"] >= 3 and module["error_action"] == "stop"


def test_the_script_returns_what_the_controller_reads():
    (task,) = [task for task in _host_tasks() if "ansible.windows.win_powershell" in task]
    script = task["ansible.windows.win_powershell"]["script"]
    result = script.split("$Ansible.Result = @{", 1)[1]
    assert set(re.findall(r"^\s+(\w+) = ", result, re.MULTILINE)) == set(read()) == {
        "certificates", "unreadable_stores", "authorities", "sni_stapling", "iis"}
    stores = re.search(r"foreach \(\$name in ([^)]*)\)", script).group(1)
    assert tuple(name.strip(" '") for name in stores.split(",")) == _windows.AUTHORITY_STORES
    assert _windows.SCHANNEL_KEY in script and "'%s'" % _windows.SNI_REGISTRY_VALUE in script
    # The IIS listing of the windows role: the site's own name, never cut out of an XPath.
    assert "$siteName = $_.name" in script and "ItemXPath" not in script
    for key in ("store", "thumbprint", "der"):
        assert "%s = " % key in script


def test_the_same_facts_as_unix_yml_come_out():
    names = set()
    for task in _tasks():
        names.update((task.get("ansible.builtin.set_fact") or {}).keys())
    assert {"audit_found", "audit_preflights", "audit_targets", "audit_error"} <= names
    main = (ROLE / "tasks" / "main.yml").read_text(encoding="utf-8")
    assert "windows_audit_refused(inventory_hostname)" in main
    # Read before unix.yml, whose one verify call takes the targets of every host of the play.
    assert main.index("include_tasks: windows.yml") < main.index("include_tasks: unix.yml")


def test_the_fixture_read_is_what_the_thumbprints_name_and_is_left_as_it_was():
    host = read()
    for item in host["certificates"] + host["authorities"]:
        assert hashlib.sha1(base64.b64decode(item["der"])).hexdigest().upper() == item["thumbprint"]
    before = copy.deepcopy(host)
    audit_info(GATE_2022, netsh(), host)
    assert host == before
