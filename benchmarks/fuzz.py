"""Requests for the soak test (``benchmarks/soak.py``): calls over HTTP and gRPC that never raise but return an
outcome class, and a small fuzzer of malformed requests.

- :func:`http_call` / :func:`grpc_call` / :func:`grpc_raw_call`: one request with a client-side timeout, returning
  ``(outcome, status, body)``. Outcomes (:data:`OUTCOMES`): ``ok``, ``client_error`` (HTTP 4xx; gRPC
  UNAUTHENTICATED / RESOURCE_EXHAUSTED / INVALID_ARGUMENT / ... or an Executor's ``BadRequest``), ``server_error``
  (HTTP 5xx; gRPC UNKNOWN / INTERNAL / any other Executor exception), ``timeout``, ``connection``.
- :func:`fuzz_case`: one malformed request, ``(case name, protocol, spec)``; :func:`send` sends a spec. Cases:
  random JSON, wrong parameter types, unknown parameters, huge strings (> 100,000 chars), garbage bodies, unknown
  endpoints, writes without (or with a wrong) token, too many documents, too many bytes, bad writes with the token.

Example::

    outcome, status, body = http_call('http://127.0.0.1:8080', '/search', {'data': [{'text': 'virus?'}]}, timeout=30)
    name, protocol, spec = fuzz_case(random.Random(0), Target(http_url, grpc_client, grpc_port, 'token', ids))
    outcome, status, _ = send(spec, target, timeout=30)       # a fuzzed input should give 'client_error'
"""
from __future__ import annotations

import json
import random
import socket
import string
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from client.grpc_stub import ExecutorError, GrpcStub

OUTCOMES = ('ok', 'client_error', 'server_error', 'timeout', 'connection')
CLIENT_ERROR_EXCEPTIONS = ('BadRequest', 'ValidationError')
GRPC_CLIENT_CODES = ('INVALID_ARGUMENT', 'UNAUTHENTICATED', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'NOT_FOUND',
                     'UNIMPLEMENTED', 'FAILED_PRECONDITION', 'OUT_OF_RANGE', 'ALREADY_EXISTS')
GRPC_TIMEOUT_CODES = ('DEADLINE_EXCEEDED', 'CANCELLED')
ENDPOINTS = ('/search', '/answer', '/index', '/update', '/delete', '/count', '/status', '/feedback', '/train',
             '/rollback', '/save_model')
WRITES = ('/index', '/update', '/delete', '/feedback', '/train', '/rollback', '/save_model')


# ------------------------------------------------------------------------------------------------------- calls
def http_call(url: str, endpoint: str, body: Any, timeout: float, token: Optional[str] = None, raw: bool = False,
              method: str = 'POST', content_type: str = 'application/json') -> Tuple[str, int, Any]:
    """POST ``body`` (JSON, or bytes with ``raw``) to ``url + endpoint``: ``(outcome, HTTP status or 0, parsed
    JSON body or text)``."""
    headers = {'Content-Type': content_type}
    if token:
        headers['Authorization'] = f'Bearer {token}'
    data = None if method == 'GET' else (body if raw else json.dumps(body).encode())
    request = urllib.request.Request(url + endpoint, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    except (socket.timeout, TimeoutError):
        return 'timeout', 0, None
    except urllib.error.URLError as error:
        timed_out = isinstance(error.reason, (socket.timeout, TimeoutError))
        return ('timeout' if timed_out else 'connection'), 0, str(error.reason)[:300]
    except (ConnectionError, OSError) as error:
        return 'connection', 0, repr(error)[:300]
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = payload[:300].decode(errors='replace')
    outcome = 'ok' if status < 400 else 'client_error' if status < 500 else 'server_error'
    return outcome, status, parsed


def _grpc_code_outcome(code_name: str) -> str:
    if code_name in GRPC_CLIENT_CODES:
        return 'client_error'
    if code_name in GRPC_TIMEOUT_CODES:
        return 'timeout'
    if code_name == 'UNAVAILABLE':
        return 'connection'
    return 'server_error'


def classify_grpc_exception(error: BaseException) -> Tuple[str, str]:
    """``(outcome, status)`` of an exception raised by jina's gRPC ``Client.post``."""
    text = str(error)
    if isinstance(error, ExecutorError):
        return ('client_error' if error.name in CLIENT_ERROR_EXCEPTIONS else 'server_error'), error.name
    if type(error).__name__ == 'BadServer' and error.args:  # an Executor raised: its class name is in the header
        name = error.args[0].status.exception.name or 'unnamed'
        return ('client_error' if name in CLIENT_ERROR_EXCEPTIONS else 'server_error'), name
    if 'StatusCode.' in text:
        code_name = text.split('StatusCode.', 1)[1].split()[0].rstrip(':,')
        return _grpc_code_outcome(code_name), code_name
    code = getattr(error, 'code', None)
    if callable(code):
        return _grpc_code_outcome(code().name), code().name
    if isinstance(error, (ConnectionError, OSError)):
        return 'connection', type(error).__name__
    return 'server_error', f'{type(error).__name__}: {text[:200]}'


def grpc_call(client, endpoint: str, docs, timeout: float, token: Optional[str] = None,
              parameters: Optional[dict] = None, request_size: int = 100, results: bool = False):
    """``client.post`` (a :class:`GrpcStub` or jina's gRPC Client): ``(outcome, status, docs or the __results__
    dict)``."""
    from covidqa.docs import DocList, QADoc

    metadata = (('authorization', f'Bearer {token}'),) if token else ()
    try:
        if isinstance(client, GrpcStub):
            replies = client.post(endpoint, docs, parameters, metadata, timeout, request_size)
            if results:
                merged_results: dict = {}
                for reply in replies:
                    merged_results.update(reply.parameters.get('__results__', {}))
                return 'ok', 'OK', merged_results
            return 'ok', 'OK', DocList[QADoc]([doc for reply in replies for doc in reply.docs])
        if results:
            responses = client.post(endpoint, docs, parameters=parameters or {}, metadata=metadata, timeout=timeout,
                                    request_size=request_size, return_responses=True)
            merged: dict = {}
            for response in responses:
                merged.update(response.parameters.get('__results__', {}))
            return 'ok', 'OK', merged
        got = client.post(endpoint, docs, parameters=parameters or {}, metadata=metadata, timeout=timeout,
                          request_size=request_size, return_type=DocList[QADoc])
        return 'ok', 'OK', got
    except BaseException as error:  # noqa: BLE001 - every failure becomes an outcome
        if isinstance(error, KeyboardInterrupt):
            raise
        outcome, status = classify_grpc_exception(error)
        return outcome, status, str(error)[:300]


def grpc_raw_call(port: int, method: str, payload: bytes, timeout: float) -> Tuple[str, str, Any]:
    """Send raw bytes (not a valid protobuf message) to a gRPC ``method`` of the gateway."""
    import grpc

    with grpc.insecure_channel(f'127.0.0.1:{port}') as channel:
        try:
            if method.endswith('/Call'):
                call = channel.stream_stream(method, request_serializer=None, response_deserializer=None)
                list(call(iter([payload]), timeout=timeout))
            else:
                channel.unary_unary(method, request_serializer=None, response_deserializer=None)(payload,
                                                                                                timeout=timeout)
            return 'ok', 'OK', None
        except grpc.RpcError as error:
            return _grpc_code_outcome(error.code().name), error.code().name, (error.details() or '')[:300]


# ------------------------------------------------------------------------------------------------------- fuzzer
@dataclass
class Target:
    """Where fuzzed requests go: the HTTP URL, a gRPC client (:class:`GrpcStub`), the gRPC port, the token,
    known FAQ ids."""

    http_url: str
    grpc_client: Any
    grpc_port: int
    token: str
    known_ids: List[str] = field(default_factory=list)


@dataclass
class Spec:
    """A fuzzed request: ``kind`` 'http' (endpoint, body, raw, method, token), 'grpc' (endpoint, docs as dicts,
    parameters, token) or 'grpc_raw' (method, payload). ``fuzz_ids``: ids it would store if it were accepted."""

    kind: str
    endpoint: str
    body: Any = None
    parameters: Optional[dict] = None
    token: Optional[str] = None
    raw: bool = False
    method: str = 'POST'
    fuzz_ids: List[str] = field(default_factory=list)

    def describe(self, limit: int = 300) -> str:
        body = self.body if isinstance(self.body, (bytes, str)) else json.dumps(self.body, default=str)
        body = body if isinstance(body, str) else repr(body)
        short = body[:limit] + (f'... ({len(body)} chars)' if len(body) > limit else '')
        return (f'{self.kind} {self.method} {self.endpoint} params={json.dumps(self.parameters)[:120]} '
                f'token={"yes" if self.token else "no"} body={short}')


def random_json(rng: random.Random, depth: int = 0):
    """A random JSON value (nested up to 3 levels)."""
    kinds = ['int', 'float', 'str', 'bool', 'null'] + (['list', 'dict'] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == 'int':
        return rng.choice([0, -1, 1, 2**31, -2**63, rng.randint(-10**6, 10**6)])
    if kind == 'float':
        return rng.choice([0.5, -1e300, 1e-300, rng.uniform(-1e3, 1e3)])
    if kind == 'str':
        return ''.join(rng.choice(string.printable + 'éß中\u202e\u0000') for _ in range(rng.randint(0, 40)))
    if kind == 'bool':
        return rng.random() < 0.5
    if kind == 'null':
        return None
    if kind == 'list':
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ['text', 'id', 'matches', 'label', 'parameters', 'limit', 'x', 'data_', '']
    return {rng.choice(keys) + str(rng.randint(0, 9)): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


FLOAT_RANGES = {'no_answer_threshold': (0.0, 1.0), 'lexical_weight': (0.0, 100.0), 'overlap_threshold': (0.0, 1.0),
                'confidence_threshold': (0.0, 1.0), 'timeout': (1.0, 3600.0)}


def _bad_value(rng: random.Random, name: str = ''):
    """A value of the wrong type or out of range for parameter ``name`` (numbers in a float parameter's range,
    such as ``lexical_weight: 0``, are valid and left out)."""
    values = ['abc', '', [1, 2], {'a': 1}, -5, 0, 10**12, 2.5, True, float('nan'), float('inf'), 'x' * 1000]
    if name in FLOAT_RANGES:
        low, high = FLOAT_RANGES[name]
        values = [v for v in values
                  if not (isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high)]
    return rng.choice(values)


TYPED_PARAMETERS = {'/search': ['limit', 'max_length', 'batch_size'],
                    '/answer': ['limit', 'top_k', 'max_answer_length', 'doc_stride', 'no_answer_threshold',
                                'lexical_weight', 'overlap_threshold', 'confidence_threshold', 'context_field'],
                    '/train': ['wait', 'timeout'], '/rollback': ['version'], '/index': ['max_length', 'batch_size']}


def _huge(rng: random.Random) -> str:
    return 'covid ' * (rng.randint(100_001, 300_000) // 6 + 1)


def fuzz_case(rng: random.Random, target: Target) -> Tuple[str, str, Spec]:
    """One malformed request: ``(case name, protocol, spec)``; each is invalid by construction (a 4xx is right)."""
    grpc = rng.random() < 0.5
    proto = 'grpc' if grpc else 'http'
    kind = proto
    case = rng.choice(['random_json', 'wrong_type', 'unknown_param', 'huge_string', 'garbage', 'unknown_endpoint',
                       'no_token', 'too_many_docs', 'bad_write', 'bad_doc_field', 'too_many_bytes'])
    token = target.token
    question = {'text': 'How does the virus spread?'}
    uid = f'fuzz-{rng.getrandbits(48):012x}'
    if case == 'too_many_bytes' and rng.random() < 0.8:  # rare: 9 MiB a request
        case = 'unknown_param'
    if case == 'random_json':
        if grpc:  # the closest over gRPC: random values in the parameters, random docs text types are fixed by proto
            return case, proto, Spec(kind, rng.choice(['/search', '/answer']), [question],
                                     parameters={'x' + str(rng.randint(0, 99)): random_json(rng)})
        body = random_json(rng)  # never an object with 'data' (random keys end in a digit): invalid as a body
        return case, proto, Spec(kind, rng.choice(ENDPOINTS), json.dumps(body).encode(), raw=True,
                                 token=rng.choice([None, token]))
    if case == 'wrong_type':
        endpoint = rng.choice(list(TYPED_PARAMETERS))
        name = rng.choice(TYPED_PARAMETERS[endpoint])
        params = {name: _bad_value(rng, name)}
        if not grpc and rng.random() < 0.2:
            params = rng.choice([[1, 2], 'limit=3', 7])  # parameters that are not an object
        docs = [{'id': uid, 'text': 'fuzz document'}] if endpoint == '/index' else [question]
        return case, proto, Spec(kind, endpoint, docs, parameters=params, token=token,
                                 fuzz_ids=[uid] if endpoint == '/index' else [])
    if case == 'unknown_param':
        endpoint = rng.choice(['/search', '/answer', '/count', '/status', '/feedback'])
        params = {rng.choice(['limt', 'topk', 'k', 'model', 'debug', 'proto__', 'wait']): random_json(rng)}
        if endpoint in ('/search', '/answer') and 'wait' in params:
            params = {'wait': True}
        return case, proto, Spec(kind, endpoint, [question], parameters=params, token=token)
    if case == 'huge_string':
        where = rng.choice(['text', 'parameter'])
        if where == 'text':
            endpoint = rng.choice(['/search', '/answer', '/index'])
            doc = {'id': uid, 'text': _huge(rng)}
            return case, proto, Spec(kind, endpoint, [doc], token=token, fuzz_ids=[uid] if endpoint == '/index' else [])
        return case, proto, Spec(kind, '/answer', [question], parameters={'context_field': _huge(rng)})
    if case == 'garbage':
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2000)))
        if grpc:
            method = rng.choice(['/jina.JinaRPC/Call', '/jina.JinaSingleDataRequestRPC/process_single_data'])
            return case, proto, Spec('grpc_raw', method, payload)
        return case, proto, Spec('http', rng.choice(ENDPOINTS), payload, raw=True, token=token)
    if case == 'unknown_endpoint':
        endpoint = rng.choice(['/searc', '/admin', '/index/../delete', '/' + 'x' * 300, '/qa/nothing', '/'])
        if not grpc and rng.random() < 0.3:
            return case, proto, Spec('http', '/search', None, method='GET')  # wrong method
        return case, proto, Spec(kind, endpoint, [question], token=token)
    if case == 'no_token':
        endpoint = rng.choice(WRITES)
        known = rng.choice(target.known_ids) if target.known_ids else 'faq-0'
        docs = [{'id': known, 'text': 'overwritten without the token'}]
        params = {'version': 0} if endpoint == '/rollback' else {}
        return case, proto, Spec(kind, endpoint, docs, parameters=params, token=rng.choice([None, 'wrong-token']))
    if case == 'too_many_docs':
        n = rng.randint(257, 400)
        endpoint = rng.choice(['/search', '/answer', '/index'])
        docs = [{'id': f'{uid}-{i}', 'text': f'question {i}?'} for i in range(n)]
        return case, proto, Spec(kind, endpoint, docs, token=token,
                                 fuzz_ids=[d['id'] for d in docs] if endpoint == '/index' else [])
    if case == 'too_many_bytes':
        doc = {'id': uid, 'text': 'x' * (9 * 2**20)}
        return case, proto, Spec(kind, '/index', [doc], token=token, fuzz_ids=[uid])
    if case == 'bad_doc_field':
        if grpc:  # protobuf keeps types; an empty text / a doc with neither text nor embedding
            return case, proto, Spec(kind, rng.choice(['/search', '/answer', '/index']), [{'id': uid, 'text': ''}],
                                     token=token)
        field_name, value = rng.choice([('text', 5), ('text', None), ('matches', 'x'), ('model_version', 'x'),
                                        ('embedding', 'abc'), ('text', ['a', 'b']), ('answers', 3), ('id', {})])
        endpoint = rng.choice(['/search', '/answer', '/index'])
        if rng.random() < 0.15:  # no documents at all
            return case, proto, Spec(kind, endpoint, {'data': []}, token=token)
        doc = {'id': uid, 'text': 'fuzz', field_name: value}
        return case, proto, Spec(kind, endpoint, {'data': [doc]}, token=token, raw=False,
                                 fuzz_ids=[uid] if endpoint == '/index' else [])
    # bad_write: well-formed, authorized, but refused by the Executors
    choice = rng.choice(['empty_index', 'update_unknown', 'delete_nothing', 'feedback_never_searched',
                         'feedback_bad_label', 'rollback_missing', 'rollback_no_version'])
    endpoint, docs, params = {
        'empty_index': ('/index', [{'id': uid, 'text': '   '}], {}),
        'update_unknown': ('/update', [{'id': uid, 'text': 'no such document'}], {}),
        'delete_nothing': ('/delete', [], {}),
        'feedback_never_searched': ('/feedback', [{'id': uid, 'matches': [{'id': 'x', 'label': 'accepted'}]}], {}),
        'feedback_bad_label': ('/feedback', [{'id': uid, 'matches': [{'id': 'x', 'label': 'maybe'}]}], {}),
        'rollback_missing': ('/rollback', [], {'version': 999_999}),
        'rollback_no_version': ('/rollback', [], {}),
    }[choice]
    return f'{case}:{choice}', proto, Spec(kind, endpoint, docs, parameters=params, token=token,
                                           fuzz_ids=[uid] if endpoint == '/index' else [])


def to_docs(items):
    """Dicts (with ``matches`` as dicts) -> ``DocList[QADoc]`` for the gRPC client."""
    from covidqa.docs import DocList, MatchDoc, QADoc

    out = []
    for item in items or []:
        matches = DocList[MatchDoc]([MatchDoc(**m) for m in item.get('matches', [])])
        out.append(QADoc(**{k: v for k, v in item.items() if k != 'matches'}, matches=matches))
    return DocList[QADoc](out)


def send(spec: Spec, target: Target, timeout: float) -> Tuple[str, str, Any]:
    """Send a fuzzed request: ``(outcome, status, body)``."""
    if spec.kind == 'grpc_raw':
        return grpc_raw_call(target.grpc_port, spec.endpoint, spec.body, timeout)
    if spec.kind == 'grpc':
        return grpc_call(target.grpc_client, spec.endpoint, to_docs(spec.body), timeout, token=spec.token,
                         parameters=spec.parameters, request_size=1000)
    body = spec.body
    if not spec.raw and isinstance(body, list):
        body = {'data': body, **({'parameters': spec.parameters} if spec.parameters is not None else {})}
    outcome, status, parsed = http_call(target.http_url, spec.endpoint, body, timeout, token=spec.token, raw=spec.raw,
                                        method=spec.method)
    return outcome, str(status), parsed

__all__ = ['OUTCOMES', 'Target', 'Spec', 'GrpcStub', 'ExecutorError', 'http_call', 'grpc_call', 'grpc_raw_call', 'classify_grpc_exception',
           'fuzz_case', 'send', 'random_json', 'to_docs']
