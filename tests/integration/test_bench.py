"""The test bench itself: real certificates, a real OCSP responder, real nginx and Apache, real handshakes."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from bench import ApacheServer, Bench, BenchError, Handshake, NginxServer, OcspResponder, Pki, Site, handshake, handshake_until
from bench.processes import process_table
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

KINDS = ["nginx", "apache"]
NOBODY = 65534


def make_server(bench: Bench, kind: str, sites: list[Site]) -> NginxServer | ApacheServer:
    return bench.nginx(sites) if kind == "nginx" else bench.apache(sites)


def stapled(result: Handshake) -> bool:
    return result.stapled


def alive(pids: set[int]) -> set[int]:
    return {proc.pid for proc in process_table() if proc.pid in pids and proc.state != "Z"}


def test_index_is_what_openssl_ca_writes(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki", "http://127.0.0.1:9/")
    leaf = pki.issue_leaf("index.test")
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    shutil.copy(pki.index_path, ca_dir / "index.txt")
    shutil.copy(pki.folder / "index.txt.attr", ca_dir / "index.txt.attr")
    config = ca_dir / "ca.cnf"
    config.write_text(
        f"[ca]\ndefault_ca = bench\n[bench]\ndatabase = {ca_dir}/index.txt\ncertificate = {pki.intermediate_cert_path}\n"
        f"private_key = {pki.intermediate_key_path}\ndefault_md = sha256\n",
        encoding="ascii",
    )
    subprocess.run(
        ["openssl", "ca", "-config", str(config), "-revoke", str(leaf.cert_path), "-crl_reason", "keyCompromise"], capture_output=True, check=True
    )
    expected = (ca_dir / "index.txt").read_text(encoding="ascii")

    match = re.search(r"^R\t\d{12}Z\t(\d{12}Z),keyCompromise\t[0-9A-F]+\tunknown\t/CN=index.test$", expected, re.MULTILINE)
    assert match, expected
    pki.revoke(leaf, "keyCompromise", when=dt.datetime.strptime(match.group(1), "%y%m%d%H%M%SZ").replace(tzinfo=dt.timezone.utc))
    assert pki.index_path.read_text(encoding="ascii") == expected


def test_default_leaves(bench: Bench) -> None:
    bench.default_sites()
    good, nourl, mustaple, expired = (bench.pki.leaf(name) for name in ("good.test", "nourl.test", "mustaple.test", "expired.test"))
    ocsp_urls = good.cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [entry.access_location.value for entry in ocsp_urls if entry.access_method == AuthorityInformationAccessOID.OCSP] == [bench.responder.url]
    with pytest.raises(x509.ExtensionNotFound):
        nourl.cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    assert list(mustaple.cert.extensions.get_extension_for_class(x509.TLSFeature).value) == [x509.TLSFeatureType.status_request]
    assert expired.cert.not_valid_after_utc < dt.datetime.now(dt.timezone.utc)
    assert x509.load_pem_x509_certificates(good.chain_path.read_bytes()) == [bench.pki.intermediate_cert, bench.pki.root_cert]
    assert x509.load_pem_x509_certificates(good.fullchain_path.read_bytes()) == [good.cert, bench.pki.intermediate_cert]
    assert good.key_path.stat().st_mode & 0o777 == 0o600
    chain = ["openssl", "verify", "-CAfile", str(bench.pki.root_cert_path), "-untrusted", str(bench.pki.intermediate_cert_path)]
    subprocess.run([*chain, str(good.cert_path), str(bench.pki.responder_cert_path)], capture_output=True, check=True)


def test_rsa_keys(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path, None, key_type="rsa")
    leaf = pki.issue_leaf("rsa.test", sans=["www.rsa.test"])
    key = leaf.cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == ["rsa.test", "www.rsa.test"]


def test_responder_sees_a_revocation_at_once(bench: Bench) -> None:
    leaf = bench.issue("responder.test")
    assert bench.responder.query(leaf.cert).certificate_status == ocsp.OCSPCertStatus.GOOD
    bench.revoke("responder.test")
    answer = bench.responder.query(leaf.cert)
    assert (answer.certificate_status, answer.revocation_reason) == (ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.key_compromise)
    # The openssl client checks the signature of the delegated responder up to the root.
    client = subprocess.run(
        [
            "openssl", "ocsp", "-issuer", str(bench.pki.intermediate_cert_path), "-cert", str(leaf.cert_path), "-url", bench.responder.url,
            "-CAfile", str(bench.pki.root_cert_path), "-verify_other", str(bench.pki.intermediate_cert_path),
        ],
        capture_output=True, text=True, timeout=15, check=True,
    )
    assert "Response verify OK" in client.stderr
    assert f"{leaf.cert_path}: revoked" in client.stdout


def test_responder_signed_by_the_issuer(bench: Bench, tmp_path: Path) -> None:
    responder = OcspResponder(bench.pki, tmp_path, signer="issuer")
    responder.start()
    try:
        answer = responder.query(bench.issue("issuer-signed.test").cert)
    finally:
        responder.stop()
    assert (answer.certificate_status, answer.responder_name) == (ocsp.OCSPCertStatus.GOOD, bench.pki.intermediate_cert.subject)
    assert responder.pid is None


@pytest.mark.parametrize("kind", KINDS)
def test_server_staples(bench: Bench, kind: str) -> None:
    server = make_server(bench, kind, bench.default_sites())
    assert server.test().returncode == 0
    server.start()
    # nginx answers the first handshakes without a staple while its worker fetches one.
    good = handshake_until(server.port, "good.test", stapled)
    assert (good.subject, good.response_status, good.cert_status) == ("CN = good.test", "successful", "good")
    mustaple = handshake_until(server.port, "mustaple.test", stapled)
    assert (mustaple.response_status, mustaple.cert_status) == ("successful", "good")
    for name in ("nostaple.test", "nourl.test"):
        result = handshake(server.port, name)
        assert "OCSP response: no response sent" in result.output
        assert result.subject == f"CN = {name}"
    workers = server.worker_pids()
    assert workers
    assert {int(Path(f"/proc/{pid}/status").read_text(encoding="ascii").split("Uid:")[1].split()[0]) for pid in workers} == {NOBODY}
    master = server.pid
    server.stop()
    assert not alive({master or 0, *workers})


@pytest.mark.parametrize("kind", KINDS)
def test_revocation_reaches_the_server_on_reload(bench: Bench, kind: str) -> None:
    name = f"revoked-{kind}.test"
    server = make_server(bench, kind, [Site(name, bench.issue(name))])
    server.start()
    assert handshake_until(server.port, name, stapled).cert_status == "good"
    bench.revoke(name)
    server.reload()
    if kind == "apache":
        assert handshake_until(server.port, name, stapled).cert_status == "revoked"
    else:
        # nginx refuses to staple anything but "good", and says so in its error log.
        refused = 'certificate status "revoked" in the OCSP response while requesting certificate status'
        assert not handshake_until(server.port, name, lambda result: result.stapled or refused in server.error_log()).stapled
        assert refused in server.error_log()
    server.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_broken_config_is_reported_with_the_log(bench: Bench, kind: str) -> None:
    name = f"broken-{kind}.test"
    server = make_server(bench, kind, [Site(name, bench.issue(name))])
    server.start()
    if kind == "nginx":
        bogus, message = "bogus_directive on;", 'unknown directive "bogus_directive"'
    else:
        bogus, message = "BogusDirective on", "Invalid command 'BogusDirective'"
    server.conf_path.write_text(f"{server.conf_path.read_text(encoding='utf-8')}{bogus}\n", encoding="utf-8")
    with pytest.raises(BenchError, match=message):
        server.reload()
    # nginx keeps serving with the old configuration; Apache's parent exits on a failed graceful restart.
    assert server.running() is (kind == "nginx")
    server.stop()
    with pytest.raises(BenchError, match=message):
        server.start()
    assert not server.running()


def test_responder_down_nothing_hangs_and_exit_stops_everything(tmp_path: Path) -> None:
    with Bench(tmp_path) as bench:
        sites = [Site("good.test", bench.issue("good.test"))]
        servers = [bench.nginx(sites), bench.apache(sites)]
        for server in servers:
            server.start()
            assert handshake_until(server.port, "good.test", stapled).cert_status == "good"
        bench.responder.stop()
        for server in servers:
            server.reload()  # Forget the cached staple, so that the next handshakes need the responder.
        started = time.monotonic()
        nginx, apache = (handshake_until(server.port, "good.test", stapled, attempts=3) for server in servers)
        assert time.monotonic() - started < 5
        assert not nginx.stapled
        # Apache makes up a tryLater response when it cannot reach the responder.
        assert apache.response_status == "trylater"
        bench.responder.start()
        pids = {bench.responder.pid or 0}
        for server in servers:
            pids |= {server.pid or 0, *server.worker_pids()}
        assert alive(pids) == pids
    assert not alive(pids)
    assert all(server.pid is None for server in servers) and bench.responder.pid is None


def test_fleet_bench_for_molecule_outlives_its_command_and_stops_by_pid(tmp_path: Path) -> None:
    """tests/bench/fleet.py: prepare starts it, cleanup stops it, in other processes than the one that started it."""
    from bench import fleet

    state_dir = tmp_path / "fleet"
    sites = '[{"server_name": "a.fleet.test"}, {"server_name": "nourl.fleet.test", "ocsp": false}]'

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bench.fleet", *args], capture_output=True, text=True,
                              cwd=Path(fleet.__file__).parents[1], check=False)

    started = run("start", str(state_dir), sites)
    assert started.returncode == 0, started.stderr
    state = json.loads(started.stdout)
    pid = state["responder_pid"]
    try:
        assert fleet._alive(pid)
        leaf = x509.load_pem_x509_certificate(Path(state["leaves"]["a.fleet.test"]["cert"]).read_bytes())
        issuer = x509.load_pem_x509_certificate(Path(state["intermediate"]).read_bytes())
        builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256())
        request = urllib.request.Request(state["responder_url"], data=builder.build().public_bytes(serialization.Encoding.DER),
                                         headers={"Content-Type": "application/ocsp-request"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as answer:
            assert ocsp.load_der_ocsp_response(answer.read()).certificate_status == ocsp.OCSPCertStatus.GOOD
        nourl = x509.load_pem_x509_certificate(Path(state["leaves"]["nourl.fleet.test"]["cert"]).read_bytes())
        with pytest.raises(x509.ExtensionNotFound):
            nourl.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
        # A second start (a repeated prepare) keeps the running responder and its certificates.
        again = run("start", str(state_dir), sites)
        assert again.returncode == 0 and json.loads(again.stdout) == state
        # Asking for a site it has no certificate for is an error that says what to do.
        other = run("start", str(state_dir), '[{"server_name": "new.fleet.test"}]')
        assert other.returncode == 1 and "stop it first" in other.stderr
    finally:
        stopped = run("stop", str(state_dir))
    assert stopped.returncode == 0 and json.loads(stopped.stdout) == {"stopped": True, "pid": pid}
    assert not fleet._alive(pid) and not state_dir.exists()
    assert run("stop", str(state_dir)).returncode == 0
