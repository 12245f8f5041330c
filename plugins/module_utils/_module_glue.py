# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules need between AnsibleModule and the plain-Python core, written once.

The core (``_lifecycle``, the dialects) never imports Ansible; the modules hand it Ansible's
atomic_move and run_command through these helpers, and make every result valid UTF-8 here. This
file imports nothing from Ansible either: it receives the module object.
"""

from __future__ import annotations

import errno
import os

from ._configtext import printable
from ._lifecycle import EditFailed, Transaction, run_edit
from ._txn import DEFAULT_LOCK_PATH, staging_writer

# The options of both editing modules that drive the transaction (documented once, in the
# ocsp.stapling.attributes.transaction doc fragment).
TRANSACTION_OPTIONS = dict(
    chain_files=dict(type="dict", default={}),
    not_applicable=dict(type="dict", default={}),
    dead_configuration=dict(type="dict", default={}),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    lock_path=dict(type="path", default=DEFAULT_LOCK_PATH),
    lock_timeout=dict(type="float", default=60),
    backup_dir=dict(type="path"),
)


def json_safe(value):
    """``value`` (dicts, lists and strings of a module result) with every string :func:`printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return dict((json_safe(key), json_safe(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def safe_results(module) -> None:
    """Make ``module``'s exit_json and fail_json pass only valid UTF-8 (see ``_configtext.printable``)."""
    exit_json, fail_json = module.exit_json, module.fail_json

    def safe_exit(**result):
        exit_json(**json_safe(result))

    def safe_fail(msg, **result):
        fail_json(msg=printable(msg), **json_safe(result))

    module.exit_json = safe_exit
    module.fail_json = safe_fail


def move_or_oserror(move):
    """``move(staged, path)`` whose every failure is an OSError naming what to do.

    AnsibleModule.atomic_move raises a bare Exception when it cannot replace a file (an immutable
    file, a read-only mount: what stops root): the transaction turns only an OSError into "could not
    change <file> (...); everything was put back", anything else became a traceback."""
    def guarded(staged: str, path: str) -> None:
        try:
            move(staged, path)
        except OSError:
            raise
        except Exception as exc:
            cause = exc.__cause__
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
            raise OSError(errno.EPERM, "%s: it cannot be replaced; make it writable (lsattr shows an immutable flag: chattr -i; "
                                       "a read-only mount: remount it read-write) and run again" % reason, path) from None
    return guarded


def run_editing_module(module, dialect, chains: dict, test_command: list, env: dict | None = None) -> None:
    """Run the editing lifecycle for ``dialect`` with the module's transaction options, and exit the module with its result."""
    params = module.params

    def test() -> tuple:
        rc, out, err = module.run_command(test_command, environ_update=env or None)
        return rc == 0, (err + out).strip()

    transaction = Transaction(lock_path=params["lock_path"], lock_timeout=params["lock_timeout"], backup_dir=params["backup_dir"],
                              test=test, test_name=" ".join(test_command), writer=staging_writer(move_or_oserror(module.atomic_move)),
                              check=module.check_mode, warn=module.warn)
    try:
        result = run_edit(dialect, params["state"], chains, params["chain_files"], transaction, not_applicable=params["not_applicable"],
                          dead=params["dead_configuration"])
    except EditFailed as exc:
        module.fail_json(msg=str(exc), **exc.result)
    module.exit_json(**result)


def cross_check(module, argv: list, env: dict | None, compare, blocking: list | None = None, timeout: float = 60) -> dict:
    """The server's own listing (``nginx -T``, ``apache2 -S``: ``argv``) held against the collection's reading
    (``compare(output) -> [sentence]``, see ``_crosscheck``); each difference is warned. Off with the module's cross_check
    option. Not run when ``blocking`` names files the server would wait on (a FIFO where a certificate belongs), and
    stopped after ``timeout`` seconds: a read-only look must never hang the run."""
    if not module.params["cross_check"]:
        return {"command": None, "differences": []}
    if blocking:
        found = ["the sites were not checked against the server's own list: %s would wait on %s, which %s not a regular file" % (
            os.path.basename(argv[0]), ", ".join(blocking), "is" if len(blocking) == 1 else "are")]
    else:
        # Through the module's run_command (ansible-core 2.21 allows no other way to run a command from module code), under
        # coreutils' timeout where there is one: exit 124 (or 137 after the KILL) means it did not finish.
        timer = module.get_bin_path("timeout")
        command = ([timer, "--kill-after=5", "%d" % timeout] if timer else []) + list(argv)
        try:
            rc, out, err = module.run_command(command, environ_update=env or None, handle_exceptions=False, errors="surrogate_or_replace")
        except OSError as exc:
            found = ["%s could not be run (%s), so the sites could not be checked against the server's own list" % (
                " ".join(argv), exc.strerror or exc)]
        else:
            if timer and rc in (124, 137):
                found = ["%s did not finish within %d s, so the sites could not be checked against the server's own list" % (
                    " ".join(argv), timeout)]
            elif rc != 0:
                found = ["%s failed (exit %d), so the sites could not be checked against the server's own list: %s" % (
                    " ".join(argv), rc, (err or out).strip()[:500])]
            else:
                found = compare(out)
    for sentence in found:
        module.warn(sentence)
    return {"command": " ".join(argv), "differences": found}
