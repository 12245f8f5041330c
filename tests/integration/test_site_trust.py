"""Issue 13 on a real nginx, through playbooks/enable.yml: every TLS site gets one outcome, no site's trust
changes, default servers that cannot staple are left alone, and a certificate file that holds its key staples.

The tree holds what broke in the field: a partners' site with mutual TLS whose client CA is its
ssl_trusted_certificate, a catch-all default server whose certificate has no OCSP URL, a site whose
certificate file is leaf + intermediate + key (and names itself as its key file), and a plain site.
Client certificates are checked through real handshakes and HTTP requests before and after the run.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from bench import Bench
from bench.layouts import apache_variables, nginx_variables, snapshot, write_inventory
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "enable.yml"

MAIN = """user nobody nogroup;
worker_processes 1;
pid "{folder}/run/nginx.pid";
error_log "{folder}/logs/error.log" info;
events {{ worker_connections 64; }}
http {{
    access_log "{folder}/logs/access.log";
    client_body_temp_path "{folder}/temp/client_body";
    proxy_temp_path "{folder}/temp/proxy";
    fastcgi_temp_path "{folder}/temp/fastcgi";
    uwsgi_temp_path "{folder}/temp/uwsgi";
    scgi_temp_path "{folder}/temp/scgi";
    include {folder}/sites/*.conf;
}}
"""

SITES = {
    # Unknown names get the snakeoil-like certificate (no OCSP URL) and no answer.
    "00-catchall.conf": """server {{
    listen 127.0.0.1:{port} ssl default_server;
    server_name _;
    ssl_certificate {nourl.fullchain_path};
    ssl_certificate_key {nourl.key_path};
    return 444;
}}
""",
    # Partners authenticate with certificates of their own CA, which is this site's trusted set.
    "10-partners.conf": """server {{
    listen 127.0.0.1:{port} ssl;
    server_name partners.test;
    ssl_certificate {partners.fullchain_path};
    ssl_certificate_key {partners.key_path};
    ssl_verify_client on;
    # nginx 1.22 wants ssl_client_certificate with ssl_verify_client (later ones take ssl_trusted_certificate alone);
    # both are the set client certificates are checked against.
    ssl_client_certificate {partner_ca};
    ssl_trusted_certificate {partner_ca};
    location / {{ return 200 "partner $ssl_client_s_dn\\n"; }}
}}
""",
    # Leaf, intermediate and key in one file, named as the key file too.
    "20-combined.conf": """server {{
    listen 127.0.0.1:{port} ssl;
    server_name combined.test;
    ssl_certificate {combined};
    ssl_certificate_key {combined};
    location / {{ return 200 "combined\\n"; }}
}}
""",
    "30-good.conf": """server {{
    listen 127.0.0.1:{port} ssl;
    server_name trusted.test;
    ssl_certificate {trusted.fullchain_path};
    ssl_certificate_key {trusted.key_path};
    location / {{ return 200 "trusted\\n"; }}
}}
""",
}


def _certificate(subject: str, key, issuer_name: x509.Name, issuer_key, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_client(folder: Path, name: str, certificate: x509.Certificate, key) -> tuple:
    cert_path, key_path = folder / (name + ".crt"), folder / (name + ".key")
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def client_certificates(bench: Bench, folder: Path) -> dict:
    """The partners' CA (the site's trust set), one of its client certificates, and a client certificate issued by
    the bench's intermediate - the CA of the stapling chain, which the site must never come to trust."""
    folder.mkdir()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Partners Client CA")])
    ca = _certificate("Partners Client CA", ca_key, ca_name, ca_key, ca=True)
    (folder / "partner-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    partner_key = ec.generate_private_key(ec.SECP256R1())
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    pki = bench.pki
    return {
        "ca": str(folder / "partner-ca.pem"),
        "partner": _write_client(folder, "partner", _certificate("partner-1", partner_key, ca_name, ca_key, ca=False), partner_key),
        "stranger": _write_client(folder, "stranger", _certificate("stranger", stranger_key, pki.intermediate_cert.subject,
                                                                   pki.intermediate_key, ca=False), stranger_key),
    }


def https_status(port: int, name: str, root: Path, client: tuple | None = None) -> int:
    """The HTTP status a client gets from the site ``name``, with the client certificate ``client`` (cert, key) or none."""
    context = ssl.create_default_context(cafile=str(root))
    if client:
        context.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw, server_hostname=name) as tls:
        tls.sendall(("GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % name).encode())
        reply = b""
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("site-trust")
    with Bench(root) as bench:
        partners = bench.issue("partners.test")
        combined_leaf = bench.issue("combined.test")
        trusted = bench.issue("trusted.test")
        nourl = bench.issue("catchall.test", ocsp_url=None)
        clients = client_certificates(bench, root / "clients")
        combined = root / "combined.pem"
        combined.write_bytes(combined_leaf.fullchain_path.read_bytes() + combined_leaf.key_path.read_bytes())
        os.chmod(combined, 0o600)
        server = bench.nginx([])
        folder = server.folder
        (folder / "sites").mkdir()
        server.conf_path.write_text(MAIN.format(folder=folder))
        for name, text in SITES.items():
            (folder / "sites" / name).write_text(text.format(port=server.port, nourl=nourl, partners=partners, partner_ca=clients["ca"],
                                                             combined=combined, trusted=trusted))
        server.start()
        nginx = ["nginx", "-p", str(folder) + "/", "-e", str(server.error_log_path), "-c", str(server.conf_path)]
        inventory = write_inventory(root / "inventory.yml", {"web1": nginx_variables(bench, server, root)})
        yield {"bench": bench, "server": server, "folder": folder, "inventory": inventory, "root": root, "clients": clients,
               "nginx": nginx, "original": snapshot(folder)}


def play(host, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(host["inventory"]), str(PLAYBOOK), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def outcome_lines(output: str) -> dict:
    """server name -> (outcome, reason) from the role's "Show the outcome of every TLS site" task."""
    found = {}
    for match in re.finditer(r'"\S+:\d+ (\S+): (stapled|already|not applicable|not handled) \((.*)\)",?$', output, re.MULTILINE):
        found[match.group(1)] = (match.group(2), match.group(3))
    return found


def test_1_before_the_run_partners_get_in_and_strangers_do_not(host):
    port, root = host["server"].port, host["bench"].pki.root_cert_path
    assert https_status(port, "partners.test", root, host["clients"]["partner"]) == 200
    assert https_status(port, "partners.test", root, host["clients"]["stranger"]) == 400
    assert https_status(port, "partners.test", root) == 400


def test_2_every_site_has_one_outcome_and_the_run_proves_the_stapled_ones(host):
    run = play(host, "--diff")
    assert run.returncode == 0, run.stdout + run.stderr
    # The sites read agree with nginx's own listing (nginx -T): no difference was warned.
    assert "does not see" not in run.stdout + run.stderr and "could not be checked" not in run.stdout + run.stderr, run.stdout
    outcomes = outcome_lines(run.stdout)
    assert set(outcomes) == {"_", "partners.test", "combined.test", "trusted.test"}, run.stdout
    assert outcomes["_"][0] == "not applicable" and "OCSP" in outcomes["_"][1], outcomes["_"]
    for name in ("partners.test", "combined.test", "trusted.test"):
        assert outcomes[name][0] == "stapled", (name, outcomes[name])
    # verify, from the controller, found a good staple on each of them.
    for name in ("partners.test", "combined.test", "trusted.test"):
        assert re.search(r"\(%s\)\s+ok\s+good" % re.escape(name), run.stdout), run.stdout


def test_3_the_partners_site_trusts_exactly_what_it_trusted(host):
    port, root = host["server"].port, host["bench"].pki.root_cert_path
    assert https_status(port, "partners.test", root, host["clients"]["partner"]) == 200
    # A client certificate of the stapling chain's CA is still refused: the trust set was not widened.
    assert https_status(port, "partners.test", root, host["clients"]["stranger"]) == 400
    partners = (host["folder"] / "sites" / "10-partners.conf").read_text()
    assert [line.strip() for line in partners.splitlines() if line.strip().startswith("ssl_trusted_certificate")] == [
        "ssl_trusted_certificate %s;" % host["clients"]["ca"]]
    assert "ssl_stapling on; # ocsp.stapling" in partners and "ssl_stapling_verify" not in partners


def test_4_the_catch_all_is_left_alone_and_nginx_warns_about_nothing(host):
    assert (host["folder"] / "sites" / "00-catchall.conf").read_bytes() == host["original"]["sites/00-catchall.conf"]
    test = subprocess.run(host["nginx"] + ["-t"], capture_output=True, text=True, check=False)
    assert test.returncode == 0 and "ignored" not in test.stderr, test.stderr


def test_5_the_combined_file_was_read_for_its_certificates_only(host):
    combined = (host["folder"] / "sites" / "20-combined.conf").read_text()
    assert "ssl_stapling on; # ocsp.stapling" in combined
    chains = [path.read_text() for path in (host["root"] / "chains").iterdir()]
    assert chains and not any("PRIVATE KEY" in text for text in chains)


def test_6_a_second_run_says_already_and_changes_nothing(host):
    before = snapshot(host["folder"])
    run = play(host)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^web1\s+: ok=\d+\s+changed=0\s", run.stdout, re.MULTILINE), run.stdout
    outcomes = outcome_lines(run.stdout)
    assert {name: outcome for name, (outcome, reason) in outcomes.items()} == {
        "_": "not applicable", "partners.test": "already", "combined.test": "already", "trusted.test": "already"}
    assert snapshot(host["folder"]) == before


# --- Apache ----------------------------------------------------------------------------------------

APACHE_MAIN = """ServerRoot "{folder}"
ServerName 127.0.0.1
PidFile {folder}/run/apache2.pid
DefaultRuntimeDir {folder}/run
Mutex file:{folder}/run default
ErrorLog "{folder}/logs/error.log"
LogLevel info
User nobody
Group nogroup
IncludeOptional mods-enabled/*.load
Listen 127.0.0.1:{port}
# Include, not IncludeOptional: a link to a file that does not exist stops Apache.
Include conf-enabled/*.conf
IncludeOptional sites-enabled/*.conf
"""

APACHE_SITES = """<VirtualHost 127.0.0.1:{port}>
    # As RHEL's ssl.conf writes it: the name with the port.
    ServerName shop.test:{port}
    SSLEngine on
    SSLCertificateFile {shop.fullchain_path}
    SSLCertificateKeyFile {shop.key_path}
    Redirect 200 /
</VirtualHost>

<VirtualHost 127.0.0.1:{port}>
    ServerName partners.test
    SSLEngine on
    SSLCertificateFile {partners.fullchain_path}
    SSLCertificateKeyFile {partners.key_path}
    SSLVerifyClient require
    SSLCACertificateFile {partner_ca}
    Redirect 200 /
</VirtualHost>

<VirtualHost 127.0.0.1:{port}>
    # Certificate, chain and key in one file, and no SSLCertificateKeyFile: as Apache documents it.
    ServerName combined.test
    SSLEngine on
    SSLCertificateFile {combined}
    Redirect 200 /
</VirtualHost>
"""


@pytest.fixture(scope="module")
def apache_host(tmp_path_factory):
    root = tmp_path_factory.mktemp("site-trust-apache")
    with Bench(root) as bench:
        shop = bench.issue("shop.test")
        partners = bench.issue("partners.test")
        combined_leaf = bench.issue("combined.test")
        clients = client_certificates(bench, root / "clients")
        combined = root / "combined.pem"
        combined.write_bytes(combined_leaf.fullchain_path.read_bytes() + combined_leaf.key_path.read_bytes())
        os.chmod(combined, 0o600)
        server = bench.apache([])
        folder = server.folder
        for sub in ("mods-available", "mods-enabled", "conf-available", "conf-enabled", "sites-enabled", "run", "logs"):
            (folder / sub).mkdir(exist_ok=True)
        for name, library in {"mpm_event": "mod_mpm_event.so", "alias": "mod_alias.so", "socache_shmcb": "mod_socache_shmcb.so",
                              "ssl": "mod_ssl.so", "authz_core": "mod_authz_core.so"}.items():
            (folder / "mods-available" / (name + ".load")).write_text("LoadModule %s_module /usr/lib/apache2/modules/%s\n" % (name, library))
            (folder / "mods-enabled" / (name + ".load")).symlink_to("../mods-available/%s.load" % name)
        server.conf_path.write_text(APACHE_MAIN.format(folder=folder, port=server.port))
        # The host's own stapling cache, in a conf file of its own.
        (folder / "conf-available" / "stapling-cache.conf").write_text("SSLStaplingCache shmcb:%s/run/their-cache(64000)\n" % folder)
        (folder / "conf-enabled" / "stapling-cache.conf").symlink_to("../conf-available/stapling-cache.conf")
        sites = APACHE_SITES.format(port=server.port, shop=shop, partners=partners, partner_ca=clients["ca"], combined=combined)
        (folder / "sites-enabled" / "sites.conf").write_text(sites)
        server.start()
        apache2 = ["apache2", "-d", str(folder), "-f", str(server.conf_path)]
        inventory = write_inventory(root / "inventory.yml", {"web1": apache_variables(bench, server, root)})
        yield {"bench": bench, "server": server, "folder": folder, "inventory": inventory, "clients": clients, "apache2": apache2}


def test_apache_1_partners_get_in_and_strangers_do_not(apache_host):
    port, root = apache_host["server"].port, apache_host["bench"].pki.root_cert_path
    assert https_status(port, "partners.test", root, apache_host["clients"]["partner"]) == 200
    with pytest.raises(ssl.SSLError):
        https_status(port, "partners.test", root, apache_host["clients"]["stranger"])


def test_apache_2_every_site_stapled_and_verified_without_a_dangling_link(apache_host):
    run = play(apache_host, "--diff")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "does not see" not in run.stdout + run.stderr, run.stdout
    outcomes = outcome_lines(run.stdout)
    assert {name: outcome for name, (outcome, reason) in outcomes.items()} == {
        "shop.test:%d" % apache_host["server"].port: "stapled", "partners.test": "stapled", "combined.test": "stapled"}, run.stdout
    for name in ("shop.test", "partners.test", "combined.test"):
        assert re.search(r"\(%s\)\s+ok\s+good" % re.escape(name), run.stdout), run.stdout
    folder = apache_host["folder"]
    # The host's SSLStaplingCache is kept; the collection writes no cache file and makes no link to one.
    assert sorted(os.listdir(folder / "conf-enabled")) == ["stapling-cache.conf"]
    assert sorted(os.listdir(folder / "conf-available")) == ["stapling-cache.conf"]
    test = subprocess.run(apache_host["apache2"] + ["-t"], capture_output=True, text=True, check=False)
    assert test.returncode == 0, test.stderr


def test_apache_3_the_partners_site_trusts_exactly_what_it_trusted(apache_host):
    port, root = apache_host["server"].port, apache_host["bench"].pki.root_cert_path
    assert https_status(port, "partners.test", root, apache_host["clients"]["partner"]) == 200
    with pytest.raises(ssl.SSLError):
        https_status(port, "partners.test", root, apache_host["clients"]["stranger"])
    sites = (apache_host["folder"] / "sites-enabled" / "sites.conf").read_text()
    partners = sites.split("ServerName partners.test")[1].split("</VirtualHost>")[0]
    assert [line.strip() for line in partners.splitlines() if "SSLCACertificateFile" in line] == [
        "SSLCACertificateFile %s" % apache_host["clients"]["ca"]]
    assert "SSLUseStapling on" in partners
