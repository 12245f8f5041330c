"""Unit tests of the preflight, chain_file_name and chain_file_path filters: what they accept and how they fail."""

from __future__ import annotations

import json

import base64

import pytest
from ansible.errors import AnsibleFilterError
from bench.pki import Pki

from ansible_collections.ocsp.stapling.plugins.filter.preflight import FilterModule, chain_file_name, chain_file_path, preflight
from ansible_collections.ocsp.stapling.plugins.module_utils._pem import read_site_certificates


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), "http://127.0.0.1:9/")
    pki.issue_leaf("good.test")
    return pki


def slurped(path) -> dict:
    """What ansible.builtin.slurp returns for path."""
    return {"content": base64.b64encode(path.read_bytes()).decode("ascii"), "source": str(path), "encoding": "base64", "changed": False}


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"preflight", "chain_file_name", "chain_file_path"}


def test_slurp_results_are_taken_as_they_are(pki):
    leaf = pki.leaf("good.test")

    result = preflight(slurped(leaf.cert_path), candidates=[slurped(pki.chain_path)], min_days="7")

    assert result["status"] == "eligible"
    assert result["certificate"] == str(leaf.cert_path)


def test_plain_pem_text_and_source_names(pki):
    leaf = pki.leaf("good.test")

    result = preflight(leaf.cert_path.read_text(), "site.pem", [pki.root_cert_path.read_text()])

    assert result["certificate"] == "site.pem"
    assert "site.pem or candidate 1" in result["reason"]


def test_source_argument_wins_over_the_slurp_source(pki):
    result = preflight(slurped(pki.leaf("good.test").cert_path), "www.example.com certificate", [slurped(pki.chain_path)])

    assert result["certificate"] == "www.example.com certificate"


def test_refused_file_is_a_verdict_not_a_failure(pki):
    leaf = pki.leaf("good.test")

    result = preflight(slurped(leaf.cert_path), candidates=[slurped(leaf.key_path)])

    assert result["status"] == "error"
    assert result["reason"].startswith("%s: PEM block 1 is a private key" % leaf.key_path)


def test_server_info_entries_are_taken_as_they_are(pki, tmp_path):
    leaf = pki.leaf("good.test")
    site = tmp_path / "site.pem"
    # A certificate file that holds the key too (Apache's SSLCertificateFile without SSLCertificateKeyFile).
    site.write_text(leaf.fullchain_path.read_text() + leaf.key_path.read_text())
    found = read_site_certificates([{"ssl_certificate": [str(leaf.fullchain_path), str(site)]}], [str(pki.root_cert_path)])

    good = preflight(found["certificates"][str(leaf.fullchain_path)], candidates=found["bundles"])
    combined = preflight(found["certificates"][str(site)], candidates=found["bundles"])

    assert good == preflight(slurped(leaf.fullchain_path), candidates=[slurped(pki.root_cert_path)])
    assert good["status"] == "eligible" and good["certificate"] == str(leaf.fullchain_path)
    assert combined["status"] == "eligible" and combined["chain_pem"] == good["chain_pem"]
    assert "PRIVATE KEY" not in json.dumps(found)


def test_a_leaf_alone_gets_its_chain_from_the_chain_file_the_site_names(pki):
    """Apache's SSLCertificateChainFile (and nginx's ssl_trusted_certificate) hold the intermediates then."""
    leaf = pki.leaf("good.test")
    apache = {"ssl_certificate": [str(leaf.cert_path)], "chain_file": str(pki.chain_path)}
    alone = read_site_certificates([dict(apache, chain_file=None)], [str(pki.root_cert_path)])
    found = read_site_certificates([apache], [str(pki.root_cert_path)])

    assert preflight(alone["certificates"][str(leaf.cert_path)], candidates=alone["bundles"])["status"] == "not_applicable"
    verdict = preflight(found["certificates"][str(leaf.cert_path)], candidates=found["bundles"])
    assert verdict["status"] == "eligible", verdict["reason"]
    assert [entry["source"] for entry in found["bundles"]] == [str(pki.chain_path), str(pki.root_cert_path)]
    nginx = read_site_certificates([{"ssl_certificate": [str(leaf.cert_path)], "chain_file": str(pki.chain_path)}], [])
    assert preflight(nginx["certificates"][str(leaf.cert_path)], candidates=nginx["bundles"])["status"] == "eligible"


@pytest.mark.parametrize("data, candidates, min_days, expected", [
    ({"source": "cert.pem", "blocks": [["one", "x"]]}, None, 0, "the blocks of cert.pem must be \\[number, PEM block\\] pairs"),
    ({"source": "cert.pem", "blocks": 7}, None, 0, "the blocks of cert.pem must be"),
    ({"content": "not base64!", "source": "cert.pem", "encoding": "base64"}, None, 0, "content of cert.pem is marked base64"),
    ({"source": "cert.pem"}, None, 0, "the certificate must be PEM text or a mapping with a content string"),
    ("", [42], 0, "candidate 1 must be PEM text"),
    ("", None, "two weeks", "min_days must be a whole number of days"),
])
def test_wrong_arguments_fail_the_filter(data, candidates, min_days, expected):
    with pytest.raises(AnsibleFilterError, match=expected):
        preflight(data, candidates=candidates, min_days=min_days)


def test_chain_file_name_filter():
    assert chain_file_name("/etc/ssl/example.com/fullchain.pem").startswith("etc_ssl_example.com_fullchain.pem.")
    with pytest.raises(AnsibleFilterError, match=r"^ocsp\.stapling\.chain_file_name: certificate path 'cert\.pem' is not absolute"):
        chain_file_name("cert.pem")


def test_chain_file_path_filter():
    name = chain_file_name("/etc/ssl/example.com/fullchain.pem")
    assert chain_file_path("/etc/ssl/example.com/fullchain.pem", "/etc/ssl/ocsp-stapling") == "/etc/ssl/ocsp-stapling/" + name
    with pytest.raises(AnsibleFilterError, match=r"^ocsp\.stapling\.chain_file_path: chain folder 'ocsp' is not absolute"):
        chain_file_path("/etc/ssl/example.com/fullchain.pem", "ocsp")
    with pytest.raises(AnsibleFilterError, match=r"^ocsp\.stapling\.chain_file_path: certificate path 'cert\.pem' is not absolute"):
        chain_file_path("cert.pem", "/etc/ssl/ocsp-stapling")
