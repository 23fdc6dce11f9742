"""One long task at a time, in a background thread, with a status anyone can read meanwhile.

A service that trains inside a request holds up every other request to the same worker (jina runs one request at a
time per Executor, ``allow_concurrent`` or not). :class:`BackgroundJob` runs the work in a thread instead: the
request that starts it returns at once, and a status call reports ``idle`` / ``running`` (with the seconds so far)
/ ``done`` (with the work's result) / ``failed`` (with the error).

Example::

    job = BackgroundJob('qa-train')
    job.start(lambda: {'steps': train()})     # False when a run is already going
    job.status()                              # {'state': 'running', 'seconds': 12.3, ...}
    job.wait(timeout=600)                     # True once it has ended
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional


class BackgroundJob:
    """``name``: the thread's name. Thread-safe; one run at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._state: Dict[str, Any] = {'state': 'idle'}
        self._started = 0.0

    def start(self, work: Callable[[], Any]) -> bool:
        """Run ``work()`` in a new thread unless a run is going (then ``False``)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._started = time.monotonic()
            self._state = {'state': 'running', 'started_at': time.time()}
            self._thread = threading.Thread(target=self._run, args=(work,), name=self.name, daemon=True)
            self._thread.start()
            return True

    def _run(self, work: Callable[[], Any]) -> None:
        try:
            ended: Dict[str, Any] = {'state': 'done', 'result': work()}
        except Exception as error:  # reported through status(); the service keeps serving
            ended = {'state': 'failed', 'error': f'{type(error).__name__}: {error}', 'exception': error}
        with self._lock:
            self._state = {**self._state, **ended, 'seconds': round(time.monotonic() - self._started, 1)}

    def running(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the current run to end; ``True`` when none is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running()

    def status(self) -> Dict[str, Any]:
        """``state`` (idle | running | done | failed), ``seconds``, ``result`` or ``error``; JSON-able."""
        with self._lock:
            state = {k: v for k, v in self._state.items() if k != 'exception'}
            if state['state'] == 'running':
                state['seconds'] = round(time.monotonic() - self._started, 1)
            return state

    def exception(self) -> Optional[BaseException]:
        """The error of a failed run (for callers that waited and want to re-raise it)."""
        with self._lock:
            return self._state.get('exception')


__all__ = ['BackgroundJob']
