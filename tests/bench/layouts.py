"""Realistic server layouts on the bench, shared by the integration tests and the demo.

The bench's own configs put every site in one file; a fleet's servers do not. This lays nginx out
as Debian ships it: nginx.conf including conf.d/*.conf and sites-enabled/*, each enabled site a
symlink to sites-available, with comments, tabs, CRLF line endings in one file, a site that has
stapling turned off by hand, and a site whose certificate has no OCSP URL.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import Bench
from .servers import NginxServer, Site

MAIN = """# Debian-shaped main configuration, rewritten for the bench's sandbox.
user nobody nogroup;
worker_processes 2;
pid "{folder}/run/nginx.pid";
error_log "{folder}/logs/error.log" info;

events {{
    worker_connections 256;
}}

http {{
    access_log "{folder}/logs/access.log";
    client_body_temp_path "{folder}/temp/client_body";
    proxy_temp_path "{folder}/temp/proxy";
    fastcgi_temp_path "{folder}/temp/fastcgi";
    uwsgi_temp_path "{folder}/temp/uwsgi";
    scgi_temp_path "{folder}/temp/scgi";

    ##
    # SSL Settings
    ##
    ssl_protocols TLSv1.2 TLSv1.3; # Dropping SSLv3, ref: POODLE
    ssl_prefer_server_ciphers on;

    include {folder}/conf.d/*.conf;
    include {folder}/sites-enabled/*;
}}
"""

DEFAULT_SITE = """##
# You should look at the following URL's in order to grasp a solid understanding
# of Nginx configuration files in order to fully unleash the power of Nginx.
##

# Default server configuration
#
server {{
\tlisten 127.0.0.1:{port} ssl default_server;

\t# SSL configuration: the certificate is the full chain {{ leaf + intermediate }}
\tssl_certificate {leaf.fullchain_path};
\tssl_certificate_key {leaf.key_path};

\tserver_name good.test;

\tlocation / {{
\t\t# First attempt to serve request as file, then as directory; then 404.
\t\treturn 200 "good;{{ok}}\\n";
\t}}
}}
"""

SHOP_SITE = (
    "server {{\r\n"
    "    listen 127.0.0.1:{port} ssl;\r\n"
    "    server_name shop.test www.shop.test;\r\n"
    "    ssl_certificate     {shop.fullchain_path};\r\n"
    "    ssl_certificate_key {shop.key_path};\r\n"
    "    ssl_stapling off;   # was turned off while debugging\r\n"
    "    location /api {{ if ($request_method = POST) {{ return 405; }} }}\r\n"
    "}}\r\n"
    "\r\n"
    "server {{\r\n"
    "    listen 127.0.0.1:{port} ssl;\r\n"
    "    server_name nourl.test;\r\n"
    "    ssl_certificate     {nourl.fullchain_path};\r\n"
    "    ssl_certificate_key {nourl.key_path};\r\n"
    "}}\r\n"
)


@dataclass
class NginxHost:
    """A running bench nginx with a Debian-shaped tree, and the role variables that point at it."""

    server: NginxServer
    folder: Path
    variables: dict = field(default_factory=dict)


def debian_nginx(bench: Bench, root: Path, workers: int = 2) -> NginxHost:
    """Issue good.test, shop.test (+www) and nourl.test, lay them out Debian-style and start nginx."""
    good = bench.issue("good.test")
    shop = bench.issue("shop.test", sans=["www.shop.test"])
    nourl = bench.issue("nourl.test", ocsp_url=None)
    server = bench.nginx([Site("good.test", good, stapling=False, default=True)], workers=workers)
    folder = server.folder
    for sub in ("conf.d", "sites-available", "sites-enabled"):
        (folder / sub).mkdir()
    server.conf_path.write_text(MAIN.format(folder=folder))
    (folder / "conf.d" / "gzip.conf").write_text("gzip on;\n")
    (folder / "sites-available" / "default").write_text(DEFAULT_SITE.format(port=server.port, leaf=good))
    (folder / "sites-available" / "shop").write_bytes(SHOP_SITE.format(port=server.port, shop=shop, nourl=nourl).encode())
    for name in ("default", "shop"):
        (folder / "sites-enabled" / name).symlink_to("../sites-available/" + name)
    server.start()
    nginx = ["nginx", "-p", str(folder) + "/", "-e", str(server.error_log_path), "-c", str(server.conf_path)]
    return NginxHost(server=server, folder=folder, variables={
        "ansible_connection": "local",
        "ansible_host": "127.0.0.1",
        "ansible_python_interpreter": sys.executable,
        "nginx_stapling_conf": str(server.conf_path),
        "nginx_stapling_test_command": nginx + ["-t"],
        "nginx_stapling_reload_command": nginx + ["-s", "reload"],
        # Bench certificates name their responder by IP address: no lookups, and none leave the machine.
        "nginx_stapling_resolver": ["127.0.0.1"],
        "nginx_stapling_ca_bundles": [str(bench.pki.root_cert_path), "/nonexistent/bundle.pem"],
        "nginx_stapling_chain_dir": str(root / "chains"),
        "nginx_stapling_backup_dir": str(root / "backups"),
        "nginx_stapling_lock_path": str(root / "ocsp-stapling.lock"),
        "nginx_stapling_verify_retry_budget": 15,
        "ocsp_stapling_verify_port": server.port,
        "ocsp_stapling_verify_server_names": ["good.test", "shop.test"],
    })


def write_inventory(path: Path, hosts: dict) -> Path:
    """An inventory in JSON (which is YAML): {host name: variables}."""
    path.write_text(json.dumps({"all": {"hosts": hosts}}, indent=2))
    return path
