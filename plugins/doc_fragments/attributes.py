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

    # The options of the host lock and the journaled transaction that both editing modules share.
    TRANSACTION = r"""
options:
  lock_path:
    description:
      - Lock file that serialises configuration changes on the host.
      - "It is opened without following a symlink, and used only when it is a regular file owned by root that no other
        user can write. Its folder is created root-only (mode C(0700)) when missing; an existing folder must pass the
        same checks as O(backup_dir), except that a shared folder with the sticky bit (C(/run/lock), C(/tmp)) is
        accepted, since the file itself is checked. A lock file that another user made stops the run at once, naming
        its owner."
      - "Without O(backup_dir), the journal lives in the folder C(<lock_path>.journal), which must pass the checks of
        O(backup_dir)."
    type: path
    default: /run/ocsp-stapling/lock
  lock_timeout:
    description:
      - Seconds to wait for another run that holds the lock. When they are spent, the task fails naming the process
        that holds the lock (its pid, user and command, from C(/proc/locks)).
    type: float
    default: 60
  backup_dir:
    description:
      - Folder that receives a copy of every file before it is changed, under a time-stamped
        folder mirroring its path. Never beside the file, where an include glob would load it.
      - It also holds the journal of the transaction in progress (C(ocsp-stapling.journal)), so it should survive a
        reboot (the roles' default, C(/var/backups/ocsp-stapling), does).
      - Without it the copies and the journal are kept in the folder C(<lock_path>.journal) while the transaction runs
        and removed when it ends; with O(lock_path) on a tmpfs (C(/run)) a power cut then loses them, a killed run does not.
      - "Its copies are readable by root alone: folders mode C(0700), files mode C(0600), whatever the mode of the
        original."
      - "It is trusted only where no other local user can have planted or changed it: it, and every folder and symlink
        on its way from C(/), must be owned by root and not writable by group or others (a shared folder with the
        sticky bit, such as C(/tmp), is accepted on the way, never as the folder itself); otherwise the task fails
        naming the path, before anything is read or changed. A missing folder is created root-only."
    type: path
notes:
  - The environment variable C(OCSP_STAPLING_TEST_KILL_AT) is a test hook of the crash tests (the process kills itself at
    the named step of the transaction); it does nothing unless set, and must not be set outside those tests.
"""
