#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: apache_stapling
short_description: Turn OCSP stapling on or off in the Apache virtual hosts of chosen certificates
version_added: 0.1.0
description:
  - Edits the Apache configuration in place, surgically, for every TLS site (C(<VirtualHost>) with
    C(SSLEngine on)) that serves one of the certificates in O(chains) - ensuring C(SSLUseStapling on),
    C(SSLStaplingResponderTimeout 5), C(SSLStaplingReturnResponderErrors off) and
    C(SSLCACertificateFile <chain>).
  - A site that verifies client certificates keeps its CA set; the result says how Apache finds the
    issuer there instead.
  - Ensures exactly one C(SSLStaplingCache) at server scope (outside every virtual host, where Apache
    allows it), in a file of its own (O(cache_path)), and creates the symlinks in O(links) (Debian's
    C(conf-enabled) entry, and C(mods-enabled) for C(socache_shmcb) when it is not loaded).
  - Comments, order, case, indentation and line endings are kept; C(Include) / C(IncludeOptional) globs
    are followed; a symlinked site is edited at its target. Apache allows no comment after a directive,
    so every line added or changed gets a C(# ocsp.stapling) comment line above it, which
    O(state=absent) uses to remove exactly what was added and restore what was changed.
  - The change is a transaction - a per-host lock, a backup of every touched file, atomic writes that
    keep owner, mode and SELinux context, then O(test_command). If the test fails, every file and link
    is put back byte for byte and the task fails with Apache's message. The module does not reload
    Apache; the role does, gracefully, through a handler.
author:
  - ocsp.stapling maintainers (@ocsp-stapling)
extends_documentation_fragment:
  - ocsp.stapling.attributes.config_edit
  - ocsp.stapling.attributes.transaction
attributes:
  platform:
    support: full
    platforms: posix
    description: Needs only Python's standard library and Apache httpd on the managed host.
options:
  conf_path:
    description: Main Apache configuration file (RV(ocsp.stapling.server_info#module:conf_path)).
    type: path
    required: true
  server_root:
    description: ServerRoot, for relative paths (RV(ocsp.stapling.server_info#module:server_root)); default the folder of O(conf_path).
    type: path
  env:
    description: Variables for C(${VAR}) in the configuration (RV(ocsp.stapling.server_info#module:env)).
    type: dict
    default: {}
  modules:
    description: Loaded modules, to judge C(<IfModule>) (RV(ocsp.stapling.server_info#module:modules)); null counts every C(<IfModule>) as true.
    type: list
    elements: str
  defines:
    description:
      - The names Apache is started with as C(-D NAME), to judge C(<IfDefine>) (RV(ocsp.stapling.server_info#module:defines)).
        O(test_command) must pass the same C(-D) flags, as the roles do.
    type: list
    elements: str
    default: []
  chains:
    description:
      - Maps certificate paths (RV(ocsp.stapling.server_info#module:sites[].ssl_certificate)) to the full chain
        file (intermediates then root) for C(SSLCACertificateFile). A site is chosen when one of its certificates is a key.
    type: dict
    default: {}
  cache_path:
    description:
      - The file that holds the server-scope C(SSLStaplingCache) when none is in effect yet, for example
        C(/etc/apache2/conf-available/ocsp-stapling.conf) (Debian) or C(/etc/httpd/conf.d/ocsp-stapling.conf) (RHEL).
    type: path
    required: true
  keep_cache:
    description:
      - With O(state=absent), leave the O(cache_path) file (and so the server-wide C(SSLStaplingCache)) in place.
      - Apache 2.4.71 (Debian 13, and Debian 12's security updates) uses a default stapling cache wherever
        C(socache_shmcb) is loaded, and a graceful or C(SIGHUP) restart that goes from an explicit C(SSLStaplingCache)
        to that default cannot allocate its shared memory and makes Apache exit (measured). Without C(SSLUseStapling) the
        directive does nothing, so the roles keep it. Set V(false) only for a full stop and start afterwards.
    type: bool
    default: false
  cache_spec:
    description: The C(SSLStaplingCache) value; the run folder differs per distribution.
    type: str
    default: shmcb:${APACHE_RUN_DIR}/ocsp-stapling(128000)
  links:
    description:
      - Symlinks that enable the O(cache_path) file and what it needs (link path -> target, as C(a2enconf) and
        C(a2enmod) make them), and to remove with O(state=absent) when they point at that target.
      - "With O(state=present) they are created only when the O(cache_path) file is the server's C(SSLStaplingCache)
        (written by this run or already there); not when the configuration has an C(SSLStaplingCache) of its own, nor
        when no site is stapled, so that no link points at a file that is never written."
    type: dict
    default: {}
  test_command:
    description: The command that validates the whole configuration after the edit and before any reload.
    type: list
    elements: str
    default: [apachectl, -t]
"""

EXAMPLES = r"""
- name: Find Apache and its TLS sites
  ocsp.stapling.server_info:
    server: apache
  register: web

- name: Turn stapling on for the sites of one certificate (Debian layout)
  ocsp.stapling.apache_stapling:
    conf_path: "{{ web.conf_path }}"
    server_root: "{{ web.server_root }}"
    env: "{{ web.env }}"
    modules: "{{ web.modules }}"
    chains:
      /etc/ssl/certs/www.example.com.pem: /etc/ssl/ocsp-stapling/www.example.com.chain.pem
    # Written in the same transaction; the preflight filter gives the content (its chain_pem).
    chain_files:
      /etc/ssl/ocsp-stapling/www.example.com.chain.pem: "{{ www_preflight.chain_pem }}"
    cache_path: /etc/apache2/conf-available/ocsp-stapling.conf
    links:
      /etc/apache2/conf-enabled/ocsp-stapling.conf: ../conf-available/ocsp-stapling.conf
  notify: Reload Apache
"""

RETURN = r"""
chain_files:
  description: Chain files written (O(state=present)) or removed (O(state=absent)), or that would be in check mode.
  returned: always
  type: list
  elements: str
  sample: [/etc/ssl/ocsp-stapling/etc_ssl_example.com_fullchain.pem.4682ec5c6d55.chain.pem]
files:
  description: Files changed, created or removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
links:
  description: Symlinks created or removed.
  returned: always
  type: list
  elements: str
sites:
  description: Per touched site (and for the cache), what changed or how the issuer is found.
  returned: always
  type: list
  elements: dict
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
  description: Paths put back after a failed server test.
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
      sample: [/etc/apache2/mods-enabled/socache_shmcb.load, /etc/apache2/conf-available/ocsp-stapling.conf]
    phase:
      description: How far the interrupted run got - V(applying) (changing files), V(testing) (all changed) or V(rolling-back).
      returned: always
      type: str
      sample: testing
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
      sample: {module: apache_stapling, state: present, links: {}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils._apache import ApacheDialect
from ansible_collections.ocsp.stapling.plugins.module_utils._module_glue import TRANSACTION_OPTIONS, run_editing_module, safe_results
from ansible_collections.ocsp.stapling.plugins.module_utils._platforms import runtime_env


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            TRANSACTION_OPTIONS,
            conf_path=dict(type="path", required=True),
            server_root=dict(type="path"),
            env=dict(type="dict", default={}),
            modules=dict(type="list", elements="str"),
            defines=dict(type="list", elements="str", default=[]),
            chains=dict(type="dict", default={}),
            cache_path=dict(type="path", required=True),
            keep_cache=dict(type="bool", default=False),
            cache_spec=dict(type="str", default="shmcb:${APACHE_RUN_DIR}/ocsp-stapling(128000)"),
            links=dict(type="dict", default={}),
            test_command=dict(type="list", elements="str", default=["apachectl", "-t"]),
        ),
        supports_check_mode=True,
    )
    safe_results(module)  # odd bytes of a configuration file reach the result (diff, messages)
    params = module.params
    dialect = ApacheDialect(params["conf_path"], cache_path=params["cache_path"], cache_spec=params["cache_spec"],
                            server_root=params["server_root"], env=params["env"], modules=params["modules"], defines=params["defines"],
                            keep_cache=params["keep_cache"], links=params["links"])
    # The server test is read-only too: it must work where Apache is not running (see runtime_env).
    with runtime_env(params["env"]) as env:
        run_editing_module(module, dialect, params["chains"], params["test_command"], env=env)


if __name__ == "__main__":
    main()
