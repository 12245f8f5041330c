#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nginx_stapling
short_description: Turn OCSP stapling on or off in the nginx server blocks of chosen certificates
version_added: 0.1.0
description:
  - Edits the nginx configuration in place, surgically, for every TLS site (C(server) block) that
    serves one of the certificates in O(chains) - ensuring C(ssl_stapling on;),
    C(ssl_stapling_verify on;), C(ssl_trusted_certificate <chain>;) and, where no C(resolver) is in
    scope, a C(resolver) (nginx needs one to reach the responder by name).
  - Stapling is also turned on in the C(default_server) of every listen socket that a chosen site
    uses, as the nginx documentation requires for stapling to work for that socket
    (O(default_servers)).
  - Comments, order, quoting, indentation and line endings are kept; C(include) globs are followed;
    a symlinked file (C(sites-enabled) -> C(sites-available)) is edited at its target and the link
    stays. A directive that is already there is updated in place, not duplicated.
  - "Every line added ends with C(# ocsp.stapling) and every line changed records its old value
    (C(# ocsp.stapling: was off)), so that O(state=absent) removes exactly what was added and puts
    back what was changed."
  - The change is a transaction - a per-host lock, a backup of every touched file, atomic writes that
    keep owner and mode, then the server's own test (O(test_command)). If the test fails, every file
    is restored byte for byte and the task fails with nginx's message. The module does not reload
    nginx; the role does that through a handler.
author:
  - ocsp.stapling maintainers (@ocsp-stapling)
extends_documentation_fragment:
  - ocsp.stapling.attributes.config_edit
  - ocsp.stapling.attributes.transaction
attributes:
  platform:
    support: full
    platforms: posix
    description: Needs only Python's standard library and nginx on the managed host.
options:
  conf_path:
    description: Main nginx configuration file (see RV(ocsp.stapling.server_info#module:conf_path)).
    type: path
    required: true
  chains:
    description:
      - Maps certificate paths (as in RV(ocsp.stapling.server_info#module:sites[].ssl_certificate)) to the
        full chain file (intermediates then root) that C(ssl_trusted_certificate) must name for them.
      - A site is chosen when one of its certificates is a key here. Sites whose certificate cannot be
        stapled (no OCSP URL) are simply left out of this mapping.
      - Not used with O(state=absent).
    type: dict
    default: {}
  resolver:
    description:
      - Addresses for the C(resolver) directive added where no resolver is in scope.
      - By default the C(nameserver) entries of C(/etc/resolv.conf). V([]) never adds a resolver.
    type: list
    elements: str
  default_servers:
    description: Also turn stapling on in the default server of every listen socket a chosen site uses.
    type: bool
    default: true
  test_command:
    description:
      - The command that validates the whole configuration after the edit and before anything is
        reloaded. Default C(<nginx_binary> -t -c <conf_path>).
    type: list
    elements: str
  nginx_binary:
    description: nginx binary for the default O(test_command).
    type: path
    default: nginx
"""

EXAMPLES = r"""
- name: Find the TLS sites
  ocsp.stapling.server_info:
  register: web

- name: Turn stapling on for the sites of one certificate
  ocsp.stapling.nginx_stapling:
    conf_path: "{{ web.conf_path }}"
    chains:
      /etc/ssl/certs/www.example.com.pem: /etc/ssl/ocsp-stapling/www.example.com.chain.pem
    # Written in the same transaction; the preflight filter gives the content (its chain_pem).
    chain_files:
      /etc/ssl/ocsp-stapling/www.example.com.chain.pem: "{{ www_preflight.chain_pem }}"
    backup_dir: /var/backups/ocsp-stapling
  notify: Reload nginx

- name: Take it all back out
  ocsp.stapling.nginx_stapling:
    conf_path: /etc/nginx/nginx.conf
    state: absent
"""

RETURN = r"""
chain_files:
  description: Chain files written (O(state=present)) or removed (O(state=absent)), or that would be in check mode.
  returned: always
  type: list
  elements: str
  sample: [/etc/ssl/ocsp-stapling/etc_ssl_example.com_fullchain.pem.4682ec5c6d55.chain.pem]
files:
  description: Files changed (or that would change in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/nginx/sites-available/default]
sites:
  description: Per touched site, what changed.
  returned: always
  type: list
  elements: dict
  sample:
    - path: /etc/nginx/sites-available/default
      line: 22
      server_names: [www.example.com]
      changes: ["add ssl_stapling on", "set ssl_stapling_verify on (was off)"]
outcomes:
  description:
    - The one outcome of every TLS site of the configuration in this run, in configuration order. Nothing is left out.
    - "With O(state=present): V(stapled) (this run turned stapling on; the roles then verify it), V(already) (stapling
      was configured as wanted), V(not applicable) (the site cannot be stapled: no certificate, a certificate path with
      variables, or the reason O(not_applicable) gives for its certificate) or V(not handled) (it could be stapled but
      this run did not, and RV(outcomes[].reason) says why and what to do)."
    - With O(state=absent), V(removed) or V(unchanged).
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: File of the site's block (symlinks resolved).
      type: str
    line:
      description: Line of the site's block.
      type: int
    index:
      description: Position of the site among all sites of the configuration.
      type: int
    server_names:
      description: The names of the site.
      type: list
      elements: str
    certificates:
      description: The certificate paths of the site.
      type: list
      elements: str
    outcome:
      description: V(stapled), V(already), V(not applicable), V(not handled), V(removed) or V(unchanged).
      type: str
      sample: not applicable
    reason:
      description: Why, in words a person can act on.
      type: str
      sample: "/etc/ssl/certs/www.pem: the certificate has no OCSP URL (Authority Information Access)"
restored:
  description: Files put back after a failed server test.
  returned: failure
  type: list
  elements: str
test_output:
  description: What the server test printed when it failed.
  returned: failure
  type: str
recovered:
  description:
    - The journal of an interrupted transaction that this run found and rolled back before planning (in check mode, what
      that rollback would do; nothing is changed).
  returned: when a run found such a journal
  type: dict
  contains:
    journal:
      description: The journal file; it is removed once the rollback is complete.
      returned: always
      type: str
      sample: /var/backups/ocsp-stapling/ocsp-stapling.journal
    paths:
      description: Paths put back, or removed where the interrupted run had created them (in check mode, that would be), last changed first.
      returned: always
      type: list
      elements: str
      sample: [/etc/nginx/sites-available/default, /etc/ssl/ocsp-stapling/site.chain.pem, /etc/ssl/ocsp-stapling]
    phase:
      description: How far the interrupted run got - V(applying) (changing files), V(testing) (all changed) or V(rolling-back).
      returned: always
      type: str
      sample: applying
    started:
      description: When the interrupted transaction started (local time of the host, ISO 8601).
      returned: always
      type: str
      sample: "2026-11-24T07:12:01+0000"
    pid:
      description: Process id of the interrupted run.
      returned: always
      type: int
    intent:
      description: What the interrupted run recorded about itself (C(module), C(state), and for Apache the C(links) it meant to create).
      returned: always
      type: dict
      sample: {module: nginx_stapling, state: present}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils._configtext import read_text
from ansible_collections.ocsp.stapling.plugins.module_utils._module_glue import TRANSACTION_OPTIONS, run_editing_module, safe_results
from ansible_collections.ocsp.stapling.plugins.module_utils._nginx import NginxDialect


def host_resolvers(path: str = "/etc/resolv.conf") -> list:
    """nameserver entries of resolv.conf; IPv6 ones bracketed as nginx wants them."""
    try:
        lines = read_text(path).splitlines()
    except OSError:
        return []
    servers = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            address = fields[1].split("%")[0]  # drop an IPv6 zone index, which nginx does not parse
            servers.append("[%s]" % address if ":" in address else address)
    return servers


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            TRANSACTION_OPTIONS,
            conf_path=dict(type="path", required=True),
            chains=dict(type="dict", default={}),
            resolver=dict(type="list", elements="str"),
            default_servers=dict(type="bool", default=True),
            test_command=dict(type="list", elements="str"),
            nginx_binary=dict(type="path", default="nginx"),
        ),
        supports_check_mode=True,
    )
    safe_results(module)  # odd bytes of a configuration file reach the result (diff, messages)
    params = module.params
    resolver = params["resolver"] if params["resolver"] is not None else host_resolvers()
    dialect = NginxDialect(params["conf_path"], resolver=resolver, default_servers=params["default_servers"])
    test_command = params["test_command"] or [params["nginx_binary"], "-t", "-c", params["conf_path"]]
    run_editing_module(module, dialect, params["chains"], test_command)


if __name__ == "__main__":
    main()
