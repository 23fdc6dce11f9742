"""docker-compose.yml: generated from flow.yml, and its command lines really start a working Flow.

The test here runs the services' exact command lines as local processes on 127.0.0.1 ports (the container hostnames
and ports are rewritten; nothing else is changed), two indexer shards with their head, and the merger, included. The
containers themselves (image, volume, restarts) are tested by ``make test-compose`` (tests/compose/compose_stack.py).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from client.compose import COMMITTED_INDEX_SHARDS, compose, render
from client.flowctl import REPO, free_ports, gateway_ready


def test_committed_compose_file_is_up_to_date():
    assert (REPO / 'docker-compose.yml').read_text() == render(index_shards=COMMITTED_INDEX_SHARDS), \
        'regenerate it: make compose-file'
    services = compose(index_shards=COMMITTED_INDEX_SHARDS)['services']
    assert all(p.startswith('127.0.0.1:') for p in services['gateway']['ports'])
    assert {'indexer-head', 'indexer-0', 'indexer-1', 'merger'} <= set(services)
    assert all(s['init'] is True for s in services.values())


def _local(command, port_of):
    """A service's command line for this machine: the venv's jina, 127.0.0.1 for 0.0.0.0, ports of `port_of`."""
    command = list(command)
    command[0] = str(Path(sys.executable).parent / 'jina')
    text = json.dumps(command)
    for name in sorted(port_of, key=len, reverse=True):
        text = text.replace(f'{name}:8081', f'127.0.0.1:{port_of[name]}')
    return ['127.0.0.1' if c == '0.0.0.0' else c for c in json.loads(text)]


def test_compose_command_lines_start_a_working_flow(tmp_path, faq_csv):
    services = compose(index_shards=COMMITTED_INDEX_SHARDS)['services']
    internal = [n for n in services if n != 'gateway']
    *picked, grpc_port, http_port = free_ports(len(internal) + 2)
    port_of = dict(zip(internal, picked))
    env = {**os.environ, 'COVIDQA_HOME': str(tmp_path / 'home')}
    procs = []

    def start(name, command):
        procs.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=open(tmp_path / f'{name}.log', 'wb'),
                                      stderr=subprocess.STDOUT, start_new_session=True))

    try:
        for name in internal:
            command = _local(services[name]['command'], port_of)
            command[command.index('--port') + 1] = str(port_of[name])
            start(name, command)
        command = _local(services['gateway']['command'], port_of)
        at = command.index('--port')
        command[at + 1:at + 3] = [str(grpc_port), str(http_port)]
        start('gateway', command)
        deadline = time.monotonic() + 300
        while not gateway_ready(f'http://127.0.0.1:{http_port}'):
            assert all(p.poll() is None for p in procs), 'a service exited; see the logs in ' + str(tmp_path)
            assert time.monotonic() < deadline, 'the compose services were not ready in 300 s'
            time.sleep(1)

        from jina import Client

        from covidqa.docs import DocList, QADoc
        from covidqa.index.replies import indexer_reply, shard_replies
        from toydata import generate_qa

        docs = generate_qa(faq_csv)[:10]
        client = Client(host='127.0.0.1', port=grpc_port, protocol='grpc')
        client.post('/index', docs)
        found = client.post('/search', DocList[QADoc]([QADoc(text=docs[4].text)]), parameters={'limit': 3},
                            return_type=DocList[QADoc])
        assert found[0].matches[0].id == docs[4].id
        assert len({m.id for m in found[0].matches}) == 3  # the merger keeps the best 3 of both shards, once each
        everything = client.post('/search', DocList[QADoc]([QADoc(text=docs[0].text)]), parameters={'limit': 100},
                                 return_type=DocList[QADoc])[0].matches
        assert sorted(everything.id) == sorted(set(docs.id))  # both shards answered, each id once
        replies = client.post('/count', DocList[QADoc](), return_responses=True)[0].parameters['__results__']
        per_shard = sorted(r['count'] for r in shard_replies(replies))
        assert indexer_reply(replies)['count'] == len(set(docs.id)) and len(per_shard) == 2 and per_shard[0] > 0
        held = {d.name: len(list(d.rglob('*'))) for d in (tmp_path / 'home' / 'index').glob('shard-*')}
        assert sorted(held) == ['shard-0', 'shard-1'] and all(held.values()), held
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
