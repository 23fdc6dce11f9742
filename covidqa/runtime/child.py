"""Run one function in a child Python process that exits when it is done, so that its memory goes back to the system.

Training (a feedback round of the finetuner, the reader's ``/qa/train``) builds a torch model, an optimizer and
their activations: a Flow process that trained in a thread kept ~1.6 GB after the round had ended (the allocator
does not hand that memory back), and it had to import torch, which the serving processes otherwise never do
(:mod:`covidqa.runtime.torch_gate`). :func:`run_in_child` runs a job of :mod:`covidqa.jobs` (or a
``'module:function'``) in ``python -m covidqa.runtime.child`` instead:

- the keyword arguments go in as JSON on stdin, the return value (JSON-able) comes back on stdout;
- ``on_progress``: the function gets a callable under the keyword ``progress_arg`` and every call of it is handed
  to ``on_progress`` in the parent (a thread reads the child's stdout), e.g. training steps for ``/status``;
- ``stop_event``: when it is set the child is terminated (SIGTERM, then SIGKILL) and :class:`ChildCancelled` is
  raised;
- an exception in the child is raised in the parent as :class:`ChildError` carrying the exception's class names
  (``error.is_a('ValueError')``) and message; a child that dies without a word (killed, out of memory) is a
  :class:`ChildError` naming its exit status.

The child's own prints and logs go to its stderr (the parent's stderr: the Flow's log); stdout carries only the
protocol lines. :func:`with_torch` runs a function here when this process may import torch and in a child when it
may not (ONNX exports, unpacking a shipped model).

Example::

    result = run_in_child(FEEDBACK_ROUND, {'examples': [...], 'versions_dir': '...'},
                          progress_arg='callback', on_progress=print, stop_event=threading.Event())
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from covidqa.jobs import target_of
from covidqa.runtime.torch_gate import torch_blocked

_MARK = '@@covidqa-child@@ '
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class ChildError(RuntimeError):
    """An exception raised by the function in the child (or the child's death). ``types``: the class names of the
    exception and its bases (``['ValueError', 'Exception', ...]``), ``message``: its text."""

    def __init__(self, types: Sequence[str], message: str):
        self.types = list(types)
        self.message = message
        super().__init__(f'{self.types[0] if self.types else "Error"}: {message}')

    def is_a(self, name: str) -> bool:
        return name in self.types


class ChildCancelled(RuntimeError):
    """The child was terminated because ``stop_event`` was set."""


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(':')
    if not module or not name:
        raise ValueError(f"target must be 'package.module:function', got {target!r}")
    return getattr(importlib.import_module(module), name)


def child_env() -> Dict[str, str]:
    """The child's environment: this one, with the directory that holds ``covidqa`` first on ``PYTHONPATH`` (the
    child imports the same code as its parent)."""
    env = dict(os.environ)
    paths = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    env['PYTHONPATH'] = os.pathsep.join([_PACKAGE_ROOT] + [p for p in paths if p != _PACKAGE_ROOT])
    return env


def run_in_child(job: str, kwargs: Optional[Dict[str, Any]] = None, *, progress_arg: Optional[str] = None,
                 on_progress: Optional[Callable[[Any], None]] = None,
                 stop_event: Optional[threading.Event] = None, poll_seconds: float = 0.2) -> Any:
    """The function of ``job`` (a name in :data:`covidqa.jobs.JOBS`, or ``'package.module:function'``) called with
    ``kwargs`` in a child process; returns its result.

    Raises ``KeyError`` for an unknown job name, :class:`ChildError` (an exception in the child, or its death),
    :class:`ChildCancelled` (``stop_event`` set). ``kwargs`` and the result must be JSON-able.
    """
    target = target_of(job)
    payload = json.dumps({'target': target, 'kwargs': kwargs or {}, 'progress_arg': progress_arg})
    proc = subprocess.Popen([sys.executable, '-m', 'covidqa.runtime.child'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=child_env(), text=True)
    assert proc.stdin is not None and proc.stdout is not None
    outcome: List[dict] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith(_MARK):
                continue
            message = json.loads(line[len(_MARK):])
            if 'progress' in message:
                if on_progress is not None:
                    try:
                        on_progress(message['progress'])
                    except Exception:  # a failing progress report never stops the work
                        pass
            else:
                outcome.append(message)

    reader = threading.Thread(target=read, name='child-output', daemon=True)
    reader.start()
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    try:
        while True:
            try:
                proc.wait(timeout=poll_seconds)
                break
            except subprocess.TimeoutExpired:
                if stop_event is not None and stop_event.is_set():
                    _terminate(proc)
                    raise ChildCancelled(f'{target}: cancelled') from None
    except BaseException:
        _terminate(proc)
        raise
    reader.join(timeout=10)
    if outcome and 'result' in outcome[-1]:
        return outcome[-1]['result']
    if outcome and 'error' in outcome[-1]:
        error = outcome[-1]['error']
        raise ChildError(error.get('types') or ['Exception'], error.get('message', ''))
    raise ChildError(['ChildDied'], f'{target}: the child process ended with status {proc.returncode} '
                                    f'without a result (killed? out of memory?)')


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def with_torch(job: str, kwargs: Optional[Dict[str, Any]] = None) -> Any:
    """The function of ``job`` (as :func:`run_in_child`) called here when this process may import torch, else
    (:func:`covidqa.runtime.torch_gate.torch_blocked`) in a child process (its :class:`ChildError` propagates)."""
    if not torch_blocked():
        return _resolve(target_of(job))(**(kwargs or {}))
    return run_in_child(job, kwargs)


def _main() -> int:
    """The child's side: read the request from stdin, run it, write protocol lines to the real stdout."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), 'w', buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints of libraries go to stderr, not into the protocol
    lock = threading.Lock()

    def send(message: dict) -> None:
        with lock:
            out.write(_MARK + json.dumps(message, default=str) + '\n')
            out.flush()

    request = json.loads(sys.stdin.read())
    kwargs = dict(request.get('kwargs') or {})
    if request.get('progress_arg'):
        kwargs[request['progress_arg']] = lambda info: send({'progress': info})
    try:
        result = _resolve(request['target'])(**kwargs)
    except BaseException as error:  # reported to the parent, which raises it as ChildError
        send({'error': {'types': [c.__name__ for c in type(error).__mro__], 'message': str(error)}})
        return 1
    send({'result': result})
    return 0


if __name__ == '__main__':
    sys.exit(_main())
