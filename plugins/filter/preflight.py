# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that preflight a site certificate on the controller and name its chain file."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.module_utils import _chain, _crypto


def _pem_text(item, default_source: str) -> tuple:
    """(content, source) of PEM text, of a slurp result, or of an entry of server_info's certificates or bundles."""
    if isinstance(item, str):
        return item, default_source
    if isinstance(item, Mapping) and ("blocks" in item or "error" in item):
        # server_info read the file on the host and sent its certificate blocks, or why it could not.
        source = item.get("source") or default_source
        if item.get("error") is not None:
            return _chain.CertificateFileError(str(item["error"])), source
        try:
            blocks = [(int(number), str(block)) for number, block in item["blocks"]]
        except (TypeError, ValueError):
            raise AnsibleFilterError("ocsp.stapling.preflight: the blocks of %s must be [number, PEM block] pairs, as "
                                     "server_info returns them" % source) from None
        return blocks, source
    if not isinstance(item, Mapping) or not isinstance(item.get("content"), str):
        raise AnsibleFilterError("ocsp.stapling.preflight: %s must be PEM text or a mapping with a content string, such as "
                                 "a slurp result, or an entry of server_info's certificates or bundles" % default_source)
    source = item.get("source") or default_source
    content = item["content"]
    # slurp returns a file base64-encoded and says so: decoding here lets callers pass its result as it is.
    if item.get("encoding") == "base64":
        try:
            content = base64.b64decode(content, validate=True).decode("utf-8", errors="replace")
        except binascii.Error:
            raise AnsibleFilterError("ocsp.stapling.preflight: the content of %s is marked base64 but is not" % source) from None
    return content, source


def preflight(data, source=None, candidates=None, min_days=0):
    if not _crypto.HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError("ocsp.stapling.preflight needs the Python library cryptography on the controller:\n%s" % (
            _crypto.CRYPTOGRAPHY_IMPORT_ERROR,))
    try:
        min_days = int(min_days)
    except (TypeError, ValueError):
        raise AnsibleFilterError("ocsp.stapling.preflight: min_days must be a whole number of days, not %r" % (min_days,)) from None
    text, default_source = _pem_text(data, "the certificate")
    candidate_pems = [_pem_text(item, "candidate %d" % number) for number, item in enumerate(candidates or [], 1)]
    return _chain.preflight(text, source or default_source, candidate_pems, min_days=min_days)


def chain_file_name(path):
    try:
        return _chain.chain_file_name(path)
    except _chain.CertificateFileError as exc:
        raise AnsibleFilterError("ocsp.stapling.chain_file_name: %s" % exc) from None


def chain_file_path(path, chain_dir):
    try:
        return _chain.chain_file_path(path, chain_dir)
    except _chain.CertificateFileError as exc:
        raise AnsibleFilterError("ocsp.stapling.chain_file_path: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"preflight": preflight, "chain_file_name": chain_file_name, "chain_file_path": chain_file_path}
