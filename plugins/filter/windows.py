# -*- coding: utf-8 -*-
# Copyright: contributors to the ocsp.stapling collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that read a Windows host's HTTP.sys bindings and plan OCSP stapling there, on the controller."""

from __future__ import annotations

import json
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.module_utils import _windows


def _text(data, name: str) -> str:
    """The output of a command, or of a mapping with stdout such as a win_command result."""
    if isinstance(data, Mapping) and isinstance(data.get("stdout"), str):
        return data["stdout"]
    if isinstance(data, str):
        return data
    raise AnsibleFilterError("ocsp.stapling.%s: expected the output of netsh http show sslcert as text or a command result "
                             "with stdout" % name)


def windows_sslcert(data):
    try:
        return _windows.parse_sslcert(_text(data, "windows_sslcert"))
    except _windows.WindowsParseError as exc:
        raise AnsibleFilterError("ocsp.stapling.windows_sslcert: %s" % exc) from None


def windows_gate(facts):
    try:
        return _windows.version_gate(dict(facts) if isinstance(facts, Mapping) else facts)
    except _windows.WindowsParseError as exc:
        raise AnsibleFilterError("ocsp.stapling.windows_gate: %s" % exc) from None


def _iis(data):
    """IIS bindings as a list: ConvertTo-Json text is decoded, and its lone object (one binding) wrapped."""
    if isinstance(data, Mapping) and isinstance(data.get("stdout"), str):
        data = data["stdout"]
    if isinstance(data, str):
        if not data.strip():
            return None
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise AnsibleFilterError("ocsp.stapling.windows_plan: iis_bindings is text but not JSON (%s); pass the output of "
                                     "Get-WebBinding ... | ConvertTo-Json" % exc) from None
    if isinstance(data, Mapping):
        return [dict(data)]
    if data is None or isinstance(data, list):
        return [dict(item) if isinstance(item, Mapping) else item for item in data or []]
    raise AnsibleFilterError("ocsp.stapling.windows_plan: iis_bindings must be a list of bindings, JSON text or null")


def _labels(drop_flags):
    """The drop list as plain strings (Ansible hands lists over as its own sequence types)."""
    if drop_flags is None or isinstance(drop_flags, str):
        return drop_flags
    try:
        return [str(label) for label in drop_flags]
    except TypeError:
        return drop_flags


def windows_plan(gate, bindings, iis_bindings=None, drop_flags=None):
    if not isinstance(bindings, list):
        raise AnsibleFilterError("ocsp.stapling.windows_plan: bindings must be the list that windows_sslcert returns")
    try:
        return _windows.plan(dict(gate) if isinstance(gate, Mapping) else gate, bindings, _iis(iis_bindings), _labels(drop_flags))
    except _windows.WindowsParseError as exc:
        raise AnsibleFilterError("ocsp.stapling.windows_plan: %s" % exc) from None


def windows_netsh_update(binding, drop_flags=None):
    if not isinstance(binding, Mapping):
        raise AnsibleFilterError("ocsp.stapling.windows_netsh_update: expected one binding from windows_sslcert or windows_plan")
    try:
        return _windows.netsh_update_command(dict(binding), _labels(drop_flags))
    except _windows.WindowsParseError as exc:
        raise AnsibleFilterError("ocsp.stapling.windows_netsh_update: %s" % exc) from None


def windows_readback(plan, bindings, drop_flags=None, final=False):
    if not isinstance(plan, Mapping):
        raise AnsibleFilterError("ocsp.stapling.windows_readback: expected the result of windows_plan")
    if not isinstance(bindings, list):
        raise AnsibleFilterError("ocsp.stapling.windows_readback: bindings must be the list that windows_sslcert returns")
    try:
        return _windows.readback(dict(plan), bindings, _labels(drop_flags), bool(final))
    except _windows.WindowsParseError as exc:
        raise AnsibleFilterError("ocsp.stapling.windows_readback: %s" % exc) from None


def windows_verify_failures(results, plan=None, restart_pending=False):
    if not isinstance(results, list):
        raise AnsibleFilterError("ocsp.stapling.windows_verify_failures: expected the targets that ocsp.stapling.verify returned")
    try:
        return _windows.verify_failures(results, dict(plan) if isinstance(plan, Mapping) else {}, bool(restart_pending))
    except (_windows.WindowsParseError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("ocsp.stapling.windows_verify_failures: %s" % exc) from None


def _plain(data):
    """Ansible's mappings and sequences as plain dicts and lists, all the way down."""
    if isinstance(data, Mapping):
        return {str(key): _plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(item) for item in data]
    return data


def windows_audit_sites(bindings, gate, read):
    if not isinstance(bindings, list):
        raise AnsibleFilterError("ocsp.stapling.windows_audit_sites: bindings must be the list that windows_sslcert returns")
    if isinstance(read, Mapping) and isinstance(read.get("result"), Mapping) and "certificates" not in read:
        read = read["result"]  # the whole win_powershell result: the script's $Ansible.Result
    read = _plain(read)
    if isinstance(read, dict) and read.get("iis") is not None:
        read["iis"] = _iis(read["iis"])
    try:
        return _windows.audit_info(dict(gate) if isinstance(gate, Mapping) else gate, _plain(bindings), read)
    except _windows.WindowsParseError as exc:
        raise AnsibleFilterError("ocsp.stapling.windows_audit_sites: %s" % exc) from None


def windows_audit_refused(info, host):
    try:
        return _windows.refused_rows(str(host), _plain(info))
    except (_windows.WindowsParseError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("ocsp.stapling.windows_audit_refused: expected the result of windows_audit_sites (%s)" % exc) from None


class FilterModule:
    def filters(self):
        return {"windows_sslcert": windows_sslcert, "windows_gate": windows_gate, "windows_plan": windows_plan,
                "windows_netsh_update": windows_netsh_update, "windows_readback": windows_readback,
                "windows_verify_failures": windows_verify_failures, "windows_audit_sites": windows_audit_sites,
                "windows_audit_refused": windows_audit_refused}
