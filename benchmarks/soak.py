"""Soak test with a fuzzer: the Flow under a mixed load of real and malformed requests for a while (a script, not a
test; ``make soak``).

1. Starts ``flow.yml`` (:class:`client.flowctl.FlowProcess`, temporary ``$COVIDQA_HOME``) with ``$COVIDQA_TOKEN``
   set and indexes the deepset FAQ (``$COVIDQA_DATA/covid_faq_deepset/faq_covidbert.csv``).
2. For ``--duration`` seconds ``--clients`` threads loop over a weighted mix over gRPC (jina ``Client``, the token
   in the metadata) and HTTP (urllib): ``/search`` and ``/answer`` (most), ``/feedback`` on matches of an earlier
   search, ``/index`` of a new small document, ``/count`` / ``/status``, and malformed requests from
   :mod:`fuzz` (every request with a client-side timeout). Each request is recorded: endpoint, protocol, fuzzed
   or not, outcome (ok / client_error / server_error / timeout / connection), latency. The Flow's memory (RSS and
   PSS over its process tree) is sampled every ``--sample-every`` seconds.
3. Checks that nothing acknowledged is lost: every acknowledged ``/index`` document is found by a search for its
   text and is in the index file, ``/count`` matches, every acknowledged label is in
   ``$COVIDQA_HOME/feedback/labels.jsonl`` and ``/status`` counts it; then restarts the Flow on the same home and
   checks again.
4. Writes ``benchmarks/out/soak.json`` (+ ``soak_requests.jsonl``, one line a request), ``docs/soak.png`` (memory
   and search/answer latency p50/p99 over time) and prints a table.

Targets (issue 18): 0 server errors, 0 lost acknowledged writes, every fuzzed input answered with a 4xx / gRPC
client error and the Flow still serving. With ``--replicas 2 --kill-after S`` the indexer runs two replicas (one
shared store) and the first is killed with SIGKILL ``S`` seconds into the load; the target is then under 1% failed
real requests (``summary.kill``), and the same checks of acknowledged writes, also after a full restart. A local Flow
does not restart a killed replica (jina does not); the compose stack does (``make test-compose``). Example::

    python benchmarks/soak.py --duration 30 --clients 4
    python benchmarks/soak.py --replicas 2 --kill-after 60   # -> benchmarks/out/soak_replicas.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path

os.environ.setdefault('JINA_LOG_LEVEL', 'CRITICAL')  # the client's own error logs; the Flow gets INFO below

import numpy as np  # noqa: E402
from fuzz import GrpcStub, Target, fuzz_case, grpc_call, http_call, send, to_docs  # noqa: E402
from measure import cpu_state, memory_of, percentile, process_tree  # noqa: E402

from client.flowctl import FlowProcess  # noqa: E402
from covidqa.docs import DocList, QADoc  # noqa: E402
from covidqa.index.replies import indexer_reply  # noqa: E402
from covidqa.index.store import DocumentStore  # noqa: E402
from covidqa.paths import FAQ_FILE, data_dir  # noqa: E402
from toydata import generate_qa  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class _DropPollerNoise(logging.Filter):
    """grpcio's asyncio poller logs ``BlockingIOError: [Errno 11]`` / ``Event loop is closed`` when several threads
    run their own event loops (one jina Client each): client-side noise, counted, not printed."""

    dropped = 0

    def filter(self, record):
        if 'PollerCompletionQueue' in record.getMessage():
            _DropPollerNoise.dropped += 1
            return False
        return True


logging.getLogger('asyncio').addFilter(_DropPollerNoise())
MIX = {'search': 34, 'answer': 24, 'feedback': 10, 'index': 8, 'read': 4, 'fuzz': 20}


class Soak:
    """Shared state of the client threads: request records, acknowledged and uncertain writes, findings."""

    def __init__(self, flow: FlowProcess, token: str, questions, known_ids, timeout: float):
        self.flow, self.token, self.questions, self.known_ids, self.timeout = flow, token, questions, known_ids, timeout
        self.lock = threading.Lock()
        self.records: list = []
        self.acked_index: dict = {}  # id -> text of every /index the Flow acknowledged
        self.uncertain_index: set = set()  # ids of /index requests that timed out (stored or not)
        self.fuzz_accepted: set = set()  # ids of fuzzed /index requests that were (wrongly) accepted
        self.acked_labels: set = set()  # (query id, document id, label)
        self.uncertain_labels = 0
        self.findings: list = []
        self.bad_ok = Counter()  # 'ok' answers without the expected content
        self.t0 = time.monotonic()

    def record(self, endpoint, protocol, fuzzed, case, outcome, status, started):
        row = {'t': round(started - self.t0, 3), 'endpoint': endpoint, 'protocol': protocol, 'fuzzed': fuzzed,
               'case': case, 'outcome': outcome, 'status': str(status),
               'latency_ms': round(1000 * (time.monotonic() - started), 1)}
        with self.lock:
            self.records.append(row)


def _ids_of_matches(outcome, body, protocol):
    if outcome != 'ok':
        return []
    if protocol == 'grpc':
        return [m.id for m in body[0].matches] if len(body) else []
    return [m['id'] for m in (body.get('data') or [{}])[0].get('matches') or []]


def worker(soak: Soak, k: int, end: float, seed: int) -> None:
    rng = random.Random(seed * 1000 + k)
    client = GrpcStub(soak.flow.grpc_port)
    target = Target(soak.flow.http_url, client, soak.flow.grpc_port, soak.token, soak.known_ids)
    searched: deque = deque(maxlen=32)
    n = 0
    while time.monotonic() < end:
        n += 1
        action = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if action == 'feedback' and not searched:
            action = 'search'
        protocol = rng.choice(['grpc', 'http'])
        started = time.monotonic()
        if action == 'fuzz':
            case, protocol, spec = fuzz_case(rng, target)
            outcome, status, body = send(spec, target, soak.timeout)
            soak.record(spec.endpoint[:40], protocol, True, case, outcome, status, started)
            with soak.lock:
                if spec.fuzz_ids and outcome == 'ok':
                    soak.fuzz_accepted.update(spec.fuzz_ids)
                elif spec.fuzz_ids and outcome in ('timeout', 'connection'):
                    soak.uncertain_index.update(spec.fuzz_ids)
                if outcome != 'client_error':
                    soak.findings.append({'case': case, 'protocol': protocol, 'outcome': outcome, 'status': status,
                                          't': round(started - soak.t0, 1), 'input': spec.describe(),
                                          'answer': str(body)[:300]})
            continue
        endpoint, docs, params, token, results = f'/{action}', None, {}, None, False
        text = rng.choice(soak.questions)
        if action == 'search':
            docs = [{'id': f'q-{k}-{n}', 'text': text}]
            params = {'limit': 5}
        elif action == 'answer':
            docs = [{'text': text}]
        elif action == 'index':
            doc_id = f'soak-{k}-{n}'
            docs = [{'id': doc_id, 'text': f'{text} (soak note {k}-{n}-{rng.getrandbits(32):08x})',
                     'answer': f'Soak answer {k}-{n}.'}]
            token = soak.token
        elif action == 'feedback':
            query_id, shown = searched.popleft()
            picked = rng.sample(shown, min(len(shown), rng.choice([1, 2])))
            labels = {doc_id: rng.choice(['accepted', 'rejected']) for doc_id in picked}
            docs = [{'id': query_id, 'matches': [{'id': d, 'label': lab} for d, lab in labels.items()]}]
            token = soak.token
        else:
            endpoint, docs, results = rng.choice(['/count', '/status']), [{'text': 'read'}], True
        if protocol == 'grpc':
            outcome, status, body = grpc_call(client, endpoint, to_docs(docs), soak.timeout, token=token,
                                              parameters=params, results=results)
        else:
            outcome, status, body = http_call(soak.flow.http_url, endpoint, {'data': docs, 'parameters': params},
                                              soak.timeout, token=token)
        soak.record(endpoint, protocol, False, 'real', outcome, status, started)
        with soak.lock:
            if outcome == 'server_error':
                soak.findings.append({'case': 'real', 'protocol': protocol, 'endpoint': endpoint, 'status': status,
                                      't': round(started - soak.t0, 1), 'answer': str(body)[:300]})
            if action == 'search':
                matches = _ids_of_matches(outcome, body, protocol)
                if matches:
                    searched.append((docs[0]['id'], matches))
                elif outcome == 'ok':
                    soak.bad_ok['/search without matches'] += 1
            elif action == 'answer' and outcome == 'ok':
                answers = body[0].answers if protocol == 'grpc' else body['data'][0].get('answers')
                if not len(answers):
                    soak.bad_ok['/answer without answers'] += 1
            elif action == 'index':
                if outcome == 'ok':
                    soak.acked_index[docs[0]['id']] = docs[0]['text']
                elif outcome in ('timeout', 'connection'):
                    soak.uncertain_index.add(docs[0]['id'])
            elif action == 'feedback':
                if outcome == 'ok':
                    soak.acked_labels.update((query_id, d, lab) for d, lab in labels.items())
                elif outcome in ('timeout', 'connection'):
                    soak.uncertain_labels += len(labels)


def sample_memory(flow: FlowProcess, samples: list, stop: threading.Event, every: float, t0: float) -> None:
    while not stop.is_set():
        rss, pss, _ = memory_of(process_tree(flow.proc.pid))
        samples.append({'t': round(time.monotonic() - t0, 1), 'rss_mb': round(rss / 2**20, 1),
                        'pss_mb': round(pss / 2**20, 1), 'loadavg_1m': round(os.getloadavg()[0], 2)})
        stop.wait(every)


def _results(flow, endpoint):
    outcome, status, body = http_call(flow.http_url, endpoint, {'data': [{'text': endpoint}]}, timeout=120)
    if outcome != 'ok':
        raise RuntimeError(f'{endpoint} failed during the checks: {status} {body}')
    return body['parameters']['__results__']


def verify(flow: FlowProcess, soak: Soak, faq_ids, when: str) -> dict:
    """Acknowledged writes against the running Flow: searches, /count, /status, the label file."""
    expected = set(faq_ids) | set(soak.acked_index) | soak.fuzz_accepted
    count = indexer_reply(_results(flow, '/count'))['count']
    status = next(r for r in _results(flow, '/status').values() if 'labels_total' in r)
    ids, not_found = list(soak.acked_index), []
    client = flow.client()
    for begin in range(0, len(ids), 64):
        chunk = ids[begin:begin + 64]
        queries = DocList[QADoc]([QADoc(id=f'verify-{when}-{i}', text=soak.acked_index[i]) for i in chunk])
        found = client.post('/search', queries, parameters={'limit': 10}, request_size=64, return_type=DocList[QADoc],
                            metadata=(), timeout=300)
        not_found += [i for i, q in zip(chunk, found) if i not in {m.id for m in q.matches}]
    stored_labels = set()
    labels_file = flow.home / 'feedback' / 'labels.jsonl'
    for line in labels_file.read_text().splitlines() if labels_file.exists() else []:
        record = json.loads(line)
        stored_labels.update((record['query_id'], item['id'], item['label']) for item in record['labels'])
    return {'when': when, 'count': count, 'count_expected_min': len(expected),
            'count_expected_max': len(expected) + len(soak.uncertain_index),
            'count_ok': len(expected) <= count <= len(expected) + len(soak.uncertain_index),
            'acked_index_docs': len(ids), 'acked_not_found_by_search': not_found,
            'labels_total': status['labels_total'], 'acked_labels': len(soak.acked_labels),
            'labels_total_ok': len(soak.acked_labels) <= status['labels_total'] <= len(soak.acked_labels)
            + soak.uncertain_labels,
            'acked_labels_missing_in_file': sorted(soak.acked_labels - stored_labels)[:20],
            'training': status['training'], 'active_version': status['active_version'],
            'target_version': status['target_version']}


def failed_around(records: list, at: float, window: float = 15.0) -> dict:
    """Real (not fuzzed) requests that failed (server error, timeout, connection) overall after a kill at ``at``
    seconds and within ``window`` seconds of it."""
    real = [r for r in records if not r['fuzzed']]
    failed = [r for r in real if r['outcome'] not in ('ok', 'client_error')]
    after = [r for r in real if r['t'] >= at]
    near = [r for r in after if r['t'] < at + window]
    return {'requests': len(real), 'failed': len(failed),
            'failed_share': round(len(failed) / max(1, len(real)), 5),
            'after_kill': len(after), 'failed_after_kill': sum(r['outcome'] not in ('ok', 'client_error')
                                                                for r in after),
            f'failed_within_{window:g}s': sum(r['outcome'] not in ('ok', 'client_error') for r in near),
            f'requests_within_{window:g}s': len(near)}


def stored_ids(home: Path) -> set:
    """Ids in the indexer's file (read after the Flow stopped)."""
    return set(DocumentStore(home / 'index' / 'shard-0').ids())


def summarize(soak: Soak, samples: list, duration: float) -> dict:
    rows = soak.records
    by_kind = Counter(('fuzzed' if r['fuzzed'] else 'real', r['outcome']) for r in rows)
    latency = {}
    for endpoint in ('/search', '/answer'):
        for protocol in ('grpc', 'http'):
            ms = [r['latency_ms'] for r in rows if not r['fuzzed'] and r['endpoint'] == endpoint
                  and r['protocol'] == protocol and r['outcome'] == 'ok']
            latency[f'{endpoint} {protocol}'] = {'n': len(ms), 'p50_ms': round(percentile(ms, 50), 1),
                                                 'p99_ms': round(percentile(ms, 99), 1)}
    cases: dict = {}
    for r in rows:
        if r['fuzzed']:
            key = f'{r["case"]} {r["protocol"]}'
            cases.setdefault(key, Counter())[r['outcome']] += 1
    mem = {k: [s[k] for s in samples] for k in ('rss_mb', 'pss_mb')}
    return {'requests': len(rows), 'requests_per_s': round(len(rows) / duration, 2),
            'by_kind': {f'{a} {b}': n for (a, b), n in sorted(by_kind.items())},
            'server_errors': sum(r['outcome'] == 'server_error' for r in rows),
            'fuzzed_not_4xx': sum(r['fuzzed'] and r['outcome'] != 'client_error' for r in rows),
            'latency': latency, 'fuzz_cases': {k: dict(v) for k, v in sorted(cases.items())},
            'memory_mb': {k: {'start': v[0], 'peak': max(v), 'end': v[-1]} for k, v in mem.items() if v},
            'bad_ok': dict(soak.bad_ok)}


def plot(samples: list, records: list, path: Path, window: float) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    t = [s['t'] for s in samples]
    top.plot(t, [s['pss_mb'] for s in samples], label='PSS')
    top.plot(t, [s['rss_mb'] for s in samples], label='RSS (shared pages counted per process)')
    top.set_ylabel('Flow memory (MB)')
    top.legend()
    top.set_title('Soak test: the Flow under real + fuzzed requests')
    end = max([r['t'] for r in records] + [window])
    edges = np.arange(0, end + window, window)
    for endpoint in ('/search', '/answer'):
        ms = [(r['t'], r['latency_ms']) for r in records if r['endpoint'] == endpoint and not r['fuzzed']
              and r['outcome'] == 'ok']
        mids, p50, p99 = [], [], []
        for lo in edges[:-1]:
            chunk = [v for ts, v in ms if lo <= ts < lo + window]
            if chunk:
                mids.append(lo + window / 2)
                p50.append(percentile(chunk, 50))
                p99.append(percentile(chunk, 99))
        bottom.plot(mids, p50, marker='.', label=f'{endpoint} p50')
        bottom.plot(mids, p99, marker='.', linestyle='--', label=f'{endpoint} p99')
    bottom.set_yscale('log')
    bottom.set_ylabel(f'latency (ms, {window:.0f} s windows)')
    bottom.set_xlabel('seconds since the start of the load')
    bottom.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_table(result: dict) -> None:
    s = result['summary']
    print(f'\nrequests served: {s["requests"]} in {result["config"]["duration"]} s ({s["requests_per_s"]}/s), '
          f'{result["config"]["clients"]} clients, loadavg {result["cpu"]}')
    print('outcomes:  ' + ', '.join(f'{k}: {v}' for k, v in s['by_kind'].items()))
    print(f'server errors: {s["server_errors"]}; fuzzed inputs not answered with a 4xx: {s["fuzzed_not_4xx"]}')
    print(f'{"latency (ok, real)":<22}{"n":>7}{"p50 ms":>10}{"p99 ms":>10}')
    for key, v in s['latency'].items():
        print(f'{key:<22}{v["n"]:>7}{v["p50_ms"]:>10}{v["p99_ms"]:>10}')
    for k, v in s['memory_mb'].items():
        print(f'memory {k}: start {v["start"]}, peak {v["peak"]}, end {v["end"]}')
    if 'kill' in s:
        print('replica kill: ' + ', '.join(f'{k}: {v}' for k, v in s['kill'].items()))
    print(f'lost writes: {result["lost_writes"]}')
    for check in result['checks']:
        print(f'  {check["when"]}: count {check["count"]} (expected {check["count_expected_min"]}..'
              f'{check["count_expected_max"]}), not found by search {len(check["acked_not_found_by_search"])}, '
              f'labels {check["labels_total"]} (acked {check["acked_labels"]}), labels missing in file '
              f'{len(check["acked_labels_missing_in_file"])}')
    seen = set()
    for f in result['findings']:
        key = (f['case'], f['protocol'], f.get('status'))
        if key not in seen:
            seen.add(key)
            print(f'finding: {key}: {f.get("input", f.get("endpoint"))[:200]} -> {f.get("answer", "")[:150]}')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--duration', type=float, default=300)
    ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--timeout', type=float, default=60, help='client-side timeout of every request (s)')
    ap.add_argument('--sample-every', type=float, default=3)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'out' / 'soak.json')
    ap.add_argument('--png', type=Path, default=REPO / 'docs' / 'soak.png')
    ap.add_argument('--keep-home', action='store_true', help="keep the Flow's temporary $COVIDQA_HOME")
    ap.add_argument('--replicas', type=int, default=1, help='indexer replicas (the kill test: 2)')
    ap.add_argument('--kill-after', type=float, default=None,
                    help='SIGKILL the first indexer replica this many seconds into the load (needs --replicas > 1)')
    args = ap.parse_args(argv)
    if args.kill_after is not None and args.replicas < 2:
        ap.error('--kill-after needs --replicas 2 or more: with one replica the index would just be gone')
    if args.replicas > 1 and args.out == ap.get_default('out'):
        args.out = args.out.with_name('soak_replicas.json')
        args.png = args.png.with_name('soak_replicas.png')
    keys = {'indexer': {'replicas': args.replicas}} if args.replicas > 1 else None

    faq = generate_qa(data_dir() / FAQ_FILE)
    token = secrets.token_hex(16)
    home = Path(tempfile.mkdtemp(prefix='soak-home-'))
    env = {'COVIDQA_TOKEN': token, 'JINA_LOG_LEVEL': 'INFO'}
    cpu_before = cpu_state()
    flow = FlowProcess(home=home, env=env, executor_keys=keys).start()
    killed: dict = {}
    try:
        flow.client().post('/index', faq, request_size=64, metadata=(('authorization', f'Bearer {token}'),))
        soak = Soak(flow, token, [d.text for d in faq], list(faq.id), args.timeout)
        samples: list = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_memory, args=(flow, samples, stop, args.sample_every, soak.t0),
                                   daemon=True)
        sampler.start()
        end = time.monotonic() + args.duration
        threads = [threading.Thread(target=worker, args=(soak, k, end, args.seed), daemon=True)
                   for k in range(args.clients)]
        for t in threads:
            t.start()
        if args.kill_after is not None:
            time.sleep(args.kill_after)
            name, pid = sorted(flow.replica_pids('indexer').items())[0]
            os.kill(pid, signal.SIGKILL)
            killed = {'replica': name, 'pid': pid, 'at_s': round(time.monotonic() - soak.t0, 1)}
            print(f'killed {name} (pid {pid}) with SIGKILL at {killed["at_s"]} s', flush=True)
        for t in threads:
            t.join(args.duration + 3 * args.timeout + 60)
        elapsed = time.monotonic() - soak.t0
        stop.set()
        sampler.join(10)
        alive = flow.proc.poll() is None and flow.ready()
        checks = [verify(flow, soak, faq.id, 'after the load')]
    finally:
        flow.stop()
    files_before = stored_ids(home)
    flow = FlowProcess(home=home, env=env, executor_keys=keys).start()
    try:
        checks.append(verify(flow, soak, faq.id, 'after a restart'))
    finally:
        flow.stop()
    files_after = stored_ids(home)
    lost_index = sorted(set(soak.acked_index) - files_after)
    lost = {'index_docs_missing_in_file_before_restart': sorted(set(soak.acked_index) - files_before)[:20],
            'index_docs_missing_in_file_after_restart': lost_index[:20],
            'index_docs_not_found_by_search': sum(len(c['acked_not_found_by_search']) for c in checks),
            'labels_missing': sum(len(c['acked_labels_missing_in_file']) for c in checks),
            'count_mismatch': sum(not c['count_ok'] for c in checks),
            'labels_total_mismatch': sum(not c['labels_total_ok'] for c in checks)}
    lost_total = (len(lost['index_docs_missing_in_file_before_restart']) + len(lost_index)
                  + lost['index_docs_not_found_by_search'] + lost['labels_missing'])
    summary = summarize(soak, samples, elapsed)
    if killed:
        summary['kill'] = {**killed, **failed_around(soak.records, killed['at_s'])}
    result = {'config': {'duration': args.duration, 'clients': args.clients, 'timeout_s': args.timeout,
                         'mix': MIX, 'seed': args.seed, 'faq_docs': len(faq), 'cores': os.cpu_count(),
                         'indexer_replicas': args.replicas, 'kill_after_s': args.kill_after},
              'cpu': {'before': cpu_before, 'loadavg_1m_during_max': max(s['loadavg_1m'] for s in samples),
                      'loadavg_1m_during_mean': round(float(np.mean([s['loadavg_1m'] for s in samples])), 2),
                      'after': cpu_state()},
              'flow_alive_after_load': alive, 'summary': summary,
              'acked': {'index_docs': len(soak.acked_index), 'labels': len(soak.acked_labels),
                        'uncertain_index_docs': len(soak.uncertain_index), 'uncertain_labels': soak.uncertain_labels,
                        'fuzz_docs_accepted': sorted(soak.fuzz_accepted)[:20]},
              'checks': checks, 'lost_writes': lost_total, 'lost_detail': lost,
              'client_poller_noise_logs': _DropPollerNoise.dropped, 'findings': soak.findings[:200], 'findings_total': len(soak.findings), 'memory_samples': samples,
              'targets_met': summary['server_errors'] == 0 and lost_total == 0 and summary['fuzzed_not_4xx'] == 0
              and alive and (not killed or summary['kill']['failed_share'] < 0.01)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    with open(args.out.with_name('soak_requests.jsonl'), 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in soak.records)
    plot(samples, soak.records, args.png, window=max(5.0, args.duration / 30))
    result['cpu'] = {k: result['cpu'][k] for k in ('loadavg_1m_during_mean', 'loadavg_1m_during_max')}
    print_table(result)
    if not args.keep_home:
        shutil.rmtree(home, ignore_errors=True)
    print(f'\nwrote {args.out}, {args.png}' + (f'; Flow home {home}' if args.keep_home else ''))
    return 0 if result['targets_met'] else 1


if __name__ == '__main__':
    sys.exit(main())
