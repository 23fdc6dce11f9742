"""docker-compose.yml: generated from flow.yml, and its command lines really start a working Flow.

There is no Docker engine here, so the services' exact command lines run as local processes on 127.0.0.1 ports
(the container hostnames and ports are rewritten; nothing else is changed).
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from client.compose import compose
from client.flowctl import REPO, free_ports

SERVICES_ORDER = ['tokenizer', 'embedder', 'indexer', 'reader', 'finetuner']


def test_committed_compose_file_is_up_to_date():
    committed = yaml.safe_load((REPO / 'docker-compose.yml').read_text())
    assert committed == compose()
    gateway = committed['services']['gateway']
    assert all(p.startswith('127.0.0.1:') for p in gateway['ports'])


def test_compose_command_lines_start_a_working_flow(tmp_path, faq_csv):
    services = compose()['services']
    executors = [n for n in services if n != 'gateway']
    *picked, grpc_port, http_port = free_ports(len(executors) + 2)
    ports = dict(zip(executors, picked))
    env = {**os.environ, 'COVIDQA_HOME': str(tmp_path)}
    jina = str(Path(sys.executable).parent / 'jina')
    procs = []

    def local(command, port_map):
        command = list(command)
        command[0] = jina
        text = json.dumps(command)
        for name, port in port_map.items():
            text = text.replace(f'{name}:8081', f'127.0.0.1:{port}')
        command = json.loads(text)
        return ['127.0.0.1' if c == '0.0.0.0' else c for c in command]

    try:
        for name in executors:
            command = local(services[name]['command'], ports)
            command[command.index('--port') + 1] = str(ports[name])
            procs.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=open(tmp_path / f'{name}.log', 'wb'),
                                          stderr=subprocess.STDOUT, start_new_session=True))
        command = local(services['gateway']['command'], ports)
        at = command.index('--port')
        command[at + 1:at + 3] = [str(grpc_port), str(http_port)]
        procs.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=open(tmp_path / 'gateway.log', 'wb'),
                                      stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{http_port}/dry_run', timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert all(p.poll() is None for p in procs), 'a service exited; see the logs in ' + str(tmp_path)
            assert time.monotonic() < deadline, 'the compose services were not ready in 240 s'
            time.sleep(1)

        from jina import Client

        from covidqa.docs import DocList, QADoc
        from toydata import generate_qa

        docs = generate_qa(faq_csv)[:10]
        client = Client(host='127.0.0.1', port=grpc_port, protocol='grpc')
        client.post('/index', docs)
        found = client.post('/search', DocList[QADoc]([QADoc(text=docs[4].text)]), parameters={'limit': 1},
                            return_type=DocList[QADoc])
        assert found[0].matches[0].id == docs[4].id
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
