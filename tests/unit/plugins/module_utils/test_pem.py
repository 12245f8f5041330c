"""Unit tests of the host-side PEM reader: certificate blocks only, names read without cryptography,
and the CA bundle cut down to what a chain can use - with the same preflight verdicts as the whole files."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import threading
import time
import tracemalloc
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
from ansible_collections.ocsp.stapling.plugins.module_utils._pem import read_site_certificates

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

    # Apache documents a certificate file that holds the key too (no SSLCertificateKeyFile), and nginx
    # reads one: the certificate is used, the key is passed over and never sent.
    sent = json.dumps(entry)
    assert "error" not in entry and entry["source"] == "/etc/ssl/both.pem"
    number = 1 if layout == "cert-then-key" else 2
    assert entry["blocks"] == [[number, pem(leaf.cert).strip()]]
    assert not any(line in sent for line in key_body_lines(key))
    assert "PRIVATE KEY" not in sent


def test_a_site_file_with_key_and_parameters_gives_its_certificates_only(pki):
    leaf = pki.leaf("good.test")
    key = key_pem(ec.generate_private_key(ec.SECP256R1()))
    params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    text = params + key + pem(leaf.cert) + pem(pki.intermediate_cert)

    entry = _pem.site_certificates(text, "/etc/ssl/all-in-one.pem")

    assert [number for number, _block in entry["blocks"]] == [3, 4]
    assert "PARAMETERS" not in json.dumps(entry) and not any(line in json.dumps(entry) for line in key_body_lines(key))


def test_a_key_in_a_bundle_refuses_the_bundle_without_sending_it(pki):
    key = key_pem(ec.generate_private_key(ec.SECP256R1()))
    (entry,) = _pem.bundle_certificates([(pem(pki.root_cert) + key, "/etc/ssl/bundle.pem")], set())

    assert "PEM block 2 is a private key" in entry["error"]
    assert not any(line in json.dumps(entry) for line in key_body_lines(key))


@pytest.mark.parametrize("text, message", [
    ("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "PEM block 1 is a X509 CRL, not a CERTIFICATE"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n", "PEM block 1 (CERTIFICATE) has no END line"),
    ("-----END CERTIFICATE-----\n", "has no matching BEGIN line"),
])
def test_damaged_files_give_the_messages_of_the_controller(text, message):
    entry = _pem.site_certificates(text, "x.pem")
    assert message in entry["error"]
    assert entry["error"] == preflight(text, "x.pem")["reason"]


def der_block(der: bytes) -> str:
    """A CERTIFICATE block around any bytes."""
    return _pem.canonical_pem(der) + "\n"


def not_certificates(pki) -> dict:
    """CERTIFICATE blocks that hold no certificate, by what they hold instead."""
    good = pki.root_cert.public_bytes(serialization.Encoding.DER)
    assert good[:2] == b"\x30\x82"  # a two-byte length, which extra-field rewrites
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr.test")]))
           .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    crl = (x509.CertificateRevocationListBuilder().issuer_name(pki.root_cert.subject).last_update(NOW).next_update(NOW + dt.timedelta(days=1))
           .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    spki = pki.root_cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "text": "-----BEGIN CERTIFICATE-----\nthe password is hunter2\n-----END CERTIFICATE-----\n",
        "bad-base64": "-----BEGIN CERTIFICATE-----\nMIIB$$$$\n-----END CERTIFICATE-----\n",
        "non-ascii": "-----BEGIN CERTIFICATE-----\nMIIB\u00e9AAA\n-----END CERTIFICATE-----\n",
        "base64-of-text": der_block(b"secret: hunter2, not DER at all"),
        "csr": der_block(csr.public_bytes(serialization.Encoding.DER)),
        "crl": der_block(crl.public_bytes(serialization.Encoding.DER)),
        "public-key": der_block(spki),
        "trailing-bytes": der_block(good + b"\x00\x00smuggled"),
        # The outer SEQUENCE with a fourth element (an OCTET STRING of 4 bytes) after the signature.
        "extra-field": der_block(b"\x30\x82" + (int.from_bytes(good[2:4], "big") + 4).to_bytes(2, "big") + good[4:] + b"\x04\x02hi"),
        "cut-der": der_block(good[:-10]),
        "headers-without-blank-line": "-----BEGIN CERTIFICATE-----\nComment: x\n%s\n-----END CERTIFICATE-----\n" % (
            base64.b64encode(good).decode("ascii")),
    }


@pytest.mark.parametrize("kind", ["text", "bad-base64", "non-ascii", "base64-of-text", "csr", "crl", "public-key", "trailing-bytes",
                                  "extra-field", "cut-der", "headers-without-blank-line"])
def test_a_certificate_block_that_holds_no_certificate_makes_the_site_file_an_error(pki, kind):
    block = not_certificates(pki)[kind]
    text = pem(pki.leaf("good.test").cert) + block

    entry = _pem.site_certificates(text, "/etc/ssl/site.pem")

    # The file, the block number and what to do; nothing of the block.
    assert entry == {"source": "/etc/ssl/site.pem", "error": _pem.unparsable_block("/etc/ssl/site.pem", 2)}
    assert "replace it with the certificate as the CA delivered it" in entry["error"]
    assert not any(line in json.dumps(entry) for line in key_body_lines(block))
    assert "hunter2" not in json.dumps(entry)
    # The controller refuses the whole file the same way.
    assert preflight(text, "/etc/ssl/site.pem")["reason"] == entry["error"]


def test_a_certificate_is_sent_re_encoded_without_the_text_around_or_in_it(pki):
    leaf = pki.leaf("good.test")
    body = base64.b64encode(leaf.cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
    wrapped_76 = "\n".join(body[start:start + 76] for start in range(0, len(body), 76))
    text = ("Bag Attributes\n    localKeyID: 01 02 03\n    friendlyName: secret-alias\nsubject=/CN=good.test\n"
            "-----BEGIN CERTIFICATE-----\r\nProc-Type: 4,NOTREALLY\nComment: \"internal note: db password hunter2\"\n\n"
            + wrapped_76.replace("\n", "\r\n") + "\r\n-----END CERTIFICATE-----\r\ntrailing note hunter2\n"
            + "-----BEGIN CERTIFICATE-----\n" + "\n ".join(pem(pki.intermediate_cert).splitlines()[1:-1]) + "\n-----END CERTIFICATE-----\n")

    entry = _pem.site_certificates(text, "fullchain.pem")

    assert entry == {"source": "fullchain.pem", "blocks": [[1, pem(leaf.cert).strip()], [2, pem(pki.intermediate_cert).strip()]]}
    sent = json.dumps(entry)
    assert "hunter2" not in sent and "secret-alias" not in sent and "Proc-Type" not in sent and "\\r" not in sent
    assert all(len(line) <= 64 for _number, block in entry["blocks"] for line in block.splitlines())
    # The controller reads the same certificates from what was sent as from the file.
    assert judged_on_the_host(text, "fullchain.pem", [])["chain"] == preflight(text, "fullchain.pem")["chain"]


def test_bundle_certificates_are_sent_re_encoded(pki):
    leaf = pki.leaf("good.test")
    sites = [_pem.site_certificates(pem(leaf.cert, pki.intermediate_cert), "fullchain.pem")]
    text = "# root\n" + pem(pki.root_cert).replace("-----\n", "-----\nNote: x\n\n", 1) + "stray text\n"

    (entry,) = _pem.bundle_certificates([(text, "bundle.pem")], _pem.wanted_issuers(sites))

    assert entry == {"source": "bundle.pem", "blocks": [[1, pem(pki.root_cert).strip()]]}


def test_a_label_that_is_no_plain_label_is_not_repeated():
    text = "-----BEGIN password is hunter2-----\nAAAA\n-----END password is hunter2-----\n"
    entry = _pem.site_certificates(text, "x.pem")
    assert entry["error"].startswith("x.pem: PEM block 1 is a block with an unusual label, not a CERTIFICATE")
    assert "hunter2" not in entry["error"]
    text = "-----BEGIN hunter2 PRIVATE KEY-----\nAAAA\n-----END hunter2 PRIVATE KEY-----\n"
    assert "hunter2" not in json.dumps(_pem.site_certificates(text, "x.pem"))
    assert "hunter2" not in json.dumps(_pem.bundle_certificates([(text, "bundle.pem")], set()))


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


def test_a_bundle_block_that_is_no_certificate_refuses_the_bundle_as_the_controller_would(pki):
    damaged = "-----BEGIN CERTIFICATE-----\nMIIBnotDER=\n-----END CERTIFICATE-----\n"
    text = pem(pki.responder_cert) + damaged + pem(pki.root_cert)

    (entry,) = _pem.bundle_certificates([(text, "bundle.pem")], _pem.wanted_issuers([_pem.site_certificates(pem(pki.root_cert), "r.pem")]))

    assert entry == {"source": "bundle.pem", "error": _pem.unparsable_block("bundle.pem", 2)}
    assert "MIIBnotDER" not in json.dumps(entry)
    # The verdict on every site is the one the whole bundle gives on the controller.
    site = pem(pki.leaf("good.test").cert)
    expected = preflight(site, "cert.pem", [(text, "bundle.pem")])
    assert expected["status"] == "error" and expected["reason"].startswith("bundle.pem: PEM block 2 does not parse")
    assert preflight(site, "cert.pem", [(_pem.CertificateFileError(entry["error"]), "bundle.pem")])["reason"] == expected["reason"]


def test_wanted_issuers_are_those_of_the_certificates_sent(pki):
    leaf = pki.leaf("good.test")
    sites = [_pem.site_certificates(pem(leaf.cert, pki.intermediate_cert), "fullchain.pem"),
             _pem.site_certificates("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "odd.pem")]
    assert "error" in sites[1]
    assert _pem.wanted_issuers(sites) == {_pem.block_name_keys(pem(leaf.cert))[0], _pem.block_name_keys(pem(pki.intermediate_cert))[0]}


def judged_on_the_host(site_text: str, site_source: str, bundles: list) -> dict:
    """What the roles now do: cut down on the host, judged on the controller."""
    site = _pem.site_certificates(site_text, site_source)
    entries = _pem.bundle_certificates(bundles, _pem.wanted_issuers([site]))
    content = _pem.CertificateFileError(site["error"]) if "error" in site else site["blocks"]
    candidates = [(_pem.CertificateFileError(entry["error"]) if "error" in entry else entry["blocks"], entry["source"]) for entry in entries]
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

    found = read_site_certificates(sites, [str(tmp_path / "nonexistent.pem"), str(pki.root_cert_path)])

    assert list(found["certificates"]) == [str(leaf.fullchain_path), str(both), str(tmp_path / "gone.pem")]
    assert [number for number, _block in found["certificates"][str(leaf.fullchain_path)]["blocks"]] == [1, 2]
    assert [number for number, _block in found["certificates"][str(both)]["blocks"]] == [1]
    assert found["certificates"][str(tmp_path / "gone.pem")]["error"].startswith("cannot read %s (No such file" % (tmp_path / "gone.pem"))
    assert found["bundles"] == [{"source": str(pki.root_cert_path), "blocks": [[1, pem(pki.root_cert).strip()]]}]
    assert not any(line in json.dumps(found) for line in key_body_lines(key))


def test_server_info_refuses_what_is_no_certificate_file_promptly_and_reads_the_rest(pki, tmp_path):
    leaf = pki.leaf("good.test")
    fifo, huge, garbage = tmp_path / "fifo.pem", tmp_path / "huge.pem", tmp_path / "garbage.pem"
    os.mkfifo(fifo)
    with open(huge, "wb") as stream:
        stream.truncate(2 * 1024 ** 3)  # sparse: no disk used
    garbage.write_text(pem(leaf.cert) + "-----BEGIN CERTIFICATE-----\nc2VjcmV0IGh1bnRlcjI=\n-----END CERTIFICATE-----\n")
    bundle_fifo = tmp_path / "bundle-fifo.pem"
    os.mkfifo(bundle_fifo)
    sites = [{"ssl_certificate": [str(path)]} for path in (fifo, huge, Path("/dev/zero"), garbage, leaf.fullchain_path)]
    found = {}

    def read():
        found.update(read_site_certificates(sites, [str(bundle_fifo), str(pki.root_cert_path)]))

    tracemalloc.start()
    try:
        started = time.monotonic()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(10)
        seconds = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if reader.is_alive():
        for path in (fifo, bundle_fifo):  # set the reader free
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("server_info waited on a file")

    certificates = found["certificates"]
    assert certificates[str(fifo)]["error"].startswith("cannot read %s (not a regular file but a FIFO" % fifo)
    too_large = "cannot read %s (the file holds 2147483648 bytes (2048 MiB), more than the 16 MiB cap for a certificate file" % huge
    assert certificates[str(huge)]["error"].startswith(too_large)
    assert certificates["/dev/zero"]["error"].startswith("cannot read /dev/zero (not a regular file but a device")
    assert certificates[str(garbage)] == {"source": str(garbage), "error": _pem.unparsable_block(str(garbage), 2)}
    assert [number for number, _block in certificates[str(leaf.fullchain_path)]["blocks"]] == [1, 2]
    assert all(set(entry) == {"source", "error"} for path, entry in certificates.items() if path != str(leaf.fullchain_path))
    assert found["bundles"][0]["error"].startswith("cannot read the CA bundle %s (not a regular file but a FIFO" % bundle_fifo)
    assert found["bundles"][1] == {"source": str(pki.root_cert_path), "blocks": [[1, pem(pki.root_cert).strip()]]}
    assert "hunter2" not in json.dumps(found)
    print("\nserver_info on a FIFO, a 2 GiB file, /dev/zero and a FIFO bundle: %.3f s, %d KiB allocated at most" % (seconds, peak // 1024))
    assert seconds < 2 and peak < 4 * 1024 * 1024
