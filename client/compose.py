"""Generate ``docker-compose.yml`` from ``flow.yml``: one service per Executor (per shard and replica), a head per
sharded Executor, and the gateway, all from one image.

``jina export docker-compose`` only takes containerized executors (``docker://...``); ours are Python modules of
this repository, so the compose file runs the same image with ``jina executor`` / ``jina gateway`` command lines
that mirror ``flow.yml``, the way jina's own export lays them out (``<name>-head``, ``<name>-<shard>``,
``<name>-rep-<i>``, ``<name>-uses-after``). Regenerate after changing ``flow.yml`` (``make compose-file``)::

    python -m client.compose [--flow flow.yml] [--index-shards 2] [--set NAME.KEY=YAML ...] > docker-compose.yml

Input: ``flow.yml``; ``--index-shards N`` splits the indexer over N shards with the merger after it, exactly as the
README's Sharding section says (:func:`client.flowctl.shard_indexer`: how the committed file scales out without a
change to ``flow.yml``); ``--set NAME.KEY=YAML`` overrides any Executor setting. Output: the compose file as a dict
(:func:`compose`) or text (:func:`render`).

Every ``flow.yml`` setting is carried over or refused by name (:class:`ComposeError`), never dropped:

- ``with``: ``protocol``/``port`` -> the gateway's servers, published on ``with.host`` (127.0.0.1) only, host ports
  ``$COVIDQA_<PROTOCOL>_HOST_PORT`` (default: the same port); ``cors``, ``title``, ``description`` -> gateway flags.
- ``gateway``: ``uses``, ``py_modules``, ``env``.
- Executors: ``name``, ``uses``, ``py_modules``, ``uses_with``, ``env``, ``allow_concurrent``, ``shards``, ``replicas``,
  ``polling`` (the shards' head), ``uses_after``/``uses_before`` (with ``shards`` > 1, as jina: a service each;
  this project's merger is an Executor of its own after the indexer instead, see README, Sharding),
  ``needs``, ``floating`` and ``when`` (the gateway's graph and conditions), ``host``
  (``127.0.0.1``/``localhost``/``0.0.0.0``: in a container an Executor listens on all of its interfaces, but no Executor port is published; another host is
  refused: the compose stack cannot reach an external Executor).

Inside the stack the gateway listens on 0.0.0.0, which :func:`executors.access.bind_host` allows only with a token:
``COVIDQA_TOKEN`` must be set for ``docker compose up`` (writes need it), and the host side is 127.0.0.1 only.
Every service runs with ``init: true`` (jina as PID 1 ignores SIGTERM) and mounts the named volume ``covidqa-home``
at ``$COVIDQA_HOME``: models, the index (one directory per shard), labels.
"""
from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

REPO = Path(__file__).resolve().parents[1]
IMAGE = 'covidqa:latest'
HOME = '/home/covidqa/workspace'  # the Dockerfile's $COVIDQA_HOME
VOLUME = 'covidqa-home'
EXECUTOR_PORT = 8081  # every Executor, head and uses_after service listens on it, each in its own container
LOCAL_HOSTS = {'127.0.0.1', 'localhost', '0.0.0.0'}
TOKEN = '${COVIDQA_TOKEN:?set COVIDQA_TOKEN: the gateway listens beyond its container only with a token}'
# The committed docker-compose.yml: flow.yml with the indexer split over two shards (README, 'Run with Docker')
COMMITTED_INDEX_SHARDS = 2

FLOW_KEYS = {'jtype', 'version', 'with', 'gateway', 'executors'}
# extra_search_paths: where `jina flow` finds py_modules; each service here runs in the image's /app, where they are
WITH_KEYS = {'protocol', 'port', 'host', 'cors', 'title', 'description', 'extra_search_paths'}
GATEWAY_KEYS = {'uses', 'py_modules', 'env'}
EXECUTOR_KEYS = {'name', 'uses', 'py_modules', 'uses_with', 'env', 'allow_concurrent', 'shards', 'replicas',
                 'polling', 'uses_after', 'uses_before', 'needs', 'when', 'host', 'floating'}
SIDE_KEYS = {'jtype', 'py_modules', 'with'}  # uses_after / uses_before as a mapping


class ComposeError(ValueError):
    """A flow.yml setting the compose file cannot express (the message names it), or a malformed override."""


def _refuse_unknown(what: str, given: dict, known: set) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise ComposeError(f'{what}: cannot carry {unknown} into docker-compose.yml (known: {sorted(known)}); '
                           f'extend client/compose.py or remove them')


def _as_list(value: Any) -> List[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def apply_overrides(flow: dict, overrides: Sequence[str]) -> dict:
    """``flow`` with ``NAME.KEY=YAML`` settings applied to its Executors (a copy)."""
    flow = copy.deepcopy(flow)
    by_name = {e.get('name'): e for e in flow.get('executors') or []}
    for item in overrides:
        target, sep, raw = item.partition('=')
        name, dot, key = target.partition('.')
        if not sep or not dot or not key:
            raise ComposeError(f'override {item!r}: expected NAME.KEY=VALUE (e.g. indexer.shards=2)')
        if name not in by_name:
            raise ComposeError(f'override {item!r}: no Executor {name!r} in flow.yml (there are {sorted(by_name)})')
        by_name[name][key] = yaml.safe_load(raw)
    return flow


def _side_uses(owner: str, key: str, value: Any) -> List[str]:
    """``uses_after``/``uses_before`` -> ``--uses``/``--py-modules``/``--uses-with`` of its own service."""
    if isinstance(value, str):
        return ['--uses', value]
    if not isinstance(value, dict) or 'jtype' not in value:
        raise ComposeError(f'{owner}.{key}: expected a class name or {{jtype, py_modules, with}}, got {value!r}')
    _refuse_unknown(f'{owner}.{key}', value, SIDE_KEYS)
    command = ['--uses', value['jtype']]
    if value.get('py_modules'):
        command += ['--py-modules', *_as_list(value['py_modules'])]
    if value.get('with'):
        command += ['--uses-with', json.dumps(value['with'])]
    return command


def _environment(env: Optional[dict], extra: Dict[str, str]) -> Dict[str, str]:
    return {'COVIDQA_HOME': HOME, **{str(k): str(v) for k, v in (env or {}).items()}, **extra}


def _executor_services(executor: dict) -> Dict[str, dict]:
    """The services of one Executor, first the one the gateway talks to (its head when sharded)."""
    name = executor['name']
    _refuse_unknown(f'executor {name!r}', executor, EXECUTOR_KEYS)
    if not executor.get('uses'):
        raise ComposeError(f'executor {name!r}: needs uses')
    host = executor.get('host', '127.0.0.1')
    if host not in LOCAL_HOSTS:
        raise ComposeError(f'executor {name!r}: host {host!r} is another machine; the compose stack runs every '
                           f'Executor itself (use 127.0.0.1)')
    shards, replicas = int(executor.get('shards') or 1), int(executor.get('replicas') or 1)
    if shards < 1 or replicas < 1:
        raise ComposeError(f'executor {name!r}: shards and replicas must be >= 1')
    if shards == 1 and (executor.get('uses_after') or executor.get('uses_before')):
        raise ComposeError(f'executor {name!r}: uses_after/uses_before only run with shards > 1 (as in jina)')
    base = {'image': IMAGE, 'pull_policy': 'never', 'init': True}
    worker = ['jina', 'executor', '--uses', executor['uses']]
    if executor.get('py_modules'):
        worker += ['--py-modules', *_as_list(executor['py_modules'])]
    worker += ['--host', '0.0.0.0', '--port', str(EXECUTOR_PORT)]
    if executor.get('uses_with'):
        worker += ['--uses-with', json.dumps(executor['uses_with'])]
    if executor.get('allow_concurrent'):
        worker += ['--allow-concurrent']
    listening = {'test': ['CMD', 'python', '-c',
                          f"import socket; socket.create_connection(('127.0.0.1', {EXECUTOR_PORT}), 3)"],
                 'interval': '10s', 'timeout': '5s', 'start_period': '120s', 'retries': 3}
    state = {'environment': _environment(executor.get('env'), {}), 'volumes': [f'{VOLUME}:{HOME}'],
             'healthcheck': listening}

    services: Dict[str, dict] = {}
    if shards > 1:
        connections = {str(s): [f'{_replica(f"{name}-{s}", r, replicas)}:{EXECUTOR_PORT}' for r in range(replicas)]
                       for s in range(shards)}
        head = ['jina', 'executor', '--name', f'{name}/head', '--runtime-cls', 'HeadRuntime', '--pod-role', 'HEAD',
                '--host', '0.0.0.0', '--port', str(EXECUTOR_PORT), '--shards', str(shards),
                '--connection-list', json.dumps(connections)]
        if executor.get('polling'):
            head += ['--polling', json.dumps(executor['polling'])]
        sides = []
        for key, flag in (('uses_before', '--uses-before-address'), ('uses_after', '--uses-after-address')):
            if executor.get(key):
                side = f'{name}-{key.replace("_", "-")}'
                head += [flag, f'{side}:{EXECUTOR_PORT}']
                command = ['jina', 'executor', '--name', f'{name}/{key.replace("_", "-")}',
                           *_side_uses(name, key, executor[key]), '--host', '0.0.0.0', '--port', str(EXECUTOR_PORT)]
                sides.append((side, {**base, 'command': command, 'healthcheck': listening,
                                     'environment': _environment(executor.get('env'), {})}))
        workers: List[Tuple[str, Optional[int]]] = [(f'{name}-{s}', s) for s in range(shards)]
        services[f'{name}-head'] = {**base, 'command': head, 'healthcheck': listening,
                                    'depends_on': [_replica(w, r, replicas) for w, _ in workers for r in range(replicas)]
                                    + [s for s, _ in sides]}
        services.update(sides)
    else:
        workers = [(name, None)]
    for worker_name, shard in workers:
        for r in range(replicas):
            service = _replica(worker_name, r, replicas)
            command = worker[:2] + ['--name', service] + worker[2:]
            if shard is not None:
                command += ['--shards', str(shards), '--shard-id', str(shard)]
            services[service] = {**base, 'command': command, **copy.deepcopy(state)}
    return services


def _replica(name: str, index: int, replicas: int) -> str:
    return f'{name}-rep-{index}' if replicas > 1 else name


def _entry_points(name: str, executor: dict, replicas: int) -> List[str]:
    if int(executor.get('shards') or 1) > 1:
        return [f'{name}-head:{EXECUTOR_PORT}']
    return [f'{_replica(name, r, replicas)}:{EXECUTOR_PORT}' for r in range(replicas)]


def _graph(executors: List[dict]) -> Dict[str, List[str]]:
    """jina's ``--graph-description``, as jina's Flow builds it: ``needs`` (default: the Executor before that is not
    floating; ``gateway``: the start); the last Executor that is not floating ends at the gateway, and a floating one
    has no outgoing edge (jina's gateway does not wait for it)."""
    graph: Dict[str, List[str]] = {'start-gateway': []}
    names = [e['name'] for e in executors]
    last = 'gateway'  # the last Executor that is not floating
    for executor in executors:
        needs = _as_list(executor.get('needs')) or [last]
        for upstream in needs:
            if upstream != 'gateway' and upstream not in names:
                raise ComposeError(f'executor {executor["name"]!r}: needs {upstream!r}, which flow.yml does not have')
            key = 'start-gateway' if upstream == 'gateway' else upstream
            graph.setdefault(key, []).append(executor['name'])
        graph.setdefault(executor['name'], [])
        if not executor.get('floating'):
            last = executor['name']
    if last != 'gateway':
        graph[last].append('end-gateway')
    return graph


def _gateway_service(flow: dict, executors: List[dict]) -> dict:
    options = flow.get('with') or {}
    _refuse_unknown('flow.yml with', options, WITH_KEYS)
    gateway = flow.get('gateway') or {}
    _refuse_unknown('flow.yml gateway', gateway, GATEWAY_KEYS)
    protocols = [str(p).lower() for p in _as_list(options.get('protocol') or 'grpc')]
    ports = [int(p) for p in _as_list(options.get('port'))]
    if len(ports) != len(protocols):
        raise ComposeError(f'flow.yml with: {len(protocols)} protocols {protocols} but ports {ports}: give one port '
                           f'each (the compose file publishes them)')
    publish_host = options.get('host', '127.0.0.1')
    if publish_host not in LOCAL_HOSTS - {'0.0.0.0'}:
        raise ComposeError(f'flow.yml with.host {publish_host!r}: the compose file publishes the gateway on '
                           f'127.0.0.1 only (put a TLS proxy in front to serve other hosts)')
    command = ['jina', 'gateway', '--protocol', *protocols, '--port', *map(str, ports), '--host', '0.0.0.0',
               '--graph-description', json.dumps(_graph(executors)),
               '--deployments-addresses', json.dumps({e['name']: _entry_points(e['name'], e, int(e.get('replicas') or 1))
                                                      for e in executors})]
    conditions = {e['name']: e['when'] for e in executors if e.get('when')}
    if conditions:
        command += ['--graph-conditions', json.dumps(conditions)]
    if options.get('cors'):
        command += ['--cors']
    for key in ('title', 'description'):
        if options.get(key):
            command += [f'--{key}', str(options[key])]
    if gateway.get('uses'):
        command += ['--uses', gateway['uses']]
        if gateway.get('py_modules'):
            command += ['--py-modules', *_as_list(gateway['py_modules'])]
    extra = {'COVIDQA_TOKEN': TOKEN}
    if 'http' in protocols:
        extra['COVIDQA_HTTP_PORT'] = str(ports[protocols.index('http')])  # the image's healthcheck: GET /dry_run
    return {
        'image': IMAGE, 'pull_policy': 'never', 'init': True, 'command': command,
        'ports': [f'127.0.0.1:${{COVIDQA_{p.upper()}_HOST_PORT:-{port}}}:{port}' for p, port in zip(protocols, ports)],
        'environment': _environment(gateway.get('env'), extra),
        'volumes': [f'{VOLUME}:{HOME}'],
    }


def compose(flow_yml: Path = REPO / 'flow.yml', overrides: Sequence[str] = (), index_shards: int = 1) -> dict:
    """The compose file (a dict) for ``flow_yml``, the indexer over ``index_shards`` shards (plus the merger), then
    ``overrides`` (``NAME.KEY=YAML``) applied."""
    from client.flowctl import shard_indexer

    flow = apply_overrides(shard_indexer(yaml.safe_load(Path(flow_yml).read_text()), index_shards), overrides)
    _refuse_unknown('flow.yml', flow, FLOW_KEYS)
    if flow.get('jtype', 'Flow') != 'Flow':
        raise ComposeError(f'flow.yml: jtype {flow["jtype"]!r}, expected Flow')
    executors = list(flow.get('executors') or [])
    if not executors:
        raise ComposeError('flow.yml: no executors')
    names = [e.get('name') for e in executors]
    if None in names or len(set(names)) != len(names) or 'gateway' in names:
        raise ComposeError(f'flow.yml: every Executor needs a unique name other than gateway, got {names}')
    services: Dict[str, dict] = {}
    for executor in executors:
        services.update(_executor_services(executor))
    # one service builds the image, the others use it (pull_policy: never: it exists on no registry)
    first = next(iter(services))
    services[first] = {'build': {'context': '.', 'args': {'BASE': '${COVIDQA_BASE_IMAGE:-python:3.11-slim}'}},
                       **{k: v for k, v in services[first].items() if k != 'pull_policy'}}
    gateway = _gateway_service(flow, executors)
    gateway['depends_on'] = _entry_names(executors)
    services['gateway'] = gateway
    return {'services': services, 'volumes': {VOLUME: {}}}


def _entry_names(executors: List[dict]) -> List[str]:
    return [point.split(':')[0] for e in executors for point in _entry_points(e['name'], e, int(e.get('replicas') or 1))]


def render(flow_yml: Path = REPO / 'flow.yml', overrides: Sequence[str] = (), index_shards: int = 1) -> str:
    """The compose file as text, with a header naming the command that made it."""
    command = ' '.join(['python -m client.compose', *([f'--index-shards {index_shards}'] if index_shards > 1 else []),
                        *(f'--set {shlex.quote(o)}' for o in overrides)])
    header = (f'# Generated by `{command} > docker-compose.yml` from flow.yml (make compose-file); do not edit.\n'
              '# COVIDQA_TOKEN=<secret> docker compose up --build  ->  gRPC 127.0.0.1:54321, HTTP 127.0.0.1:8080 '
              '(/docs, /labeler)\n')
    return header + yaml.dump(compose(flow_yml, overrides, index_shards), Dumper=_PlainDumper, sort_keys=False, width=200)


class _PlainDumper(yaml.SafeDumper):
    """No YAML anchors/aliases: each service reads on its own."""

    def ignore_aliases(self, data):
        return True


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--flow', type=Path, default=REPO / 'flow.yml')
    parser.add_argument('--index-shards', type=int, default=1, metavar='N',
                        help='split the indexer over N shards, the merger after it (README, Sharding)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='NAME.KEY=YAML',
                        help='an Executor setting on top of flow.yml, e.g. indexer.shards=2')
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.flow, args.overrides, args.index_shards))
    except ComposeError as exc:
        sys.exit(f'error: {exc}')


if __name__ == '__main__':
    main()
