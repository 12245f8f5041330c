"""The action of ocsp.stapling.verify: on the controller, the check runs inside Ansible's own worker.

verify is nearly always delegated to the controller (the roles' default), once per host. Run as a module,
each call pays a new Python, ansible-core's module wrapper and the import of cryptography and pyOpenSSL
before the first handshake: about 0.3 s of controller CPU per host, the largest single cost of a fleet
run (BENCHMARKS.md, "What one task costs Ansible per host"). The worker Ansible forks for the task has
all of that loaded already, so where the module would run on this very machine, as this very user, the
action gives the module's answer itself, from the same code (module_utils/_verify.answer) and the same
options (ARGUMENT_SPEC). The worker is forked for this one task, so the task's environment can be set in it.

Everywhere else the module runs as usual, on the host the task is delegated to: a connection other than
local, become (the module would run as another user), async, a Python set for that host other than the
one running Ansible (the user chose where the check runs), or a controller Python without pyOpenSSL.
"""

from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.ocsp.stapling.plugins.module_utils import _crypto
from ansible_collections.ocsp.stapling.plugins.module_utils._verify import ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, REQUIRED_ONE_OF, VerifyError, answer
from ansible_collections.ocsp.stapling.plugins.plugin_utils.host_python import configured_interpreter, task_host_vars


def runs_here(transport: str, become: bool, async_seconds: int, interpreter: str | None, has_libraries: bool) -> bool:
    """Whether the module would run on the controller, as the controller's user, with the controller's Python (or one
    left to discovery), and this process has the libraries to check."""
    ours = interpreter is None or os.path.abspath(interpreter) == os.path.abspath(sys.executable)
    return transport == "local" and not become and not async_seconds and ours and has_libraries


class ActionModule(NormalAction):
    """ocsp.stapling.verify: the module's answer, given in this worker when the module would run on the controller."""

    def run(self, tmp=None, task_vars=None):
        has_libraries = _crypto.HAS_CRYPTOGRAPHY and _crypto.HAS_PYOPENSSL
        interpreter = configured_interpreter(self._templar, task_host_vars(self._task, task_vars or {}))
        if not runs_here(self._connection.transport, bool(self._play_context.become), self._task.async_val, interpreter, has_libraries):
            return super().run(tmp, task_vars)
        # What every action checks first (check mode and async support), without the normal action's module run.
        result = ActionBase.run(self, tmp, task_vars)
        # Raises with the module's own messages on an unknown, missing or conflicting option.
        params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE,
                                             required_one_of=REQUIRED_ONE_OF)[1]
        # What the module would see in its environment (a proxy for the OCSP responders, for instance).
        environment = {}
        self._compute_environment_string(environment)
        os.environ.update({str(name): str(value) for name, value in environment.items()})
        try:
            outcome = answer(params)
        except VerifyError as exc:
            raise AnsibleActionFail(str(exc)) from None
        result.update(outcome)
        result["invocation"] = {"module_args": params}
        return result
