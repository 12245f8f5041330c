"""Realistic server layouts on the bench, shared by the integration tests and the demo.

The bench's own configs put every site in one file; a fleet's servers do not. This lays nginx out
as Debian ships it: nginx.conf including conf.d/*.conf and sites-enabled/*, each enabled site a
symlink to sites-available, with comments, tabs, CRLF line endings in one file, a site that has
stapling turned off by hand, and a site whose certificate has no OCSP URL.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import Bench
from .servers import ApacheServer, NginxServer, Site

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


def site_leaves(bench: Bench) -> tuple:
    """good.test, shop.test (+ www) and nourl.test (no OCSP URL), issued once per bench, so that an
    nginx and an Apache on the same bench serve the same certificates."""
    issued = {leaf.name for leaf in bench.pki.leaves}
    if "good.test" not in issued:
        bench.issue("good.test")
        bench.issue("shop.test", sans=["www.shop.test"])
        bench.issue("nourl.test", ocsp_url=None)
    return bench.pki.leaf("good.test"), bench.pki.leaf("shop.test"), bench.pki.leaf("nourl.test")


@dataclass
class NginxHost:
    """A running bench nginx with a Debian-shaped tree, and the role variables that point at it."""

    server: NginxServer
    folder: Path
    variables: dict = field(default_factory=dict)


def debian_nginx(bench: Bench, root: Path, workers: int = 2) -> NginxHost:
    """Lay good.test, shop.test (+www) and nourl.test out Debian-style and start nginx."""
    good, shop, nourl = site_leaves(bench)
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
    variables = nginx_variables(bench, server, root)
    variables.update({
        "nginx_stapling_ca_bundles": [str(bench.pki.root_cert_path), "/nonexistent/bundle.pem"],
        "ocsp_stapling_verify_port": server.port,
        "ocsp_stapling_verify_server_names": ["good.test", "shop.test"],
    })
    return NginxHost(server=server, folder=folder, variables=variables)


def nginx_variables(bench: Bench, server: NginxServer, root: Path) -> dict:
    """The inventory variables of a host whose nginx is the bench's ``server``, with the run's state under ``root``."""
    nginx = ["nginx", "-p", str(server.folder) + "/", "-e", str(server.error_log_path), "-c", str(server.conf_path)]
    return {
        "ansible_connection": "local",
        "ansible_host": "127.0.0.1",
        "ansible_python_interpreter": sys.executable,
        "nginx_stapling_conf": str(server.conf_path),
        "nginx_stapling_test_command": nginx + ["-t"],
        "nginx_stapling_reload_command": nginx + ["-s", "reload"],
        # Bench certificates name their responder by IP address: no lookups, and none leave the machine.
        "nginx_stapling_resolver": ["127.0.0.1"],
        "nginx_stapling_ca_bundles": [str(bench.pki.root_cert_path)],
        "nginx_stapling_chain_dir": str(root / "chains"),
        "nginx_stapling_backup_dir": str(root / "backups"),
        "nginx_stapling_lock_path": str(root / "ocsp-stapling.lock"),
        "nginx_stapling_verify_retry_budget": 15,
        # This machine has Apache installed too; the bench host is its nginx only.
        "enable_servers": ["nginx"],
    }


def snapshot(folder: Path) -> dict:
    """Every configuration byte and symlink under a bench server folder (logs, run, temp and htdocs
    left out), to prove that a run changed nothing, or gave the original bytes back."""
    skipped = {"logs", "run", "temp", "htdocs"}
    return {
        str(path.relative_to(folder)): ("-> " + os.readlink(path) if path.is_symlink() else path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if (path.is_file() or path.is_symlink()) and path.relative_to(folder).parts[0] not in skipped
    }


def write_inventory(path: Path, hosts: dict) -> Path:
    """An inventory in JSON (which is YAML): {host name: variables}."""
    path.write_text(json.dumps({"all": {"hosts": hosts}}, indent=2))
    return path


APACHE_MAIN = """# Debian-shaped apache2.conf, rewritten for the bench's sandbox.
# Debian takes these from /etc/apache2/envvars; the bench defines them here.
Define BENCH_RUN {folder}/run
ServerRoot "{folder}"
ServerName 127.0.0.1
PidFile ${{BENCH_RUN}}/apache2.pid
DefaultRuntimeDir ${{BENCH_RUN}}
Mutex file:${{BENCH_RUN}} default
ErrorLog "{folder}/logs/error.log"
LogLevel info
User nobody
Group nogroup
Timeout 300
KeepAlive On

# Include module configuration:
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf

# Include list of ports to listen on
Include ports.conf

<Directory />
\tOptions FollowSymLinks
\tAllowOverride None
</Directory>

# Include generic snippets of statements
IncludeOptional conf-enabled/*.conf

# Include the virtual host configurations:
IncludeOptional sites-enabled/*.conf
"""

APACHE_PORTS = """<IfModule ssl_module>
\tListen 127.0.0.1:{port}
</IfModule>
"""

APACHE_DEFAULT_SSL = """<IfModule mod_ssl.c>
\t<VirtualHost 127.0.0.1:{port}>
\t\tServerAdmin webmaster@localhost
\t\tServerName good.test

\t\tDocumentRoot {folder}/htdocs
\t\tRedirect 200 /
\t\tErrorDocument 200 "good.test"

\t\t#   SSL Engine Switch:
\t\t#   Enable/Disable SSL for this virtual host.
\t\tSSLEngine on

\t\t#   A self-signed (snakeoil) certificate can be created by installing
\t\t#   the ssl-cert package. See /usr/share/doc/apache2/README.Debian.gz
\t\tSSLCertificateFile\t{good.fullchain_path}
\t\tSSLCertificateKeyFile {good.key_path}
\t</VirtualHost>
</IfModule>

# vim: syntax=apache ts=4 sw=4 sts=4 sr noet
"""

APACHE_SHOP = (
    "<VirtualHost 127.0.0.1:{port}>\r\n"
    "    ServerName shop.test\r\n"
    "    ServerAlias www.shop.test\r\n"
    "    Redirect 200 /\r\n"
    "    ErrorDocument 200 \"shop.test\"\r\n"
    "    sslengine On\r\n"
    "    SSLCertificateFile \"{shop.fullchain_path}\"\r\n"
    "    SSLCertificateKeyFile \\\r\n"
    "        \"{shop.key_path}\"\r\n"
    "    # turned off while debugging\r\n"
    "    SSLUseStapling off\r\n"
    "</VirtualHost>\r\n"
    "\r\n"
    "<VirtualHost 127.0.0.1:{port}>\r\n"
    "    ServerName nourl.test\r\n"
    "    Redirect 200 /\r\n"
    "    SSLEngine on\r\n"
    "    SSLCertificateFile {nourl.fullchain_path}\r\n"
    "    SSLCertificateKeyFile {nourl.key_path}\r\n"
    "</VirtualHost>\r\n"
)


@dataclass
class ApacheHost:
    """A running bench Apache with a Debian-shaped tree, and the role variables that point at it."""

    server: ApacheServer
    folder: Path
    variables: dict = field(default_factory=dict)


def debian_apache(bench: Bench, root: Path) -> ApacheHost:
    """Apache laid out as Debian ships it: mods-, conf- and sites-available with -enabled symlinks.

    socache_shmcb is available but not enabled, so the role has to enable it as a2enmod would;
    good.test sits in an <IfModule mod_ssl.c> wrapper, shop.test (stapling off by hand, a continued
    line, mixed-case directives) and nourl.test (no OCSP URL) share a CRLF file.
    """
    good, shop, nourl = site_leaves(bench)
    server = bench.apache([Site("good.test", good, stapling=False, default=True)])
    folder = server.folder
    for sub in ("mods-available", "mods-enabled", "conf-available", "conf-enabled", "sites-available", "sites-enabled", "htdocs"):
        (folder / sub).mkdir(exist_ok=True)
    modules = {"mpm_event": "mod_mpm_event.so", "alias": "mod_alias.so", "socache_shmcb": "mod_socache_shmcb.so", "ssl": "mod_ssl.so"}
    for name, library in modules.items():
        (folder / "mods-available" / (name + ".load")).write_text("LoadModule %s_module /usr/lib/apache2/modules/%s\n" % (name, library))
        if name != "socache_shmcb":
            (folder / "mods-enabled" / (name + ".load")).symlink_to("../mods-available/%s.load" % name)
    server.conf_path.write_text(APACHE_MAIN.format(folder=folder))
    (folder / "ports.conf").write_text(APACHE_PORTS.format(port=server.port))
    (folder / "sites-available" / "default-ssl.conf").write_text(APACHE_DEFAULT_SSL.format(port=server.port, folder=folder, good=good))
    (folder / "sites-available" / "shop.conf").write_bytes(APACHE_SHOP.format(port=server.port, shop=shop, nourl=nourl).encode())
    for name in ("default-ssl.conf", "shop.conf"):
        (folder / "sites-enabled" / name).symlink_to("../sites-available/" + name)
    server.start()
    variables = apache_variables(bench, server, root)
    variables.update({
        "ocsp_stapling_verify_port": server.port,
        "ocsp_stapling_verify_server_names": ["good.test", "shop.test"],
    })
    return ApacheHost(server=server, folder=folder, variables=variables)


def apache_variables(bench: Bench, server: ApacheServer, root: Path) -> dict:
    """The inventory variables of a host whose Apache is the bench's ``server``, with the run's state under ``root``."""
    apache2 = ["apache2", "-d", str(server.folder), "-f", str(server.conf_path)]
    return {
        "ansible_connection": "local",
        "ansible_host": "127.0.0.1",
        "ansible_python_interpreter": sys.executable,
        "apache_stapling_conf": str(server.conf_path),
        "apache_stapling_test_command": apache2 + ["-t"],
        "apache_stapling_reload_command": apache2 + ["-k", "graceful"],
        "apache_stapling_cache_spec": "shmcb:%s/run/ocsp-stapling(128000)" % server.folder,
        "apache_stapling_ca_bundles": [str(bench.pki.root_cert_path)],
        "apache_stapling_chain_dir": str(root / "chains"),
        "apache_stapling_backup_dir": str(root / "backups"),
        "apache_stapling_lock_path": str(root / "ocsp-stapling.lock"),
        "apache_stapling_verify_retry_budget": 15,
        # This machine has nginx installed too; the bench host is its Apache only.
        "enable_servers": ["apache"],
    }


def demo_hosts(bench: Bench, folder: Path) -> tuple:
    """(nginx, apache, inventory): the demo's two hosts, web1 a Debian-shaped nginx and web2 a Debian-shaped Apache,
    each in a folder of its own under ``folder``, and the inventory of both. The demo, the version matrix's main job
    and the installed-collection test run the main job on them."""
    for name in ("nginx", "apache"):
        (folder / name).mkdir()
    nginx = debian_nginx(bench, folder / "nginx")
    apache = debian_apache(bench, folder / "apache")
    inventory = write_inventory(folder / "inventory.yml", {"web1": nginx.variables, "web2": apache.variables})
    return nginx, apache, inventory
