"""Unit tests of the certificate preflight and the full chain builder, on the bench PKI and on certificates built here."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from bench.pki import Pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from ansible_collections.ocsp.stapling.plugins.module_utils._chain import (
    MUST_STAPLE,
    NO_OCSP_URL,
    CertificateFileError,
    build_chain,
    chain_file_name,
    chain_file_path,
    preflight,
    read_pem_certificates,
)
from ansible_collections.ocsp.stapling.plugins.module_utils._ocsp import is_issued_by

URL = "http://127.0.0.1:9/"
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = Pki.create(tmp_path_factory.mktemp("pki"), URL)
    pki.issue_leaf("good.test")
    pki.issue_leaf("nourl.test", ocsp_url=None)
    pki.issue_leaf("strict.test", must_staple=True)
    pki.issue_leaf("expired.test", not_after=NOW - 3 * DAY)
    pki.issue_leaf("strict-nourl.test", ocsp_url=None, must_staple=True)
    return pki


def pem(*certs: x509.Certificate) -> str:
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in certs)


def read(path) -> str:
    return path.read_text(encoding="ascii")


def make_cert(subject: str, key, *, issuer: x509.Certificate | None = None, issuer_key=None, issuer_name: str | None = None,
              ca: bool = True, ocsp_url: str | None = None, not_before=NOW - DAY, not_after=NOW + 30 * DAY) -> x509.Certificate:
    """A certificate for the odd cases: self-signed unless an issuer (certificate or bare name) and its key are given."""
    if issuer is not None:
        name = issuer.subject
    else:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name or subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ocsp_url:
        access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


# --- preflight verdicts ------------------------------------------------------------------------


def test_good_leaf_is_eligible_with_the_chain_in_order(pki):
    leaf = pki.leaf("good.test")
    result = preflight(read(leaf.cert_path), str(leaf.cert_path), [(read(pki.chain_path), "ca.pem")], now=NOW)

    assert result["status"] == "eligible" and result["eligible"] is True
    assert result["warnings"] == []
    assert result["certificate"] == str(leaf.cert_path)
    assert result["subject"] == "CN=good.test"
    assert result["issuer"] == "CN=Bench Intermediate CA"
    assert result["serial"] == "%X" % leaf.serial
    assert result["ocsp_urls"] == [URL]
    assert result["must_staple"] is False
    assert result["issuer_found"] is True and result["chain_complete"] is True
    assert result["days_left"] in (89, 90)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result["not_after"])
    assert [entry["subject"] for entry in result["chain"]] == ["CN=Bench Intermediate CA", "CN=Bench Root CA"]
    assert result["chain"][0]["issuer"] == "CN=Bench Root CA"
    assert "Bench Intermediate CA" in result["reason"] and URL in result["reason"]

    assert result["chain_pem"] == pem(pki.intermediate_cert, pki.root_cert)
    assert result["chain_pem"].endswith("\n")
    chain = read_pem_certificates(result["chain_pem"], "chain_pem")
    for cert, issuer in zip([leaf.cert] + chain, chain):
        assert is_issued_by(cert, issuer)
    assert chain[-1].subject == chain[-1].issuer


def test_fullchain_input_supplies_the_intermediate(pki):
    leaf = pki.leaf("good.test")
    result = preflight(read(leaf.fullchain_path), "fullchain.pem", [(read(pki.root_cert_path), "root.pem")], now=NOW)

    assert result["status"] == "eligible"
    assert result["subject"] == "CN=good.test"
    assert result["chain_pem"] == pem(pki.intermediate_cert, pki.root_cert)
    assert result["warnings"] == []


def test_fullchain_without_root_is_eligible_but_warns_about_stapling_verify(pki):
    result = preflight(read(pki.leaf("good.test").fullchain_path), "fullchain.pem", now=NOW)

    assert result["status"] == "eligible"
    assert result["issuer_found"] is True and result["chain_complete"] is False
    assert result["chain_pem"] == pem(pki.intermediate_cert)
    (warning,) = result["warnings"]
    assert "unable to get local issuer certificate" in warning
    assert "'Bench Root CA'" in warning and "fullchain.pem" in warning


def test_no_ocsp_url_is_not_applicable(pki):
    result = preflight(read(pki.leaf("nourl.test").cert_path), "nourl.pem", [(read(pki.chain_path), "ca.pem")], now=NOW)

    assert result["status"] == "not_applicable" and result["eligible"] is False
    assert result["reason"] == NO_OCSP_URL
    assert result["ocsp_urls"] == []
    # No renewal of this file nor a CA bundle changes that: stapling configured for it is dead configuration.
    assert result["can_never_staple"] is True
    # The chain is still built: it tells the operator what the server serves.
    assert result["chain_complete"] is True


def test_missing_issuer_names_it_and_where_it_was_looked_for(pki):
    result = preflight(read(pki.leaf("good.test").cert_path), "cert.pem", [(read(pki.root_cert_path), "ca-bundle.crt")], now=NOW)

    assert result["status"] == "not_applicable"
    assert result["issuer_found"] is False and result["chain"] == [] and result["chain_pem"] == ""
    assert "'Bench Intermediate CA'" in result["reason"]
    assert "cert.pem or ca-bundle.crt" in result["reason"]
    assert "add it to the certificate file" in result["reason"]
    # The host's bundle may hold it, or gain it: not dead configuration.
    assert result["can_never_staple"] is False


def test_expired_certificate_is_not_applicable(pki):
    leaf = pki.leaf("expired.test")
    result = preflight(read(leaf.cert_path), "expired.pem", [(read(pki.chain_path), "ca.pem")], now=NOW)

    assert result["status"] == "not_applicable"
    assert result["reason"] == "the certificate expired on %s: renew it first" % result["not_after"]
    assert result["days_left"] == -3
    # Renewed in place, the same file staples again.
    assert result["can_never_staple"] is False


def test_must_staple_is_eligible_with_a_loud_warning(pki):
    result = preflight(read(pki.leaf("strict.test").fullchain_path), "strict.pem", [(read(pki.chain_path), "ca.pem")], now=NOW)

    assert result["status"] == "eligible" and result["can_never_staple"] is False
    assert result["must_staple"] is True
    assert result["warnings"] == [MUST_STAPLE]
    assert "Firefox refuses the site" in MUST_STAPLE


def test_must_staple_that_cannot_be_stapled_keeps_every_problem(pki):
    result = preflight(read(pki.leaf("strict-nourl.test").cert_path), "strict-nourl.pem", now=NOW)

    assert result["status"] == "not_applicable"
    assert result["reason"] == NO_OCSP_URL
    assert "Must-Staple but cannot be stapled" in result["warnings"][0]
    assert any("'Bench Intermediate CA' is not in strict-nourl.pem" in warning for warning in result["warnings"])


def test_close_expiry_and_not_yet_valid_warn(pki):
    leaf = pki.leaf("good.test")
    candidates = [(read(pki.chain_path), "ca.pem")]

    soon = preflight(read(leaf.cert_path), "cert.pem", candidates, now=NOW, min_days=120)
    assert soon["status"] == "eligible"
    assert [w for w in soon["warnings"] if "in %d days (min_days is 120)" % soon["days_left"] in w]

    early = preflight(read(leaf.cert_path), "cert.pem", candidates, now=NOW - 2 * DAY)
    assert early["status"] == "eligible"
    assert [w for w in early["warnings"] if w.startswith("the certificate is not valid before")]


def test_self_signed_site_certificate_is_not_applicable():
    key = new_key()
    cert = make_cert("selfsigned.test", key, ocsp_url=URL)

    result = preflight(pem(cert), "snakeoil.pem", now=NOW)

    assert result["status"] == "not_applicable"
    assert "self-signed" in result["reason"] and result["can_never_staple"] is True


# --- files that cannot be used -----------------------------------------------------------------


def test_private_key_in_the_bundle_is_refused_without_showing_it(pki):
    leaf = pki.leaf("good.test")
    key_text = read(leaf.key_path)
    bundle = read(pki.chain_path) + key_text

    with pytest.raises(CertificateFileError) as caught:
        read_pem_certificates(bundle, "/etc/ssl/ca.pem")
    message = str(caught.value)
    assert message.startswith("/etc/ssl/ca.pem: PEM block 3 is a private key (PRIVATE KEY)")
    assert "must never go into a chain file" in message
    body = key_text.splitlines()[1]
    assert body not in message

    result = preflight(read(leaf.cert_path), "cert.pem", [(bundle, "/etc/ssl/ca.pem")], now=NOW)
    assert result["status"] == "error" and result["eligible"] is False
    assert result["reason"] == message
    assert result["subject"] is None and result["chain_pem"] == ""


@pytest.mark.parametrize("key_format, encryption, label", [
    (serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption(), "RSA PRIVATE KEY"),
    (serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"secret"), "ENCRYPTED PRIVATE KEY"),
])
def test_every_kind_of_rsa_key_is_refused(pki, key_format, encryption, label):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_text = key.private_bytes(serialization.Encoding.PEM, key_format, encryption).decode("ascii")
    assert key_text.startswith("-----BEGIN %s-----" % label)

    with pytest.raises(CertificateFileError, match=r"^site\.pem: PEM block 2 is a private key \(%s\)" % label) as caught:
        read_pem_certificates(pem(pki.leaf("good.test").cert) + key_text, "site.pem")
    assert key_text.splitlines()[1] not in str(caught.value)


def test_ec_key_is_refused_even_after_a_damaged_block():
    key_text = new_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()).decode("ascii")
    damaged = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"

    with pytest.raises(CertificateFileError, match=r"PEM block 2 is a private key \(EC PRIVATE KEY\)"):
        read_pem_certificates(damaged + key_text, "mixed.pem")


def test_damaged_block_is_named_by_its_number(pki):
    garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"

    with pytest.raises(CertificateFileError, match=r"^bundle\.pem: PEM block 2 does not parse as a certificate"):
        read_pem_certificates(pem(pki.intermediate_cert) + garbage + pem(pki.root_cert), "bundle.pem")


@pytest.mark.parametrize("text, expected", [
    ("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", r"PEM block 1 is a X509 CRL, not a CERTIFICATE"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n", r"PEM block 1 \(CERTIFICATE\) has no END line: the file is cut"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----BEGIN CERTIFICATE-----\n", r"PEM block 1 \(CERTIFICATE\) has no END line before"),
    ("-----END CERTIFICATE-----\n", r"an END CERTIFICATE line after PEM block 0 has no matching BEGIN"),
])
def test_other_blocks_and_broken_framing_are_refused(text, expected):
    with pytest.raises(CertificateFileError, match=expected):
        read_pem_certificates(text, "odd.pem")


def test_file_without_a_certificate_is_an_error():
    result = preflight("", "empty.pem", now=NOW)

    assert result["status"] == "error"
    assert result["reason"].startswith("empty.pem holds no PEM certificate")


def test_misordered_fullchain_is_an_error(pki):
    leaf = pki.leaf("good.test")
    result = preflight(pem(pki.intermediate_cert, leaf.cert), "fullchain.pem", now=NOW)

    assert result["status"] == "error"
    assert "the first certificate is the CA 'Bench Intermediate CA'" in result["reason"]


# --- building the chain ------------------------------------------------------------------------


def test_bundle_with_comments_and_duplicates(pki):
    bundle = (
        "# Bench CA bundle, generated for the tests\n"
        "# Issuer: CN=Bench Root CA\n"
        + pem(pki.root_cert)
        + "\nsome text a tool left between the blocks\n"
        + pem(pki.intermediate_cert, pki.intermediate_cert)
        + "# the root again\n"
        + pem(pki.root_cert)
    )
    assert len(read_pem_certificates(bundle, "bundle.pem")) == 4

    result = preflight(read(pki.leaf("good.test").fullchain_path), "fullchain.pem", [(bundle, "bundle.pem")], now=NOW)

    assert result["status"] == "eligible"
    assert result["chain_pem"] == pem(pki.intermediate_cert, pki.root_cert)


def test_cross_signed_intermediate_currently_valid_is_preferred():
    root_key, ca_key, leaf_key = new_key(), new_key(), new_key()
    root = make_cert("Cross Root", root_key)
    expired = make_cert("Cross CA", ca_key, issuer=root, issuer_key=root_key, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    valid = make_cert("Cross CA", ca_key, issuer=root, issuer_key=root_key)
    leaf = make_cert("cross.test", leaf_key, issuer=valid, issuer_key=ca_key, ca=False, ocsp_url=URL)

    for candidates in ([expired, valid, root], [valid, expired, root]):
        assert build_chain(leaf, candidates, NOW) == [valid, root]
    # Once the newer one expires too, the one that expires last is still the better choice.
    assert build_chain(leaf, [expired, valid, root], NOW + 60 * DAY) == [valid, root]


def test_cross_signed_root_prefers_the_valid_self_signed_one():
    old_key, root_key, leaf_key = new_key(), new_key(), new_key()
    old_root = make_cert("Old Root", old_key, not_before=NOW - 3000 * DAY, not_after=NOW - 10 * DAY)
    cross = make_cert("New Root", root_key, issuer=old_root, issuer_key=old_key, not_before=NOW - 900 * DAY,
                      not_after=NOW - 10 * DAY)
    root = make_cert("New Root", root_key)
    leaf = make_cert("le.test", leaf_key, issuer=root, issuer_key=root_key, ca=False, ocsp_url=URL)

    assert build_chain(leaf, [cross, old_root, root], NOW) == [root]


def test_ca_that_sign_each_other_end_the_walk():
    key_a, key_b, leaf_key = new_key(), new_key(), new_key()
    # Neither is self-signed: each names and is signed by the other, a loop without a root.
    ca_a = make_cert("CA A", key_a, issuer_name="CA B", issuer_key=key_b)
    ca_b = make_cert("CA B", key_b, issuer_name="CA A", issuer_key=key_a)
    leaf = make_cert("loop.test", leaf_key, issuer=ca_a, issuer_key=key_a, ca=False, ocsp_url=URL)

    assert build_chain(leaf, [ca_a, ca_b, ca_a], NOW) == [ca_a, ca_b]

    result = preflight(pem(leaf, ca_a, ca_b), "loop.pem", now=NOW)
    assert result["status"] == "eligible" and result["chain_complete"] is False
    assert "the chain stops at 'CA B', whose issuer 'CA A'" in result["warnings"][0]


def test_issuer_is_the_one_whose_key_signed(pki):
    # Same name as the bench intermediate, another key: the name alone must not make it the issuer.
    impostor = make_cert("Bench Intermediate CA", new_key(), issuer_name="Bench Root CA", issuer_key=new_key())

    assert build_chain(pki.leaf("good.test").cert, [impostor, pki.intermediate_cert, pki.root_cert], NOW) == [
        pki.intermediate_cert, pki.root_cert]


# --- chain file names --------------------------------------------------------------------------


def test_chain_file_name_is_stable_readable_and_safe():
    name = chain_file_name("/etc/ssl/example.com/fullchain.pem")

    assert re.fullmatch(r"etc_ssl_example\.com_fullchain\.pem\.[0-9a-f]{12}\.chain\.pem", name)
    assert chain_file_name("/etc/ssl/example.com/fullchain.pem") == name
    assert chain_file_name("/etc//ssl/./example.com/fullchain.pem") == name
    assert chain_file_name("//etc/ssl/example.com/fullchain.pem") == name


def test_chain_file_name_tells_apart_paths_its_readable_part_confuses():
    assert chain_file_name("/etc/ssl/a_b.pem") != chain_file_name("/etc/ssl/a/b.pem")
    assert chain_file_name("/srv/certs/a b.pem") != chain_file_name("/srv/certs/a?b.pem")


def test_chain_file_name_of_a_long_path_is_bounded():
    long_path = "/srv/" + "/".join(["tenant-%03d" % number for number in range(60)]) + "/shop.example.com/fullchain.pem"
    name = chain_file_name(long_path)

    assert len(name) <= 87
    assert name.endswith("shop.example.com_fullchain.pem.%s.chain.pem" % name.split(".")[-3])
    assert not name.startswith((".", "_", "-"))
    assert chain_file_name(long_path) == name
    assert chain_file_name(long_path.replace("tenant-000", "tenant-999")) != name


@pytest.mark.parametrize("path", ["", "fullchain.pem", "ssl/cert.pem", "/", None])
def test_chain_file_name_refuses_paths_without_a_file(path):
    with pytest.raises(CertificateFileError, match="certificate path"):
        chain_file_name(path)


@pytest.mark.parametrize("chain_dir", ["/etc/ssl/ocsp-stapling", "/etc/ssl/ocsp-stapling/"])
def test_chain_file_path_joins_the_folder_and_the_name_once(chain_dir):
    cert = "/etc/ssl/example.com/fullchain.pem"

    assert chain_file_path(cert, chain_dir) == "/etc/ssl/ocsp-stapling/" + chain_file_name(cert)


@pytest.mark.parametrize("chain_dir", ["", "ocsp-stapling", "./ocsp-stapling", "etc/ssl/ocsp-stapling", None, ["/etc/ssl"]])
def test_chain_file_path_refuses_a_folder_that_is_not_absolute(chain_dir):
    with pytest.raises(CertificateFileError, match=r"^chain folder .* is not absolute: give the full path of the folder"):
        chain_file_path("/etc/ssl/example.com/fullchain.pem", chain_dir)


def test_chain_file_path_refuses_a_relative_certificate_path_as_the_name_does():
    with pytest.raises(CertificateFileError, match="certificate path 'cert.pem' is not absolute"):
        chain_file_path("cert.pem", "/etc/ssl/ocsp-stapling")
