"""The README's "By hand" commands, run as written: ``jina flow --uses flow.yml`` from the repository root (a real
process, stopped by its PID), then its ``python -m client`` and ``curl`` lines, read from the README itself so the
two cannot drift apart. On other ports only when the README's are busy: then the same commands run in a folder
holding a copy of flow.yml with those ports (and the repository's ``executors/`` linked in), started the same way
(``--uses flow.yml``, a path without a folder, the case jina's gateway failed on)."""
import csv
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from client.flowctl import REPO, free_ports, gateway_ready, port_open, stop_by_pid

README = REPO / 'README.md'
SECTION = '### By hand: `jina flow --uses flow.yml`'
PORTS = (54321, 8080)  # flow.yml's gRPC and HTTP ports, as the README's commands use them
VENV_BIN = '.venv/bin/'
SCORE = re.compile(r'\[(\d+(\.\d+)?%|<0\.01%) likely right\]$')


def readme_commands() -> List[List[str]]:
    """The command lines of the first bash block after :data:`SECTION`, split as a shell would (comments dropped,
    backslash continuations joined)."""
    text = README.read_text(encoding='utf-8')
    assert SECTION in text, f'README.md has no section {SECTION!r}'
    block = re.search(r'```bash\n(.*?)```', text[text.index(SECTION):], re.S)
    assert block, f'no bash block after {SECTION!r}'
    joined = re.sub(r'\\\n\s*', ' ', block.group(1))
    return [shlex.split(line, comments=True) for line in joined.splitlines() if shlex.split(line, comments=True)]


def local(argv: List[str]) -> List[str]:
    """``argv`` with the README's ``.venv/bin/`` programs taken from the virtual environment running the tests."""
    program = argv[0]
    if program.startswith(VENV_BIN):
        program = str(Path(sys.executable).parent / program[len(VENV_BIN):])
    return [program, *argv[1:]]


def on_ports(argv: List[str], grpc: int, http: int) -> List[str]:
    return [a.replace(f'127.0.0.1:{PORTS[1]}', f'127.0.0.1:{http}') for a in argv]


def no_warnings(stderr: str) -> bool:
    return not re.search(r'warning', stderr, re.I)


@pytest.fixture(scope='module')
def started(tmp_path_factory):
    """``(commands, workdir, grpc_port, http_port, process)``: the README's Flow command running."""
    commands = readme_commands()
    flow_command = commands[0]
    assert flow_command == ['.venv/bin/jina', 'flow', '--uses', 'flow.yml'], flow_command
    home = tmp_path_factory.mktemp('readme-home')
    if not any(port_open(p) for p in PORTS):
        cwd, (grpc, http) = REPO, PORTS
    else:  # a copy of flow.yml on free ports, started the same way from its own folder
        cwd = tmp_path_factory.mktemp('readme-flow')
        grpc, http = free_ports(2)
        flow_yml = (REPO / 'flow.yml').read_text()
        assert f'port: [{PORTS[0]}, {PORTS[1]}]' in flow_yml
        (cwd / 'flow.yml').write_text(flow_yml.replace(f'port: [{PORTS[0]}, {PORTS[1]}]', f'port: [{grpc}, {http}]'))
        (cwd / 'executors').symlink_to(REPO / 'executors')
    log = open(home / 'flow.log', 'wb')
    process = subprocess.Popen(local(flow_command), cwd=cwd, env={**os.environ, 'COVIDQA_HOME': str(home)},
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (gateway_ready(f'http://127.0.0.1:{http}') and port_open(grpc)):
            assert process.poll() is None, (home / 'flow.log').read_text(errors='replace')[-3000:]
            assert time.monotonic() < deadline, 'the Flow was not ready in 300 s'
            time.sleep(0.5)
        yield commands, tmp_path_factory.mktemp('readme-client'), grpc, http, process
    finally:
        stop_by_pid(process)
        log.close()


def run(argv, cwd, grpc, http):
    return subprocess.run(on_ports(local(argv), grpc, http), cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'COVIDQA_GRPC_PORT': str(grpc)})


def command(commands, *start) -> List[str]:
    (found,) = [c for c in commands if c[:len(start)] == list(start)]
    return found


def test_the_readme_commands_index_ask_search_and_curl(started, faq_csv):
    commands, cwd, grpc, http, process = started
    with open(faq_csv, newline='', encoding='utf-8') as f:
        rows = [row for row in csv.DictReader(f) if row['question'].strip() and row['answer'].strip()][:12]
    index = command(commands, '.venv/bin/python', '-m', 'client', 'index')
    with open(cwd / index[-1], 'w', newline='', encoding='utf-8') as f:  # my_faq.csv, in the client's folder
        writer = csv.writer(f)
        writer.writerow(['question', 'answer'])
        writer.writerows((row['question'], row['answer']) for row in rows)

    out = run(index, cwd, grpc, http)
    assert out.returncode == 0 and no_warnings(out.stderr), out.stderr
    assert out.stdout.strip().splitlines()[-1] == f'indexed {len(rows)} documents from {index[-1]}'

    out = run(command(commands, '.venv/bin/python', '-m', 'client', 'ask'), cwd, grpc, http)
    assert out.returncode == 0 and no_warnings(out.stderr), out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith('1. ') and SCORE.search(first), out.stdout  # a probability a person reads: '[37% likely right]'

    out = run(command(commands, '.venv/bin/python', '-m', 'client', 'search'), cwd, grpc, http)
    assert out.returncode == 0 and no_warnings(out.stderr), out.stderr
    shown = [line.split('] ', 1)[1] for line in out.stdout.splitlines() if re.match(r'\s*\d+\. \[', line)]
    assert shown and set(shown) <= {row['question'].strip() for row in rows}, out.stdout

    out = run(command(commands, 'curl'), cwd, grpc, http)
    assert out.returncode == 0, out.stderr
    answers = json.loads(out.stdout)['data'][0]['answers']
    assert 1 <= len(answers) <= 3 and all(0 <= a['score'] <= 1 for a in answers), answers


def test_user_errors_are_one_line_and_exit_2(started, tmp_path):
    commands, cwd, grpc, http, process = started
    index = command(commands, '.venv/bin/python', '-m', 'client', 'index')
    (tmp_path / 'faq.csv').write_text('ID,Category,Frage,Antwort\n1,a,Was ist es?,Ein Virus.\n2,b,Wo?,Hier.\n')
    cases = [
        ([*index[:-1], str(tmp_path / 'faq.csv')], "missing column(s) ['question', 'answer']; the file has "
                                                   "['ID', 'Category', 'Frage', 'Antwort'] (name them with"),
        ([*index[:-1], str(tmp_path / 'missing.csv')], 'missing.csv: no such file or folder'),
        (['.venv/bin/python', '-m', 'client', '--port', str(free_ports(1)[0]), 'count'], 'cannot reach the Flow'),
    ]
    for argv, message in cases:
        out = run(argv, cwd, grpc, http)
        assert out.returncode == 2, (argv, out)
        assert out.stderr.startswith('error: ') and message in out.stderr and out.stderr.count('\n') == 1, out.stderr
        assert 'Traceback' not in out.stdout + out.stderr
    out = run([*index[:-1], '--question-column', 'Frage', '--answer-column', 'Antwort', str(tmp_path / 'faq.csv')],
              cwd, grpc, http)
    assert out.returncode == 0 and out.stdout.strip().endswith('indexed 2 documents from ' + str(tmp_path / 'faq.csv'))


def test_serve_checks_a_named_faq_before_it_starts_anything(tmp_path):
    (tmp_path / 'faq.csv').write_text('Question,Answer\nWhat is it?,A virus.\n')
    started = time.monotonic()
    out = subprocess.run([sys.executable, '-m', 'client.serve', '--faq', str(tmp_path / 'faq.csv'),
                          '--question-column', 'Question', '--home', str(tmp_path / 'home')],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out
    assert out.stderr == (f"error: {tmp_path / 'faq.csv'}: missing column(s) ['answer']; the file has "
                          "['Question', 'Answer'] (name them with --question-column / --answer-column)\n")
    assert not (tmp_path / 'home').exists() and time.monotonic() - started < 60  # no Flow was started


def test_the_flow_stops_by_its_pid(started):
    commands, cwd, grpc, http, process = started
    assert stop_by_pid(process, timeout=60)
    assert process.returncode is not None
    deadline = time.monotonic() + 30
    while port_open(grpc) or port_open(http):  # its Executors and gateway went with it
        assert time.monotonic() < deadline, 'the Flow still serves after it stopped'
        time.sleep(0.5)
