# Ansible stdout callback for bench/bootstrap.ts: one JSON line per task with its wall time
# (from the task's start to the next task's start, or the play's end), so the bench can set each
# step beside xcluster's phase of the same name. Task names are "PHASE: what".
import json
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'task_timing'

    def __init__(self):
        super().__init__()
        self.current = None
        self.started = 0.0
        self.failures = []

    def _finish(self):
        if self.current is not None:
            print(json.dumps({'task': self.current, 'ms': round((time.monotonic() - self.started) * 1000)}), flush=True)
        self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._finish()
        self.current = task.get_name()
        self.started = time.monotonic()

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self.failures.append({'host': result._host.get_name(), 'task': result._task.get_name(), 'result': result._result.get('msg') or result._result.get('stderr')})

    def v2_runner_on_unreachable(self, result):
        self.failures.append({'host': result._host.get_name(), 'task': result._task.get_name(), 'result': 'unreachable'})

    def v2_playbook_on_stats(self, stats):
        self._finish()
        for failure in self.failures:
            print(json.dumps({'failed': failure}), flush=True)
