"""Unit tests of the host-side PEM reader: certificate blocks only, names read without cryptography,
and the CA bundle cut down to what a chain can use - with the same preflight verdicts as the whole files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from bench.pki import Pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from ansible_collections.ocsp.stapling.plugins.module_utils import _pem
from ansible_collections.ocsp.stapling.plugins.module_utils._chain import preflight
from ansible_collections.ocsp.stapling.plugins.modules.server_info import read_certificates

URL = "http://127.0.0.1:9/"
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), URL)
    for name, options in {"good.test": {}, "nourl.test": {"ocsp_url": None}, "strict.test": {"must_staple": True},
                          "expired.test": {"not_after": NOW - dt.timedelta(days=3)}}.items():
        pki.issue_leaf(name, **options)
    return pki


def pem(*certs) -> str:
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in certs)


def key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode("ascii")


def cert(subject: x509.Name, key, issuer: x509.Name | None = None, issuer_key=None) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30)).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(issuer_key or key, hashes.SHA256()))


def key_body_lines(text: str) -> list:
    """The base64 lines of a PEM key, which must never leave the host."""
    return [line for line in text.splitlines() if line and not line.startswith("-----")]


# --- blocks ------------------------------------------------------------------------------------


def test_blocks_are_numbered_from_one_and_text_between_them_is_dropped(pki):
    text = "subject=CN = good.test\n" + pem(pki.leaf("good.test").cert) + "# a comment\n" + pem(pki.intermediate_cert)

    blocks = _pem.pem_blocks(text, "full.pem")

    assert [number for number, _block in blocks] == [1, 2]
    assert all(block.startswith("-----BEGIN CERTIFICATE-----") and block.endswith("-----END CERTIFICATE-----") for _n, block in blocks)
    assert "comment" not in "".join(block for _n, block in blocks)


@pytest.mark.parametrize("layout", ["cert-then-key", "key-then-cert"])
def test_a_site_file_with_a_key_sends_no_byte_of_it(pki, layout):
    leaf = pki.leaf("good.test")
    key = key_pem(ec.generate_private_key(ec.SECP256R1()))
    text = pem(leaf.cert) + key if layout == "cert-then-key" else key + pem(leaf.cert)

    entry = _pem.site_certificates(text, "/etc/ssl/both.pem")

    sent = json.dumps(entry)
    assert "blocks" not in entry
    assert "is a private key (PRIVATE KEY)" in entry["error"] and entry["source"] == "/etc/ssl/both.pem"
    assert not any(line in sent for line in key_body_lines(key))
    assert "BEGIN PRIVATE KEY" not in sent
    # The verdict is the one the whole file gives.
    assert preflight(_pem.ChainError(entry["error"]), "/etc/ssl/both.pem")["reason"] == preflight(text, "/etc/ssl/both.pem")["reason"]


def test_a_key_in_a_bundle_refuses_the_bundle_without_sending_it(pki):
    key = key_pem(ec.generate_private_key(ec.SECP256R1()))
    (entry,) = _pem.bundle_certificates([(pem(pki.root_cert) + key, "/etc/ssl/bundle.pem")], set())

    assert "PEM block 2 is a private key" in entry["error"]
    assert not any(line in json.dumps(entry) for line in key_body_lines(key))


@pytest.mark.parametrize("text, message", [
    ("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n", "PEM block 1 is a EC PARAMETERS, not a CERTIFICATE"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n", "PEM block 1 (CERTIFICATE) has no END line"),
    ("-----END CERTIFICATE-----\n", "has no matching BEGIN line"),
])
def test_damaged_files_give_the_messages_of_the_controller(text, message):
    entry = _pem.site_certificates(text, "x.pem")
    assert message in entry["error"]
    assert entry["error"] == preflight(text, "x.pem")["reason"]


# --- names -------------------------------------------------------------------------------------


def test_names_read_here_are_those_cryptography_reads(pki):
    for certificate in [pki.root_cert, pki.intermediate_cert, pki.responder_cert] + [leaf.cert for leaf in pki.leaves]:
        issuer, subject = _pem.block_name_keys(pem(certificate))
        assert issuer == _pem.name_key(certificate.issuer.public_bytes()[2:])
        assert subject == _pem.name_key(certificate.subject.public_bytes()[2:])
    assert _pem.block_name_keys(pem(pki.root_cert))[0] == _pem.block_name_keys(pem(pki.root_cert))[1]
    assert _pem.block_name_keys(pem(pki.intermediate_cert))[0] == _pem.block_name_keys(pem(pki.root_cert))[1]
    assert _pem.block_name_keys(pem(pki.intermediate_cert))[1] != _pem.block_name_keys(pem(pki.root_cert))[1]


def test_names_equal_for_cryptography_get_one_key_whatever_their_string_type():
    printable = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                           x509.NameAttribute(NameOID.COMMON_NAME, "Some CA", _type=_ASN1Type.PrintableString)])
    utf8 = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"), x509.NameAttribute(NameOID.COMMON_NAME, "Some CA")])
    bmp = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"), x509.NameAttribute(NameOID.COMMON_NAME, "Some CA", _type=_ASN1Type.BMPString)])
    other = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"), x509.NameAttribute(NameOID.COMMON_NAME, "Some CA")])

    keys = {name: _pem.name_key(name.public_bytes()[2:]) for name in (printable, utf8, bmp, other)}

    assert printable.public_bytes() != utf8.public_bytes()
    assert keys[printable] == keys[utf8] == keys[bmp]
    assert keys[other] != keys[utf8]


def test_a_long_name_and_a_v1_style_certificate_are_read(pki):
    long_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "unit %03d" % number) for number in range(40)])
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = cert(long_name, key)
    assert len(long_name.public_bytes()) > 255  # a two-byte DER length
    issuer, subject = _pem.block_name_keys(pem(certificate))
    assert issuer == subject == _pem.name_key(long_name.public_bytes()[4:])


@pytest.mark.parametrize("der", [b"", b"\x30", b"\x30\x85\x01\x02\x03\x04\x05", b"\x30\x80\x00\x00", b"\x04\x02ab", b"\x30\x03\x02\x01\x01"])
def test_damaged_der_is_a_value_error(der):
    with pytest.raises(ValueError):
        _pem.certificate_names(der)


# --- the bundle cut down -----------------------------------------------------------------------


def bundle_text(pki) -> str:
    """A bundle like a distribution's: many unrelated roots, the bench root among them."""
    others = []
    for number in range(30):
        key = ec.generate_private_key(ec.SECP256R1())
        others.append(cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unrelated Root %d" % number)]), key))
    return "# system bundle\n" + pem(*others[:17]) + pem(pki.root_cert) + pem(*others[17:])


def test_only_the_bundle_certificates_a_chain_can_use_are_sent_with_their_own_numbers(pki):
    leaf = pki.leaf("good.test")
    sites = [_pem.site_certificates(pem(leaf.cert), "cert.pem")]

    (entry,) = _pem.bundle_certificates([(bundle_text(pki), "bundle.pem")], _pem.wanted_issuers(sites))

    # The intermediate is not in the site file: it is not in the bundle either, so nothing leads to the root.
    assert entry == {"source": "bundle.pem", "blocks": []}

    sites = [_pem.site_certificates(pem(leaf.cert, pki.intermediate_cert), "fullchain.pem")]
    (entry,) = _pem.bundle_certificates([(bundle_text(pki), "bundle.pem")], _pem.wanted_issuers(sites))
    assert [number for number, _block in entry["blocks"]] == [18]
    assert entry["blocks"][0][1] == pem(pki.root_cert).strip()


def test_the_chain_is_followed_across_bundles_up_to_the_root(pki):
    sites = [_pem.site_certificates(pem(pki.leaf("good.test").cert), "cert.pem")]
    bundles = [(bundle_text(pki), "a.pem"), ("# intermediates\n" + pem(pki.responder_cert, pki.intermediate_cert), "b.pem")]

    first, second = _pem.bundle_certificates(bundles, _pem.wanted_issuers(sites))

    assert [number for number, _block in first["blocks"]] == [18]
    assert [number for number, _block in second["blocks"]] == [2]


def test_blocks_unreadable_here_are_kept_for_the_controller_to_judge(pki):
    damaged = "-----BEGIN CERTIFICATE-----\nMIIBnotDER=\n-----END CERTIFICATE-----\n"
    (entry,) = _pem.bundle_certificates([(pem(pki.responder_cert) + damaged, "bundle.pem")], set())
    assert [number for number, _block in entry["blocks"]] == [2]
    result = preflight(pem(pki.leaf("good.test").cert), "cert.pem", [(entry["blocks"], "bundle.pem")])
    assert result["status"] == "error" and result["reason"].startswith("bundle.pem: PEM block 2 does not parse")


def test_an_unreadable_site_certificate_sends_the_whole_bundles(pki):
    sites = [{"source": "odd.pem", "blocks": [[1, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]]}]
    assert _pem.wanted_issuers(sites) is None
    (entry,) = _pem.bundle_certificates([(bundle_text(pki), "bundle.pem")], None)
    assert len(entry["blocks"]) == 31


def judged_on_the_host(site_text: str, site_source: str, bundles: list) -> dict:
    """What the roles now do: cut down on the host, judged on the controller."""
    site = _pem.site_certificates(site_text, site_source)
    entries = _pem.bundle_certificates(bundles, _pem.wanted_issuers([site]))
    content = _pem.ChainError(site["error"]) if "error" in site else site["blocks"]
    candidates = [(_pem.ChainError(entry["error"]) if "error" in entry else entry["blocks"], entry["source"]) for entry in entries]
    return preflight(content, site_source, candidates, now=NOW, min_days=30)


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")  # odd serials in the system bundle
def test_the_verdicts_are_those_of_the_whole_files(pki):
    bundles = [(bundle_text(pki), "bundle.pem")]
    if SYSTEM_BUNDLE.is_file():
        bundles.insert(0, (SYSTEM_BUNDLE.read_text(encoding="utf-8", errors="replace"), str(SYSTEM_BUNDLE)))
    cases = []
    for leaf in pki.leaves:
        cases += [(pem(leaf.cert), "cert.pem"), (pem(leaf.cert, pki.intermediate_cert), "fullchain.pem")]
    cases.append((pem(pki.root_cert), "root.pem"))  # self-signed
    for site_text, source in cases:
        for candidates in (bundles, bundles + [(pem(pki.intermediate_cert), "chain.pem")], []):
            expected = preflight(site_text, source, candidates, now=NOW, min_days=30)
            assert judged_on_the_host(site_text, source, candidates) == expected, (source, expected["reason"])


# --- server_info's reading ---------------------------------------------------------------------


def test_server_info_reads_each_certificate_once_and_skips_missing_bundles(pki, tmp_path):
    leaf = pki.leaf("good.test")
    both = tmp_path / "both.pem"
    key = key_pem(ec.generate_private_key(ec.SECP256R1()))
    both.write_text(pem(leaf.cert) + key)
    sites = [
        {"ssl_certificate": [str(leaf.fullchain_path)]},
        {"ssl_certificate": [str(leaf.fullchain_path), str(both)]},
        {"ssl_certificate": [str(tmp_path / "gone.pem")]},
        {"ssl_certificate": ["/etc/ssl/$host.pem"], "uses_variables": True},
    ]

    found = read_certificates(sites, [str(tmp_path / "nonexistent.pem"), str(pki.root_cert_path)])

    assert list(found["certificates"]) == [str(leaf.fullchain_path), str(both), str(tmp_path / "gone.pem")]
    assert [number for number, _block in found["certificates"][str(leaf.fullchain_path)]["blocks"]] == [1, 2]
    assert "is a private key" in found["certificates"][str(both)]["error"]
    assert found["certificates"][str(tmp_path / "gone.pem")]["error"].startswith("cannot read %s (No such file" % (tmp_path / "gone.pem"))
    assert found["bundles"] == [{"source": str(pki.root_cert_path), "blocks": [[1, pem(pki.root_cert).strip()]]}]
    assert not any(line in json.dumps(found) for line in key_body_lines(key))
