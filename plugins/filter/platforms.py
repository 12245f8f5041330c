# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter that reads the per-layout table of Apache facts (module_utils/_platforms)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.module_utils import _platforms


def apache_layout(info):
    if not isinstance(info, Mapping) or "layout" not in info or "server_root" not in info:
        raise AnsibleFilterError("ocsp.stapling.apache_layout: give the result of ocsp.stapling.server_info for Apache "
                                 "(a mapping with layout and server_root)")
    try:
        # Older results have no layout_root: their layouts (Debian, RHEL) keep their folders in the ServerRoot.
        return _platforms.apache_layout(info["layout"], info.get("layout_root") or info["server_root"])
    except _platforms.PlatformError as exc:
        raise AnsibleFilterError("ocsp.stapling.apache_layout: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"apache_layout": apache_layout}
