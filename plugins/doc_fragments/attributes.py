# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The check-mode and diff-mode promises, stated once for each kind of module."""

    # Modules that edit server configuration in a transaction.
    CONFIG_EDIT = r"""
attributes:
  check_mode:
    support: full
    description: Reports what would change, with the diff, and writes nothing.
  diff_mode:
    support: full
    description: Before and after of every file that changes.
"""

    # Modules that only look.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: Nothing is changed either way, so check mode runs every check.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
"""
