# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn inventory variables into verify targets and verify results into a table."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.module_utils._verify import VerifyError, format_table, results_for, site_targets, targets_for


def verify_targets(endpoints, address, port=443):
    try:
        return targets_for(endpoints, address, int(port))
    except (VerifyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("ocsp.stapling.verify_targets: %s" % exc) from None


def verify_table(results):
    try:
        return format_table(results)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError("ocsp.stapling.verify_table expects the targets list that ocsp.stapling.verify returns: %s" % exc) from None


def verify_site_targets(sites, address, certificates=None, site_certificates=None):
    if site_certificates is not None and not isinstance(site_certificates, Mapping):
        raise AnsibleFilterError("ocsp.stapling.verify_site_targets: site_certificates must be the certificates mapping of ocsp.stapling.server_info "
                                 "(read_certificates: true), got %s" % type(site_certificates).__name__)
    try:
        return site_targets(sites, address, certificates, site_certificates)
    except KeyError as exc:
        # A sites list of an older server_info (nginx `listens`, Apache `ports`) has no `sockets`.
        raise AnsibleFilterError("ocsp.stapling.verify_site_targets expects the sites list of ocsp.stapling.server_info: a site has no key %s; "
                                 "run this collection's server_info to get it" % exc) from None
    except (AttributeError, TypeError) as exc:
        raise AnsibleFilterError("ocsp.stapling.verify_site_targets expects the sites list of ocsp.stapling.server_info: %s" % exc) from None


def verify_results_for(results, targets):
    try:
        return results_for(results, targets)
    except (VerifyError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("ocsp.stapling.verify_results_for expects the targets list of ocsp.stapling.verify and a list of targets: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"verify_targets": verify_targets, "verify_table": verify_table, "verify_site_targets": verify_site_targets,
                "verify_results_for": verify_results_for}
