# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The chain files that stapling needs, written in the same transaction as the configuration edits.

The editing modules install them (or remove them) together with the server blocks that name
them, so that a failed server test puts both back, and so that a run that changes nothing costs
one module call instead of a copy per file. Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import os
import posixpath

from ._pem import CertificateFileError, pem_blocks
from ._trust import UntrustedPath, check_state_file, open_state_file, walk_folder

CHAIN_FILE_MODE = 0o644
CHAIN_FOLDER_MODE = 0o755
# A chain is a few certificates; a file far bigger than any chain at a chain path is not one of ours.
MAX_CHAIN_FILE_BYTES = 1 << 20
CHAIN_ADVICE = ("chain files must live in a folder that only root can write: fix the owner and mode of the folder (and remove what "
                "you did not put there), or choose another chain folder")


def trusted_chain_path(path: str) -> None:
    """Refuse a chain path that another local user could have planted or can still change (CertificateFileError says which part).

    A run as root overwrites and removes the file at that path, and shows its content in a diff: in
    a folder someone else can write, a symlink planted there would have it overwrite, show or remove
    any file of the host. So the folder and every folder and link on its way must be root's and not
    writable by others (see _trust), and the file itself, when there, a regular file of root's.
    """
    try:
        walk_folder(os.path.dirname(path), "the chain folder", CHAIN_ADVICE)
        check_state_file(path, "the chain file", CHAIN_ADVICE)
    except UntrustedPath as exc:
        raise CertificateFileError(str(exc)) from None


def _current(path: str) -> tuple:
    """(bytes, permission bits) of the chain file ``path`` (checked by trusted_chain_path), or (None, None) where no file is."""
    try:
        handle = open_state_file(path, "the chain file", CHAIN_ADVICE)
    except FileNotFoundError:
        return None, None
    except UntrustedPath as exc:
        raise CertificateFileError(str(exc)) from None
    with os.fdopen(handle, "rb") as stream:
        data = stream.read(MAX_CHAIN_FILE_BYTES + 1)
        return data, os.fstat(stream.fileno()).st_mode & 0o7777


def plan_chain_files(chain_files: dict, state: str = "present") -> dict:
    """What to do to each chain file: {path: new bytes, or None to remove it}; unchanged files are left out.

    ``chain_files`` maps absolute paths to PEM text (intermediates then root). With ``state``
    present a file is written when its content or mode (0644) differs; with absent every existing
    one is removed (the texts are not used). A text that is not only certificates (a private key
    above all) is refused before anything is written: a chain file is world-readable.
    """
    changes = {}
    for path, text in sorted(chain_files.items()):
        if not isinstance(path, str) or not posixpath.isabs(path) or posixpath.normpath(path) != path:
            raise CertificateFileError("chain file path %r is not absolute and normal (no .., no double slashes): give the full path" % (path,))
        trusted_chain_path(path)
        if state == "absent":
            if os.path.lexists(path):
                changes[path] = None
            continue
        if not isinstance(text, str) or not pem_blocks(text, path):
            raise CertificateFileError("%s: the chain file content holds no PEM certificate: give the chain_pem of the preflight" % path)
        data = text.encode("utf-8")
        current, mode = _current(path)
        if current != data or mode != CHAIN_FILE_MODE:
            changes[path] = data
    return changes


def chain_file_diffs(changes: dict) -> list:
    """Diff entries (as Ansible shows them) for the chain files about to change."""
    diffs = []
    for path, data in sorted(changes.items()):
        current, _mode = _current(path)
        diffs.append(dict(before_header=path, after_header=path,
                          before=current.decode("utf-8", errors="replace") if current is not None else "",
                          after=data.decode("utf-8") if data is not None else ""))
    return diffs


def apply_chain_files(transaction, changes: dict) -> None:
    """Make ``changes`` inside ``transaction`` (a _txn.FileTransaction), so that a rollback undoes them."""
    for path, data in sorted(changes.items()):
        if data is None:
            transaction.remove(path)
        else:
            transaction.makedirs(os.path.dirname(path), CHAIN_FOLDER_MODE)
            transaction.write(path, data, mode=CHAIN_FILE_MODE)
