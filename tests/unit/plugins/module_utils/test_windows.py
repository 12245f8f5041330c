"""Unit tests of the Windows side on the controller: netsh sslcert parsing, the version gate, the plan, the read-back.

Windows cannot run here, so the inputs are what the hosts print: netsh outputs in the shapes of published
captures (fixtures/windows/, each saying at its top which build it models and how sure that is), Ansible fact
sets, and IIS binding lists. The role's PowerShell is checked statically at the end.
"""

from __future__ import annotations

import pathlib

import pytest
import yaml

from ansible_collections.ocsp.stapling.plugins.module_utils._windows import (
    RESTART_HINT,
    WindowsParseError,
    iis_binding_filter,
    netsh_update_command,
    not_understood,
    parse_sslcert,
    plan,
    readback,
    verify_failures,
    version_gate,
    xpath_literal,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "windows"
ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "windows"
SHAPES = ["server2012r2.txt", "server2016.txt", "server2019.txt", "server2022.txt", "newer_session_id.txt",
          "newer_client_hello.txt"]


def read(name: str) -> str:
    """A fixture without its provenance header (the '# ' lines on top, which netsh never prints)."""
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "".join(lines)


def facts(distribution, version: str, product_type="server", installation_type="Server") -> dict:
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


# --- point 6: the parser on the shapes of published captures ---------------------------------------


@pytest.mark.parametrize("name", SHAPES)
def test_every_fixture_says_what_it_models_and_how_sure(name):
    header = [line for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines() if line.startswith("# ")]
    text = " ".join(header)
    assert text.startswith("# Models: ") and "Shape" in text
    assert any(word in text.lower() for word in ("probable", "likely", "medium", "low", "inferred"))


def test_2012r2_shape_ends_at_negotiate_client_certificate():
    bindings = parse_sslcert(read("server2012r2.txt"))
    assert [(b["kind"], b["endpoint"], b["port"], b["host"]) for b in bindings] == [
        ("ip", "0.0.0.0:443", 443, "0.0.0.0"),
        ("hostname", "www.example.com:443", 443, "www.example.com"),
        ("ccs", "443", 443, None),
    ]
    ip, sni, ccs = bindings
    assert ip["certificate_hash"] == "3a9f0c21d4b5e6f708192a3b4c5d6e7f80910a1b"  # lower-cased
    assert ip["application_id"] == "{4dc3e181-e14b-4a21-b022-59fc669b0914}"
    assert (ip["certificate_store"], sni["certificate_store"]) == ("My", "WebHosting")
    assert sni["properties"]["Ctl Store Name"] == "AdfsTrustedDevices"
    assert ccs["certificate_hash"] is None and ccs["certificate_store"] is None
    assert all(b["disable_ocsp_stapling"] is None and b["extended_properties"] == [] for b in bindings)
    assert list(ip["properties"])[-1] == "Negotiate Client Certificate" and len(ip["properties"]) == 12


def test_2016_shape_adds_reject_and_http2_but_no_stapling_line():
    ip, sni = parse_sslcert(read("server2016.txt"))
    assert (ip["endpoint"], ip["port"], ip["host"]) == ("10.0.0.5:8443", 8443, "10.0.0.5")
    assert list(sni["properties"])[-2:] == ["Reject Connections", "Disable HTTP2"]
    assert sni["properties"]["Disable HTTP2"] == "Set"
    assert ip["disable_ocsp_stapling"] is None and sni["disable_ocsp_stapling"] is None


def test_2019_inferred_shape_flag_set_and_not_set():
    ip, www, api = parse_sslcert(read("server2019.txt"))
    assert (ip["disable_ocsp_stapling"], www["disable_ocsp_stapling"]) == (False, True)
    assert (api["host"], api["port"], api["disable_ocsp_stapling"]) == ("api.example.com", 8443, True)
    assert "Disable TLS1.2" not in api["properties"] and api["properties"]["Disable Legacy TLS Versions"] == "Set"


def test_2022_shape_keeps_extended_properties_apart():
    ip, ccs, www = parse_sslcert(read("server2022.txt"))
    assert (ip["kind"], ip["endpoint"], ip["host"], ip["port"]) == ("ip", "[::]:443", "::", 443)
    assert (ip["disable_ocsp_stapling"], ccs["kind"], ccs["disable_ocsp_stapling"], www["disable_ocsp_stapling"]) == (
        True, "ccs", False, True)
    assert list(www["properties"])[-1] == "Enable Session Ticket"
    assert "PropertyId" not in www["properties"] and "Receive Window" not in www["properties"]
    assert www["extended_properties"] == [
        {"PropertyId": "0", "Receive Window": "1048576"},
        {"PropertyId": "1", "Max Settings Per Frame": "2796202", "Max Settings Per Minute": "4294967295"},
    ]


def test_newer_shapes_session_id_client_hello_and_empty_extended_groups():
    ip, www = parse_sslcert(read("newer_session_id.txt"))
    assert list(ip["properties"])[-2:] == ["Disable Session ID", "Enable Caching Client Hello"]
    (only,) = parse_sslcert(read("newer_client_hello.txt"))
    assert "Disable Session ID" not in only["properties"]
    assert [group["PropertyId"] for group in only["extended_properties"]] == ["0", "1", "2", "3", "4"]
    assert only["extended_properties"][4] == {"PropertyId": "4"}
    assert only["certificate_store"] is None


def test_crlf_and_label_case_are_tolerated_and_the_header_may_be_lower_case():
    text = read("server2019.txt").replace("\n", "\r\n").replace("Disable OCSP Stapling ", "disable  ocsp STAPLING")
    assert [b["disable_ocsp_stapling"] for b in parse_sslcert(text)] == [False, True, True]
    # An AD FS test quotes the IP block with a lower-case "ip:port" header.
    assert parse_sslcert(read("server2016.txt").replace("IP:port ", "ip:port ", 1))[0]["kind"] == "ip"


def test_unknown_labels_are_kept():
    text = read("server2019.txt").replace("    Log Extended Events", "    Enable Client Correlation    : Set\n    Log Extended Events", 1)
    ip = parse_sslcert(text)[0]
    assert ip["properties"]["Enable Client Correlation"] == "Set"


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


# --- point 5: the version gate, its two statements and its messages -------------------------------


@pytest.mark.parametrize("key, version, name, available, managed, sni, flag", [
    ("2003", "5.2.3790", "Windows Server 2003", False, False, False, False),
    ("2008", "6.0.6002", "Windows Server 2008", True, False, False, False),
    ("2008 R2", "6.1.7601", "Windows Server 2008 R2", True, False, False, False),
    ("2012", "6.2.9200", "Windows Server 2012", True, False, True, False),
    ("2012 R2", "6.3.9600", "Windows Server 2012 R2", True, False, True, False),
    ("2016", "10.0.14393", "Windows Server 2016", True, True, True, False),
    ("2019", "10.0.17763", "Windows Server 2019", True, True, True, True),
    ("2022", "10.0.20348", "Windows Server 2022", True, True, True, True),
    ("2025", "10.0.26100", "Windows Server 2025", True, True, True, True),
])
def test_server_versions(key, version, name, available, managed, sni, flag):
    gate = version_gate(FACTS[key])
    assert (gate["version"], gate["name"]) == (version, name)
    assert (gate["supported"], gate["stapling_available"], gate["ansible_managed"]) == (available, available, managed)
    assert (gate["sni_capable"], gate["per_binding_flag"]) == (sni, flag)
    assert gate["reason"]


@pytest.mark.parametrize("key", ["2008", "2008 R2", "2012", "2012 R2"])
def test_stapling_available_but_not_managed_by_ansible_warns(key):
    gate = version_gate(FACTS[key])
    assert gate["supported"] and not gate["ansible_managed"]
    assert "ansible.windows supports Windows Server 2016 and later" in gate["warnings"][0]
    assert gate["warnings"] == plan(gate, [])["warnings"]


def test_managed_versions_have_no_warning():
    assert version_gate(FACTS["2016"])["warnings"] == []


def test_2003_says_what_was_found_and_what_to_do():
    reason = version_gate(FACTS["2003"])["reason"]
    assert "5.2.3790" in reason and "Windows Server 2003" in reason
    assert "upgrade to Windows Server 2008 or later" in reason


def test_workstation_is_not_supported():
    gate = version_gate(FACTS["win10"])
    assert gate["supported"] is False
    assert "not Windows Server" in gate["reason"] and "Windows 10" in gate["reason"]


@pytest.mark.parametrize("empty", [None, "None", "null", ""])
@pytest.mark.parametrize("key", ["2019", "win10", "2003"])
def test_a_null_distribution_never_shows_as_none(key, empty):
    # ansible_distribution is null when the connection has no administrator rights.
    given = dict(FACTS[key], ansible_distribution=empty)
    gate = version_gate(given)
    assert gate["supported"] is version_gate(FACTS[key])["supported"]
    for text in [gate["reason"], gate["name"]] + gate["warnings"]:
        assert "None" not in text and "null" not in text


def test_null_product_type_and_distribution_refuse_without_none():
    gate = version_gate(facts(None, "10.0.17763.0", product_type=None))
    assert gate["supported"] is False
    assert "None" not in gate["reason"] and "no product type or distribution name" in gate["reason"]


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
    assert gate["per_binding_flag"] is True and gate["ansible_managed"] is True


@pytest.mark.parametrize("bad", [{}, {"ansible_distribution_version": "unknown"}, {"ansible_distribution_version": None},
                                 "10.0.17763.0"])
def test_facts_without_a_version_are_refused(bad):
    with pytest.raises(WindowsParseError) as caught:
        version_gate(bad)
    assert "None" not in str(caught.value)


# --- the plan --------------------------------------------------------------------------------------


def test_2012r2_turns_on_sni_registry_only():
    result = plan(version_gate(FACTS["2012 R2"]), parse_sslcert(read("server2012r2.txt")))
    assert result["sni_registry"] is True
    assert (result["netsh_updates"], result["netsh_commands"], result["iis_updates"], result["readback"]) == ([], [], [], [])
    assert result["certificates"] == ["3a9f0c21d4b5e6f708192a3b4c5d6e7f80910a1b", "5b6c7d8e9f00112233445566778899aabbccddee"]
    assert result["targets"] == [
        {"host": None, "port": 443, "server_name": None},
        {"host": None, "port": 443, "server_name": "www.example.com"},
    ]
    assert result["sni_targets"] == [{"port": 443, "server_name": "www.example.com"}]
    assert any("Centralized Certificate Store" in warning for warning in result["warnings"])


def test_ip_bindings_only_need_no_registry_value():
    ip_only = [b for b in parse_sslcert(read("server2012r2.txt")) if b["kind"] == "ip"]
    assert plan(version_gate(FACTS["2012 R2"]), ip_only)["sni_registry"] is False


def test_sni_bindings_before_2012_are_left_alone_with_a_warning():
    result = plan(version_gate(FACTS["2008 R2"]), parse_sslcert(read("server2012r2.txt")))
    assert result["sni_registry"] is False
    assert any("Windows Server 2012 or later" in warning for warning in result["warnings"])


def test_2019_clears_the_per_binding_flags_and_plans_their_read_back():
    result = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")))
    assert result["sni_registry"] is True
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["www.example.com:443", "api.example.com:8443"]
    assert [argv[4] for argv in result["netsh_commands"]] == ["hostnameport=www.example.com:443", "hostnameport=api.example.com:8443"]
    assert [(c["endpoint"], c["route"]) for c in result["readback"]] == [("www.example.com:443", "netsh"), ("api.example.com:8443", "netsh")]
    assert result["warnings"] == [] and result["refused"] == []


def test_flag_on_a_host_before_2019_is_not_touched():
    result = plan(version_gate(FACTS["2016"]), parse_sslcert(read("server2019.txt")))
    assert result["netsh_updates"] == [] and result["readback"] == []
    assert any("should not have" in warning for warning in result["warnings"])


def test_iis_owned_bindings_go_to_iis_and_are_read_back():
    iis = [
        {"site": "Default Web Site", "binding_information": "*:443:", "ssl_flags": 8},
        {"site": "Shop", "binding_information": "*:443:www.example.com", "ssl_flags": 1 | 8},
        {"site": "Farm", "binding_information": "*:443:farm.example.com", "ssl_flags": 2},
        {"site": "Other", "binding_information": "*:8443:other.example.com", "ssl_flags": 1},
    ]
    result = plan(version_gate(FACTS["2022"]), parse_sslcert(read("server2022.txt")), iis)
    assert result["netsh_updates"] == []
    assert [(u["site"], u["ssl_flags"], u["new_ssl_flags"]) for u in result["iis_updates"]] == [
        ("Default Web Site", 8, 0), ("Shop", 9, 1)]
    assert [(c["endpoint"], c["route"]) for c in result["readback"]] == [("[::]:443", "iis"), ("www.example.com:443", "iis")]
    assert {"host": None, "port": 443, "server_name": "farm.example.com"} in result["targets"]
    assert result["warnings"] == []


def test_binding_not_owned_by_iis_goes_to_netsh():
    iis = [{"site": "Shop", "binding_information": "*:443:shop.example.com", "ssl_flags": 1}]
    result = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")), iis)
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["www.example.com:443", "api.example.com:8443"]
    assert result["iis_updates"] == []


def test_iis_binding_without_the_flag_is_cleared_through_http_sys():
    iis = [{"site": "Shop", "binding_information": "*:443:www.example.com", "ssl_flags": 1}]
    result = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")), iis)
    assert "www.example.com:443" in [b["endpoint"] for b in result["netsh_updates"]]
    assert any("cleared through HTTP.sys" in warning for warning in result["warnings"])


@pytest.mark.parametrize("iis", [
    [{"site": "x", "binding_information": "443", "ssl_flags": 0}],
    [{"site": "x", "binding_information": "*:https:", "ssl_flags": 0}],
    [{"site": "x", "binding_information": "*:443:", "ssl_flags": "many"}],
    [{"site": None, "binding_information": "*:443:", "ssl_flags": 0}],
    [{"ItemXPath": "/system.applicationHost/sites/site", "bindingInformation": "*:443:", "sslFlags": 0}],
    ["*:443:"],
])
def test_bad_iis_bindings_are_refused(iis):
    with pytest.raises(WindowsParseError):
        plan(version_gate(FACTS["2019"]), [], iis)


def test_unsupported_host_plans_nothing():
    result = plan(version_gate(FACTS["2003"]), parse_sslcert(read("server2012r2.txt")))
    assert (result["sni_registry"], result["netsh_updates"], result["targets"]) == (False, [], [])
    assert "upgrade to Windows Server 2008" in result["warnings"][0]


def test_2022_extended_properties_are_not_reported_as_lost():
    # Point 5: every 2022 binding shows the same HTTP/2 extended properties; they are checked by the read-back.
    result = plan(version_gate(FACTS["2022"]), parse_sslcert(read("server2022.txt")))
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["[::]:443", "www.example.com:443"]
    assert not any("Receive Window" in warning or "cannot keep" in warning for warning in result["warnings"])


# --- point 2: fail closed on lines that are not understood ----------------------------------------


def _with_line(name: str, label: str, value: str, endpoint_index: int = 1) -> list:
    bindings = parse_sslcert(read(name))
    bindings[endpoint_index]["properties"][label] = value
    return bindings


def test_a_set_line_without_a_parameter_refuses_the_binding_and_names_it():
    result = plan(version_gate(FACTS["2025"]), parse_sslcert(read("newer_session_id.txt")))
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["0.0.0.0:443"]
    (refused,) = result["refused"]
    assert refused["endpoint"] == "www.example.com:443"
    assert "'Enable Caching Client Hello : Set'" in refused["reason"] and "windows_stapling_drop_flags" in refused["reason"]
    assert "www.example.com:443" not in [c["endpoint"] for c in result["readback"]]


def test_an_unknown_label_that_is_set_refuses_the_binding():
    bindings = _with_line("server2019.txt", "Enable Client Correlation", "Set")
    result = plan(version_gate(FACTS["2019"]), bindings)
    assert [r["endpoint"] for r in result["refused"]] == ["www.example.com:443"]
    assert "'Enable Client Correlation : Set' is a line this collection does not know" in result["refused"][0]["reason"]
    with pytest.raises(WindowsParseError, match="Enable Client Correlation"):
        netsh_update_command(bindings[1])


def test_an_unknown_label_at_not_set_is_the_default_that_the_update_keeps():
    bindings = _with_line("server2019.txt", "Enable Client Correlation", "Not Set")
    assert not_understood(bindings[1]) == []
    assert plan(version_gate(FACTS["2019"]), bindings)["refused"] == []


@pytest.mark.parametrize("label, value, why", [
    ("Usage Check", "Maybe", "neither Enabled nor Disabled"),
    ("Disable HTTP2", "Enabled", "neither Set nor Not Set"),
    ("Some Future Setting", "42", "does not know"),
])
def test_values_of_the_wrong_kind_are_not_understood(label, value, why):
    bindings = _with_line("server2019.txt", label, value)
    assert why in not_understood(bindings[1])[0]


def test_drop_flags_let_named_labels_go_on_purpose():
    bindings = parse_sslcert(read("newer_session_id.txt"))
    result = plan(version_gate(FACTS["2025"]), bindings, drop_flags=["enable  caching CLIENT hello"])
    assert result["refused"] == []
    argv = result["netsh_commands"][1]
    assert argv[4] == "hostnameport=www.example.com:443" and not any("hello" in arg for arg in argv)


@pytest.mark.parametrize("bad", ["Enable Caching Client Hello", 5, {"a": 1}])
def test_drop_flags_must_be_a_list(bad):
    with pytest.raises(WindowsParseError, match="must be a list"):
        plan(version_gate(FACTS["2025"]), [], drop_flags=bad)


# --- netsh update: the full set of current, understood values --------------------------------------


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


def test_netsh_argv_for_ip_ccs_and_newer_flags():
    ip, ccs, _www = parse_sslcert(read("server2022.txt"))
    assert netsh_update_command(ip)[4] == "ipport=[::]:443"
    ccs_argv = netsh_update_command(ccs)
    assert ccs_argv[4] == "ccs=443"
    assert not any(arg.startswith(("certhash=", "certstorename=", "sslctlidentifier=")) for arg in ccs_argv)
    session = parse_sslcert(read("newer_session_id.txt"))[0]
    assert "disablesessionid=enable" in netsh_update_command(session)


def test_netsh_update_refuses_what_is_not_a_binding():
    with pytest.raises(WindowsParseError):
        netsh_update_command({"kind": "tcp", "endpoint": "x"})


def test_netsh_argv_passes_set_newer_flags_and_ctl_values():
    text = read("server2019.txt").replace("Reject Connections           : Disabled", "Reject Connections           : Enabled", 1)
    text = text.replace("Ctl Identifier               : (null)", "Ctl Identifier               : TrustedIssuers", 1)
    argv = netsh_update_command(parse_sslcert(text)[0])
    assert "reject=enable" in argv and "sslctlidentifier=TrustedIssuers" in argv
    assert not any(arg.startswith(("disablehttp2=", "disablequic=", "sslctlstorename=")) for arg in argv)


# --- point 1: read every changed binding back ------------------------------------------------------


def _cleared(text: str, endpoint: str) -> str:
    """The netsh output with the stapling flag of one block cleared, as a successful change leaves it."""
    blocks = text.split("\n\n")
    for index, block in enumerate(blocks):
        if (": " + endpoint + "\n") in block + "\n":
            blocks[index] = block.replace("Disable OCSP Stapling        : Set", "Disable OCSP Stapling        : Not Set")
    return "\n\n".join(blocks)


def test_read_back_confirms_a_cleared_binding_that_kept_every_value():
    planned = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")))
    after = _cleared(_cleared(read("server2019.txt"), "www.example.com:443"), "api.example.com:8443")
    result = readback(planned, parse_sslcert(after))
    assert result == {"ok": True, "confirmed": ["www.example.com:443", "api.example.com:8443"], "http_sys_fixes": [],
                      "netsh_commands": [], "failed": []}


def test_read_back_fails_a_netsh_binding_that_still_has_the_flag():
    planned = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")))
    result = readback(planned, parse_sslcert(_cleared(read("server2019.txt"), "www.example.com:443")))
    assert result["ok"] is False and result["http_sys_fixes"] == []
    (failed,) = result["failed"]
    assert failed["endpoint"] == "api.example.com:8443" and "still shows 'Disable OCSP Stapling : Set'" in failed["reason"]


def test_read_back_clears_through_http_sys_what_iis_did_not_reach_then_fails_if_that_did_not_work():
    iis = [{"site": "Bob's shop", "binding_information": "*:443:www.example.com", "ssl_flags": 9}]
    bindings = parse_sslcert(read("server2022.txt"))
    planned = plan(version_gate(FACTS["2022"]), bindings, iis)
    assert [(c["endpoint"], c["route"]) for c in planned["readback"]] == [("[::]:443", "netsh"), ("www.example.com:443", "iis")]
    after = parse_sslcert(_cleared(read("server2022.txt"), "[::]:443"))
    first = readback(planned, after)
    assert first["ok"] is False and first["confirmed"] == ["[::]:443"] and first["failed"] == []
    assert [b["endpoint"] for b in first["http_sys_fixes"]] == ["www.example.com:443"]
    assert first["netsh_commands"][0][4] == "hostnameport=www.example.com:443"
    assert first["netsh_commands"][0][-1] == "disableocspstapling=disable"
    final = readback(planned, after, final=True)
    assert [f["endpoint"] for f in final["failed"]] == ["www.example.com:443"]
    assert "after IIS and netsh" in final["failed"][0]["reason"]
    fixed = readback(planned, parse_sslcert(_cleared(_cleared(read("server2022.txt"), "[::]:443"), "www.example.com:443")),
                     final=True)
    assert fixed["ok"] is True


def test_read_back_fails_an_iis_binding_it_cannot_fix_safely():
    iis = [{"site": "Shop", "binding_information": "*:443:www.example.com", "ssl_flags": 9}]
    planned = plan(version_gate(FACTS["2025"]), parse_sslcert(read("newer_session_id.txt")), iis)
    assert planned["refused"] == []  # IIS's route does not rewrite the HTTP.sys binding itself
    result = readback(planned, parse_sslcert(read("newer_session_id.txt")))
    failed = {f["endpoint"]: f["reason"] for f in result["failed"]}
    assert "Enable Caching Client Hello" in failed["www.example.com:443"]


def test_read_back_fails_a_binding_that_is_gone():
    planned = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")))
    result = readback(planned, parse_sslcert(read("server2019.txt"))[:1])
    assert all("is gone" in failed["reason"] for failed in result["failed"]) and len(result["failed"]) == 2
    assert "certhash=77aa88bb99cc00dd11ee22ff3300441155226633" in result["failed"][1]["reason"]


def test_read_back_fails_a_binding_whose_other_values_changed():
    planned = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")))
    after = parse_sslcert(_cleared(_cleared(read("server2019.txt"), "www.example.com:443"), "api.example.com:8443"))
    after[2]["properties"]["Disable Legacy TLS Versions"] = "Not Set"
    result = readback(planned, after)
    (failed,) = result["failed"]
    assert "Disable Legacy TLS Versions was Set, is now Not Set" in failed["reason"]


def test_read_back_fails_a_binding_whose_extended_properties_changed_but_not_one_that_kept_them():
    planned = plan(version_gate(FACTS["2022"]), parse_sslcert(read("server2022.txt")))
    text = _cleared(_cleared(read("server2022.txt"), "[::]:443"), "www.example.com:443")
    assert readback(planned, parse_sslcert(text))["ok"] is True
    after = parse_sslcert(text)
    after[0]["extended_properties"] = []
    (failed,) = readback(planned, after)["failed"]
    assert failed["endpoint"] == "[::]:443" and "Extended Properties changed" in failed["reason"]


def test_read_back_ignores_a_not_set_line_that_a_build_stops_showing_and_dropped_labels():
    bindings = parse_sslcert(read("newer_session_id.txt"))
    planned = plan(version_gate(FACTS["2025"]), bindings, drop_flags=["Enable Caching Client Hello"])
    after = parse_sslcert(_cleared(_cleared(read("newer_session_id.txt"), "0.0.0.0:443"), "www.example.com:443"))
    for binding in after:
        binding["properties"]["Enable Caching Client Hello"] = "Not Set"
        del binding["properties"]["Enable Token Binding"]
    assert readback(planned, after, drop_flags=["Enable Caching Client Hello"])["ok"] is True


def test_read_back_refuses_what_is_not_a_plan():
    with pytest.raises(WindowsParseError):
        readback({}, [])
    with pytest.raises(WindowsParseError):
        readback(plan(version_gate(FACTS["2019"]), []), "text")


# --- point 4: quote-safe IIS names ------------------------------------------------------------------


@pytest.mark.parametrize("value, literal", [
    ("Default Web Site", "'Default Web Site'"),
    ("Bob's shop", '"Bob\'s shop"'),
    ('The "best" shop', "'The \"best\" shop'"),
    ("Bob's \"best\" shop", "concat('Bob', \"'\", 's \"best\" shop')"),
    ("'", '"\'"'),
    ('"\'', "concat('\"', \"'\")"),
])
def test_xpath_literals_need_no_escape(value, literal):
    assert xpath_literal(value) == literal


def test_the_iis_filter_of_a_site_with_a_quote():
    assert iis_binding_filter("Bob's shop", "*:443:www.example.com") == (
        "/system.applicationHost/sites/site[@name=\"Bob's shop\"]/bindings/binding[@protocol='https' and "
        "@bindingInformation='*:443:www.example.com']")


@pytest.mark.parametrize("xpath, site", [
    ("/system.applicationHost/sites/site[@name='Bob''s shop' and @id='2']", "Bob's shop"),
    ("/system.applicationHost/sites/site[@name=\"Bob's shop\" and @id='2']", "Bob's shop"),
    ("/system.applicationHost/sites/site[@name='Shop' and @id='3']", "Shop"),
])
def test_get_webbinding_objects_are_accepted_with_quotes_in_names(xpath, site):
    iis = [{"ItemXPath": xpath, "bindingInformation": "*:443:www.example.com", "sslFlags": "9"}]
    result = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")), iis)
    (update,) = result["iis_updates"]
    assert (update["site"], update["new_ssl_flags"]) == (site, 1)
    assert update["filter"] == iis_binding_filter(site, "*:443:www.example.com")
    assert [b["endpoint"] for b in result["netsh_updates"]] == ["api.example.com:8443"]


# --- point 3: verify's failures name the pending restart -------------------------------------------


def _result(server_name, port=443, ok=False, ocsp_urls=("http://ocsp.example.com",)):
    return {"host": "192.0.2.10", "port": port, "server_name": server_name, "ok": ok, "reason": "no OCSP response stapled",
            "certificate": {"ocsp_urls": list(ocsp_urls)}}


def test_verify_failures_name_the_pending_restart_for_sni_bindings_only():
    planned = plan(version_gate(FACTS["2019"]), parse_sslcert(read("server2019.txt")))
    results = [_result("192.0.2.10"), _result("WWW.example.com"), _result("api.example.com", 8443, ok=True),
               _result("old.example.com", ocsp_urls=())]
    pending = verify_failures(results, planned, restart_pending=True)
    assert pending == ["192.0.2.10:443: no OCSP response stapled",
                       "WWW.example.com:443: no OCSP response stapled; " + RESTART_HINT]
    assert "restart may be needed" in RESTART_HINT and "windows_stapling_restart_http" in RESTART_HINT
    assert verify_failures(results, planned, restart_pending=False)[1] == "WWW.example.com:443: no OCSP response stapled"


def test_verify_failures_keep_a_result_without_a_certificate():
    assert verify_failures([{"host": "h", "port": 443, "server_name": None, "ok": False, "reason": "refused",
                             "certificate": None}], {}) == ["h:443: refused"]
    with pytest.raises(WindowsParseError):
        verify_failures("no", {})


# --- static checks of the role's PowerShell ----------------------------------------------------------


def _tasks() -> list:
    tasks = []
    for task in yaml.safe_load((ROLE / "tasks" / "present.yml").read_text(encoding="utf-8")):
        tasks.extend(task.get("block", [task]))
    return tasks


def _scripts() -> dict:
    return {task["name"]: task["ansible.windows.win_powershell"]["script"] for task in _tasks()
            if "ansible.windows.win_powershell" in task}


def test_powershell_scripts_take_values_as_parameters_never_templated_in():
    for name, script in _scripts().items():
        assert "{{" not in script and "{%" not in script, name
        assert "$Ansible.Changed" in script, name


def test_no_site_name_is_quoted_into_an_xpath_on_the_host():
    scripts = _scripts()
    for name, script in scripts.items():
        assert "[@name='$" not in script and "@name=\"$" not in script, name
    listing = scripts["List the IIS https bindings"]
    assert "ItemXPath" not in listing and "-replace" not in listing and "$_.name" in listing
    clearing = scripts["Clear the disable-stapling flag of IIS bindings (sslFlags bit 8)"]
    assert "-Filter $Filter" in clearing
    (task,) = [t for t in _tasks() if t["name"] == "Clear the disable-stapling flag of IIS bindings (sslFlags bit 8)"]
    assert task["ansible.windows.win_powershell"]["parameters"]["Filter"] == "{{ item.filter }}"


def test_every_change_to_a_binding_is_read_back():
    names = [task["name"] for task in _tasks()]
    order = ["Clear the disable-stapling flag of IIS bindings (sslFlags bit 8)", "Clear the disable-stapling flag of other HTTP.sys bindings",
             "List the HTTP.sys TLS bindings again", "Judge each changed binding against what it was",
             "Clear through HTTP.sys the flags that the IIS change did not reach", "List the HTTP.sys TLS bindings once more",
             "Judge each changed binding a last time"]
    assert [names.index(name) for name in order] == sorted(names.index(name) for name in order)
    text = (ROLE / "tasks" / "present.yml").read_text(encoding="utf-8")
    assert text.count("ocsp.stapling.windows_readback(") == 2 and "final=true" in text
    assert "drop_flags=windows_stapling_drop_flags" in text


def test_the_restart_is_opt_in_and_starts_the_dependent_services_again():
    (task,) = [t for t in _tasks() if t["name"] == "Restart the HTTP service and the services that depend on it"]
    script = task["ansible.windows.win_powershell"]["script"]
    assert "-DependentServices" in script and "net.exe stop http /y" in script and "net.exe start http" in script
    assert "Start-Service -Name $name" in script and script.count("$LASTEXITCODE -ne 0") == 2
    assert "windows_stapling_restart_http | bool" in task["when"] and "windows_stapling_registry is changed" in task["when"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert defaults["windows_stapling_restart_http"] is False and defaults["windows_stapling_drop_flags"] == []
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]
    assert set(defaults) == set(specs)


def test_the_gate_reads_null_facts_as_empty():
    (task,) = [t for t in _tasks() if t["name"] == "Judge the Windows version"]
    assert task["ansible.builtin.set_fact"]["windows_stapling_gate"].count("default('', true)") == 4
