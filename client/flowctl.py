"""Start and stop the Flow as a user does (``python -m client.flow --uses flow.yml``: ``jina flow`` without torch in
its processes), on chosen 127.0.0.1 ports.

Used by the tests, the benchmarks and ``make serve``-like scripts. Example::

    with FlowProcess(home='/tmp/ws', grpc_port=54400, http_port=54401) as flow:
        client = flow.client()            # a jina gRPC Client
        ...

The Flow YAML is copied to a temporary file with the given ports and optional ``uses_with`` overrides per executor
(its ``py_modules`` found in ``flow.yml``'s folder); the process runs in its own session and is stopped by its PID with SIGINT
(twice if needed; SIGKILL to its process group as the last resort). Never by name.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from client.procinfo import memory_of, process_tree

REPO = Path(__file__).resolve().parents[1]
FLOW_YML = REPO / 'flow.yml'


def free_ports(count: int) -> List[int]:
    """``count`` distinct free ports on 127.0.0.1. The sockets stay bound until all are picked: ports asked for
    one at a time can repeat (the OS may hand a just-closed port out again), and a Flow whose gRPC and HTTP ports
    were the same failed to start."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(('127.0.0.1', 0))
        return [s.getsockname()[1] for s in sockets]


def free_port() -> int:
    return free_ports(1)[0]


MERGER = {'name': 'merger', 'uses': 'MatchMerger', 'py_modules': ['executors/merger.py'], 'host': '127.0.0.1'}


def gateway_ready(http_url: str, timeout: float = 2) -> bool:
    """Whether the gateway at ``http_url`` answers ``GET /dry_run`` with 200 and ``code`` 0 (every Executor
    reached); False while it is starting or unreachable."""
    try:
        with urllib.request.urlopen(f'{http_url}/dry_run', timeout=timeout) as response:
            return response.status == 200 and json.loads(response.read()).get('code') == 0
    except (OSError, ValueError):
        return False


def port_open(port: int, host: str = '127.0.0.1', timeout: float = 1) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def shard_indexer(config: dict, shards: int) -> dict:
    """``config`` (a loaded flow.yml) with the indexer split over ``shards`` and the merger after it, as the README
    tells a user to do (in place; returns it). One shard: unchanged."""
    if shards > 1:
        executors = config['executors']
        position = next(i for i, e in enumerate(executors) if e['name'] == 'indexer')
        executors[position]['shards'] = shards
        if not any(e['name'] == MERGER['name'] for e in executors):
            executors.insert(position + 1, dict(MERGER))
            for executor in executors[position + 2:]:  # what read the indexer's reply reads the merged one
                needs = executor.get('needs')
                if needs == 'indexer' or (isinstance(needs, list) and 'indexer' in needs):
                    executor['needs'] = ('merger' if needs == 'indexer'
                                         else ['merger' if n == 'indexer' else n for n in needs])
    return config


def render_flow(flow_yml: Path = FLOW_YML, grpc_port: int = 54321, http_port: int = 8080,
                overrides: Optional[Dict[str, dict]] = None, executor_keys: Optional[Dict[str, dict]] = None,
                index_shards: int = 1) -> str:
    """The Flow YAML with ports and ``uses_with`` overrides applied, for a copy written elsewhere: its
    ``extra_search_paths`` name ``flow_yml``'s folder, where jina finds the ``py_modules`` as written;
    ``index_shards`` > 1 splits the indexer (:func:`shard_indexer`)."""
    config = shard_indexer(yaml.safe_load(Path(flow_yml).read_text()), index_shards)
    config['with']['port'] = [grpc_port, http_port]
    config['with']['extra_search_paths'] = [str(Path(flow_yml).resolve().parent)]
    for executor in config.get('executors', []):
        name = executor['name']
        if overrides and name in overrides:
            executor.setdefault('uses_with', {}).update(overrides[name])
        if executor_keys and name in executor_keys:
            executor.update(executor_keys[name])
    return yaml.safe_dump(config, sort_keys=False)


def stop_by_pid(proc: subprocess.Popen, timeout: float = 30) -> bool:
    """Stop a Flow started in its own session (``start_new_session=True``) by its PID: SIGINT, a second SIGINT after
    ``timeout / 2`` s, then SIGKILL to its process group; any Executor process orphaned by a failed start is killed
    with the group. Never by name. Returns False if it had already exited."""
    if proc.poll() is not None:
        return False
    for attempt in range(2):
        try:
            os.kill(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout / 2)
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    try:  # executor processes orphaned by a failed start
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return True


class FlowProcess:
    def __init__(self, home, grpc_port: Optional[int] = None, http_port: Optional[int] = None,
                 overrides: Optional[Dict[str, dict]] = None, executor_keys: Optional[Dict[str, dict]] = None,
                 flow_yml: Path = FLOW_YML, log_path: Optional[Path] = None, ready_timeout: float = 240,
                 env: Optional[Dict[str, str]] = None, index_shards: int = 1):
        self.home = Path(home)
        spare = iter(p for p in free_ports(3) if p not in (grpc_port, http_port))
        self.grpc_port = grpc_port or next(spare)
        self.http_port = http_port or next(spare)
        self.overrides, self.executor_keys, self.flow_yml = overrides, executor_keys, flow_yml
        self.index_shards = index_shards
        self.log_path = Path(log_path) if log_path else self.home / 'flow.log'
        self.ready_timeout = ready_timeout
        self.env = env or {}
        self.proc: Optional[subprocess.Popen] = None
        self.startup_seconds: Optional[float] = None

    @property
    def http_url(self) -> str:
        return f'http://127.0.0.1:{self.http_port}'

    def start(self) -> 'FlowProcess':
        self.home.mkdir(parents=True, exist_ok=True)
        fd, yml = tempfile.mkstemp(prefix='flow-', suffix='.yml', dir=self.home)
        with os.fdopen(fd, 'w') as f:
            f.write(render_flow(self.flow_yml, self.grpc_port, self.http_port, self.overrides, self.executor_keys,
                                self.index_shards))
        env = {**os.environ, 'COVIDQA_HOME': str(self.home), 'JINA_LOG_LEVEL': os.environ.get('JINA_LOG_LEVEL', 'INFO'),
               **self.env}
        started = time.monotonic()
        self._log = open(self.log_path, 'ab')
        self._log_start = self._log.tell()  # this run's part of the (appended) log
        # `jina flow` with torch kept out of the Flow's processes (client/flow.py; COVIDQA_TORCH=1 lets it in)
        self.proc = subprocess.Popen([sys.executable, '-m', 'client.flow', '--uses', yml], cwd=str(REPO), env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def ready(self) -> bool:
        """The HTTP gateway answers ``/dry_run`` and the gRPC port accepts connections: jina starts its two servers
        side by side, and a client that connected on the first 200 of ``/dry_run`` was once refused by gRPC."""
        return gateway_ready(self.http_url) and port_open(self.grpc_port)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        assert self.proc is not None, 'start() the Flow first'
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'the Flow exited with {self.proc.returncode}; see {self.log_path}:\n'
                                   + self.log_tail())
            if self.ready():
                return
            time.sleep(0.5)
        raise TimeoutError(f'the Flow was not ready after {self.ready_timeout}s; see {self.log_path}:\n'
                           + self.log_tail())

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-chars:].decode(errors='replace')
        except OSError:
            return ''

    def pids(self):
        """PIDs of the Flow's process tree (the jina CLI and every Executor/gateway process)."""
        return process_tree(self.proc.pid) if self.proc else []

    def replica_pids(self, executor: str) -> Dict[str, int]:
        """``{'indexer/rep-0': pid, ...}`` (or ``indexer/shard-0/rep-0``) of one Executor's processes in this run,
        read from the start-up lines of the Flow's log (jina forks them: they share the CLI's command line)."""
        text = self.log_path.read_bytes()[self._log_start:].decode(errors='replace')
        found = re.findall(rf'({re.escape(executor)}(?:/shard-\d+)?/rep-\d+)@(\d+) start server', text)
        return {name: int(pid) for name, pid in found}

    def rss_bytes(self) -> int:
        """RSS summed over the Flow's processes (:func:`client.procinfo.memory_of`)."""
        return memory_of(self.pids())[0]

    def stop(self, timeout: float = 30) -> None:
        if self.proc is not None:
            stop_by_pid(self.proc, timeout)
            self._log.close()

    def client(self, protocol: str = 'grpc'):
        from jina import Client

        port = self.grpc_port if protocol == 'grpc' else self.http_port
        return Client(host='127.0.0.1', port=port, protocol=protocol)

    def __enter__(self) -> 'FlowProcess':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
