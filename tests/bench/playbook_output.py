"""What the tests read from ansible-playbook's output: a host's recap, the modules that ran, where verify ran."""

from __future__ import annotations

import re


def host_recap(output: str, name: str) -> dict:
    """ok, changed and failed of host ``name`` in the play recap (the test fails when the host has none)."""
    match = re.search(r"^%s\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)" % re.escape(name), output, re.MULTILINE)
    assert match, output
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(3))}


def module_calls(output: str) -> list:
    """The modules run, in order, from the transfers that ansible-playbook -vvv logs (one per module call)."""
    return re.findall(r"PUT .*?/AnsiballZ_(\w+)\.py", output)


def verified_in_the_worker(output: str) -> bool:
    """verify ran, on the controller, inside Ansible's worker (plugins/action/verify.py): its table is there, no module of it."""
    return "good, fresh staple" in output and "AnsiballZ_verify" not in output
