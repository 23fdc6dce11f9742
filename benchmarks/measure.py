"""Measuring helpers shared by the benchmark scripts: machine state, memory of a process tree, load runs.

- :func:`cpu_state` / :func:`wait_quiet`: load average and CPU idle, so numbers from a busy machine are visible;
  :func:`cpu_model`: which CPU measured them;
- :func:`process_tree`, :func:`memory_of` (from :mod:`client.procinfo`), :class:`PeakMemory`, :func:`per_process_rss`, :func:`framework_floor`:
  RSS/PSS of a Flow's processes (from ``/proc``), peak sampled in a thread;
- :func:`percentile`, :class:`LoadResult`, :func:`run_load`: latency percentiles and QPS of N concurrent callers;
- :func:`benchmark_reader`: the reader checkpoint a benchmark measures (``--reader``, else the service's).

Example::

    with_peak = PeakMemory(flow_pid); with_peak.start(); ...; with_peak.stop(); print(with_peak.peak_rss)
    result = run_load(lambda: call_search, questions, concurrency=4, duration=20.0)
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from client.procinfo import memory_of, process_tree  # noqa: F401  (re-exported for the benchmark scripts)


# ------------------------------------------------------------------------------------------------ machine state
def cpu_state(seconds: float = 1.0) -> dict:
    """Load average and the share of idle CPU over ``seconds`` (a busy machine makes timings unreliable)."""
    def snap():
        parts = Path('/proc/stat').read_text().splitlines()[0].split()[1:]
        values = list(map(int, parts))
        return sum(values), values[3] + values[4]

    total0, idle0 = snap()
    time.sleep(seconds)
    total1, idle1 = snap()
    load = os.getloadavg()
    return {'loadavg_1m': round(load[0], 2), 'idle_pct': round(100.0 * (idle1 - idle0) / max(1, total1 - total0), 1)}


def cpu_model() -> dict:
    """The CPU's model name and bogomips from ``/proc/cpuinfo`` (empty where there is none), so that runs on
    different machines are not compared as if they were one."""
    info: dict = {}
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            key, _, value = line.partition(':')
            key = key.strip()
            if key in ('model name', 'cpu MHz', 'bogomips') and key not in info:
                info[key] = value.strip()
    except OSError:
        pass
    return info


def wait_quiet(max_seconds: float, idle_pct: float = 85.0) -> dict:
    """Wait (up to ``max_seconds``) until the CPU is mostly idle; returns the last state seen."""
    deadline = time.monotonic() + max_seconds
    state = cpu_state()
    while state['idle_pct'] < idle_pct and time.monotonic() < deadline:
        time.sleep(2)
        state = cpu_state()
    state['quiet'] = state['idle_pct'] >= idle_pct
    return state


class PeakMemory(threading.Thread):
    """Samples the memory of a process tree every ``interval`` seconds; keeps the peaks."""

    def __init__(self, root_pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.root_pid, self.interval = root_pid, interval
        self.peak_rss = self.peak_pss = 0
        self.processes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pids = process_tree(self.root_pid)
            rss, pss, _ = memory_of(pids)
            if rss > self.peak_rss:
                self.peak_rss, self.processes = rss, len(pids)
            self.peak_pss = max(self.peak_pss, pss)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def framework_floor() -> dict:
    """Memory of a bare Python process that imports jina (docarray imports torch when it is installed): every
    process of the Flow pays this before it loads any model."""

    code = ('import jina, re; s = open("/proc/self/smaps_rollup").read(); '
            'g = lambda k: int(re.search(k + r":\\s+(\\d+)", s).group(1)); '
            'import sys; print(g("Rss"), g("Pss"), g("Private_Clean") + g("Private_Dirty"), "torch" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120).stdout.split()
    if len(out) != 4:
        return {}
    return {'rss_mb': round(int(out[0]) / 1024, 1), 'pss_mb': round(int(out[1]) / 1024, 1),
            'uss_mb': round(int(out[2]) / 1024, 1), 'imports_torch': out[3] == 'True'}


def per_process_rss(root_pid: int) -> List[dict]:
    """Memory of each process of the tree, with which inference libraries it has loaded."""
    rows = []
    for pid in process_tree(root_pid):
        rss, pss, uss = memory_of([pid])
        try:
            maps = Path(f'/proc/{pid}/maps').read_text()
        except OSError:
            maps = ''
        rows.append({'pid': pid, 'rss_mb': round(rss / 2**20, 1), 'pss_mb': round(pss / 2**20, 1),
                     'uss_mb': round(uss / 2**20, 1), 'torch_loaded': 'libtorch_cpu' in maps,
                     'onnxruntime_loaded': 'onnxruntime_pybind11' in maps})
    return rows


# ------------------------------------------------------------------------------------------------ timing helpers
def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float('nan')


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    qps: float
    p50_ms: float
    p95_ms: float
    mean_ms: float
    cpu: dict = field(default_factory=dict)
    first_error: Optional[str] = None


def run_load(make_caller: Callable[[], Callable[[str], object]], questions: Sequence[str], concurrency: int,
             duration: float, min_requests: int, max_seconds: Optional[float] = None) -> LoadResult:
    """``concurrency`` threads, each with its own caller, send one question per call back to back for
    ``duration`` seconds (continuing until ``min_requests`` calls completed, but never starting one after
    ``max_seconds``, default ``4 * duration + 30``). QPS = completed calls / elapsed."""
    callers = [make_caller() for _ in range(concurrency)]
    latencies: List[float] = []
    errors: List[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)
    counter = iter(range(10**9))
    started = [0.0]
    deadline = [0.0]
    hard_deadline = [0.0]

    def worker(call):
        barrier.wait()
        while True:
            with lock:
                k = next(counter)
                done = len(latencies) + len(errors)
            now = time.perf_counter()
            if (now >= deadline[0] and done >= min_requests) or now >= hard_deadline[0]:
                return
            question = questions[k % len(questions)]
            t0 = time.perf_counter()
            try:
                call(question)
            except Exception as exc:  # keep going: a failed request counts as an error
                with lock:
                    errors.append(f'{type(exc).__name__}: {str(exc)[:300]}')
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in callers]
    for t in threads:
        t.start()
    started[0] = time.perf_counter()
    deadline[0] = started[0] + duration
    hard_deadline[0] = started[0] + (max_seconds if max_seconds is not None else 4 * duration + 30)
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started[0]
    ms = [1000 * x for x in latencies]
    return LoadResult(concurrency=concurrency, requests=len(latencies), errors=len(errors), seconds=round(elapsed, 2),
                      qps=round(len(latencies) / elapsed, 2), p50_ms=round(percentile(ms, 50), 1),
                      p95_ms=round(percentile(ms, 95), 1), mean_ms=round(float(np.mean(ms)) if ms else float('nan'), 1),
                      first_error=errors[0] if errors else None)


# ------------------------------------------------------------------------------------------------ reader
def benchmark_reader(arg: Optional[str]) -> Path:
    """The reader checkpoint to benchmark: ``--reader`` (a save_pretrained directory), else the service's reader
    (trained into ``$COVIDQA_HOME``, else the shipped one: :func:`covidqa.reader.reader.resolve_reader_model`). Exits with
    a message naming the fix when there is none (an untrained head would make every quality number noise)."""
    from covidqa.reader.runners import resolve_reader_model

    if arg:
        if not (Path(arg) / 'config.json').is_file():
            raise SystemExit(f'--reader {arg}: no model there (expected a save_pretrained directory)')
        return Path(arg).resolve()
    model = resolve_reader_model(None)
    if str(model) == 'base':
        raise SystemExit('no trained reader and no shipped one: pass --reader DIR, or restore models/reader/ from git')
    return Path(model).resolve()
