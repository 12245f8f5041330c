"""An Ansible callback for the benchmarks: the wall time of each task, written as JSON where BENCHMARK_TASK_TIMES says.

Enabled only by the benchmarks (ANSIBLE_CALLBACK_PLUGINS=benchmarks/callback_plugins,
ANSIBLE_CALLBACKS_ENABLED=task_times), to say where a playbook's time goes. A task's time runs from its
start to the start of the next task (or the end of the play), on every host at once, as the linear
strategy runs them; a task name that comes back (a loop of includes, a second play) adds up.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: the wall time of each task, as JSON, for the benchmarks
description: Writes a JSON object (task name to seconds) to the file named by the environment variable BENCHMARK_TASK_TIMES.
requirements: [enabled in ANSIBLE_CALLBACKS_ENABLED]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.times: dict = {}
        self.current: str | None = None
        self.since = time.monotonic()

    def _switch(self, name: str | None) -> None:
        now = time.monotonic()
        if self.current is not None:
            self.times[self.current] = self.times.get(self.current, 0.0) + now - self.since
        self.current, self.since = name, now

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._switch(task.get_name())

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self._switch(task.get_name())

    def v2_playbook_on_stats(self, stats) -> None:
        self._switch(None)
        path = os.environ.get("BENCHMARK_TASK_TIMES")
        if path:
            with open(path, "w", encoding="utf-8") as stream:
                json.dump(self.times, stream)
