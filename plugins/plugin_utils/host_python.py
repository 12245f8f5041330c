"""Controller side of the modules that run on managed hosts: a host whose Python is too old gets a clear message.

The modules and module_utils of this collection need Python 3.8 or later on the managed host. On an older
Python they cannot say so themselves: ansible-core's own module wrapper, or the first import of a newer
feature, fails with a traceback before any line of the module runs (Python 3.6: "SyntaxError: future
feature annotations is not defined"; 3.7: a SyntaxError or ImportError deep in the payload). The action
plugins of these modules therefore run the module as ansible-core's `normal` action does and, only when it
failed without an answer of its own (its output is not the module's JSON), ask the host's interpreter for
its version with one raw command; below MINIMUM, the message says which Python was found and what to do.
A module that runs costs nothing more.
"""

from __future__ import annotations

import re
import shlex

from ansible import constants as C
from ansible.plugins.action.normal import ActionModule as NormalAction

# The oldest Python the collection's modules run on (the Python 3.8 syntax of plugins/module_utils).
MINIMUM = (3, 8)
# Printable by every Python, 2.7 included.
VERSION_PROBE = "import sys; print('%d.%d.%d' % tuple(sys.version_info[:3]))"


def parse_version(output: str) -> tuple | None:
    """The (major, minor, micro) that VERSION_PROBE printed, or None when the output is not that."""
    match = re.search(r"^\s*(\d+)\.(\d+)\.(\d+)\s*$", output or "", re.MULTILINE)
    return tuple(int(part) for part in match.groups()) if match else None


def too_old_message(module: str, version: tuple, interpreter: str) -> str:
    """The failure message for a host whose interpreter is older than MINIMUM."""
    needed = "%d.%d" % MINIMUM
    return ("%s needs Python %s or later on the managed host, and %s there is Python %s. Install Python %s or "
            "later on that host and point ansible_python_interpreter at it."
            % (module, needed, interpreter, ".".join(str(part) for part in version), needed))


class HostPythonAction(NormalAction):
    """ansible-core's normal action, with a clear message on a managed host whose Python is too old."""

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        # "module_stderr" is only there when the module's output was not its JSON answer: it did not run.
        if result.get("failed") and "module_stderr" in result:
            interpreter = self._python_interpreter(task_vars or {})
            if interpreter:
                probe = self._low_level_execute_command("%s -c %s" % (interpreter, shlex.quote(VERSION_PROBE)))
                version = parse_version(probe.get("stdout", "")) if probe.get("rc") == 0 else None
                if version is not None and version < MINIMUM:
                    result["msg"] = too_old_message(self._task.action, version, interpreter)
        return result

    def _python_interpreter(self, task_vars: dict) -> str | None:
        """The interpreter the module ran with, as ansible-core chose it: discovered in this task, set for the
        host (ansible_python_interpreter, ANSIBLE_PYTHON_INTERPRETER, interpreter_python), or discovered before."""
        if self._discovered_interpreter:
            return str(self._discovered_interpreter)
        host_vars = task_host_vars(self._task, task_vars)
        configured = configured_interpreter(self._templar, host_vars)
        if configured:
            return configured
        discovered = host_vars.get("ansible_facts", {}).get("discovered_interpreter_python")
        return str(discovered) if discovered else None


def task_host_vars(task, task_vars: dict) -> dict:
    """The variables of the host the task runs on: the one it is delegated to, if any."""
    if task.delegate_to:
        return task_vars.get("ansible_delegated_vars", {}).get(task.delegate_to, task_vars)
    return task_vars


def configured_interpreter(templar, host_vars: dict) -> str | None:
    """The Python set for the host (ansible_python_interpreter, ANSIBLE_PYTHON_INTERPRETER, interpreter_python),
    or None when ansible-core is left to discover it (auto, auto_silent, ...)."""
    configured = C.config.get_config_value("INTERPRETER_PYTHON", variables=host_vars)
    if configured and not str(configured).startswith("auto"):
        return str(templar.template(configured))
    return None
