# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter that shows the outcome of every TLS site, one line each, for the run's output."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def outcome_lines(outcomes):
    """``path:line name: outcome (reason)`` for each entry of an editing module's ``outcomes``."""
    try:
        lines = []
        for entry in outcomes:
            names = entry["server_names"][0] if entry["server_names"] else "(no name)"
            lines.append("%s:%s %s: %s (%s)" % (entry["path"], entry["line"], names, entry["outcome"], entry["reason"]))
        return lines
    except (KeyError, TypeError, IndexError) as exc:
        raise AnsibleFilterError("ocsp.stapling.outcome_lines expects the outcomes list of nginx_stapling or apache_stapling: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"outcome_lines": outcome_lines}
