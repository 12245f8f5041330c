"""Unit tests of the Windows side on the controller: netsh sslcert parsing, the version gate and the stapling plan.

Windows cannot run here, so the inputs are what the hosts print: netsh outputs shaped like Windows
Server 2012 R2, 2016, 2019 and 2022 (fixtures/windows/), Ansible fact sets, and Get-WebBinding JSON.
"""

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils._windows import (
    WindowsParseError,
    netsh_update_command,
    parse_sslcert,
    plan,
    version_gate,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "windows"


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def facts(distribution: str, version: str, product_type: str = "server", installation_type: str = "Server") -> dict:
    return {
        "ansible_distribution": distribution,
        "ansible_distribution_version": version,
        "ansible_os_product_type": product_type,
        "ansible_os_installation_type": installation_type,
    }


FACTS = {
    "2003": facts("Microsoft(R) Windows(R) Server 2003, Standard Edition", "5.2.3790.0"),
    "2008": facts("Microsoft Windows Server 2008 Standard", "6.0.6002.0"),
    "2008 R2": facts("Microsoft Windows Server 2008 R2 Standard", "6.1.7601.0"),
    "2012": facts("Microsoft Windows Server 2012 Standard", "6.2.9200.0"),
    "2012 R2": facts("Microsoft Windows Server 2012 R2 Standard", "6.3.9600.0"),
    "2016": facts("Microsoft Windows Server 2016 Datacenter", "10.0.14393.0"),
    "2019": facts("Microsoft Windows Server 2019 Datacenter", "10.0.17763.0", "domain_controller"),
    "2022": facts("Microsoft Windows Server 2022 Standard", "10.0.20348.0", installation_type="Server Core"),
    "2025": facts("Microsoft Windows Server 2025 Datacenter", "10.0.26100.0"),
    "win10": facts("Microsoft Windows 10 Pro", "10.0.19045.0", "workstation", "Client"),
}


# --- parse_sslcert ---------------------------------------------------------------------------------


def test_2012r2_ip_sni_and_ccs_bindings_without_the_stapling_line():
    bindings = parse_sslcert(read("server2012r2.txt"))
    assert [(b["kind"], b["endpoint"], b["port"], b["host"]) for b in bindings] == [
        ("ip", "0.0.0.0:443", 443, "0.0.0.0"),
        ("hostname", "www.example.com:443", 443, "www.example.com"),
        ("ccs", "443", 443, None),
    ]
    ip, sni, ccs = bindings
    assert ip["certificate_hash"] == "3a9f0c21d4b5e6f708192a3b4c5d6e7f80910a1b"  # lower-cased
    assert ip["application_id"] == "{4dc3e181-e14b-4a21-b022-59fc669b0914}"
    assert ip["certificate_store"] == "My"
    assert sni["certificate_store"] == "WebHosting"
    assert ccs["certificate_hash"] is None and ccs["certificate_store"] is None
    assert all(b["disable_ocsp_stapling"] is None for b in bindings)
    assert ip["properties"]["Verify Client Certificate Revocation"] == "Enabled"
    assert ip["properties"]["Ctl Identifier"] == "(null)"
    assert len(ip["properties"]) == 12


def test_2016_shape_has_http2_but_no_stapling_line():
    ip, sni = parse_sslcert(read("server2016.txt"))
    assert (ip["endpoint"], ip["port"], ip["host"]) == ("10.0.0.5:8443", 8443, "10.0.0.5")
    assert sni["properties"]["Disable HTTP2"] == "Set"
    assert ip["disable_ocsp_stapling"] is None and sni["disable_ocsp_stapling"] is None


def test_2019_flag_set_and_not_set():
    ip, www, api = parse_sslcert(read("server2019.txt"))
    assert ip["disable_ocsp_stapling"] is False
    assert www["disable_ocsp_stapling"] is True
    assert (api["host"], api["port"], api["disable_ocsp_stapling"]) == ("api.example.com", 8443, True)
    assert api["properties"]["Disable Legacy TLS Versions"] == "Set"


def test_2022_ipv6_ccs_and_extended_properties():
    ip, ccs, www = parse_sslcert(read("server2022.txt"))
    assert (ip["kind"], ip["endpoint"], ip["host"], ip["port"]) == ("ip", "[::]:443", "::", 443)
    assert ip["disable_ocsp_stapling"] is True
    assert (ccs["kind"], ccs["disable_ocsp_stapling"]) == ("ccs", False)
    assert www["disable_ocsp_stapling"] is True
    # Repeated labels of the Extended Properties groups keep their first value.
    assert www["properties"]["PropertyId"] == "0"
    assert www["properties"]["Max Settings Per Minute"] == "4294967295"


def test_crlf_tabs_and_label_case_are_tolerated():
    text = read("server2019.txt").replace("\n", "\r\n").replace("Disable OCSP Stapling ", "disable  ocsp STAPLING")
    bindings = parse_sslcert(text)
    assert [b["disable_ocsp_stapling"] for b in bindings] == [False, True, True]


def test_unknown_labels_are_kept_and_ignored():
    text = read("server2019.txt").replace("    Log Extended Events", "    Some Future Switch           : Set\n    Log Extended Events", 1)
    ip = parse_sslcert(text)[0]
    assert ip["properties"]["Some Future Switch"] == "Set"
    assert ip["disable_ocsp_stapling"] is False


def test_no_bindings():
    assert parse_sslcert(read("none.txt")) == []
    assert parse_sslcert("The system cannot find the file specified.\r\n") == []


@pytest.mark.parametrize("name", ["localized_de.txt", "localized_fr.txt"])
def test_localized_output_is_refused(name):
    with pytest.raises(WindowsParseError, match="English display language.*chcp 437"):
        parse_sslcert(read(name))


@pytest.mark.parametrize("text", [
    read("garbage.txt"),
    "",
    "   \n\n",
    "Certificate Hash : 3a9f\n",
    "    IP:port : nothing-here\n    Certificate Hash : 3a9f\n",
    "    IP:port : 0.0.0.0:99999\n    Certificate Hash : 3a9f\n",
])
def test_garbage_is_refused(text):
    with pytest.raises(WindowsParseError):
        parse_sslcert(text)


def test_unexpected_stapling_value_is_refused():
    text = read("server2019.txt").replace("Disable OCSP Stapling        : Set", "Disable OCSP Stapling        : Maybe", 1)
    with pytest.raises(WindowsParseError, match="neither Set nor Not Set"):
        parse_sslcert(text)


def test_non_text_is_refused():
    with pytest.raises(WindowsParseError, match="as text"):
        parse_sslcert(None)


# --- version_gate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key, version, name, supported, sni, flag", [
    ("2003", "5.2.3790", "Windows Server 2003", False, False, False),
    ("2008", "6.0.6002", "Windows Server 2008", True, False, False),
    ("2008 R2", "6.1.7601", "Windows Server 2008 R2", True, False, False),
    ("2012", "6.2.9200", "Windows Server 2012", True, True, False),
    ("2012 R2", "6.3.9600", "Windows Server 2012 R2", True, True, False),
    ("2016", "10.0.14393", "Windows Server 2016", True, True, False),
    ("2019", "10.0.17763", "Windows Server 2019", True, True, True),
    ("2022", "10.0.20348", "Windows Server 2022", True, True, True),
    ("2025", "10.0.26100", "Windows Server 2025", True, True, True),
])
def test_server_versions(key, version, name, supported, sni, flag):
    gate = version_gate(FACTS[key])
    assert gate["version"] == version
    assert gate["name"] == name
    assert (gate["supported"], gate["sni_capable"], gate["per_binding_flag"]) == (supported, sni, flag)
    assert gate["reason"]


def test_2003_says_what_was_found_and_what_to_do():
    reason = version_gate(FACTS["2003"])["reason"]
    assert "5.2.3790" in reason and "Windows Server 2003" in reason
    assert "upgrade to Windows Server 2008 or later" in reason


def test_workstation_is_not_supported():
    gate = version_gate(FACTS["win10"])
    assert gate["supported"] is False
    assert "not Windows Server" in gate["reason"] and "Windows 10" in gate["reason"]


def test_product_type_missing_falls_back_to_the_distribution_name():
    server = dict(FACTS["2019"])
    del server["ansible_os_product_type"]
    assert version_gate(server)["supported"] is True
    client = dict(FACTS["win10"])
    del client["ansible_os_product_type"]
    assert version_gate(client)["supported"] is False


def test_build_between_known_releases_is_named_after_the_previous_one():
    gate = version_gate(facts("Microsoft Windows Server Datacenter", "10.0.25398.0"))
    assert gate["name"] == "Windows Server 2022 or later (build 25398)"
    assert gate["per_binding_flag"] is True


@pytest.mark.parametrize("bad", [{}, {"ansible_distribution_version": "unknown"}, "10.0.17763.0"])
def test_facts_without_a_version_are_refused(bad):
    with pytest.raises(WindowsParseError):
        version_gate(bad)


# --- plan ------------------------------------------------------------------------------------------


def test_2012r2_turns_on_sni_registry_only():
    result = plan(version_gate(FACTS["2012 R2"]), parse_sslcert(read("server2012r2.txt")))
    assert result["sni_registry"] is True
    assert result["netsh_updates"] == [] and result["netsh_commands"] == [] and result["iis_updates"] == []
    assert result["certificates"] == ["3a9f0c21d4b5e6f708192a3b4c5d6e7f80910a1b", "5b6c7d8e9f00112233445566778899aabbccddee"]
    assert result["targets"] == [
        {"host": None, "port": 443, "server_name": None},
        {"host": None, "port": 443, "server_name": "www.example.com"},
    ]
    # The CCS binding names no host and no IIS bindings were given to name one.
    assert any("Centralized Certificate Store" in warning for warning in result["warnings"])


def test_ip_bindings_only_need_no_registry_value():
    ip_only = [b for b in parse_sslcert(read("server2012r2.txt")) if b["kind"] == "ip"]
    assert plan(version_gate(FACTS["2012 R2"]), ip_only)["sni_registry"] is False


def test_sni_bindings_before_2012_are_left_alone_with_a_warning():
    result = plan(version_gate(FACTS["2008 R2"]), parse_sslcert(read("server2012r2.txt")))
    assert result["sni_registry"] is False
    assert any("Windows Server 2012 or later" in warning for warning in result["warnings"])


def test_2019_clears_the_per_binding_flags():
    result = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")))
    assert result["sni_registry"] is True
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["www.example.com:443", "api.example.com:8443"]
    assert [argv[4] for argv in result["netsh_commands"]] == ["hostnameport=www.example.com:443", "hostnameport=api.example.com:8443"]
    assert result["targets"] == [
        {"host": None, "port": 443, "server_name": None},
        {"host": None, "port": 443, "server_name": "www.example.com"},
        {"host": None, "port": 8443, "server_name": "api.example.com"},
    ]
    assert result["warnings"] == []


def test_flag_on_a_host_before_2019_is_not_touched():
    bindings = parse_sslcert(read("server2019.txt"))
    result = plan(version_gate(FACTS["2016"]), bindings)
    assert result["netsh_updates"] == []
    assert any("should not have" in warning for warning in result["warnings"])


def test_iis_owned_bindings_go_to_iis_not_netsh():
    iis = [
        {"site": "Default Web Site", "binding_information": "*:443:", "ssl_flags": 8},
        {"site": "Shop", "binding_information": "*:443:www.example.com", "ssl_flags": 1 | 8},
        {"site": "Farm", "binding_information": "*:443:farm.example.com", "ssl_flags": 2},
        {"site": "Other", "binding_information": "*:8443:other.example.com", "ssl_flags": 1},
    ]
    result = plan(version_gate(FACTS["2022"]), parse_sslcert(read("server2022.txt")), iis)
    assert result["netsh_updates"] == []
    assert result["iis_updates"] == [
        {"site": "Default Web Site", "binding_information": "*:443:", "ssl_flags": 8, "new_ssl_flags": 0},
        {"site": "Shop", "binding_information": "*:443:www.example.com", "ssl_flags": 9, "new_ssl_flags": 1},
    ]
    # The CCS binding is verified with the host names of its IIS sites.
    assert {"host": None, "port": 443, "server_name": "farm.example.com"} in result["targets"]
    assert result["warnings"] == []


def test_binding_not_owned_by_iis_goes_to_netsh():
    iis = [{"site": "Shop", "binding_information": "*:443:shop.example.com", "ssl_flags": 1}]
    result = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")), iis)
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["www.example.com:443", "api.example.com:8443"]
    assert result["iis_updates"] == []


def test_get_webbinding_objects_are_accepted_as_they_are():
    iis = [{"ItemXPath": "/system.applicationHost/sites/site[@name='Bob''s shop' and @id='2']",
            "bindingInformation": "*:443:www.example.com", "sslFlags": "9"}]
    result = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")), iis)
    assert result["iis_updates"] == [{"site": "Bob's shop", "binding_information": "*:443:www.example.com",
                                      "ssl_flags": 9, "new_ssl_flags": 1}]
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["api.example.com:8443"]


def test_iis_binding_without_the_flag_warns_instead_of_using_netsh():
    iis = [{"site": "Shop", "binding_information": "*:443:www.example.com", "ssl_flags": 1}]
    result = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")), iis)
    assert "www.example.com:443" not in [b["endpoint"] for b in result["netsh_updates"]]
    assert any("IIS owns it" in warning for warning in result["warnings"])


@pytest.mark.parametrize("iis", [
    [{"site": "x", "binding_information": "443", "ssl_flags": 0}],
    [{"site": "x", "binding_information": "*:https:", "ssl_flags": 0}],
    [{"site": "x", "binding_information": "*:443:", "ssl_flags": "many"}],
    ["*:443:"],
])
def test_bad_iis_bindings_are_refused(iis):
    with pytest.raises(WindowsParseError):
        plan(version_gate(FACTS["2019"]), [], iis)


def test_unsupported_host_plans_nothing():
    result = plan(version_gate(FACTS["2003"]), parse_sslcert(read("server2012r2.txt")))
    assert (result["sni_registry"], result["netsh_updates"], result["targets"]) == (False, [], [])
    assert "upgrade to Windows Server 2008" in result["warnings"][0]


# --- netsh_update_command ---------------------------------------------------------------------------


def test_netsh_argv_keeps_the_properties():
    api = parse_sslcert(read("server2019.txt"))[2]
    assert netsh_update_command(api) == [
        "netsh", "http", "update", "sslcert",
        "hostnameport=api.example.com:8443",
        "certhash=77aa88bb99cc00dd11ee22ff3300441155226633",
        "appid={a8f4c3e2-1b2d-4e5f-9a0b-1c2d3e4f5a6b}",
        "certstorename=My",
        "verifyclientcertrevocation=disable",
        "verifyrevocationwithcachedclientcertonly=disable",
        "usagecheck=enable",
        "revocationfreshnesstime=3600",
        "urlretrievaltimeout=15000",
        "dsmapperusage=disable",
        "clientcertnegotiation=enable",
        "disablehttp2=enable",
        "logextendedevents=enable",
        "disablelegacytls=enable",
        "disableocspstapling=disable",
    ]


def test_netsh_argv_for_ip_and_ccs_bindings():
    ip, ccs, _www = parse_sslcert(read("server2022.txt"))
    ip_argv = netsh_update_command(ip)
    assert ip_argv[4] == "ipport=[::]:443" and ip_argv[-1] == "disableocspstapling=disable"
    ccs_argv = netsh_update_command(ccs)
    assert ccs_argv[4] == "ccs=443"
    assert not any(arg.startswith(("certhash=", "certstorename=", "sslctlidentifier=")) for arg in ccs_argv)
    assert "appid={4dc3e181-e14b-4a21-b022-59fc669b0914}" in ccs_argv


def test_netsh_update_warns_about_extended_properties_it_cannot_keep():
    result = plan(version_gate(FACTS["2022"]), parse_sslcert(read("server2022.txt")))
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["[::]:443", "www.example.com:443"]
    assert any("cannot keep Receive Window" in warning for warning in result["warnings"])


def test_netsh_update_refuses_what_is_not_a_binding():
    with pytest.raises(WindowsParseError):
        netsh_update_command({"kind": "tcp", "endpoint": "x"})


def test_netsh_argv_passes_set_newer_flags_and_ctl_values():
    text = read("server2019.txt").replace("Reject Connections           : Disabled", "Reject Connections           : Enabled", 1)
    text = text.replace("Ctl Identifier               : (null)", "Ctl Identifier               : TrustedIssuers", 1)
    ip = parse_sslcert(text)[0]
    argv = netsh_update_command(ip)
    assert "reject=enable" in argv and "sslctlidentifier=TrustedIssuers" in argv
    assert not any(arg.startswith(("disablehttp2=", "disablequic=", "sslctlstorename=")) for arg in argv)
