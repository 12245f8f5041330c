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

    # What both editing modules share: the chain files, the state, the host lock and the journaled transaction.
    TRANSACTION = r"""
options:
  chain_files:
    description:
      - Maps chain file paths (the values of O(chains)) to their content, the full chain as PEM (intermediates then
        root, the RV(ocsp.stapling.preflight#filter:_value.chain_pem) of the preflight).
      - "With O(state=present) each file whose content or mode differs is written in the same transaction as the
        configuration edits: atomically, mode C(0644), its folder created (mode C(0755)) when missing. If the server
        test fails, the chain files are put back byte for byte (or removed, with the folders created) like every
        other file. Content that is not only certificates (a private key above all) is refused."
      - With O(state=absent) every listed file that exists is removed, in the same transaction; the contents are
        not used.
    type: dict
    default: {}
  not_applicable:
    description:
      - "Maps certificate paths to why they cannot be stapled (the RV(ocsp.stapling.preflight#filter:_value.reason) of
        the preflight, such as no OCSP URL, issuer not found or expired). Used only for RV(outcomes), which then gives
        that reason for every site of such a certificate instead of V(not handled)."
    type: dict
    default: {}
  dead_configuration:
    description:
      - "Maps certificate paths that can never be stapled (no OCSP URL, self-signed: the certificates whose preflight
        RV(ocsp.stapling.preflight#filter:_value.can_never_staple) is true) to why. With O(state=present), every TLS
        site that has stapling on and serves only such certificates gets it turned off (nginx C(ssl_stapling off),
        Apache C(SSLUseStapling off)): dead configuration, which makes nginx warn that C(ssl_stapling) is ignored on every
        reload and Apache log an error on every start. Only that flag changes, never what a site trusts; the change is
        made, tested and rolled back like every other edit and marked, so O(state=absent) takes it back."
      - "A site keeps stapling on, with the reason in RV(outcomes), when its configuration names its own responder
        (nginx C(ssl_stapling_responder), Apache C(SSLStaplingForceURL)), when the line is shared with a site that
        keeps it, or when it is the text of an Apache macro."
      - Empty (the default) leaves dead configuration as it is.
    type: dict
    default: {}
  state:
    description: V(present) turns stapling on; V(absent) removes what this module added and restores what it changed.
    type: str
    choices: [present, absent]
    default: present
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
  - "The transaction is crash safe: before each change it durably records in a journal what was at the path (a backup of
    the file with its mode and owner, a symlink's target, or nothing), and removes the journal when the server test has
    passed or the rollback is complete. Files are replaced by a rename and links created in one call, so nothing is ever
    half written."
  - "A run that was killed mid-transaction (SIGKILL, out of memory, power cut) leaves its journal. The next run of
    M(ocsp.stapling.nginx_stapling) or M(ocsp.stapling.apache_stapling) finds it, under the host lock and before planning,
    and rolls the interrupted transaction back - every path it recorded to its state before that transaction, the files,
    links and folders it created removed - then plans from that state, so that the run converges. The result reports it
    (RV(recovered)) with a warning. The interrupted change is rolled back even when its server test had passed: it was
    never reloaded."
  - "In check mode the rollback is only reported (RV(recovered)), and the changes shown are against the files as the
    interrupted run left them. A journal that cannot be read, or that lies where another local user could have put it,
    fails the task, naming the journal and what to do."
  - Both editing modules run the same lifecycle (lock, rollback of an interrupted run, plan, diff, transaction, server
    test); only reading and planning differ per server.
  - The environment variable C(OCSP_STAPLING_TEST_KILL_AT) is a test hook of the crash tests (the process kills itself at
    the named step of the transaction); it does nothing unless set, and must not be set outside those tests.
"""
