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


def test_the_filters_are_exposed():
    assert set(FILTERS) == {"windows_sslcert", "windows_gate", "windows_plan", "windows_netsh_update"}


def test_command_result_and_get_webbinding_json_are_accepted():
    text = (FIXTURES / "server2019.txt").read_text(encoding="utf-8")
    bindings = FILTERS["windows_sslcert"]({"stdout": text, "rc": 0})
    gate = FILTERS["windows_gate"](FACTS_2019)
    # ConvertTo-Json turns a single binding into an object, not a list.
    iis = json.dumps({"ItemXPath": "/system.applicationHost/sites/site[@name='Shop' and @id='2']",
                      "bindingInformation": "*:443:www.example.com", "sslFlags": 9})
    result = FILTERS["windows_plan"](gate, bindings, iis)
    assert result["iis_updates"] == [{"site": "Shop", "binding_information": "*:443:www.example.com", "ssl_flags": 9, "new_ssl_flags": 1}]
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["api.example.com:8443"]
    assert result["netsh_commands"] == [FILTERS["windows_netsh_update"](result["netsh_updates"][0])]
    assert FILTERS["windows_plan"](gate, bindings, "")["iis_updates"] == []


@pytest.mark.parametrize("call", [
    lambda: FILTERS["windows_sslcert"]("Zertifikathash : 3a9f\n"),
    lambda: FILTERS["windows_sslcert"](42),
    lambda: FILTERS["windows_gate"]({}),
    lambda: FILTERS["windows_plan"](FILTERS["windows_gate"](FACTS_2019), [], "not json"),
    lambda: FILTERS["windows_plan"](FILTERS["windows_gate"](FACTS_2019), "not a list"),
    lambda: FILTERS["windows_netsh_update"]("0.0.0.0:443"),
])
def test_errors_are_filter_errors(call):
    with pytest.raises(AnsibleFilterError, match="ocsp.stapling.windows_"):
        call()
