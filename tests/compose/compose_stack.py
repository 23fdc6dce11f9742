"""`make test-compose`: the docker-compose.yml stack built and run with rootful Podman, tested from the host.

Steps (each timed; the times are printed at the end, also when a step fails):

1. tools: podman, runc, podman-compose, catatonit, debootstrap from apt when missing (CI runs this as root on a fresh
   machine); a containers.conf with runtime runc and ulimits this kind of machine allows (../shared/notes/containers.md).
2. base image: ``$COVIDQA_BASE_IMAGE`` (default ``localdebian:bookworm``); when that local image is missing it is made
   with debootstrap from the Debian mirror (no image registry here). ``COVIDQA_BASE_IMAGE=python:3.11-slim`` pulls.
3. build: ``podman build`` of the Dockerfile as ``covidqa:latest``, with the host's CA bundle and ``/opt/wheels`` (the
   torch CPU wheel) mounted when present. Requirements come before the source: a rerun after a code change reuses
   the dependency layer.
4. up: ``podman-compose up -d`` of the committed docker-compose.yml under a unique project name, the gateway on free
   host ports (``$COVIDQA_GRPC_HOST_PORT``/``$COVIDQA_HTTP_HOST_PORT``), a random ``COVIDQA_TOKEN``; then GET /dry_run
   is polled (Podman runs no healthchecks without systemd).
5. test: over HTTP and gRPC from the host: /index FAQ documents, /search, /answer, /feedback, /count, /status; writes
   without the token are refused. Then ``podman stop`` + ``start`` of one indexer shard and the finetuner: after the
   restart the documents (/count) and the labels (/status) are still there and /search still finds them.
6. down: ``podman-compose down -v`` and a sweep of whatever of the project is left (containers, network, volume), in
   ``finally``, also on SIGTERM/SIGINT/SIGHUP. The image ``covidqa:latest`` and the base image stay (the build cache
   of the next run); ``--rmi`` removes the project image too.

Exit status 0 when every check passed. Run as root from the repository root: ``python -m tests.compose.compose_stack``.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from client.flowctl import free_ports, gateway_ready

REPO = Path(__file__).resolve().parents[2]

IMAGE = 'covidqa:latest'
BASE_DEFAULT = 'localdebian:bookworm'
APT_PACKAGES = ['podman', 'runc', 'podman-compose', 'catatonit', 'debootstrap', 'fuse-overlayfs', 'slirp4netns',
                'uidmap']
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""
CA_BUNDLE = Path('/etc/ssl/certs/ca-certificates.crt')
WHEELS = Path('/opt/wheels')
READY_TIMEOUT = 600

times: Dict[str, float] = {}


@contextmanager
def step(name: str) -> Iterator[None]:
    print(f'== {name}', flush=True)
    start = time.monotonic()
    try:
        yield
    finally:
        times[name] = time.monotonic() - start
        print(f'== {name}: {times[name]:.1f} s', flush=True)


def sh(command: List[str], env: Optional[dict] = None, check: bool = True, quiet: bool = False,
       timeout: Optional[float] = None) -> subprocess.CompletedProcess:
    if not quiet:
        print('+', ' '.join(command), flush=True)
    result = subprocess.run(command, env=env, text=True, timeout=timeout,
                            stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    if check and result.returncode:
        raise RuntimeError(f'{command[:3]} failed with exit status {result.returncode}'
                           + (f':\n{result.stdout[-3000:]}' if quiet and result.stdout else ''))
    return result


def install_tools() -> None:
    missing = [tool for tool in ('podman', 'podman-compose', 'runc', 'catatonit', 'debootstrap')
               if not shutil.which(tool)]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f'missing {missing}: run as root (apt-get install -y {" ".join(APT_PACKAGES)})')
    env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
    sh(['apt-get', 'update', '-qq'], env=env, quiet=True)
    sh(['apt-get', 'install', '-y', '-qq', *APT_PACKAGES], env=env, quiet=True)


def ensure_base_image(base: str, env: dict, workdir: Path) -> None:
    """The local Debian base (no image registry here): debootstrap, then podman import. Other bases are pulled."""
    if sh(['podman', 'image', 'exists', base], env=env, check=False, quiet=True).returncode == 0:
        print(f'base image {base} exists', flush=True)
        return
    if base != BASE_DEFAULT:
        sh(['podman', 'pull', base], env=env)
        return
    rootfs = workdir / 'rootfs'
    sh(['debootstrap', '--variant=minbase', 'bookworm', str(rootfs), 'http://deb.debian.org/debian'], quiet=True)
    sources = Path('/etc/apt/sources.list.d/debian.sources')
    if sources.is_file():
        shutil.copy(sources, rootfs / 'etc/apt/sources.list.d/debian.sources')
        (rootfs / 'etc/apt/sources.list').unlink(missing_ok=True)
    for folder in (rootfs / 'var/cache/apt/archives', rootfs / 'var/lib/apt/lists'):
        for entry in folder.glob('*'):
            if entry.is_file():
                entry.unlink()
    tar = subprocess.Popen(['tar', '-C', str(rootfs), '-c', '.'], stdout=subprocess.PIPE)
    imported = subprocess.run(['podman', 'import', '-', base], stdin=tar.stdout, env=env, capture_output=True, text=True)
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    if imported.returncode or tar.returncode:
        raise RuntimeError(f'podman import failed: {imported.stderr[-2000:]}')


def build_image(base: str, env: dict) -> None:
    command = ['podman', 'build', '--format', 'docker', '--build-arg', f'BASE={base}', '-t', IMAGE]
    if CA_BUNDLE.is_file():
        command += ['-v', f'{CA_BUNDLE}:/host/ca.crt:ro']
    if list(WHEELS.glob('torch-*.whl')):
        # the local torch CPU wheel instead of the PyTorch index (not reachable everywhere)
        command += ['-v', f'{WHEELS}:/host/wheels:ro', '--build-arg', 'TORCH_INDEX=']
    sh(command + [str(REPO)], env=env)


class Stack:
    """The compose project: podman-compose calls, container names, the host ports, the token."""

    def __init__(self, env: dict):
        self.project = f'covidqa-test-{os.getpid()}-{secrets.token_hex(3)}'
        self.grpc_port, self.http_port = free_ports(2)
        self.token = secrets.token_urlsafe(16)
        self.env = {**env, 'COVIDQA_TOKEN': self.token, 'COVIDQA_GRPC_HOST_PORT': str(self.grpc_port),
                    'COVIDQA_HTTP_HOST_PORT': str(self.http_port)}
        self.compose_file = REPO / 'docker-compose.yml'

    def compose(self, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
        return sh(['podman-compose', '-p', self.project, '-f', str(self.compose_file), *args], env=self.env,
                  check=check, quiet=quiet)

    def podman(self, *args: str, check: bool = True, quiet: bool = True) -> subprocess.CompletedProcess:
        return sh(['podman', *args], env=self.env, check=check, quiet=quiet)

    def containers(self) -> Dict[str, str]:
        """service -> state of this project's containers."""
        out = self.podman('ps', '-a', '--filter', f'label=io.podman.compose.project={self.project}', '--format',
                          'json', check=False).stdout or '[]'
        try:
            listed = json.loads(out)
        except ValueError:
            raise RuntimeError(f'podman ps: {out[-500:]}') from None
        return {(c['Names'][0] if isinstance(c['Names'], list) else c['Names']): c['State'] for c in listed}

    def container(self, service: str) -> str:
        return f'{self.project}_{service}_1'

    def logs(self, tail: int = 40) -> None:
        for name in self.containers():
            print(f'--- logs of {name} (last {tail} lines)', flush=True)
            self.podman('logs', '--tail', str(tail), name, check=False, quiet=False)

    def down(self) -> None:
        self.compose('down', '-t', '2', '-v', check=False, quiet=True)
        for name in self.containers():  # whatever down left behind
            self.podman('rm', '-f', '-v', '-t', '2', name, check=False)
        self.podman('network', 'rm', '-f', f'{self.project}_default', check=False)
        self.podman('volume', 'rm', '-f', f'{self.project}_covidqa-home', check=False)
        left = self.containers()
        volumes = self.podman('volume', 'ls', '-q', '--filter', f'name={self.project}', check=False).stdout
        networks = self.podman('network', 'ls', '-q', '--filter', f'name={self.project}', check=False).stdout
        if left or (volumes or '').strip() or (networks or '').strip():
            raise RuntimeError(f'down left {left} {volumes} {networks}')

    # --- requests from the host
    def http(self, endpoint: str, body: dict, token: Optional[str] = '', timeout: float = 300) -> tuple:
        headers = {'Content-Type': 'application/json'}
        token = self.token if token == '' else token
        if token:
            headers['Authorization'] = f'Bearer {token}'
        request = urllib.request.Request(f'http://127.0.0.1:{self.http_port}{endpoint}', data=json.dumps(body).encode(),
                                         headers=headers, method='POST')
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b'{}')

    def grpc(self, endpoint: str, docs, parameters: Optional[dict] = None, token: bool = True, **kwargs):
        from jina import Client

        from covidqa.docs import DocList, QADoc

        metadata = (('authorization', f'Bearer {self.token}'),) if token else ()
        client = Client(host='127.0.0.1', port=self.grpc_port, protocol='grpc')
        return client.post(endpoint, docs, parameters=parameters or {}, metadata=metadata, timeout=300,
                           **{'return_type': DocList[QADoc], **kwargs})

    def wait_ready(self, timeout: float = READY_TIMEOUT, services: Optional[List[str]] = None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if gateway_ready(f'http://127.0.0.1:{self.http_port}', timeout=5):
                return
            exited = {n: s for n, s in self.containers().items() if s not in ('running', 'created', 'configured')}
            if exited:
                raise RuntimeError(f'containers stopped: {exited}')
            if time.monotonic() > deadline:
                raise RuntimeError(f'the stack was not ready in {timeout:.0f} s: {self.containers()}')
            time.sleep(2)


def results_of(parameters: dict, prefix: str) -> dict:
    return next(v for k, v in parameters['__results__'].items() if k.startswith(prefix))


def check_stack(stack: Stack) -> None:
    """The service over HTTP and gRPC from the host; then one indexer shard and the finetuner restarted."""
    from covidqa.docs import DocList, MatchDoc, QADoc
    from covidqa.paths import FAQ_FILE, data_file
    from toydata import generate_qa

    unique: Dict[str, QADoc] = {}
    for doc in generate_qa(data_file(FAQ_FILE))[:60]:
        unique.setdefault(doc.id, doc)  # the FAQ repeats some questions (same id: the second replaces the first)
    docs = DocList[QADoc](list(unique.values())[:24])
    wanted = docs[5]

    # writes need the token: refused without it (the gateway listens beyond its container only with one)
    status, body = stack.http('/index', {'data': [{'text': 'x', 'answer': 'y'}]}, token=None)
    assert status == 401, (status, body)

    # /index: half over HTTP, half over gRPC
    first = [{'id': d.id, 'text': d.text, 'answer': d.answer} for d in docs[:12]]
    status, body = stack.http('/index', {'data': first})
    assert status == 200, (status, body)
    stack.grpc('/index', DocList[QADoc](docs[12:]))
    from covidqa.index.replies import indexer_reply

    count = indexer_reply(stack.grpc('/count', DocList[QADoc](), return_responses=True)[0].parameters['__results__'])
    assert count['count'] == len(docs), count
    print('count:', count, flush=True)

    # /search over both protocols finds the indexed question; both shards hold some of the documents
    status, body = stack.http('/search', {'data': [{'id': 'h1', 'text': wanted.text}], 'parameters': {'limit': 3}},
                              token=None)
    assert status == 200 and body['data'][0]['matches'][0]['id'] == wanted.id, (status, body)
    query = QADoc(id='q-compose-1', text=wanted.text)
    found = stack.grpc('/search', DocList[QADoc]([query]), {'limit': 5})
    matches = list(found[0].matches)
    assert matches[0].id == wanted.id and len(matches) == 5, [m.id for m in matches]

    # /answer: a span of the best match's answer
    status, body = stack.http('/answer', {'data': [{'text': wanted.text}], 'parameters': {'limit': 3, 'top_k': 1}},
                              token=None)
    assert status == 200, (status, body)
    answers = [a for a in body['data'][0]['answers'] if not a['no_answer']]  # "no answer" comes first, if at all
    assert answers and answers[0]['answer'] and answers[0]['answer'] in ' '.join(d.answer for d in docs), body
    print('answer:', answers[0]['answer'][:100], flush=True)

    # /feedback over gRPC (accept the right match, reject another) and HTTP (a second searched query)
    labeled = QADoc(id=query.id, text=query.text, matches=DocList[MatchDoc](
        [MatchDoc(id=matches[0].id, label='accepted'), MatchDoc(id=matches[1].id, label='rejected')]))
    stack.grpc('/feedback', DocList[QADoc]([labeled]))
    other = docs[7]
    status, body = stack.http('/search', {'data': [{'id': 'q-compose-2', 'text': other.text}],
                                          'parameters': {'limit': 3}}, token=None)
    assert status == 200, (status, body)
    status, body = stack.http('/feedback', {'data': [{'id': 'q-compose-2', 'text': other.text, 'matches': [
        {'id': body['data'][0]['matches'][0]['id'], 'label': 'accepted'}]}]})
    assert status == 200, (status, body)
    status, body = stack.http('/status', {'data': [], 'parameters': {}}, token=None)
    assert status == 200, (status, body)
    labels = results_of(body['parameters'], 'finetuner')
    assert (labels['positive'], labels['negative']) == (2, 1), labels
    shard_counts = _shard_counts(stack)
    assert sum(shard_counts) == len(docs) and all(shard_counts), shard_counts
    print('documents per shard:', shard_counts, 'labels:', labels['positive'], labels['negative'], flush=True)

    # stop one indexer shard and the finetuner, start them again: the documents and labels are still there
    with step('restart indexer-0 and finetuner'):
        for service in ('indexer-0', 'finetuner'):
            started = time.monotonic()
            stack.podman('stop', '-t', '30', stack.container(service), quiet=False)
            took = time.monotonic() - started
            # init: true forwards SIGTERM to jina (as PID 1 it ignores it, and stop would wait the whole 30 s)
            assert took < 20, f'podman stop {service} took {took:.0f} s: SIGTERM was ignored'
            print(f'stopped {service} in {took:.1f} s', flush=True)
        states = stack.containers()
        assert states[stack.container('indexer-0')] == 'exited', states
        for service in ('indexer-0', 'finetuner'):
            stack.podman('start', stack.container(service), quiet=False)
        stack.wait_ready()
        deadline = time.monotonic() + 180
        while True:  # the gateway and the head reconnect to the restarted containers
            try:
                after = _shard_counts(stack)
                break
            except (AssertionError, KeyError, RuntimeError, ConnectionError) as exc:
                if time.monotonic() > deadline:
                    raise
                print('waiting for the restarted services:', repr(exc)[:200], flush=True)
                time.sleep(3)
    assert after == shard_counts, (after, shard_counts)
    status, body = stack.http('/status', {'data': [], 'parameters': {}}, token=None)
    assert status == 200, (status, body)
    again = results_of(body['parameters'], 'finetuner')
    assert (again['positive'], again['negative']) == (2, 1), again
    found = stack.grpc('/search', DocList[QADoc]([QADoc(text=wanted.text)]), {'limit': 3})
    assert found[0].matches[0].id == wanted.id
    # a label for the search made before the restart is still accepted (the search log persisted too)
    relabel = QADoc(id=query.id, text=query.text, matches=DocList[MatchDoc]([MatchDoc(id=matches[2].id,
                                                                                       label='rejected')]))
    stack.grpc('/feedback', DocList[QADoc]([relabel]))
    status, body = stack.http('/status', {'data': [], 'parameters': {}}, token=None)
    assert results_of(body['parameters'], 'finetuner')['negative'] == 2, body['parameters']
    check_volume(stack)
    print('after the restart: documents per shard', after, 'labels', again['positive'], again['negative'], flush=True)


def _shard_counts(stack: Stack) -> List[int]:
    """Documents per shard from /count (every shard's reply is in ``__results__``; README, Sharding), checked against
    a search for everything (each shard answers with what it holds, the merger keeps each id once)."""
    from covidqa.index.replies import indexer_reply, shard_replies

    status, body = stack.http('/count', {'data': [], 'parameters': {}}, token=None, timeout=30)
    assert status == 200, (status, body)
    results = body['parameters']['__results__']
    total = indexer_reply(results)
    assert total['replied'] == [0, 1], total
    counts = [0, 0]
    for reply in shard_replies(results):
        counts[int(reply['shard'])] = int(reply['count'])
    status, body = stack.http('/search', {'data': [{'text': 'COVID-19'}], 'parameters': {'limit': 1000}},
                              token=None, timeout=60)
    assert status == 200, (status, body)
    ids = [m['id'] for m in body['data'][0]['matches']]
    assert len(ids) == len(set(ids)) == total['count'], (len(ids), total)
    hashed = [0, 0]
    for doc_id in ids:
        hashed[zlib.crc32(doc_id.encode()) % 2] += 1
    assert hashed == counts, (hashed, counts)
    return counts


def check_volume(stack: Stack) -> None:
    """The named volume holds both shards' index directories, the labels and the unpacked shipped reader, written by
    the image's non-root user."""
    mount = Path(stack.podman('volume', 'inspect', '--format', '{{.Mountpoint}}',
                              f'{stack.project}_covidqa-home').stdout.strip())
    names = {p.relative_to(mount).as_posix() for p in mount.glob('*/*')}
    assert {'index/shard-0', 'index/shard-1', 'feedback/labels.jsonl'} <= names, sorted(names)
    assert any(n.startswith('models/shipped-reader-') for n in names), sorted(names)
    owners = {p.stat().st_uid for p in mount.rglob('*')}
    assert owners == {1000}, owners
    print('volume:', sorted(names), flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rmi', action='store_true', help='also remove the project image at the end')
    parser.add_argument('--keep', action='store_true', help='leave the stack running (debugging; no down)')
    args = parser.parse_args(argv)
    base = os.environ.get('COVIDQA_BASE_IMAGE') or BASE_DEFAULT

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f'signal {signum}')

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, interrupted)

    total = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix='covidqa-compose-'))
    conf = workdir / 'containers.conf'
    conf.write_text(CONTAINERS_CONF)
    env = {**os.environ, 'CONTAINERS_CONF': os.environ.get('CONTAINERS_CONF') or str(conf),
           'COVIDQA_BASE_IMAGE': base}
    stack: Optional[Stack] = None
    ok = False
    try:
        with step('tools'):
            install_tools()
        with step('base image'):
            ensure_base_image(base, env, workdir)
        with step('build'):
            build_image(base, env)
        stack = Stack(env)
        print(f'project {stack.project}: gRPC 127.0.0.1:{stack.grpc_port}, HTTP 127.0.0.1:{stack.http_port}',
              flush=True)
        with step('up -> ready'):
            stack.compose('up', '-d', '--no-build', quiet=True)
            stack.wait_ready()
        with step('test'):
            check_stack(stack)
        ok = True
    except BaseException as exc:  # noqa: B902 - report, clean up, exit non-zero
        print(f'FAILED: {exc!r}', flush=True)
        if stack is not None:
            stack.logs()
        if not isinstance(exc, Exception):
            ok = False
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cleanup is not interrupted
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if stack is not None and not args.keep:
                with step('down'):
                    stack.down()
            if args.rmi:
                sh(['podman', 'rmi', '-f', IMAGE], env=env, check=False, quiet=True)
        except Exception as exc:  # a failed cleanup fails the run
            print(f'cleanup FAILED: {exc!r}', flush=True)
            ok = False
        shutil.rmtree(workdir, ignore_errors=True)
    times['total'] = time.monotonic() - total
    print('compose test ' + ('passed' if ok else 'FAILED') + ': '
          + ', '.join(f'{k} {v:.0f} s' for k, v in times.items()), flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
