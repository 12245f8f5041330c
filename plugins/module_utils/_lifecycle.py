# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One editing lifecycle for every server: what nginx_stapling and apache_stapling both do, once.

    lock -> roll back an interrupted run -> read and plan (the dialect) -> diff -> check-mode exit
         -> chain files + edits + links in one journaled transaction -> the server's own test
         -> commit, or put every byte back -> the result

A dialect (``_dialect.Dialect``: nginx, Apache) supplies only what differs: how to read its
configuration and what to change in it. Everything else - the order of the steps, the result's
keys, the errors - is here, so that a fix lands once. No Ansible imports: the modules pass in the
writer (Ansible's atomic_move), the server test (run_command) and the warning callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ._chainfiles import apply_chain_files, chain_file_diffs, plan_chain_files
from ._configtext import ConfigError, text_bytes
from ._pem import CertificateFileError
from ._txn import ChangeRefused, RecoveringLock, TransactionError, apply_and_test


class EditFailed(Exception):
    """The run stopped; ``result`` is what the module returns with the failure (what was planned, restored, recovered).

    ``error`` is the domain error that stopped it (a ConfigError with its file and line, a ChangeRefused, ...).
    """

    def __init__(self, error: Exception, result: dict) -> None:
        super().__init__(str(error))
        self.error = error
        self.result = result


@dataclass
class Transaction:
    """How the lifecycle keeps state on the host and asks the server: the options both editing modules share."""

    lock_path: str
    lock_timeout: float
    backup_dir: str | None
    # test() -> (passed, output); test_name is what messages call it ("nginx -t -c /etc/nginx/nginx.conf").
    test: Callable[[], tuple]
    test_name: str
    writer: Callable
    check: bool = False
    warn: Callable[[str], None] | None = None


def run_edit(dialect, state: str, chains: dict, chain_files: dict, transaction: Transaction, not_applicable: dict | None = None,
             dead: dict | None = None) -> dict:
    """Run the whole lifecycle for ``dialect`` (a ``_dialect.Dialect``); returns the module's result, or raises EditFailed with it.

    ``chains`` maps certificate paths to the chain file their sites must name; ``chain_files`` maps
    chain files to their content (present) or names those to remove (absent); ``not_applicable`` maps
    certificate paths to why they cannot be stapled, for the outcomes, and ``dead`` those that never can be,
    whose stapling is turned off where it is on (dead configuration). The configuration is read and
    planned under the lock, after the rollback of an interrupted run.
    """
    session = RecoveringLock(transaction.lock_path, transaction.backup_dir, transaction.writer, check=transaction.check,
                             warn=transaction.warn, lock_timeout=transaction.lock_timeout)
    result = {}
    try:
        with session:
            recovered = session.recovered
            config = dialect.load()
            edits, sites, outcomes = dialect.plan(config, chains, state, not_applicable, dead)
            links = dialect.links(recovered, state)
            chain_changes = plan_chain_files(chain_files, state)
            result = dict(
                changed=bool(edits or links or chain_changes or (recovered and recovered["paths"])),
                files=sorted(edits),
                chain_files=sorted(chain_changes),
                sites=sites,
                outcomes=outcomes,
                diff=chain_file_diffs(chain_changes) + [
                    dict(before_header=path, after_header=path, before=dialect.before(config, path), after=text if text is not None else "")
                    for path, text in sorted(edits.items())],
            )
            if links is not None:
                result["links"] = sorted(links)
            if recovered:
                result["recovered"] = recovered
            if not result["changed"] or transaction.check:
                return result

            def apply(files) -> None:
                # On: the chain files first, so that no configuration names a file not there yet. Off: them last.
                if state == "present":
                    apply_chain_files(files, chain_changes)
                for path, text in edits.items():
                    if text is None:
                        files.remove(path)
                    else:
                        files.write(path, text_bytes(text))
                for path, target in sorted((links or {}).items()):
                    if state == "present":
                        files.link(path, target)
                    else:
                        files.unlink(path)
                if state == "absent":
                    apply_chain_files(files, chain_changes)

            journal = session.journal(dict(dialect.intent(recovered, state), module=dialect.module, state=state))
            apply_and_test(apply, transaction.test, transaction.test_name, writer=transaction.writer, journal=journal)
    except ChangeRefused as exc:
        raise EditFailed(exc, dict(result, restored=exc.restored, test_output=exc.test_output)) from None
    except (ConfigError, TransactionError, CertificateFileError) as exc:
        raise EditFailed(exc, dict(recovered=session.recovered) if session.recovered else {}) from None
    return result
