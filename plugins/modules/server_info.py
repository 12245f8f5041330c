#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: server_info
short_description: Detect the web servers of a host and list their TLS sites
version_added: 0.1.0
description:
  - Finds nginx and Apache httpd on the managed host (RV(found)) and describes one of them
    (O(server)); its version from C(nginx -v) / C(apache2 -v) / C(httpd -v), its configuration from
    C(-V), and every TLS site with its file and line, server names, sockets, certificate paths,
    whether it verifies client certificates, and the stapling directives in effect.
  - Every site has the same keys whichever the server (RV(sites)); what only one server has is under
    RV(sites[].details).
  - "nginx: a site is a C(server) block with an C(ssl) listen (or the old C(ssl on)); C(include) globs are
    followed; the resolver in scope is reported."
  - "Apache: a site is a C(<VirtualHost>) with C(SSLEngine on); C(Include) / C(IncludeOptional) globs are
    followed, C(Define) and C(${VAR}) are expanded (with Debian's C(envvars)), C(<IfModule>) is judged
    against the loaded modules (C(-M)) and C(<IfDefine>) against the defines the service starts Apache with
    (RV(defines)); mod_macro's C(Use) lines are expanded as Apache does, so that virtual hosts made by macros
    are listed (at their C(Use) line, with RV(sites[].details.macro))."
  - Says whether the version supports OCSP stapling (nginx 1.3.7, Apache 2.3.3 or later); it does not
    fail on an old version, so that a play can report it; the roles refuse such hosts.
  - Needs only Python's standard library and the server's own binary on the managed host.
author:
  - ocsp.stapling maintainers (@ocsp-stapling)
extends_documentation_fragment:
  - ocsp.stapling.attributes.read_only
attributes:
  platform:
    support: full
    platforms: posix
    description: Linux and other POSIX hosts with nginx or Apache httpd.
options:
  server:
    description:
      - Which server to describe. V(auto) describes the first found of nginx and Apache; RV(found) lists all.
    type: str
    choices: [auto, nginx, apache]
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
  apache_binary:
    description:
      - Path of the Apache binary. By default C(apache2), then C(httpd), on the PATH and in C(/usr/sbin),
        C(/usr/local/sbin), C(/usr/local/apache2/bin) and C(/opt/apache2/bin).
    type: path
  apache_conf:
    description: Main Apache configuration file. By default the C(SERVER_CONFIG_FILE) that C(-V) reports.
    type: path
  apache_server_root:
    description: ServerRoot for relative paths. By default the C(HTTPD_ROOT) that C(-V) reports.
    type: path
  apache_env:
    description: Extra variables for C(${VAR}) in the Apache configuration, on top of Debian's C(envvars).
    type: dict
    default: {}
  apache_defines:
    description:
      - Names Apache is started with as C(-D NAME), for C(<IfDefine>), on top of those the service's own file gives
        (RV(defines)), for a service started in a way the collection does not know.
    type: list
    elements: str
    default: []
  server_names:
    description:
      - List only the TLS sites with one of these server names, and every other site that serves the
        same certificate (stapling is set per certificate). Empty lists every TLS site.
    type: list
    elements: str
    default: []
  cross_check:
    description:
      - Hold the sites read against the server's own listing on the host - every file C(nginx -T) says it read, every
        virtual host C(apache2 -S) lists (with the same defines and environment) - and warn of each difference
        (RV(cross_check)). A difference is a site the collection would not see, or one the server does not load.
    type: bool
    default: true
  read_certificates:
    description:
      - Also read the certificate file of every listed site (RV(certificates)) and the O(ca_bundles) (RV(bundles)),
        for the controller-side P(ocsp.stapling.preflight#filter) filter. Only certificates are returned,
        never a private key.
      - Only regular files of at most 16 MiB are read; a FIFO, socket or device, or a larger file, is refused
        unread (it gives an C(error) entry), so that the run neither waits on a file nor fills the host's memory.
    type: bool
    default: false
  ca_bundles:
    description:
      - PEM bundles on the host to search for the issuers of the site certificates, with O(read_certificates).
        Missing files are skipped.
      - The chain files the sites already name (RV(sites[].chain_file), from Apache C(SSLCertificateChainFile) or nginx
        C(ssl_trusted_certificate)) are searched first, so that a certificate file holding the leaf alone still gets its full chain.
      - Only the bundle certificates that can be in the chain of a site certificate are returned (those whose
        subject is the issuer of a site certificate, then their issuers, up to the roots), not the whole bundle.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Find the web server and its TLS sites
  ocsp.stapling.server_info:
  register: web

- name: List the TLS sites that do not staple yet
  ansible.builtin.debug:
    msg: "{{ web.sites | selectattr('stapling', 'eq', 'off') | map(attribute='server_names') | list }}"

- name: Read the site certificates and what the preflight needs of the CA bundle
  ocsp.stapling.server_info:
    read_certificates: true
    ca_bundles: [/etc/ssl/certs/ca-certificates.crt]
  register: web

- name: Judge every site certificate on the controller
  ansible.builtin.debug:
    msg: "{{ web.certificates.values() | map('ocsp.stapling.preflight', candidates=web.bundles) | map(attribute='reason') }}"

- name: Inspect a non-standard install
  ocsp.stapling.server_info:
    server: nginx
    nginx_binary: /opt/nginx/sbin/nginx
    nginx_conf: /opt/nginx/conf/nginx.conf
"""

RETURN = r"""
found:
  description: Every supported server found on the host, in the order nginx, apache.
  returned: always
  type: list
  elements: str
  sample: [nginx, apache]
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
  description: Whether the server can serve TLS (nginx built with it; Apache with mod_ssl loaded).
  returned: always
  type: bool
server_root:
  description: Apache's ServerRoot.
  returned: when RV(server) is apache
  type: str
  sample: /etc/apache2
layout:
  description:
    - Apache's layout, by the folders its package makes - V(debian) (conf-available, mods-available), V(suse) (conf.d, vhosts.d,
      sysconfig.d), V(gentoo) (modules.d, vhosts.d), V(freebsd) (Includes, extra), V(alpine) (conf.d, and the ServerRoot links
      run and modules), V(rhel) (conf.d), V(arch) (conf/extra) or V(plain).
  returned: when RV(server) is apache
  type: str
layout_root:
  description: The folder that holds the layout's folders (RV(server_root), or the folder of RV(conf_path) or the one above it).
  returned: when RV(server) is apache
  type: str
  sample: /etc/apache2
defines:
  description:
    - The names Apache is started with as C(-D NAME) - those of the service's own file (Debian C(APACHE_ARGUMENTS) in
      C(envvars), RHEL C(OPTIONS) in C(/etc/sysconfig/httpd), SUSE C(APACHE_SERVER_FLAGS) in C(/etc/sysconfig/apache2),
      Gentoo C(APACHE2_OPTS) in C(/etc/conf.d/apache2)), then O(apache_defines). They decide C(<IfDefine>) here, and the
      roles pass them to the editing module and to the server test.
  returned: when RV(server) is apache
  type: list
  elements: str
  sample: [SSL, SSL_DEFAULT_VHOST]
env:
  description: The variables used for C(${VAR}) in the Apache configuration.
  returned: when RV(server) is apache
  type: dict
modules:
  description: Apache's loaded modules, or null when C(-M) could not tell.
  returned: when RV(server) is apache
  type: list
  elements: str
stapling_cache:
  description: The C(SSLStaplingCache) values in effect at server scope.
  returned: when RV(server) is apache
  type: list
  elements: str
cross_check:
  description: What the server's own listing said against the collection's reading (O(cross_check)).
  returned: always
  type: dict
  contains:
    command:
      description: The command run (C(nginx -T ...), C(apache2 ... -S)), or null when O(cross_check=false).
      type: str
    differences:
      description: One sentence per difference, each also given as a warning; empty when both agree.
      type: list
      elements: str
site_count:
  description: How many sites (server blocks) the configuration has, TLS or not.
  returned: always
  type: int
sites:
  description:
    - Every TLS site, in configuration order, in one shape for every server, so that what reads it need not ask
      which server it came from. What only one server has is under RV(sites[].details).
  returned: always
  type: list
  elements: dict
  contains:
    server:
      description: The server of the site, V(nginx) or V(apache).
      type: str
      sample: nginx
    index:
      description: Position among all sites of the configuration (TLS or not).
      type: int
    path:
      description: File that holds the site (symlinks resolved).
      type: str
      sample: /etc/nginx/sites-available/default
    line:
      description: Line of its nginx C(server) directive or Apache C(<VirtualHost>).
      type: int
    server_names:
      description: The names the site answers to. nginx - its C(server_name) values; Apache - C(ServerName), then C(ServerAlias).
      type: list
      elements: str
    sockets:
      description:
        - Where the site accepts connections, one entry per nginx C(listen) or Apache C(<VirtualHost>) address.
        - C(address) is the host part as written (V(*), V([::]), V(192.0.2.1), V(_default_), V(unix:/path)); C(port) is null
          when none is given (a unix socket, Apache's V(*)); C(tls) says whether the socket serves TLS (nginx makes a socket TLS
          for every server block on it when one of them says C(ssl)); C(quic) marks an nginx HTTP/3 socket (UDP).
      type: list
      elements: dict
      sample: [{address: "*", port: 443, tls: true, quic: false}, {address: "[::]", port: 443, tls: true, quic: false}]
    ssl_certificate:
      description: Certificate paths in effect, absolute (nginx - a path with variables is kept as written).
      type: list
      elements: str
    ssl_certificate_key:
      description: Key paths in effect, absolute. Named only; no key is ever read.
      type: list
      elements: str
    chain_file:
      description: The chain file the site already names (nginx C(ssl_trusted_certificate), Apache C(SSLCertificateChainFile)), or null.
      type: str
    stapling:
      description:
        - V(on) when OCSP stapling is in effect for the site (nginx C(ssl_stapling), Apache C(SSLUseStapling); inherited values count).
        - V(off) when the directive in effect is written and says off; V(absent) when no scope writes it (the servers' default, off).
      type: str
      choices: ['on', 'off', 'absent']
    stapling_responder:
      description:
        - The OCSP responder URL the configuration names in place of the certificate's (nginx C(ssl_stapling_responder),
          Apache C(SSLStaplingForceURL)), or null. With one, a certificate without an OCSP URL can still be stapled.
      type: str
    verifies_clients:
      description:
        - Whether the site asks for client certificates (nginx C(ssl_verify_client) V(on), V(optional) or V(optional_no_ca) in the
          server block or its http block; Apache C(SSLVerifyClient) V(require), V(optional) or V(optional_no_ca) anywhere in the
          virtual host or the server). The trust set of such a site is never changed.
      type: bool
    uses_variables:
      description:
        - Whether a certificate path holds variables (nginx C($name)); such a path names no single file and cannot be checked
          beforehand. Always false for Apache, which expands C(${VAR}) when it reads the configuration.
      type: bool
    outcome:
      description: What became of the site; null, as no step judges the sites yet.
      type: str
    reason:
      description: Why, in words; null while RV(sites[].outcome) is.
      type: str
    details:
      description: What only this server has.
      type: dict
      contains:
        listens:
          description: nginx - every C(listen) of the site (C(address), C(port), C(ssl), C(default_server), C(quic), and C(raw), its arguments as written).
          type: list
          elements: dict
        ssl_trusted_certificate:
          description: nginx - the C(ssl_trusted_certificate) in effect, or null.
          type: str
        ssl_stapling_verify:
          description: nginx - whether C(ssl_stapling_verify) is on for the site.
          type: bool
        resolver:
          description: nginx - the resolver addresses in scope, or null.
          type: list
          elements: str
        addresses:
          description: Apache - the addresses of the C(<VirtualHost>), as written.
          type: list
          elements: str
        ports:
          description: Apache - the ports of those addresses.
          type: list
          elements: int
        ssl_ca_certificate_file:
          description: Apache - the C(SSLCACertificateFile) in effect, or null.
          type: str
        ssl_certificate_chain_file:
          description: Apache - the C(SSLCertificateChainFile) in effect, or null.
          type: str
        macro:
          description:
            - Apache - for a C(<VirtualHost>) that a mod_macro C(Use) makes, the macro (C(name)), its C(Use) line (C(path),
              C(line), also the site's RV(sites[].path) and RV(sites[].line)) and its definition (C(definition_path),
              C(definition_line)); null for one written in a file. The collection never edits a macro, whose text every
              C(Use) of it shares.
          type: dict
certificates:
  description:
    - With O(read_certificates), every certificate file of the listed sites (but those whose path holds variables),
      keyed by its path. Each holds its certificate blocks, or why the file cannot be used.
    - Only a regular file of at most 16 MiB is read. A FIFO, a socket, a device or a larger file gives an C(error)
      that names the file (and its size and the cap) and says what to do; it is not read.
    - Only the certificates of a file are returned. A file that holds a private key (or any other kind of PEM
      block) gives an C(error) naming the block, and none of its content. So does a C(CERTIFICATE) block whose base64
      does not decode or whose DER is not an X.509 certificate.
    - Each certificate is re-encoded from its DER (64 base64 characters a line between C(BEGIN CERTIFICATE) and
      C(END CERTIFICATE) lines), so that no other text of the file (PEM headers, comments, stray text) leaves the host.
  returned: when O(read_certificates) is true
  type: dict
  sample:
    /etc/ssl/example.com/fullchain.pem:
      source: /etc/ssl/example.com/fullchain.pem
      blocks: [[1, "-----BEGIN CERTIFICATE-----..."], [2, "-----BEGIN CERTIFICATE-----..."]]
bundles:
  description:
    - With O(read_certificates), the chain files the sites name, then every O(ca_bundles) file, those that exist, in order,
      with only the certificates that can be
      in the chain of a site certificate (block numbers are those of the file), or why the bundle cannot be used.
    - The rules of RV(certificates) apply, and a bundle is refused as a whole (C(error)) for the same reasons, among them
      a C(CERTIFICATE) block that holds no certificate; the preflight of every site then fails with that error, the verdict
      the whole file gives on the controller.
  returned: when O(read_certificates) is true
  type: list
  elements: dict
  sample:
    - source: /etc/ssl/certs/ca-certificates.crt
      blocks: [[87, "-----BEGIN CERTIFICATE-----..."]]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils._apache import ApacheConfig, ApacheConfigError
from ansible_collections.ocsp.stapling.plugins.module_utils._detect import (
    APACHE_BINARIES,
    APACHE_DIRS,
    MINIMUM_VERSIONS,
    NGINX_BINARIES,
    DetectError,
    meets_minimum,
    parse_apache_build,
    parse_apache_modules,
    parse_apache_version,
    parse_nginx_build,
    parse_nginx_version,
)
from ansible_collections.ocsp.stapling.plugins.module_utils._nginx import NginxConfig, NginxConfigError
from ansible_collections.ocsp.stapling.plugins.module_utils._configtext import read_text
from ansible_collections.ocsp.stapling.plugins.module_utils._crosscheck import (NGINX_READ_FILES, apache_virtual_hosts, differences, files_that_would_block,
                                                                                nginx_files)
from ansible_collections.ocsp.stapling.plugins.module_utils._dialect import walk
from ansible_collections.ocsp.stapling.plugins.module_utils._module_glue import cross_check, safe_results
from ansible_collections.ocsp.stapling.plugins.module_utils._pem import read_site_certificates
from ansible_collections.ocsp.stapling.plugins.module_utils._platforms import apache_layout_root, apache_start, runtime_env
from ansible_collections.ocsp.stapling.plugins.module_utils._sites import site_record


def find_binary(module: AnsibleModule, server: str) -> str | None:
    given = module.params["%s_binary" % server]
    if given:
        return given
    if server == "nginx":
        return module.get_bin_path("nginx", opt_dirs=sorted({path.rsplit("/", 1)[0] for path in NGINX_BINARIES}))
    for name in APACHE_BINARIES:
        found = module.get_bin_path(name, opt_dirs=list(APACHE_DIRS))
        if found:
            return found
    return None


def named_sites(sites: list, names: list) -> list:
    """The sites with one of ``names``, and every other site serving the same certificate."""
    wanted = set(names)
    if not wanted:
        return sites
    certificates = {path for site in sites if wanted.intersection(site["server_names"]) for path in site["ssl_certificate"]}
    return [site for site in sites if certificates.intersection(site["ssl_certificate"])]


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
    sites = [site_record(site, "nginx") for site in config.tls_sites()]
    named = [os.path.join(config.prefix, directive.args[0]) for config_file in config.files.values() for directive, dummy in walk(config_file.directives)
             if directive.name in NGINX_READ_FILES and directive.args and "$" not in directive.args[0]]
    checked = cross_check(module, [binary, "-T", "-c", conf_path], None, lambda dump: differences(
        set(config.files), nginx_files(dump), "the file", "nginx"), blocking=files_that_would_block(named))
    return {
        "server": "nginx",
        "version": version,
        "minimum_version": MINIMUM_VERSIONS["nginx"],
        "supported": meets_minimum("nginx", version),
        "binary": binary,
        "conf_path": conf_path,
        "ssl_module": build["ssl_module"],
        "site_count": len(config.sites()),
        "sites": named_sites(sites, module.params["server_names"]),
        "cross_check": checked,
    }


def apache_facts(module: AnsibleModule, binary: str) -> dict:
    rc, out, err = module.run_command([binary, "-v"])
    if rc != 0:
        module.fail_json(msg="%s -v failed (exit %d): %s" % (binary, rc, (err or out).strip()))
    version = parse_apache_version(out + err)
    build = parse_apache_build(module.run_command([binary, "-V"])[1])
    conf_path = module.params["apache_conf"] or build["conf_path"]
    if not conf_path:
        module.fail_json(msg="%s -V names no configuration file; set apache_conf" % binary)
    server_root = module.params["apache_server_root"] or build["server_root"] or os.path.dirname(conf_path)
    env, defines = apache_start(server_root, conf_path, module.params["apache_env"], module.params["apache_defines"], read_text)
    with runtime_env(env) as call_env:
        return _apache_facts(module, binary, version, build, conf_path, server_root, env, defines, call_env)


def _apache_facts(module, binary: str, version: str, build: dict, conf_path: str, server_root: str, env: dict, defines: list,
                  call_env: dict) -> dict:
    """server_info's result for Apache; ``call_env`` is ``env`` for the module's own apache2 calls (``runtime_env``)."""
    flags = [word for name in defines for word in ("-D", name)]
    rc, out, err = module.run_command([binary, "-d", server_root, "-f", conf_path] + flags + ["-M"], environ_update=call_env)
    # Without the list of loaded modules every <IfModule> counts as true, which errs towards listing sites.
    modules = parse_apache_modules(out) if rc == 0 else None
    config = ApacheConfig.load(conf_path, reader=read_text, server_root=server_root, env=env, defines=defines, modules=modules)
    # A ServerRoot directive in the configuration wins over the compiled-in one, as in Apache itself;
    # everything written later (the stapling cache file, the a2enconf-style links) goes under the layout's root.
    server_root = config.server_root
    layout, layout_root = apache_layout_root(server_root, conf_path)
    ours = {(os.path.realpath(site.path), site.line) for site in config.sites()}
    checked = cross_check(module, [binary, "-d", server_root, "-f", conf_path] + flags + ["-S"], call_env, lambda dump: differences(
        ours, apache_virtual_hosts(dump), "the virtual host at", "Apache"))
    return {
        "server": "apache",
        "version": version,
        "minimum_version": MINIMUM_VERSIONS["apache"],
        "supported": meets_minimum("apache", version),
        "binary": binary,
        "conf_path": conf_path,
        "server_root": server_root,
        "layout": layout,
        "layout_root": layout_root,
        "defines": defines,
        "env": env,
        "modules": sorted(modules) if modules is not None else None,
        "ssl_module": modules is None or "ssl_module" in modules,
        "stapling_cache": [" ".join(directive.args) for directive in config.server_directives("SSLStaplingCache")],
        "site_count": len(config.sites()),
        "sites": named_sites([site_record(site, "apache") for site in config.tls_sites()], module.params["server_names"]),
        "cross_check": checked,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            server=dict(type="str", choices=["auto", "nginx", "apache"], default="auto"),
            nginx_binary=dict(type="path"),
            nginx_conf=dict(type="path"),
            apache_binary=dict(type="path"),
            apache_conf=dict(type="path"),
            apache_server_root=dict(type="path"),
            apache_env=dict(type="dict", default={}),
            apache_defines=dict(type="list", elements="str", default=[]),
            server_names=dict(type="list", elements="str", default=[]),
            read_certificates=dict(type="bool", default=False),
            cross_check=dict(type="bool", default=True),
            ca_bundles=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    safe_results(module)  # odd bytes of a configuration file reach the result (diff, messages)
    wanted = ["nginx", "apache"] if module.params["server"] == "auto" else [module.params["server"]]
    binaries = {server: find_binary(module, server) for server in wanted}
    found = [server for server in wanted if binaries[server]]
    if not found:
        where = {"nginx": "nginx (%s)" % ", ".join(NGINX_BINARIES),
                 "apache": "Apache (%s on the PATH and in %s)" % (" / ".join(APACHE_BINARIES), ", ".join(APACHE_DIRS))}
        module.fail_json(msg="no supported web server found: looked for %s; set %s if it is elsewhere" % (
            " and ".join(where[server] for server in wanted), " or ".join("%s_binary" % server for server in wanted)))
    server = found[0]
    try:
        facts = nginx_facts(module, binaries[server]) if server == "nginx" else apache_facts(module, binaries[server])
    except (DetectError, NginxConfigError, ApacheConfigError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot read the %s configuration: %s" % (server, exc))
    if module.params["read_certificates"]:
        facts.update(read_site_certificates(facts["sites"], module.params["ca_bundles"]))
    module.exit_json(changed=False, found=found, **facts)


if __name__ == "__main__":
    main()
