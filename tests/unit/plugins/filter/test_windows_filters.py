"""Unit tests of the Windows filters: inputs as the role passes them, errors as Ansible filter errors."""

from __future__ import annotations

import json
import pathlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.filter.windows import FilterModule

FILTERS = FilterModule().filters()
FIXTURES = pathlib.Path(__file__).parents[1] / "module_utils" / "fixtures" / "windows"
FACTS_2019 = {"ansible_distribution": "Microsoft Windows Server 2019 Datacenter", "ansible_distribution_version": "10.0.17763.0",
              "ansible_os_product_type": "server"}


def read(name: str) -> str:
    return "".join(line for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)
                   if not line.startswith("# "))


def test_the_filters_are_exposed():
    assert set(FILTERS) == {"windows_sslcert", "windows_gate", "windows_plan", "windows_netsh_update", "windows_readback",
                            "windows_verify_failures", "windows_audit_sites", "windows_audit_refused"}


def test_command_result_and_get_webbinding_json_are_accepted():
    bindings = FILTERS["windows_sslcert"]({"stdout": read("server2019.txt"), "rc": 0})
    gate = FILTERS["windows_gate"](FACTS_2019)
    # ConvertTo-Json turns a single binding into an object, not a list.
    iis = json.dumps({"ItemXPath": "/system.applicationHost/sites/site[@name='Shop' and @id='2']",
                      "bindingInformation": "*:443:www.example.com", "sslFlags": 9})
    result = FILTERS["windows_plan"](gate, bindings, iis)
    assert [(u["site"], u["new_ssl_flags"]) for u in result["iis_updates"]] == [("Shop", 1)]
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["api.example.com:8443"]
    assert result["netsh_commands"] == [FILTERS["windows_netsh_update"](result["netsh_updates"][0])]
    assert FILTERS["windows_plan"](gate, bindings, "")["iis_updates"] == []


def test_the_role_listing_shape_and_drop_flags_as_any_sequence():
    bindings = FILTERS["windows_sslcert"](read("newer_session_id.txt"))
    gate = FILTERS["windows_gate"](dict(FACTS_2019, ansible_distribution_version="10.0.26100.0"))
    listing = [{"site": "Bob's shop", "binding_information": "*:8443:other.example.com", "ssl_flags": 9}]
    assert len(FILTERS["windows_plan"](gate, bindings, listing)["refused"]) == 1
    result = FILTERS["windows_plan"](gate, bindings, listing, drop_flags=("Enable Caching Client Hello",))
    assert result["refused"] == [] and len(result["netsh_commands"]) == 2
    assert result["iis_updates"][0]["filter"].startswith("/system.applicationHost/sites/site[@name=\"Bob's shop\"]")


def test_readback_and_verify_failures():
    bindings = FILTERS["windows_sslcert"](read("server2019.txt"))
    planned = FILTERS["windows_plan"](FILTERS["windows_gate"](FACTS_2019), bindings)
    result = FILTERS["windows_readback"](planned, bindings, final=True)
    assert result["ok"] is False and len(result["failed"]) == 2
    failures = FILTERS["windows_verify_failures"](
        [{"host": "h", "port": 443, "server_name": "www.example.com", "ok": False, "reason": "no staple", "certificate": None}],
        planned, True)
    assert "restart may be needed" in failures[0]


@pytest.mark.parametrize("call", [
    lambda: FILTERS["windows_sslcert"]("Zertifikathash : 3a9f\n"),
    lambda: FILTERS["windows_sslcert"](42),
    lambda: FILTERS["windows_gate"]({}),
    lambda: FILTERS["windows_plan"](FILTERS["windows_gate"](FACTS_2019), [], "not json"),
    lambda: FILTERS["windows_plan"](FILTERS["windows_gate"](FACTS_2019), "not a list"),
    lambda: FILTERS["windows_plan"](FILTERS["windows_gate"](FACTS_2019), [], None, "Enable Caching Client Hello"),
    lambda: FILTERS["windows_netsh_update"]("0.0.0.0:443"),
    lambda: FILTERS["windows_readback"]("plan", []),
    lambda: FILTERS["windows_readback"]({}, []),
    lambda: FILTERS["windows_readback"]({"readback": []}, "text"),
    lambda: FILTERS["windows_verify_failures"]("text"),
    lambda: FILTERS["windows_verify_failures"]([{"ok": False, "port": "x"}], {"sni_targets": [{"port": 1, "server_name": "a"}]}, True),
])
def test_errors_are_filter_errors(call):
    with pytest.raises(AnsibleFilterError, match="ocsp.stapling.windows_"):
        call()


def test_audit_sites_take_the_win_powershell_result_as_it_is_and_iis_as_json_text():
    bindings = FILTERS["windows_sslcert"]({"stdout": read("audit_server2022.txt"), "rc": 0})
    gate = FILTERS["windows_gate"](dict(FACTS_2019, ansible_distribution_version="10.0.20348.0"))
    result = json.loads((FIXTURES / "audit_read_server2022.json").read_text(encoding="utf-8"))
    whole = FILTERS["windows_audit_sites"](bindings, gate, result)
    assert whole == FILTERS["windows_audit_sites"](bindings, gate, result["result"])
    # ConvertTo-Json text of one IIS binding (a lone object) is read as a list of one.
    one = dict(result["result"], iis=json.dumps({"site": "Shop", "binding_information": "*:443:shop.example.com", "ssl_flags": 0}))
    sites = {site["details"]["endpoint"]: site for site in FILTERS["windows_audit_sites"](bindings, gate, one)["sites"]}
    assert sites["0.0.0.0:443"]["server_names"] == ["shop.example.com"] and sites["0.0.0.0:443"]["details"]["iis_sites"] == ["Shop"]
    rows = FILTERS["windows_audit_refused"](whole, "win1")
    assert [row["status"] for row in rows] == ["not audited"] * 3 and {row["host"] for row in rows} == {"win1"}


def test_audit_filters_fail_as_filter_errors():
    bindings = FILTERS["windows_sslcert"](read("audit_server2022.txt"))
    gate = FILTERS["windows_gate"](dict(FACTS_2019, ansible_distribution_version="10.0.20348.0"))
    with pytest.raises(AnsibleFilterError, match="windows_audit_sites: bindings must be"):
        FILTERS["windows_audit_sites"]("text", gate, {})
    with pytest.raises(AnsibleFilterError, match="windows_audit_sites: windows audit: the host's read has no certificates"):
        FILTERS["windows_audit_sites"](bindings, gate, {"result": {"iis": None}})
    with pytest.raises(AnsibleFilterError, match="windows_audit_refused: expected the result of windows_audit_sites"):
        FILTERS["windows_audit_refused"]({"refused": [{"reason": "x"}]}, "win1")
