#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: server_info
short_description: Detect the web server of a host and list its TLS sites
version_added: 0.1.0
description:
  - Finds nginx on the managed host, reads its version from C(nginx -v) and its configuration path
    from C(nginx -V), and lists every TLS site (one C(server) block with an C(ssl) listen, or the old
    C(ssl on)) with its file and line, server names, listen sockets, certificate paths, and the
    stapling directives and resolver in effect. C(include) directives and their globs are followed.
  - Says whether the version supports OCSP stapling (nginx 1.3.7 or later); it does not fail on an old
    version, so that a play can report it; the P(ocsp.stapling.nginx#role) role refuses such hosts.
  - Needs only Python's standard library and the server's own binary on the managed host.
author:
  - ocsp.stapling maintainers (@ocsp-stapling)
attributes:
  check_mode:
    support: full
    description: Reads only, so it runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing.
  platform:
    support: full
    platforms: posix
    description: Linux and other POSIX hosts with nginx.
options:
  server:
    description:
      - Which server to look for. V(auto) looks for nginx (Apache support is planned).
    type: str
    choices: [auto, nginx]
    default: auto
  nginx_binary:
    description:
      - Path of the nginx binary. By default it is searched on the PATH and in C(/usr/sbin),
        C(/usr/local/sbin), C(/usr/local/nginx/sbin) and C(/opt/nginx/sbin).
    type: path
  nginx_conf:
    description:
      - Main configuration file. By default the C(--conf-path) that C(nginx -V) reports.
    type: path
  server_names:
    description:
      - List only the TLS sites with one of these server names, and every other site that serves the
        same certificate (stapling is set per certificate). Empty lists every TLS site.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Find the web server and its TLS sites
  ocsp.stapling.server_info:
  register: web

- name: List the TLS sites that do not staple yet
  ansible.builtin.debug:
    msg: "{{ web.sites | rejectattr('ssl_stapling') | map(attribute='server_names') | list }}"

- name: Inspect a non-standard install
  ocsp.stapling.server_info:
    server: nginx
    nginx_binary: /opt/nginx/sbin/nginx
    nginx_conf: /opt/nginx/conf/nginx.conf
"""

RETURN = r"""
server:
  description: The server found.
  returned: always
  type: str
  sample: nginx
version:
  description: Its version.
  returned: always
  type: str
  sample: 1.22.1
minimum_version:
  description: The first version that supports OCSP stapling.
  returned: always
  type: str
  sample: 1.3.7
supported:
  description: Whether RV(version) is at least RV(minimum_version).
  returned: always
  type: bool
binary:
  description: The server binary used.
  returned: always
  type: str
  sample: /usr/sbin/nginx
conf_path:
  description: The main configuration file read.
  returned: always
  type: str
  sample: /etc/nginx/nginx.conf
ssl_module:
  description: Whether the binary was built with TLS support.
  returned: always
  type: bool
site_count:
  description: How many sites (server blocks) the configuration has, TLS or not.
  returned: always
  type: int
sites:
  description: Every TLS site, in configuration order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: File that holds the site (symlinks resolved).
      type: str
    line:
      description: Line of its C(server) directive.
      type: int
    index:
      description: Position among all sites of the configuration.
      type: int
    server_names:
      description: Its C(server_name) values.
      type: list
      elements: str
    listens:
      description: Its listen sockets (C(address), C(port), C(ssl), C(default_server), C(raw)).
      type: list
      elements: dict
    ssl_certificate:
      description: Certificate paths, absolute.
      type: list
      elements: str
    ssl_certificate_key:
      description: Key paths, absolute.
      type: list
      elements: str
    ssl_trusted_certificate:
      description: The trusted certificate file in effect, if any.
      type: str
    ssl_stapling:
      description: Whether C(ssl_stapling) is on for the site (inherited values count).
      type: bool
    ssl_stapling_verify:
      description: Whether C(ssl_stapling_verify) is on for the site.
      type: bool
    resolver:
      description: The resolver addresses in scope, or null.
      type: list
      elements: str
    uses_variables:
      description: Whether the certificate path holds variables (then it cannot be checked beforehand).
      type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils._detect import (
    MINIMUM_VERSIONS,
    NGINX_BINARIES,
    DetectError,
    meets_minimum,
    parse_nginx_build,
    parse_nginx_version,
)
from ansible_collections.ocsp.stapling.plugins.module_utils._nginx import NginxConfig, NginxConfigError
from ansible_collections.ocsp.stapling.plugins.module_utils._txn import read_text


def find_nginx(module: AnsibleModule) -> str | None:
    if module.params["nginx_binary"]:
        return module.params["nginx_binary"]
    found = module.get_bin_path("nginx", opt_dirs=sorted({path.rsplit("/", 1)[0] for path in NGINX_BINARIES}))
    return found


def nginx_facts(module: AnsibleModule, binary: str) -> dict:
    # nginx prints its version and build to stderr.
    rc, out, err = module.run_command([binary, "-v"])
    if rc != 0:
        module.fail_json(msg="%s -v failed (exit %d): %s" % (binary, rc, (err or out).strip()))
    version = parse_nginx_version(err + out)
    rc, out, err = module.run_command([binary, "-V"])
    build = parse_nginx_build(err + out) if rc == 0 else parse_nginx_build("")
    conf_path = module.params["nginx_conf"] or build["conf_path"]
    config = NginxConfig.load(conf_path, reader=read_text)
    sites = [site.as_dict() for site in config.tls_sites()]
    wanted = set(module.params["server_names"])
    if wanted:
        certificates = {path for site in sites if wanted.intersection(site["server_names"]) for path in site["ssl_certificate"]}
        sites = [site for site in sites if certificates.intersection(site["ssl_certificate"])]
    return {
        "server": "nginx",
        "version": version,
        "minimum_version": MINIMUM_VERSIONS["nginx"],
        "supported": meets_minimum("nginx", version),
        "binary": binary,
        "conf_path": conf_path,
        "ssl_module": build["ssl_module"],
        "site_count": len(config.sites()),
        "sites": sites,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            server=dict(type="str", choices=["auto", "nginx"], default="auto"),
            nginx_binary=dict(type="path"),
            nginx_conf=dict(type="path"),
            server_names=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    binary = find_nginx(module)
    if not binary:
        module.fail_json(msg="no supported web server found: nginx is not on the PATH nor in %s; set nginx_binary if it is elsewhere" % (
            ", ".join(NGINX_BINARIES)))
    try:
        facts = nginx_facts(module, binary)
    except (DetectError, NginxConfigError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot read the nginx configuration: %s" % exc)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
