# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: ca_bundles
version_added: 0.1.0
short_description: The CA bundle path of every distribution family the collection knows
description:
  - Lists where each distribution family keeps the PEM bundle of its trusted CAs, from the one table of the collection
    (Debian and Ubuntu, whose path Arch, Gentoo and Alpine share; the RHEL family; SUSE; Alpine's own; FreeBSD).
  - It is the default of C(nginx_stapling_ca_bundles) and C(apache_stapling_ca_bundles). The roles gather no facts, so they
    pass every path to M(ocsp.stapling.server_info), which skips the files that do not exist on the host.
  - Takes no terms. Use C(query) (or C(lookup) with C(wantlist=true)) to get a list.
author:
  - ocsp.stapling maintainers (@ocsp-stapling)
"""

EXAMPLES = r"""
- name: Search the distribution's CA bundle and a bundle of the organisation's own CAs
  ansible.builtin.set_fact:
    nginx_stapling_ca_bundles: "{{ query('ocsp.stapling.ca_bundles') + ['/etc/ssl/example-corp-cas.pem'] }}"
"""

RETURN = r"""
_list:
  description: Absolute paths of the CA bundles, one per family, Debian's first.
  type: list
  elements: str
  sample: [/etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/ca-bundle.pem, /etc/ssl/cert.pem,
           /usr/local/etc/ssl/cert.pem]
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.ocsp.stapling.plugins.module_utils import _platforms


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        # Terms would suggest a choice (by family, say) that the roles cannot make without facts.
        if terms or kwargs:
            raise AnsibleLookupError("ocsp.stapling.ca_bundles takes no terms or options: it lists the bundle of every family")
        return _platforms.ca_bundles()
